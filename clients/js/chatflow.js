// Chatflow client for browsers and Node 20: one ES module, no dependencies, no build step.
//
//   import { ChatflowClient } from "./chatflow.js";
//   const chat = new ChatflowClient({ httpUrl, wsUrl });          // Node: also { WebSocket } from "ws"
//   await chat.login("alice", "secret");
//   chat.on("message", ({ message, own }) => render(message));
//   await chat.connect();
//   await chat.join(roomId);
//   await chat.send(roomId, "hello");
//
// The protocol's rules are built in (docs/clients.md): one send in flight per room (the server
// processes a connection's frames concurrently), unacked sends resent with the SAME
// clientMessageId, messages released per room in seq order exactly once (gaps filled with
// `resume`), reconnect with backoff + jitter, then re-join + resume every room BEFORE resending,
// presence applied by version, the access token refreshed before it expires.

const DEFAULTS = Object.freeze({
  ackTimeoutMs: 10_000, // resend an unacked message (same clientMessageId) after this long
  requestTimeoutMs: 15_000, // wait this long for any other reply before trying again
  requestAttempts: 4, // per request (timeouts, server-side failures; lost connections do not count)
  reconnectInitialMs: 500, // attempt n waits between half and all of min(max, initial * 2^n)
  reconnectMaxMs: 30_000,
  keepaliveMs: 240_000, // `ping` (API Gateway drops sockets idle for 10 minutes); no pong = reconnect
  gapWaitMs: 1_000, // wait this long for a missing seq to arrive live before asking (resume)
  resumePage: 100,
  resumeConcurrency: 4, // rooms resumed at once after a reconnect
  typingTtlMs: 6_000, // someone's typing indicator lapses after this long
  typingIntervalMs: 3_000, // typing(room, true) sends at most one frame per interval
  tokenMarginMs: 60_000, // refresh the access token when less than this is left
  historyPage: 50,
});

/** Server-side failures: the same frame may be sent again (sends are idempotent). */
const RETRYABLE = new Set(["unavailable", "internal_error", "cache_unavailable", "fanout_unavailable", "service_unavailable"]);
/** API Gateway's own bearer refusals and the codes a NEW access token can cure. */
const TOKEN_REFUSALS = new Set(["http_401", "http_403", "invalid_token", "unauthorized", "token_expired"]);

// --- errors -----------------------------------------------------------------------------------------

export class ChatflowError extends Error {
  constructor(message) {
    super(message);
    this.name = new.target.name;
  }
}

/** The HTTP API answered an error: `status`, the protocol's `code`, `details`. */
export class ApiError extends ChatflowError {
  constructor(status, code, message, details = {}) {
    super(`HTTP ${status} ${code}: ${message}`);
    this.status = status;
    this.code = code;
    this.details = details;
    this.serverMessage = message;
  }
}

/** The server refused a WebSocket action: `code` (docs/protocol.md, Errors), `extra` fields. */
export class ActionRefused extends ChatflowError {
  constructor(code, message, { action = null, requestId = null, extra = {} } = {}) {
    super(`${code}: ${message}${action ? ` (action ${action})` : ""}`);
    this.code = code;
    this.serverMessage = message;
    this.action = action;
    this.requestId = requestId;
    this.extra = extra;
  }
  get retryAfterMs() {
    return typeof this.extra.retryAfterMs === "number" ? this.extra.retryAfterMs : null;
  }
}

/** Not signed in, or the refresh token was refused: sign in again. */
export class SessionExpired extends ChatflowError {}
/** The WebSocket handshake was refused (`status` when the runtime tells it; browsers do not). */
export class HandshakeRefused extends ChatflowError {
  constructor(status, message = "") {
    super(`WebSocket handshake refused${status ? `: HTTP ${status}` : ""}${message ? ` ${message}` : ""}`);
    this.status = status;
  }
}
export class RequestTimeout extends ChatflowError {}
/** The client closed before the operation completed (resending the same clientMessageId is safe). */
export class ClientClosed extends ChatflowError {}
class ConnectionLost extends Error {}

// --- the rules as small pure classes ----------------------------------------------------------------

/** Releases a room's items in seq order, each once; an item above lastSeq+1 waits (a gap). */
export class SeqOrder {
  constructor(lastSeq = null) {
    this.lastSeq = lastSeq;
    this.buffer = new Map();
  }
  startAt(seq) {
    if (this.lastSeq !== null) return false;
    this.lastSeq = seq;
    this._dropThrough(seq);
    return true;
  }
  offer(seq, item) {
    if (this.lastSeq === null) this.lastSeq = seq - 1;
    if (seq <= this.lastSeq) return [];
    if (!this.buffer.has(seq)) this.buffer.set(seq, item);
    return this._release();
  }
  reset(seq) {
    this.lastSeq = seq;
    this._dropThrough(seq);
    return this._release();
  }
  get hasGap() {
    return this.buffer.size > 0;
  }
  _release() {
    const out = [];
    while (this.buffer.has(this.lastSeq + 1)) {
      this.lastSeq += 1;
      out.push(this.buffer.get(this.lastSeq));
      this.buffer.delete(this.lastSeq);
    }
    return out;
  }
  _dropThrough(seq) {
    for (const s of [...this.buffer.keys()]) if (s <= seq) this.buffer.delete(s);
  }
}

/** Presence per user by version: a frame not newer than the last applied one is stale. */
export class PresenceBook {
  constructor() {
    this.byUser = new Map();
  }
  apply(p) {
    const known = this.byUser.get(p.userId);
    if (known) {
      if (p.version != null && known.version != null) {
        if (p.version <= known.version) return false;
      } else if (p.version == null && known.status === p.status) {
        return false;
      }
      if (p.handle == null && known.handle != null) p = { ...p, handle: known.handle };
    }
    this.byUser.set(p.userId, Object.freeze({ ...p }));
    return true;
  }
  get(userId) {
    return this.byUser.get(userId) || null;
  }
  online() {
    return [...this.byUser.values()].filter((p) => p.status === "online");
  }
}

/** Exponential backoff with jitter: between half and all of min(max, initial * 2^n). */
export class Backoff {
  constructor(initialMs, maxMs, rng = Math.random) {
    this.initialMs = initialMs;
    this.maxMs = maxMs;
    this.attempt = 0;
    this.rng = rng;
  }
  next() {
    const ceiling = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(this.attempt, 30));
    this.attempt += 1;
    return ceiling / 2 + (this.rng() * ceiling) / 2;
  }
  reset() {
    this.attempt = 0;
  }
}

// --- the wire, parsed in ONE place and tolerantly ---------------------------------------------------

const isStr = (v) => typeof v === "string";
const isInt = (v) => Number.isInteger(v);

