// What the page tells people when something goes wrong: ONE table from the API's error codes
// (docs/http-api.md, docs/protocol.md "Errors") and validation fields to plain sentences. The
// server's own messages are written for developers ("String should have at least 8 characters")
// and are never shown. Pure module (no DOM): tests/web/errors.test.mjs runs it under Node.

/** Field rules shared by the sign-in form's own checks and the server's 422 `details.fields`. */
export const FIELDS = {
  handle: {
    label: "handle",
    missing: "Enter your handle.",
    string_too_short: "A handle needs at least 3 characters.",
    string_too_long: "A handle can have at most 32 characters.",
    string_pattern_mismatch: "A handle can only use letters, digits, dots, dashes and underscores.",
  },
  password: {
    label: "password",
    missing: "Enter your password.",
    string_too_short: "A password needs at least 8 characters.",
    string_too_long: "A password can have at most 128 characters.",
  },
  name: {
    label: "room name",
    missing: "Give the room a name.",
    string_too_short: "Give the room a name.",
    string_too_long: "A room name can have at most 80 characters.",
  },
  topic: { label: "topic", string_too_long: "The topic is too long." },
  displayName: { label: "display name", string_too_long: "A display name can have at most 64 characters." },
  body: {
    label: "message",
    missing: "Write a message first.",
    string_too_short: "Write a message first.",
    string_too_long: "That message is too long.",
  },
};

const RETRY_LATER = "The chat service is having trouble right now. Try again in a moment.";
const SIGN_IN_AGAIN = "Your session has ended. Please sign in again.";

/** Error codes (HTTP `error.code`, WebSocket error frames) -> sentence, or (err) -> sentence. */
export const CODES = {
  // accounts and sessions
  invalid_credentials: "That handle and password don't match an account. Check both and try again.",
  handle_taken: "That handle is already taken. Try another one.",
  weak_password: "Choose a password of 8 to 128 characters.",
  invalid_handle: FIELDS.handle.string_pattern_mismatch,
  invalid_display_name: FIELDS.displayName.string_too_long,
  too_many_attempts: (e) => `Too many failed sign-in attempts. Try again ${inAbout(e.details?.retryAfterS)}.`,
  account_disabled: "This account has been disabled.",
  user_banned: "This account has been disabled.",
  token_revoked: "You were signed out on all your devices. Please sign in again.",
  invalid_refresh_token: SIGN_IN_AGAIN,
  invalid_token: SIGN_IN_AGAIN,
  unauthorized: SIGN_IN_AGAIN,
  too_many_connections: "Chatflow is open in too many tabs or devices. Close one and try again.",
  limit_exceeded: "Chatflow is open in too many tabs or devices. Close one and try again.",
  too_many_connects: "Chatflow is open in too many tabs or devices, or reconnected too often. Close one, or wait a minute.",
  room_full: "This room is full.",
  too_many_rooms: "You're in as many rooms as an account can be. Leave one first.",
  // rooms and people
  name_taken: "There is already a room with that name. Pick another name.",
  invalid_name: FIELDS.name.string_too_long,
  invalid_topic: FIELDS.topic.string_too_long,
  room_not_found: "That room doesn't exist, or it is private.",
  already_member: "You're already in that room.",
  not_a_member: "Join this room first.",
  not_owner: "Only the room's owner can do that.",
  user_not_found: "There's nobody with that handle.",
  dm_self: "That's you! Pick someone else to message.",
  dm_membership_fixed: "People can't be added to or removed from a direct conversation.",
  last_member: "You're the last member of this room.",
  cannot_remove_self: "Use \u201cLeave room\u201d to leave a room.",
  // messages
  invalid_body: "A message can't be blank or contain control characters.",
  body_too_long: (e) => `A message can have at most ${count(e.extra?.max ?? 4000)} characters.`,
  frame_too_large: "That message is too long.",
  payload_too_large: "That's too long to send.",
  not_author: "You can only change your own messages.",
  message_deleted: "That message was deleted.",
  message_not_found: "That message no longer exists.",
  rate_limited: "You're going a bit fast. Wait a moment and try again.",
  client_message_id_reused: "That message could not be sent. Try again.",
  connection_not_found: "Reconnecting to live chat\u2026",
  // the service
  unavailable: RETRY_LATER,
  cache_unavailable: RETRY_LATER,
  fanout_unavailable: RETRY_LATER,
  events_unavailable: RETRY_LATER,
  internal_error: RETRY_LATER,
  internal: RETRY_LATER,
};

