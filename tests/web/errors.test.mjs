// The page's error table (local_stack/web/errors.js): every error the page can meet reads as a
// sentence, never as the server's developer wording. The real server's 422 shape is also checked
// in Chromium (tests/e2e/test_browser_chat.py, test_sign_in_mistakes_read_as_sentences).
import assert from "node:assert/strict";
import { test } from "node:test";

import { ActionRefused, ApiError, HandshakeRefused, SessionExpired } from "../../clients/js/chatflow.js";
import { CODES, checkLogin, checkRegistration, describeError } from "../../local_stack/web/errors.js";

const DEVELOPER = /String should|Field required|validation failed|pattern|HTTP \d|\bloc\b|body\./;

test("422 validation fields become one sentence per field, without the server's wording", () => {
  const err = new ApiError(422, "invalid", "request validation failed", {
    fields: [
      { loc: ["body", "handle"], type: "string_too_short", message: "String should have at least 3 characters" },
      { loc: ["body", "password"], type: "string_too_short", message: "String should have at least 8 characters" },
    ],
  });
  const { message, fields } = describeError(err);
  assert.deepEqual(fields, { handle: "A handle needs at least 3 characters.", password: "A password needs at least 8 characters." });
  assert.equal(message, "A handle needs at least 3 characters. A password needs at least 8 characters.");
  assert.doesNotMatch(message, DEVELOPER);
});

test("an unknown field or rule still reads as a sentence", () => {
  const odd = new ApiError(422, "invalid", "request validation failed", { fields: [{ loc: ["query", "limit"], type: "less_than_equal", message: "Input should be less than or equal to 100" }] });
  assert.equal(describeError(odd).message, "Some of what you entered isn't valid.");
  const rule = new ApiError(422, "invalid", "x", { fields: [{ loc: ["body", "handle"], type: "string_type", message: "Input should be a valid string" }] });
  assert.equal(describeError(rule).fields.handle, "That handle isn't valid.");
  const missing = new ApiError(422, "invalid", "x", { fields: [{ loc: ["body", "topic"], type: "missing", message: "Field required" }] });
  assert.equal(describeError(missing).fields.topic, "Enter a topic.");
});

test("every code in the table reads as a sentence", () => {
  for (const code of Object.keys(CODES)) {
    for (const err of [new ApiError(400, code, "developer text", {}), new ActionRefused(code, "developer text", { extra: {} })]) {
      const { message } = describeError(err);
      assert.match(message, /^[A-Z].*[.!…]$/u, `${code}: ${message}`);
      assert.doesNotMatch(message, /developer text/);
    }
  }
});

test("codes with figures use them", () => {
  assert.equal(describeError(new ApiError(429, "too_many_attempts", "x", { retryAfterS: 300 })).message, "Too many failed sign-in attempts. Try again in 5 minutes.");
  assert.equal(describeError(new ApiError(429, "too_many_attempts", "x", { retryAfterS: 20 })).message, "Too many failed sign-in attempts. Try again in 20 seconds.");
  assert.equal(describeError(new ActionRefused("body_too_long", "x", { extra: { max: 4000 } })).message, "A message can have at most 4,000 characters.");
});

test("unknown codes, statuses and transport failures", () => {
  assert.equal(describeError(new ApiError(503, "http_503", "Service Unavailable")).message, "The chat service is having trouble right now. Try again in a moment.");
  assert.equal(describeError(new ApiError(403, "http_403", "Forbidden")).message, "Your session has ended. Please sign in again.");
  assert.equal(describeError(new ApiError(400, "brand_new_code", "whatever")).message, "That didn't work (brand_new_code). Try again.");
  assert.equal(describeError(new TypeError("Failed to fetch")).message, "Can't reach the chat server. Check your connection and try again.");
  assert.equal(describeError(new SessionExpired("refresh refused")).message, "Your session has ended. Please sign in again.");
  assert.equal(describeError(new HandshakeRefused(429)).message, CODES.too_many_connects);
  assert.equal(describeError(new Error("boom")).message, "Something went wrong. Try again.");
});

test("the sign-up form's own checks match the server's rules", () => {
  assert.deepEqual(checkRegistration({ handle: "", password: "" }), { handle: "Enter your handle.", password: "Enter your password." });
  assert.deepEqual(checkRegistration({ handle: "ab", password: "1234567" }), { handle: "A handle needs at least 3 characters.", password: "A password needs at least 8 characters." });
  assert.deepEqual(checkRegistration({ handle: "no spaces", password: "x".repeat(129) }), { handle: "A handle can only use letters, digits, dots, dashes and underscores.", password: "A password can have at most 128 characters." });
  assert.deepEqual(checkRegistration({ handle: "a".repeat(33), password: "        " }), { handle: "A handle can have at most 32 characters.", password: "Choose a password of 8 to 128 characters." });
  assert.deepEqual(checkRegistration({ handle: "ada.l-ove_1", password: "correct horse" }), {});
  assert.deepEqual(checkLogin({ handle: "x", password: "" }), { password: "Enter your password." });
});