function parseMessage(d, roomId = null) {
  if (!d || typeof d !== "object") return null;
  const room = isStr(d.roomId) ? d.roomId : roomId;
  if (!isStr(d.id) || !isStr(room) || !isInt(d.seq) || !isStr(d.senderId)) return null;
  return Object.freeze({
    id: d.id,
    roomId: room,
    seq: d.seq,
    senderId: d.senderId,
    senderHandle: isStr(d.senderHandle) ? d.senderHandle : null,
    clientMessageId: isStr(d.clientMessageId) ? d.clientMessageId : null,
    body: isStr(d.body) ? d.body : null,
    createdAt: isStr(d.createdAt) ? d.createdAt : null,
    editedAt: isStr(d.editedAt) ? d.editedAt : null,
    deletedAt: isStr(d.deletedAt) ? d.deletedAt : null,
  });
}

function parsePresence(d, defaultStatus) {
  if (!d || typeof d !== "object" || !isStr(d.userId)) return null;
  const status = d.status ?? defaultStatus;
  return {
    userId: d.userId,
    status: status === "offline" ? "offline" : "online",
    version: isInt(d.version) ? d.version : null,
    handle: isStr(d.handle) ? d.handle : null,
  };
}

function parseSnapshot(d, roomId, requestId) {
  const online = Array.isArray(d.online) ? d.online.map((e) => parsePresence(e, "online")).filter(Boolean) : [];
  const cursor = isStr(d.cursor) ? d.cursor : isStr(d.nextCursor) ? d.nextCursor : null;
  return { type: "presenceSnapshot", roomId, online, more: d.more === true, cursor, requestId };
}

/**
 * One server frame as a plain object with a `type`; never throws. Unknown or malformed frames
 * come back as `{type: "unknown", data}` (a newer server does not break an older client).
 */
export function parseFrame(raw) {
  let d;
  try {
    d = JSON.parse(typeof raw === "string" ? raw : new TextDecoder().decode(raw));
  } catch {
    return { type: "unknown", data: null, requestId: null };
  }
  if (!d || typeof d !== "object" || Array.isArray(d)) return { type: "unknown", data: d, requestId: null };
  const requestId = isStr(d.requestId) ? d.requestId : null;
  const unknown = { type: "unknown", data: d, requestId };
  switch (d.type) {
    case "message":
    case "messageEdited":
    case "messageDeleted": {
      const message = parseMessage(d.message);
      return message ? { type: d.type, message, requestId } : unknown;
    }
    case "ack":
      if (!isStr(d.clientMessageId) || !isStr(d.roomId) || !isInt(d.seq) || !isStr(d.messageId)) return unknown;
      return {
        type: "ack",
        requestId,
        ack: Object.freeze({
          clientMessageId: d.clientMessageId,
          roomId: d.roomId,
          seq: d.seq,
          messageId: d.messageId,
          createdAt: isStr(d.createdAt) ? d.createdAt : null,
          duplicate: d.duplicate === true,
        }),
      };
    case "error": {
      const { type, code, message, action, requestId: _r, ...extra } = d;
      return {
        type: "error",
        code: isStr(code) ? code : "unknown_error",
        message: isStr(message) ? message : "",
        action: isStr(action) ? action : null,
        extra,
        requestId,
      };
    }
    case "typing":
      if (!isStr(d.roomId) || !isStr(d.userId)) return unknown;
      return { type: "typing", roomId: d.roomId, userId: d.userId, handle: isStr(d.handle) ? d.handle : null, isTyping: d.isTyping !== false, requestId };
    case "presence": {
      const presence = parsePresence(d, "offline");
      return presence ? { type: "presence", presence, requestId } : unknown;
    }
    case "presenceSnapshot":
      return isStr(d.roomId) ? parseSnapshot(d, d.roomId, requestId) : unknown;
    case "read":
      return isStr(d.roomId) && isInt(d.seq) ? { type: "read", roomId: d.roomId, seq: d.seq, requestId } : unknown;
    case "resumed": {
      if (!isStr(d.roomId) || !isInt(d.sinceSeq)) return unknown;
      const messages = Array.isArray(d.messages) ? d.messages.map((m) => parseMessage(m, d.roomId)).filter(Boolean) : [];
      return {
        type: "resumed",
        roomId: d.roomId,
        sinceSeq: d.sinceSeq,
        messages,
        more: d.more === true,
        nextSinceSeq: isInt(d.nextSinceSeq) ? d.nextSinceSeq : messages.length ? messages[messages.length - 1].seq : d.sinceSeq,
        lastSeq: isInt(d.lastSeq) ? d.lastSeq : null,
        requestId,
      };
    }
    case "joined":
      if (!isStr(d.roomId)) return unknown;
      return {
        type: "joined",
        roomId: d.roomId,
        presence: d.presence && typeof d.presence === "object" ? parseSnapshot(d.presence, d.roomId, requestId) : null,
        requestId,
      };
    case "left":
      return isStr(d.roomId) ? { type: "left", roomId: d.roomId, requestId } : unknown;
    case "pong":
      return { type: "pong", serverTime: isInt(d.serverTime) ? d.serverTime : null, requestId };
    case "resync":
      return { type: "resync", requestId };
    case undefined:
      // API Gateway's own error frame: its requestId is the gateway's, never the client's.
      return isStr(d.message) ? { type: "gatewayError", message: d.message, requestId: null } : unknown;
    default:
      return unknown;
  }
}

function errorBody(status, data) {
  if (data && typeof data === "object") {
    if (data.error && typeof data.error === "object") {
      const e = data.error;
      return [isStr(e.code) ? e.code : `http_${status}`, isStr(e.message) ? e.message : "", e.details && typeof e.details === "object" ? e.details : {}];
    }
    if (isStr(data.message)) return [`http_${status}`, data.message, {}];
  }
  return [`http_${status}`, "", {}];
}

function jwtExpMs(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
    return typeof claims.exp === "number" ? claims.exp * 1000 : null;
  } catch {
    return null;
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A resettable "it happened" flag that can be awaited. */
class Signal {
  constructor() {
    this.isSet = false;
    this.waiters = [];
  }
  set() {
    this.isSet = true;
    for (const w of this.waiters.splice(0)) w();
  }
  clear() {
    this.isSet = false;
  }
  wait() {
    return this.isSet ? Promise.resolve() : new Promise((resolve) => this.waiters.push(resolve));
  }
}

function deferred() {
  let resolve;
  let reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => {}); // a failure is reported to whoever awaits; never "unhandled"
  return { promise, resolve, reject, done: false };
}