const BY_STATUS = {
  401: SIGN_IN_AGAIN,
  403: SIGN_IN_AGAIN,
  404: "That wasn't found.",
  413: "That's too long to send.",
  429: "You're going a bit fast. Wait a moment and try again.",
};

function count(n) {
  return Number(n).toLocaleString("en-US");
}

function inAbout(seconds) {
  const s = Number(seconds);
  if (!Number.isFinite(s) || s <= 0) return "later";
  if (s < 90) return `in ${Math.max(1, Math.round(s))} seconds`;
  return `in ${Math.round(s / 60)} minutes`;
}

/** The sentence for one failed field rule (`type` is pydantic's error type or "missing"). */
export function fieldSentence(field, type) {
  const rule = FIELDS[field];
  if (!rule) return null;
  if (rule[type]) return rule[type];
  if (type === "missing") return `Enter a ${rule.label}.`;
  return `That ${rule.label} isn't valid.`;
}

/**
 * Any error the page can meet, as `{message, fields}`: `message` is one plain sentence (or a few);
 * `fields` maps a form field to its own sentence (validation errors, shown next to the input).
 */
export function describeError(err) {
  if (!err) return { message: "", fields: {} };
  const name = err.name || "";
  if (name === "ApiError" && err.code === "invalid") {
    const fields = {};
    for (const f of Array.isArray(err.details?.fields) ? err.details.fields : []) {
      const loc = (Array.isArray(f.loc) ? f.loc : []).filter((part) => part !== "body");
      const field = loc.length === 1 ? String(loc[0]) : null;
      const sentence = field && fieldSentence(field, f.type);
      if (sentence && !fields[field]) fields[field] = sentence;
    }
    const sentences = Object.values(fields);
    return { message: sentences.length ? sentences.join(" ") : "Some of what you entered isn't valid.", fields };
  }
  if (name === "ApiError" || name === "ActionRefused") {
    const known = CODES[err.code];
    if (known) return { message: typeof known === "function" ? known(err) : known, fields: {} };
    if (name === "ApiError" && BY_STATUS[err.status]) return { message: BY_STATUS[err.status], fields: {} };
    if (name === "ApiError" && err.status >= 500) return { message: RETRY_LATER, fields: {} };
    return { message: `That didn't work (${err.code || "error"}). Try again.`, fields: {} };
  }
  if (name === "SessionExpired") return { message: SIGN_IN_AGAIN, fields: {} };
  if (name === "HandshakeRefused") {
    // A browser cannot read why: too many tabs/devices, or too many handshakes in a minute.
    if (err.status === 429) return { message: CODES.too_many_connects, fields: {} };
    if (err.status === 401 || err.status === 403) return { message: SIGN_IN_AGAIN, fields: {} };
    return { message: "Can't connect to live chat right now. Retrying\u2026", fields: {} };
  }
  if (name === "RequestTimeout") return { message: "The server didn't answer in time. Try again.", fields: {} };
  if (name === "ClientClosed") return { message: "You're signed out.", fields: {} };
  // fetch() rejects with a TypeError when the server cannot be reached (or CORS refuses).
  if (name === "TypeError") return { message: "Can't reach the chat server. Check your connection and try again.", fields: {} };
  return { message: "Something went wrong. Try again.", fields: {} };
}

/** The sign-up form's own checks, before asking the server (same sentences as its answers). */
export function checkRegistration({ handle, password }) {
  const fields = {};
  if (!handle) fields.handle = FIELDS.handle.missing;
  else if (handle.length < 3) fields.handle = FIELDS.handle.string_too_short;
  else if (handle.length > 32) fields.handle = FIELDS.handle.string_too_long;
  else if (!/^[A-Za-z0-9_.-]+$/.test(handle)) fields.handle = FIELDS.handle.string_pattern_mismatch;
  if (!password) fields.password = FIELDS.password.missing;
  else if (password.length < 8) fields.password = FIELDS.password.string_too_short;
  else if (password.length > 128) fields.password = FIELDS.password.string_too_long;
  else if (!password.trim()) fields.password = CODES.weak_password;
  return fields;
}

/** The sign-in form's own checks: both filled in (the rules apply at registration). */
export function checkLogin({ handle, password }) {
  const fields = {};
  if (!handle) fields.handle = FIELDS.handle.missing;
  if (!password) fields.password = FIELDS.password.missing;
  return fields;
}
