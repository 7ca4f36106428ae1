// Where the page's APIs are. In order: `?http=<url>&ws=<url>` in the page's address, then the
// endpoints a person saved under "Server" on the sign-in screen (localStorage), then the host's
// `config.json` (`{"httpUrl", "wsUrl", "allowEndpointOverride"}`), then the page's own origin.
// The first two let anyone point the page elsewhere, and a password typed into it goes there: a
// host that serves a config.json honours them only with `"allowEndpointOverride": true` (the
// local stack says so; a production host should not). Pure module: tests/web/config.test.mjs.

export const STORAGE_KEY = "chatflow.endpoints";

/** `url` as an absolute http(s) / ws(s) URL without a trailing slash, or null. */
export function normalizeUrl(url, schemes) {
  if (typeof url !== "string" || !url.trim()) return null;
  let parsed;
  try {
    parsed = new URL(url.trim());
  } catch {
    return null;
  }
  if (!schemes.includes(parsed.protocol)) return null;
  return parsed.href.replace(/\/+$/, "");
}

const HTTP = ["http:", "https:"];
const WS = ["ws:", "wss:"];

/** The endpoint pair of one source, or null when it names no usable HTTP URL. */
function pair(source, httpUrl, wsUrl) {
  const http = normalizeUrl(httpUrl, HTTP);
  if (!http) return null;
  // A lone HTTP URL: the WebSocket API on the same host (true of the local stack, not of AWS).
  const ws = normalizeUrl(wsUrl, WS) || http.replace(/^http/, "ws");
  return { httpUrl: http, wsUrl: ws, source };
}

/**
 * @param {object} input
 * @param {string} input.origin    the page's origin (location.origin)
 * @param {string} input.search    the page's query string (location.search)
 * @param {object|null} input.hosted   the parsed config.json, or null when there is none
 * @param {object|null} input.saved    what was saved under "Server", or null
 * @returns {{httpUrl, wsUrl, source, overridable, hosted}} source: "query" | "saved" | "config" | "origin"
 */
export function resolveEndpoints({ origin, search = "", hosted = null, saved = null }) {
  const overridable = !hosted || hosted.allowEndpointOverride === true;
  const params = new URLSearchParams(search);
  const fallback = pair("config", hosted?.httpUrl, hosted?.wsUrl) || pair("origin", origin, null);
  const candidates = overridable ? [pair("query", params.get("http"), params.get("ws")), pair("saved", saved?.httpUrl, saved?.wsUrl)] : [];
  const chosen = candidates.find(Boolean) || fallback;
  return { ...chosen, overridable, hosted: fallback };
}