function randomId() {
  if (globalThis.crypto?.randomUUID) return globalThis.crypto.randomUUID();
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

// --- HTTP API ---------------------------------------------------------------------------------------

/** The Chatflow HTTP API (docs/http-api.md) with the session's tokens, refreshed before expiry. */
export class HttpApi {
  constructor({ httpUrl, fetch: fetchImpl = globalThis.fetch, tokenMarginMs = DEFAULTS.tokenMarginMs, onSession = null } = {}) {
    if (!httpUrl) throw new TypeError("httpUrl is required");
    if (!fetchImpl) throw new TypeError("no fetch available: pass { fetch }");
    this.baseUrl = httpUrl.replace(/\/+$/, "");
    this.fetch = fetchImpl.bind(globalThis);
    this.tokenMarginMs = tokenMarginMs;
    this.onSession = onSession;
    this.accessToken = null;
    this.refreshToken = null;
    this.expiresAt = null; // wall clock ms
    this.user = null;
    this._refreshing = null;
  }

  get signedIn() {
    return this.accessToken !== null;
  }

  /** What to persist to restore the session later (`useSession`). */
  get session() {
    if (!this.accessToken) return null;
    return { accessToken: this.accessToken, refreshToken: this.refreshToken, expiresAt: this.expiresAt, user: this.user };
  }

  useSession({ accessToken, refreshToken = null, expiresAt = null, user = null }) {
    this.accessToken = accessToken;
    this.refreshToken = refreshToken;
    this.expiresAt = expiresAt ?? jwtExpMs(accessToken);
    this.user = user;
    this._changed();
  }

  _adopt(pair) {
    if (!pair || !isStr(pair.accessToken)) throw new ApiError(502, "bad_token_pair", "the server sent no access token");
    this.accessToken = pair.accessToken;
    if (isStr(pair.refreshToken)) this.refreshToken = pair.refreshToken;
    this.expiresAt = typeof pair.expiresIn === "number" ? Date.now() + pair.expiresIn * 1000 : jwtExpMs(pair.accessToken);
    if (pair.user && isStr(pair.user.id)) this.user = pair.user;
    this._changed();
  }

  _forget() {
    this.accessToken = this.refreshToken = this.expiresAt = null;
    this._changed();
  }

  _changed() {
    if (this.onSession) this.onSession(this.session);
  }

  /** A valid access token, refreshed first when it is about to expire. */
  async token() {
    if (!this.accessToken) throw new SessionExpired("not signed in: call login() or register() first");
    if (this.refreshToken && this.expiresAt !== null && Date.now() > this.expiresAt - this.tokenMarginMs) {
      await this.refresh(this.accessToken);
    }
    return this.accessToken;
  }

  /** Trade the refresh token for a new pair; serialized (the server treats concurrent use as theft). */
  refresh(stale = null) {
    if (stale !== null && stale !== this.accessToken) return Promise.resolve();
    if (!this._refreshing) {
      this._refreshing = (async () => {
        if (!this.refreshToken) throw new SessionExpired("no refresh token: sign in again");
        try {
          this._adopt(await this._call("POST", "/auth/refresh", { body: { refreshToken: this.refreshToken } }));
        } catch (err) {
          if (err instanceof ApiError && err.status >= 400 && err.status < 500 && err.status !== 429) {
            this._forget();
            throw new SessionExpired(`the session ended (${err.code}): sign in again`);
          }
          throw err;
        }
      })().finally(() => {
        this._refreshing = null;
      });
    }
    return this._refreshing;
  }

  async _call(method, path, { body, token = null, query = null } = {}) {
    const headers = {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (token) headers.Authorization = `Bearer ${token}`;
    const qs = query ? `?${new URLSearchParams(Object.entries(query).filter(([, v]) => v != null).map(([k, v]) => [k, String(v)]))}` : "";
    const res = await this.fetch(this.baseUrl + path + qs, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!res.ok) {
      let [code, message, details] = errorBody(res.status, data);
      const retryAfter = res.headers.get("Retry-After");
      if (retryAfter && /^\d+$/.test(retryAfter) && details.retryAfterS === undefined) details = { ...details, retryAfterS: Number(retryAfter) };
      throw new ApiError(res.status, code, message || text.slice(0, 200), details);
    }
    return data;
  }

  /** Any route; bearer-authenticated unless `auth: false`. A refused token is refreshed once. */
  async request(method, path, body = undefined, { auth = true, query = null } = {}) {
    if (!auth) return this._call(method, path, { body, query });
    const token = await this.token();
    try {
      return await this._call(method, path, { body, token, query });
    } catch (err) {
      if (!(err instanceof ApiError) || ![401, 403].includes(err.status) || !TOKEN_REFUSALS.has(err.code) || !this.refreshToken) throw err;
    }
    await this.refresh(token);
    return this._call(method, path, { body, token: await this.token(), query });
  }

  async register(handle, password, { displayName } = {}) {
    const body = { handle, password };
    if (displayName !== undefined) body.displayName = displayName;
    return this._signIn("/auth/register", body);
  }

  async login(handle, password) {
    return this._signIn("/auth/login", { handle, password });
  }

  async _signIn(path, body) {
    this.user = null;
    this._adopt(await this._call("POST", path, { body }));
    return this.user || this.me();
  }

  async logout({ everywhere = false } = {}) {
    try {
      if (this.refreshToken) await this._call("POST", "/auth/logout", { body: { refreshToken: this.refreshToken }, query: everywhere ? { all: "true" } : null });
    } finally {
      this.user = null;
      this._forget();
    }
  }

  // POST /auth/password: every other session of the user ends (tokens void, sockets closed --
  // this client's socket too); this client adopts the fresh pair and stays signed in. Throws
  // ApiError 401 invalid_credentials (wrong current password), 422 weak_password, 429.
  async changePassword(currentPassword, newPassword) {
    this._adopt(await this.request("POST", "/auth/password", { currentPassword, newPassword }));
    return this.user;
  }

  async me() {
    this.user = await this.request("GET", "/users/me");
    return this.user;
  }

  /** Every room of the caller (`mine`, with unread counts) or every public room, all pages. */
  async rooms({ scope = "mine" } = {}) {
    const out = [];
    let cursor = null;
    do {
      const page = await this.request("GET", "/rooms", undefined, { query: { scope, limit: 100, cursor } });
      out.push(...(page?.rooms || []));
      cursor = page?.nextCursor || null;
    } while (cursor);
    return out;
  }

  room(roomId) {
    return this.request("GET", `/rooms/${encodeURIComponent(roomId)}`);
  }

  createRoom(name, { kind = "public", topic } = {}) {
    const body = { name, kind };
    if (topic !== undefined) body.topic = topic;
    return this.request("POST", "/rooms", body);
  }

  /** Become a member of a public room (membership; ChatflowClient.join subscribes a socket). */
  joinRoom(roomId) {
    return this.request("POST", `/rooms/${encodeURIComponent(roomId)}/join`);
  }

  leaveRoom(roomId) {
    return this.request("POST", `/rooms/${encodeURIComponent(roomId)}/leave`);
  }

  addMember(roomId, { userId, handle } = {}) {
    return this.request("POST", `/rooms/${encodeURIComponent(roomId)}/members`, userId ? { userId } : { handle });
  }

  openDm({ userId, handle } = {}) {
    return this.request("POST", "/dms", userId ? { userId } : { handle });
  }

  /** One page in ascending seq: the newest by default, `before` / `after` a seq (the cursors). */
  async history(roomId, { before = null, after = null, limit = null } = {}) {
    const page = await this.request("GET", `/rooms/${encodeURIComponent(roomId)}/messages`, undefined, { query: { before, after, limit } });
    return {
      roomId,
      messages: (page?.messages || []).map((m) => parseMessage(m, roomId)).filter(Boolean),
      lastSeq: isInt(page?.lastSeq) ? page.lastSeq : 0,
      prevCursor: isInt(page?.prevCursor) ? page.prevCursor : null,
      nextCursor: isInt(page?.nextCursor) ? page.nextCursor : null,
    };
  }
}

// --- the realtime client ----------------------------------------------------------------------------

/** A queued send: `await` it for the ack; `state` is queued | sending | acked | failed. */
class OutgoingMessage {
  constructor(roomId, body, clientMessageId) {
    this.roomId = roomId;
    this.body = body;
    this.clientMessageId = clientMessageId;
    this.createdAt = new Date().toISOString();
    this.attempts = 0;
    this.state = "queued";
    this.error = null;
    this._done = deferred();
    this.ack = this._done.promise;
  }
  then(onFulfilled, onRejected) {
    return this.ack.then(onFulfilled, onRejected);
  }
  catch(onRejected) {
    return this.ack.catch(onRejected);
  }
}

class RoomRecord {
  constructor(roomId) {
    this.roomId = roomId;
    this.order = new SeqOrder();
    this.readSeq = null;
    this.subscribed = false;
    this.queue = [];
    this.draining = false;
    this.ready = new Signal();
    this.fill = null;
    this.refill = false;
    this.gapTimer = null;
    this.typing = new Map(); // userId -> {handle, timer}
    this.typingSentAt = 0;
    this.typingActive = false;
    this.timeline = new Map(); // seq -> message (delivered, history, edits applied)
    this.historyCursor = undefined; // undefined: not loaded; null: nothing older
  }
}

/**
 * Events (`chat.on(name, fn)`, returns an unsubscribe function):
 *  message {message, own, source}   the next message of a room, seq order, once ("live"|"resume"|"ack")
 *  messageEdited / messageDeleted {message}
 *  typing {roomId, userId, handle, isTyping}
 *  presence {userId, status, version, handle}   applied ones only (stale frames dropped)
 *  roomPresence {roomId, online: [{userId, handle}], more}   a room's presence snapshot arrived
 *  read {roomId, seq}                           this user's read position moved
 *  positionReset {roomId, lastSeq}
 *  sendQueued / sendAcked / sendFailed {outgoing[, ack | error]}
 *  history {roomId, messages}                   older messages loaded with loadHistory()
 *  state {state}  connected {reconnected}  disconnected {code, reason, willReconnect}
 *  serverError {code, message}   closed {error}   session {session | null}
 */
export class ChatflowClient {
  constructor({ httpUrl, wsUrl, WebSocket: WebSocketImpl = globalThis.WebSocket, fetch: fetchImpl, options = {}, api = null } = {}) {
    if (!wsUrl) throw new TypeError("wsUrl is required");
    if (!WebSocketImpl) throw new TypeError("no WebSocket available: pass { WebSocket } (e.g. from the 'ws' package on Node)");
    this.options = Object.freeze({ ...DEFAULTS, ...options });
    this.api = api || new HttpApi({ httpUrl, fetch: fetchImpl, tokenMarginMs: this.options.tokenMarginMs });
    this.api.onSession = (session) => this._emit("session", { session });
    this.wsUrl = wsUrl;
    this.WebSocket = WebSocketImpl;
    this.state = "idle"; // idle | connecting | connected | reconnecting | closed
    this._listeners = new Map();
    this._rooms = new Map();
    this._presence = new PresenceBook();
    this._conn = null; // {ws, lost: Signal}
    this._connected = new Signal();
    this._closedSignal = new Signal();
    this._byRid = new Map();
    this._byCmid = new Map();
    this._retired = new Set();
    this._closing = false;
    this._running = false;
    this._generation = 0; // bumped by disconnect(): an older supervisor loop stops
    this._connections = 0;
    this._ridPrefix = randomId().slice(0, 6);
    this._ridCounter = 0;
  }

  // --- session -------------------------------------------------------------------------------------

  get user() {
    return this.api.user;
  }
  get session() {
    return this.api.session;
  }
  useSession(session) {
    this.api.useSession(session);
  }
  login(handle, password) {
    return this.api.login(handle, password);
  }
  register(handle, password, opts) {
    return this.api.register(handle, password, opts);
  }
  history(roomId, opts) {
    return this.api.history(roomId, opts);
  }

  // --- events --------------------------------------------------------------------------------------

  on(name, fn) {
    if (!this._listeners.has(name)) this._listeners.set(name, new Set());
    this._listeners.get(name).add(fn);
    return () => this.off(name, fn);
  }
  off(name, fn) {
    this._listeners.get(name)?.delete(fn);
  }
  /** The next event `name` (matching `filter`), as a promise; rejects after `timeoutMs`. */
  once(name, { filter = null, timeoutMs = null } = {}) {
    return new Promise((resolve, reject) => {
      let timer = null;
      const off = this.on(name, (detail) => {
        if (filter && !filter(detail)) return;
        off();
        clearTimeout(timer);
        resolve(detail);
      });
      if (timeoutMs != null) {
        timer = setTimeout(() => {
          off();
          reject(new RequestTimeout(`no ${name} event within ${timeoutMs} ms`));
        }, timeoutMs);
      }
    });
  }
  _emit(name, detail) {
    for (const fn of [...(this._listeners.get(name) || [])]) {
      try {
        fn(detail);
      } catch (err) {
        console.error(`chatflow: a "${name}" listener failed`, err);
      }
    }
  }
  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._emit("state", { state });
  }

  // --- state for UIs -------------------------------------------------------------------------------

  /** What the client knows about a room (a fresh snapshot each call). */
  room(roomId) {
    const r = this._room(roomId);
    const lastSeq = r.order.lastSeq;
    return {
      roomId,
      lastSeq,
      readSeq: r.readSeq,
      unread: lastSeq === null ? 0 : Math.max(0, lastSeq - (r.readSeq || 0)),
      subscribed: r.subscribed,
      typing: [...r.typing].map(([userId, t]) => ({ userId, handle: t.handle })),
      pending: [...r.queue],
      waiting: r.order.buffer.size,
      hasMoreHistory: r.historyCursor !== null,
    };
  }
  rooms() {
    return [...this._rooms.keys()].map((id) => this.room(id));
  }
  /** The room's known messages (delivered, loaded history, edits applied), ascending seq. */
  messages(roomId) {
    return [...this._room(roomId).timeline.values()].sort((a, b) => a.seq - b.seq);
  }
  presenceOf(userId) {
    return this._presence.get(userId);
  }
  onlineUsers() {
    return this._presence.online();
  }
  /** Every user a presence frame or snapshot told about (co-members), online or not. */
  knownPresence() {
    return [...this._presence.byUser.values()];
  }
  /** Seed rooms from the HTTP room list (positions, read marks, unread) and return the list. */
  async loadRooms() {
    const rooms = await this.api.rooms();
    for (const info of rooms) this._seed(this._room(info.id), info);
    return rooms;
  }
  _seed(r, info) {
    if (isInt(info.lastSeq)) r.order.startAt(info.lastSeq);
    if (isInt(info.lastReadSeq)) r.readSeq = Math.max(r.readSeq || 0, info.lastReadSeq);
  }

  /** Older messages over HTTP into the room's timeline: the newest page first, then older ones. */
  async loadHistory(roomId, { limit = this.options.historyPage } = {}) {
    const r = this._room(roomId);
    if (r.historyCursor === null) return [];
    const page = await this.api.history(roomId, { before: r.historyCursor ?? null, limit });
    r.historyCursor = page.prevCursor;
    if (r.order.lastSeq === null) r.order.startAt(page.lastSeq);
    for (const m of page.messages) if (!r.timeline.has(m.seq)) r.timeline.set(m.seq, m);
    this._emit("history", { roomId, messages: page.messages });
    if (r.order.lastSeq !== null && page.lastSeq > r.order.lastSeq && this._connected.isSet) this._startFill(r);
    return page.messages;
  }

  // --- connection ----------------------------------------------------------------------------------

  /** Open the WebSocket; resolves once open. A refusal of the FIRST attempt rejects; after that the
   *  client reconnects by itself until close(). */
  async connect() {
    if (this._closing) throw new ClientClosed("the client is closed");
    if (this._running) {
      await this._waitConnected();
      return;
    }
    if (!this.api.user) await this.api.me();
    this._running = true;
    const first = deferred();
    this._supervise(first, ++this._generation);
    return first.promise;
  }

  /** Close the socket but keep everything (rooms, positions, queued sends): connect() again
   *  reconnects, resumes and resends. E.g. while the app is in the background. */
  async disconnect() {
    if (!this._running) return;
    this._generation += 1;
    this._running = false;
    const conn = this._conn;
    if (conn) {
      conn.ws.close(1000, "client disconnected");
      await conn.lost.wait();
    }
    this._setState("idle");
  }

  async _supervise(first, generation) {
    const backoff = new Backoff(this.options.reconnectInitialMs, this.options.reconnectMaxMs);
    let refreshed = false;
    while (!this._closing && generation === this._generation) {
      this._setState(this._connections ? "reconnecting" : "connecting");
      let error;
      let waitMs = null;
      try {
        const ws = await this._open();
        if (this._closing || generation !== this._generation) {
          ws.close(1000, "client disconnected"); // disconnect() or close() while the handshake ran
          if (!first.done) first.reject(new ClientClosed("disconnected before the connection opened"));
          return;
        }
        refreshed = false;
        if (!first.done) {
          first.done = true;
          first.resolve();
        }
        const lived = await this._runConnection(ws);
        if (lived >= 1000) backoff.reset();
        if (!this._closing && generation === this._generation) await sleep(backoff.next());
        continue;
      } catch (err) {
        error = err;
      }
      if (error instanceof HandshakeRefused && (error.status === 401 || error.status === 403 || error.status === null) && !refreshed && this.api.refreshToken) {
        // An expired or revoked token (browsers cannot tell a 403 from a network failure): one refresh.
        refreshed = true;
        try {
          await this.api.refresh();
          continue;
        } catch (err) {
          error = err;
        }
      } else if (error instanceof HandshakeRefused && (error.status === 401 || error.status === 403)) {
        error = new SessionExpired(`the server refuses this session (${error.status})`);
      }
      if (!first.done) {
        // The first attempt failed: tell the caller of connect() (nothing is retried).
        first.done = true;
        this._running = false;
        this._setState("idle");
        first.reject(error);
        return;
      }
      if (error instanceof SessionExpired) {
        await this._shutdown(error);
        return;
      }
      if (error instanceof HandshakeRefused && error.retryAfterMs) waitMs = error.retryAfterMs;
      await sleep(Math.max(backoff.next(), waitMs || 0));
    }
  }

  async _open() {
    const token = await this.api.token();
    const sep = this.wsUrl.includes("?") ? "&" : "?";
    const ws = new this.WebSocket(`${this.wsUrl}${sep}token=${encodeURIComponent(token)}`);
    return new Promise((resolve, reject) => {
      let status = null;
      let settled = false;
      const fail = (err) => {
        if (settled) return;
        settled = true;
        reject(err);
      };
      // The `ws` package tells the refused handshake's status; browsers never do.
      if (typeof ws.on === "function") {
        ws.on("unexpected-response", (_req, res) => {
          status = res.statusCode;
          const retry = res.headers?.["retry-after"];
          const err = new HandshakeRefused(status);
          if (retry && /^\d+$/.test(retry)) err.retryAfterMs = Number(retry) * 1000;
          fail(err);
          res.resume?.();
          ws.terminate?.();
        });
      }
      ws.onopen = () => {
        if (settled) return;
        settled = true;
        resolve(ws);
      };
      ws.onerror = (e) => {
        const m = /Unexpected server response: (\d+)/.exec(e?.message || e?.error?.message || "");
        fail(new HandshakeRefused(m ? Number(m[1]) : status));
      };
      ws.onclose = (e) => fail(new HandshakeRefused(status, e?.reason || ""));
    });
  }

  _runConnection(ws) {
    const opened = Date.now();
    const conn = { ws, lost: new Signal() };
    this._conn = conn;
    const reconnected = this._connections > 0;
    this._connections += 1;
    return new Promise((resolve) => {
      ws.onmessage = (e) => this._onFrame(parseFrame(e.data));
      ws.onerror = () => {};
      ws.onclose = (e) => {
        this._connected.clear();
        this._conn = null;
        clearInterval(keepalive);
        for (const r of this._rooms.values()) r.ready.clear();
        for (const [rid, d] of this._byRid) {
          this._retire(rid);
          rejectOnce(d, new ConnectionLost());
        }
        for (const d of this._byCmid.values()) rejectOnce(d, new ConnectionLost());
        this._byRid.clear();
        this._byCmid.clear();
        conn.lost.set();
        const willReconnect = !this._closing && this._running;
        this._emit("disconnected", { code: e?.code ?? 1006, reason: e?.reason || "", willReconnect });
        if (willReconnect) this._setState("reconnecting");
        resolve(Date.now() - opened);
      };
      const keepalive = setInterval(() => this._keepalive(conn), this.options.keepaliveMs);
      this._connected.set();
      this._setState("connected");
      this._emit("connected", { reconnected });
      this._prepareRooms([...this._rooms.values()], conn).catch(() => {});
    });
  }

  async _keepalive(conn) {
    try {
      await this._request({ action: "ping" });
    } catch (err) {
      if (err instanceof RequestTimeout && this._conn === conn) this._abort(conn.ws);
    }
  }

  _abort(ws) {
    if (typeof ws.terminate === "function") ws.terminate(); // Node `ws`: no close handshake
    else ws.close(4000, "connection dropped");
  }

  /** Drop the socket as a network failure would; the client reconnects (tests, network changes). */
  dropConnection() {
    if (this._conn) this._abort(this._conn.ws);
  }

  async _waitConnected() {
    for (;;) {
      if (this._closing) throw new ClientClosed("the client is closed");
      if (this._conn && this._connected.isSet) return this._conn;
      if (!this._running) throw new ChatflowError("not connected: call connect() first");
      await Promise.race([this._connected.wait(), this._closedSignal.wait()]);
    }
  }

  // --- closing -------------------------------------------------------------------------------------

  /** Wait until every queued send is acked or refused. */
  async flush() {
    for (;;) {
      const pending = [...this._rooms.values()].flatMap((r) => r.queue.map((o) => o.ack.catch(() => {})));
      if (!pending.length) return;
      await Promise.all(pending);
    }
  }

  /** Close the socket (1000) and stop; unacked sends fail with ClientClosed (flush() first to wait). */
  async close() {
    await this._shutdown(null);
  }

  async _shutdown(error) {
    if (this._closing) return;
    this._closing = true;
    this._closedSignal.set();
    if (this._conn) {
      try {
        this._conn.ws.close(1000, "client closed");
      } catch {
        /* already closing */
      }
    }
    const closed = new ClientClosed(error ? `the client closed: ${error.message}` : "the client closed");
    for (const r of this._rooms.values()) {
      for (const o of r.queue) this._settle(o, null, closed);
      r.queue.length = 0;
      clearTimeout(r.gapTimer);
      for (const t of r.typing.values()) clearTimeout(t.timer);
    }
    this._setState("closed");
    this._emit("closed", { error });
  }

  // --- requests ------------------------------------------------------------------------------------

  _newRid() {
    this._ridCounter += 1;
    return `${this._ridPrefix}-${this._ridCounter}`;
  }
  _retire(rid) {
    this._retired.add(rid);
    if (this._retired.size > 1024) this._retired.delete(this._retired.values().next().value);
  }
  _transmit(conn, frame) {
    if (conn.ws.readyState !== 1) throw new ConnectionLost();
    conn.ws.send(JSON.stringify(frame));
  }

  /** One attempt: a fresh requestId on the current socket; resolves with the reply frame. */
  async _request(frame, timeoutMs = this.options.requestTimeoutMs) {
    const conn = await this._waitConnected();
    const rid = this._newRid();
    const d = deferred();
    this._byRid.set(rid, d);
    let timer;
    try {
      try {
        this._transmit(conn, { ...frame, requestId: rid });
      } catch {
        await conn.lost.wait();
        throw new ConnectionLost();
      }
      const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new RequestTimeout(`no reply to ${frame.action}`)), timeoutMs);
      });
      const reply = await Promise.race([d.promise, timeout]);
      if (reply.type === "error") {
        throw new ActionRefused(reply.code, reply.message, { action: reply.action, requestId: rid, extra: reply.extra });
      }
      return reply;
    } finally {
      clearTimeout(timer);
      if (this._byRid.get(rid) === d) {
        this._byRid.delete(rid);
        this._retire(rid);
      }
    }
  }

  /** A request with the retry rules: resent after a lost connection, rate limits waited out,
   *  server-side failures and timeouts retried with backoff (at most requestAttempts). */
  async _call(frame) {
    const backoff = new Backoff(this.options.reconnectInitialMs, this.options.reconnectMaxMs);
    let failures = 0;
    for (;;) {
      try {
        return await this._request(frame);
      } catch (err) {
        if (err instanceof ConnectionLost) continue;
        if (err instanceof RequestTimeout) {
          failures += 1;
          if (failures >= this.options.requestAttempts) throw err;
          continue;
        }
        if (!(err instanceof ActionRefused)) throw err;
        if (err.code === "rate_limited") {
          await sleep(retryDelay(err, backoff));
          continue;
        }
        if (err.code === "connection_not_found") this.dropConnection(); // the server forgot this socket
        else if (!RETRYABLE.has(err.code)) throw err;
        failures += 1;
        if (failures >= this.options.requestAttempts) throw err;
        await sleep(retryDelay(err, backoff));
      }
    }
  }

  // --- rooms ---------------------------------------------------------------------------------------

  _room(roomId) {
    let r = this._rooms.get(roomId);
    if (!r) {
      r = new RoomRecord(roomId);
      this._rooms.set(roomId, r);
      if (this._connected.isSet) r.ready.set();
    }
    return r;
  }

  /** Subscribe to a room's live stream (typing) and track its position. `sinceSeq`: the last
   *  message the app has (0: everything); default: the room's current end. Membership is HTTP. */
  async join(roomId, { sinceSeq = null } = {}) {
    const r = this._room(roomId);
    if (sinceSeq !== null) r.order.startAt(sinceSeq);
    else if (r.order.lastSeq === null) this._seed(r, await this.api.room(roomId));
    r.subscribed = true;
    try {
      await this._call({ action: "joinRoom", roomId });
    } catch (err) {
      r.subscribed = false;
      throw err;
    }
    await this._fillNow(r);
    return this.room(roomId);
  }

  async leave(roomId) {
    const r = this._room(roomId);
    r.subscribed = false;
    for (const userId of [...r.typing.keys()]) this._typingEnded(r, userId);
    await this._call({ action: "leaveRoom", roomId });
  }

  async _prepareRooms(rooms, conn) {
    let next = 0;
    const worker = async () => {
      while (next < rooms.length) {
        const r = rooms[next++];
        if (r.subscribed) {
          try {
            await this._call({ action: "joinRoom", roomId: r.roomId });
          } catch (err) {
            if (err instanceof ActionRefused) r.subscribed = false;
            if (!(err instanceof ClientClosed)) this._emit("serverError", { code: err.code || "error", message: `room ${r.roomId}: ${err.message}` });
          }
        }
        await this._fillNow(r);
        if (this._conn === conn && this._connected.isSet) r.ready.set();
      }
    };
    await Promise.all(Array.from({ length: this.options.resumeConcurrency }, worker));
  }

  // --- ordered delivery ----------------------------------------------------------------------------

  _offer(message, source) {
    const r = this._room(message.roomId);
    if (r.typing.has(message.senderId)) this._typingEnded(r, message.senderId);
    this._release(r, r.order.offer(message.seq, { message, source }));
  }

  _release(r, items) {
    const me = this.api.user?.id;
    for (const { message, source } of items) {
      const own = message.senderId === me;
      r.timeline.set(message.seq, message);
      this._emit("message", { message, own, source });
      if (own && (r.readSeq === null || message.seq > r.readSeq)) {
        r.readSeq = message.seq; // the server moves the sender's read position with every send
        this._emit("read", { roomId: r.roomId, seq: message.seq });
      }
    }
    if (r.order.hasGap) {
      if (r.gapTimer === null && !r.fill) r.gapTimer = setTimeout(() => this._gapTimeout(r), this.options.gapWaitMs);
    } else if (r.gapTimer !== null) {
      clearTimeout(r.gapTimer);
      r.gapTimer = null;
    }
  }

  _gapTimeout(r) {
    r.gapTimer = null;
    if (r.order.hasGap && !this._closing) this._startFill(r);
  }

  _startFill(r) {
    if (r.fill) {
      r.refill = true;
      return r.fill;
    }
    r.fill = this._fill(r).finally(() => {
      r.fill = null;
      if (r.order.hasGap && !this._closing && r.gapTimer === null) {
        r.gapTimer = setTimeout(() => this._gapTimeout(r), this.options.gapWaitMs);
      }
    });
    return r.fill;
  }

  async _fillNow(r) {
    if (r.order.lastSeq !== null) await this._startFill(r);
  }

  /** `resume` from the position, page after page, until the server says no more. */
  async _fill(r) {
    clearTimeout(r.gapTimer);
    r.gapTimer = null;
    try {
      for (;;) {
        r.refill = false;
        const since = r.order.lastSeq;
        if (since === null) return;
        let reply;
        try {
          reply = await this._call({ action: "resume", roomId: r.roomId, sinceSeq: since, limit: this.options.resumePage });
        } catch (err) {
          if (err instanceof ActionRefused && err.code === "seq_beyond_last" && isInt(err.extra.lastSeq)) {
            this._release(r, r.order.reset(err.extra.lastSeq));
            this._emit("positionReset", { roomId: r.roomId, lastSeq: err.extra.lastSeq });
            continue;
          }
          if (err instanceof ActionRefused) this._emit("serverError", { code: err.code, message: `resume of room ${r.roomId}: ${err.serverMessage}` });
          return;
        }
        if (reply.type !== "resumed") return;
        for (const m of reply.messages) this._offer(m, "resume");
        const progressed = (r.order.lastSeq || 0) > since;
        if ((reply.more && progressed) || r.refill) continue;
        return;
      }
    } catch {
      /* closed or timed out: the next reconnect or gap resumes again */
    }
  }

  // --- sending -------------------------------------------------------------------------------------

  /** Queue a message; it goes out once every earlier message of the room is acked. Returns an
   *  OutgoingMessage at once (`await` it for the ack). */
  send(roomId, body, { clientMessageId = null } = {}) {
    if (this._closing) throw new ClientClosed("the client is closed");
    const r = this._room(roomId);
    const outgoing = new OutgoingMessage(roomId, body, clientMessageId || `c-${randomId()}`);
    r.queue.push(outgoing);
    this._emit("sendQueued", { outgoing });
    if (!r.draining) this._drain(r).catch((err) => console.error("chatflow: the send queue failed", err));
    return outgoing;
  }

  async _drain(r) {
    r.draining = true;
    try {
      while (r.queue.length && !this._closing) {
        const outgoing = r.queue[0];
        outgoing.state = "sending";
        let ack;
        try {
          ack = await this._sendUntilAcked(r, outgoing);
        } catch (err) {
          if (err instanceof ClientClosed) return;
          if (r.queue[0] === outgoing) r.queue.shift();
          this._settle(outgoing, null, err);
          continue;
        }
        // Out of the queue first: listeners of the events below see it stored, not pending.
        if (r.queue[0] === outgoing) r.queue.shift();
        this._offer(
          Object.freeze({
            id: ack.messageId,
            roomId: ack.roomId,
            seq: ack.seq,
            senderId: this.api.user?.id ?? "",
            senderHandle: this.api.user?.handle ?? null,
            clientMessageId: ack.clientMessageId,
            body: outgoing.body,
            createdAt: ack.createdAt,
            editedAt: null,
            deletedAt: null,
          }),
          "ack",
        );
        this._settle(outgoing, ack, null);
      }
    } finally {
      r.draining = false;
    }
  }

  _settle(outgoing, ack, error) {
    if (outgoing._done.done) return;
    outgoing._done.done = true;
    if (error) {
      outgoing.state = "failed";
      outgoing.error = error;
      outgoing._done.reject(error);
      this._emit("sendFailed", { outgoing, error });
    } else {
      outgoing.state = "acked";
      outgoing._done.resolve(ack);
      this._emit("sendAcked", { outgoing, ack });
    }
  }

  async _sendUntilAcked(r, outgoing) {
    const backoff = new Backoff(this.options.reconnectInitialMs, this.options.reconnectMaxMs);
    for (;;) {
      const conn = await this._waitReady(r);
      const rid = this._newRid();
      const d = deferred();
      this._byRid.set(rid, d);
      this._byCmid.set(outgoing.clientMessageId, d);
      outgoing.attempts += 1;
      let timer;
      let reply;
      try {
        this._transmit(conn, { action: "sendMessage", roomId: outgoing.roomId, clientMessageId: outgoing.clientMessageId, body: outgoing.body, requestId: rid });
        const timeout = new Promise((resolve) => {
          timer = setTimeout(() => resolve(null), this.options.ackTimeoutMs);
        });
        reply = await Promise.race([d.promise, timeout]);
      } catch {
        await conn.lost.wait(); // the socket went: resend on the next one, after the resume
        continue;
      } finally {
        clearTimeout(timer);
        if (this._byRid.get(rid) === d) {
          this._byRid.delete(rid);
          this._retire(rid);
        }
        if (this._byCmid.get(outgoing.clientMessageId) === d) this._byCmid.delete(outgoing.clientMessageId);
      }
      if (reply === null) continue; // no ack in time: resend, same clientMessageId
      if (reply.type === "ack") return reply.ack;
      if (reply.type === "error") {
        const refused = new ActionRefused(reply.code, reply.message, { action: "sendMessage", requestId: rid, extra: reply.extra });
        if (reply.code === "rate_limited" || RETRYABLE.has(reply.code)) {
          await sleep(retryDelay(refused, backoff));
          continue;
        }
        throw refused;
      }
    }
  }

  async _waitReady(r) {
    for (;;) {
      if (this._closing) throw new ClientClosed("the client is closed");
      if (r.ready.isSet && this._conn) return this._conn;
      await Promise.race([r.ready.wait(), this._closedSignal.wait()]);
    }
  }

  // --- other actions -------------------------------------------------------------------------------

  async edit(roomId, seq, body) {
    return messageOf(await this._call({ action: "editMessage", roomId, seq, body }));
  }

  async delete(roomId, seq) {
    return messageOf(await this._call({ action: "deleteMessage", roomId, seq }));
  }

  /** Move the read position forward (default: to the room's position); resolves with the result. */
  async markRead(roomId, seq = null) {
    const r = this._room(roomId);
    const target = seq ?? r.order.lastSeq;
    if (target === null) return r.readSeq;
    const reply = await this._call({ action: "markRead", roomId, seq: target });
    return reply.type === "read" ? reply.seq : r.readSeq;
  }

  /** Tell the room this user is typing (throttled) or stopped; ephemeral, never retried. */
  typing(roomId, isTyping = true) {
    const r = this._room(roomId);
    const now = Date.now();
    if (isTyping && r.typingActive && now - r.typingSentAt < this.options.typingIntervalMs) return false;
    if (!isTyping && !r.typingActive) return false;
    if (!this._conn || !this._connected.isSet) return false;
    try {
      this._transmit(this._conn, { action: "typing", roomId, isTyping });
    } catch {
      return false;
    }
    r.typingActive = isTyping;
    r.typingSentAt = now;
    return true;
  }

  async ping() {
    const reply = await this._call({ action: "ping" });
    return reply.serverTime ?? null;
  }

  /** Who is online in a room (servers without presence snapshots refuse: unknown_action). */
  async presence(roomId) {
    const online = [];
    let frame = { action: "presence", roomId };
    for (;;) {
      const reply = await this._call(frame);
      if (reply.type !== "presenceSnapshot") return online;
      online.push(...reply.online);
      if (!(reply.more && reply.cursor)) return online;
      frame = { ...frame, cursor: reply.cursor };
    }
  }

  // --- incoming frames -----------------------------------------------------------------------------

  _onFrame(frame) {
    this._apply(frame);
    if (frame.requestId && frame.type !== "ack") {
      const d = this._byRid.get(frame.requestId);
      if (d && !d.done) {
        d.done = true;
        d.resolve(frame);
        return;
      }
      if (frame.type === "error" && !this._retired.has(frame.requestId)) this._unsolicited(frame);
    }
  }

  _apply(frame) {
    switch (frame.type) {
      case "message":
        this._offer(frame.message, "live");
        break;
      case "messageEdited":
      case "messageDeleted": {
        const r = this._room(frame.message.roomId);
        if (r.timeline.has(frame.message.seq)) r.timeline.set(frame.message.seq, frame.message);
        this._emit(frame.type, { message: frame.message });
        break;
      }
      case "ack": {
        const d = this._byCmid.get(frame.ack.clientMessageId) || (frame.requestId && this._byRid.get(frame.requestId));
        if (d && !d.done) {
          d.done = true;
          d.resolve(frame);
        }
        break;
      }
      case "typing":
        this._onTyping(frame);
        break;
      case "presence":
        this._applyPresence(frame.presence);
        break;
      case "presenceSnapshot":
        this._applySnapshot(frame);
        break;
      case "joined":
        if (frame.presence) this._applySnapshot(frame.presence);
        break;
      case "read": {
        const r = this._room(frame.roomId);
        if (r.readSeq === null || frame.seq > r.readSeq) {
          r.readSeq = frame.seq;
          this._emit("read", { roomId: frame.roomId, seq: frame.seq });
        }
        break;
      }
      case "resync":
        if (this._conn) this._prepareRooms([...this._rooms.values()], this._conn).catch(() => {});
        break;
      case "gatewayError":
        this._emit("serverError", { code: "gateway_error", message: frame.message });
        break;
      case "error":
        if (!frame.requestId) this._unsolicited(frame);
        break;
      default:
        break;
    }
  }

  _unsolicited(frame) {
    if (frame.action === "typing" && frame.code === "rate_limited") return; // ephemeral: dropped is right
    this._emit("serverError", { code: frame.code, message: frame.message });
  }

  _applyPresence(p) {
    if (this._presence.apply(p)) this._emit("presence", this._presence.get(p.userId));
  }

  /** A room's snapshot: each entry applied by version, then the room's list for UIs (an entry
   *  older than a frame already applied still names a member; its status comes from presenceOf). */
  _applySnapshot(snapshot) {
    for (const p of snapshot.online) this._applyPresence(p);
    const online = snapshot.online.map(({ userId, handle }) => ({ userId, handle: handle ?? this._presence.get(userId)?.handle ?? null }));
    this._emit("roomPresence", { roomId: snapshot.roomId, online, more: snapshot.more });
  }

  _onTyping(frame) {
    if (frame.userId === this.api.user?.id) return;
    const r = this._room(frame.roomId);
    const known = r.typing.get(frame.userId);
    if (known) clearTimeout(known.timer);
    if (!frame.isTyping) {
      if (known) {
        r.typing.delete(frame.userId);
        this._emit("typing", { roomId: frame.roomId, userId: frame.userId, handle: known.handle, isTyping: false });
      }
      return;
    }
    const timer = setTimeout(() => this._typingEnded(r, frame.userId), this.options.typingTtlMs);
    r.typing.set(frame.userId, { handle: frame.handle, timer });
    if (!known) this._emit("typing", { roomId: frame.roomId, userId: frame.userId, handle: frame.handle, isTyping: true });
  }

  _typingEnded(r, userId) {
    const known = r.typing.get(userId);
    if (!known) return;
    clearTimeout(known.timer);
    r.typing.delete(userId);
    this._emit("typing", { roomId: r.roomId, userId, handle: known.handle, isTyping: false });
  }
}

function rejectOnce(d, error) {
  if (d.done) return;
  d.done = true;
  d.reject(error);
}

function retryDelay(err, backoff) {
  const after = err.retryAfterMs;
  return after !== null ? after + backoff.next() / 10 : backoff.next();
}

function messageOf(frame) {
  if (frame.message) return frame.message;
  throw new ChatflowError(`unexpected reply ${frame.type}`);
}

export { DEFAULTS, OutgoingMessage };
