// Where the page's APIs are (local_stack/web/config.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { normalizeUrl, resolveEndpoints } from "../../local_stack/web/config.js";

const origin = "http://127.0.0.1:8080";
const hosted = { httpUrl: "https://api.example.com/", wsUrl: "wss://ws.example.com/prod" };

test("the host's config.json, else the page's own origin", () => {
  assert.deepEqual(resolveEndpoints({ origin, hosted }), {
    httpUrl: "https://api.example.com", wsUrl: "wss://ws.example.com/prod", source: "config", overridable: false,
    hosted: { httpUrl: "https://api.example.com", wsUrl: "wss://ws.example.com/prod", source: "config" },
  });
  const bare = resolveEndpoints({ origin });
  assert.equal(bare.httpUrl, origin);
  assert.equal(bare.wsUrl, "ws://127.0.0.1:8080");
  assert.equal(bare.source, "origin");
  assert.equal(bare.overridable, true); // no operator config at all: a developer's page
});

test("?http=&ws= and the saved pair win only where the host allows it", () => {
  const search = "?http=https://other.example.com&ws=wss://other.example.com/dev";
  const saved = { httpUrl: "http://localhost:4566", wsUrl: "ws://localhost:4510" };
  const locked = resolveEndpoints({ origin, search, hosted, saved });
  assert.equal(locked.source, "config");
  assert.equal(locked.httpUrl, "https://api.example.com");
  const open = { ...hosted, allowEndpointOverride: true };
  assert.equal(resolveEndpoints({ origin, search, hosted: open, saved }).httpUrl, "https://other.example.com");
  assert.equal(resolveEndpoints({ origin, hosted: open, saved }).source, "saved");
  assert.equal(resolveEndpoints({ origin, hosted: open, saved }).wsUrl, "ws://localhost:4510");
});

test("unusable URLs are ignored, not followed", () => {
  const open = { ...hosted, allowEndpointOverride: true };
  for (const search of ["?http=javascript:alert(1)", "?http=ftp://x", "?http=not a url", "?ws=wss://only-ws.example.com"]) {
    assert.equal(resolveEndpoints({ origin, search, hosted: open }).source, "config", search);
  }
  assert.equal(normalizeUrl("wss://x.example.com/prod/", ["ws:", "wss:"]), "wss://x.example.com/prod");
  assert.equal(normalizeUrl("https://x.example.com", ["ws:", "wss:"]), null);
});
