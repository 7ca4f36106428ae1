// Chatflow web chat: plain JS against the real HTTP API and WebSocket protocol (docs/protocol.md).
// - Auth: POST /auth/register | /auth/login -> {accessToken, refreshToken, user}; 401 -> /auth/refresh once.
// - Rooms: GET /rooms, GET /rooms?scope=public, POST /rooms, POST /rooms/{id}/join.
// - History: GET /rooms/{id}/messages?before=<prevCursor>&limit=N (keyset, ascending seq).
// - WebSocket: token in the query string (browsers cannot set headers); frames {action: ...};
//   sendMessage carries a clientMessageId and is acked ({type: "ack"}); resend after reconnect is
//   safe (the server dedupes on clientMessageId); resume {sinceSeq} fills what was missed.
// Every user-supplied string is rendered with textContent (never innerHTML).
"use strict";

(() => {
  const HISTORY_PAGE = 30;
  const TYPING_SEND_EVERY_MS = 3000;
  const TYPING_SHOW_MS = 6000;
  const PING_EVERY_MS = 4 * 60 * 1000; // API Gateway drops idle sockets after 10 minutes
  const ACK_TIMEOUT_MS = 8000;
  const SESSION_KEY = "chatflow.session";

  const $ = (id) => document.getElementById(id);
  const el = {
    connStatus: $("conn-status"), me: $("me"), logout: $("logout"),
    authView: $("auth-view"), authForm: $("auth-form"), authHandle: $("auth-handle"),
    authPassword: $("auth-password"), authError: $("auth-error"),
    chatView: $("chat-view"), roomList: $("room-list"), publicRoomList: $("public-room-list"),
    createRoomForm: $("create-room-form"), newRoomName: $("new-room-name"),
    joinRoomForm: $("join-room-form"), joinRoomId: $("join-room-id"),
    roomTitle: $("room-title"), roomId: $("room-id"), presence: $("presence"),
    messages: $("messages"), messageList: $("message-list"), historyStatus: $("history-status"),
    typing: $("typing-indicator"), composer: $("composer"), input: $("message-input"),
    send: $("send-btn"), chatError: $("chat-error"),
  };

  const state = {
    cfg: null,
    session: null, // {accessToken, refreshToken, user: {id, handle}}
    ws: null,
    wsOpen: false,
    reconnectAttempt: 0,
    reconnectTimer: null,
    pingTimer: null,
    rooms: new Map(), // roomId -> room (wire shape)
    currentRoomId: null,
    subscribedRoomId: null,
    messages: new Map(), // roomId -> Map(seq -> message)
    historyCursor: new Map(), // roomId -> prevCursor (null: nothing older) ; absent: not loaded
    loadingHistory: false,
    lastSeq: new Map(), // roomId -> highest seq seen
    pending: new Map(), // clientMessageId -> {roomId, body, createdAt, sentAt, failed, error}
    presence: new Map(), // userId -> "online" | "offline" (from presence frames)
    presenceVersion: new Map(), // userId -> version of the last presence frame applied
    holdReconnectUntil: 0, // test seam: chatflowTest.dropConnection(pauseMs)
    handles: new Map(), // userId -> handle
    typing: new Map(), // roomId -> Map(userId -> {handle, timer})
    lastTypingSent: 0,
    typingActive: false,
    markReadTimer: null,
  };

  // --- utilities ---------------------------------------------------------------------------------

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  function showError(target, message) {
    target.textContent = message || "";
    target.hidden = !message;
  }

  function setConn(stateName) {
    el.connStatus.dataset.state = stateName;
    el.connStatus.textContent = stateName;
    renderPresence();
  }

  function fmtTime(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function shortId(id) {
    return `user ${String(id).slice(0, 6)}`;
  }

  function handleOf(userId) {
    if (state.session && userId === state.session.user.id) return state.session.user.handle;
    return state.handles.get(userId) || shortId(userId);
  }

  // --- configuration and session -------------------------------------------------------------------

  async function loadConfig() {
    const params = new URLSearchParams(location.search);
    let cfg = {};
    try {
      const res = await fetch("config.json", { cache: "no-store" });
      if (res.ok) cfg = await res.json();
    } catch (_) {
      /* served without a config: same origin */
    }
    const httpUrl = params.get("http") || cfg.httpUrl || location.origin;
    const wsUrl = params.get("ws") || cfg.wsUrl || httpUrl.replace(/^http/, "ws");
    return { httpUrl: httpUrl.replace(/\/$/, ""), wsUrl };
  }

  function saveSession(s) {
    state.session = s;
    if (s) sessionStorage.setItem(SESSION_KEY, JSON.stringify(s));
    else sessionStorage.removeItem(SESSION_KEY);
  }

  function restoreSession() {
    try {
      const raw = sessionStorage.getItem(SESSION_KEY);
      return raw ? JSON.parse(raw) : null;
    } catch (_) {
      return null;
    }
  }

  function sessionFromTokens(data) {
    return {
      accessToken: data.accessToken,
      refreshToken: data.refreshToken,
      user: { id: data.user.id, handle: data.user.handle },
    };
  }

  // --- HTTP -------------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  let refreshing = null;
  function refreshTokens() {
    if (!state.session || !state.session.refreshToken) return Promise.resolve(false);
    if (!refreshing) {
      refreshing = request("POST", "/auth/refresh", { refreshToken: state.session.refreshToken }, { auth: false })
        .then((data) => {
          saveSession(sessionFromTokens(data));
          return true;
        })
        .catch((err) => {
          if (err.status === 401 || err.status === 403 || err.status === 422) {
            signOut("Your session ended; please sign in again.");
          }
          return false;
        })
        .finally(() => {
          refreshing = null;
        });
    }
    return refreshing;
  }

  async function request(method, path, body, opts = {}) {
    const auth = opts.auth !== false;
    const headers = {};
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (auth && state.session) headers.Authorization = `Bearer ${state.session.accessToken}`;
    let res;
    try {
      res = await fetch(state.cfg.httpUrl + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (_) {
      throw new ApiError(0, "network", "The server cannot be reached.");
    }
    if (res.status === 401 && auth && opts.retried !== true && state.session) {
      if (await refreshTokens()) return request(method, path, body, { ...opts, retried: true });
    }
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (_) {
      data = null;
    }
    if (!res.ok) {
      const err = (data && data.error) || {};
      // Validation errors list their fields: {"details": {"fields": [{"loc": ["body", "x"], "message"}]}}.
      const fields = err.details && Array.isArray(err.details.fields) ? err.details.fields : [];
      const detail = fields
        .map((f) => `${Array.isArray(f.loc) ? f.loc.filter((p) => p !== "body").join(".") : ""}: ${f.message || ""}`)
        .join("; ");
      const message = err.message || (data && data.message) || `HTTP ${res.status}`;
      throw new ApiError(res.status, err.code || "http_error", detail ? `${message} (${detail})` : message);
    }
    return data;
  }

  // --- auth view -----------------------------------------------------------------------------------

  async function onAuthSubmit(event) {
    event.preventDefault();
    const mode = event.submitter && event.submitter.value === "register" ? "register" : "login";
    const handle = el.authHandle.value.trim();
    const password = el.authPassword.value;
    if (!handle || !password) {
      showError(el.authError, "Enter a handle and a password.");
      return;
    }
    showError(el.authError, "");
    for (const b of el.authForm.querySelectorAll("button")) b.disabled = true;
    try {
      const data = await request("POST", `/auth/${mode}`, { handle, password }, { auth: false });
      saveSession(sessionFromTokens(data));
      el.authPassword.value = "";
      await enterChat();
    } catch (err) {
      if (state.session) signOut(err.message); // signed in, but the chat could not load
      else showError(el.authError, err.message);
    } finally {
      for (const b of el.authForm.querySelectorAll("button")) b.disabled = false;
    }
  }

  function signOut(message) {
    const session = state.session;
    saveSession(null);
    closeSocket();
    state.rooms.clear();
    state.messages.clear();
    state.historyCursor.clear();
    state.lastSeq.clear();
    state.pending.clear();
    state.presence.clear();
    state.presenceVersion.clear();
    state.currentRoomId = null;
    state.subscribedRoomId = null;
    el.chatView.hidden = true;
    el.authView.hidden = false;
    el.me.hidden = true;
    el.logout.hidden = true;
    showError(el.authError, message || "");
    if (session && !message) {
      request("POST", "/auth/logout", { refreshToken: session.refreshToken }, { auth: false }).catch(() => {});
    }
  }

  async function enterChat() {
    el.authView.hidden = true;
    el.chatView.hidden = false;
    el.me.hidden = false;
    el.logout.hidden = false;
    el.me.textContent = `@${state.session.user.handle}`;
    el.me.dataset.userId = state.session.user.id;
    await loadRooms();
    connect();
    const wanted = new URLSearchParams(location.hash.slice(1)).get("room");
    if (wanted && !state.rooms.has(wanted)) {
      await joinRoom(wanted).catch((err) => showError(el.chatError, err.message));
    } else if (wanted) {
      openRoom(wanted);
    } else if (!state.currentRoomId && state.rooms.size) {
      openRoom(state.rooms.keys().next().value);
    }
  }

  // --- rooms -------------------------------------------------------------------------------------------

  function rememberRoom(room) {
    const prev = state.rooms.get(room.id);
    state.rooms.set(room.id, { ...prev, ...room });
    if (room.peer && room.peer.id) state.handles.set(room.peer.id, room.peer.handle);
  }

  function roomName(room) {
    if (!room) return "";
    if (room.kind === "dm" && room.peer) return `@${room.peer.handle}`;
    return room.name || (room.id ? room.id.slice(0, 8) : "room");
  }

  async function loadRooms() {
    const mine = await request("GET", "/rooms");
    for (const room of (mine && mine.rooms) || []) rememberRoom(room);
    renderRooms();
    try {
      const pub = await request("GET", "/rooms?scope=public");
      renderPublicRooms(((pub && pub.rooms) || []).filter((r) => !r.isMember && !state.rooms.has(r.id)));
    } catch (_) {
      renderPublicRooms([]);
    }
  }

  function renderRooms() {
    el.roomList.replaceChildren();
    for (const room of state.rooms.values()) {
      const li = document.createElement("li");
      li.dataset.roomId = room.id;
      li.className = room.id === state.currentRoomId ? "active" : "";
      const name = document.createElement("span");
      name.className = "room-name";
      name.textContent = roomName(room);
      li.append(name);
      if (room.unread && room.id !== state.currentRoomId) {
        const badge = document.createElement("span");
        badge.className = "badge";
        badge.textContent = String(room.unread);
        li.append(badge);
      }
      li.addEventListener("click", () => openRoom(room.id));
      el.roomList.append(li);
    }
  }

  function renderPublicRooms(rooms) {
    el.publicRoomList.replaceChildren();
    for (const room of rooms) {
      const li = document.createElement("li");
      li.dataset.roomId = room.id;
      li.textContent = roomName(room);
      li.title = "Join this room";
      li.addEventListener("click", () => joinRoom(room.id).catch((err) => showError(el.chatError, err.message)));
      el.publicRoomList.append(li);
    }
  }

  async function createRoom(event) {
    event.preventDefault();
    const name = el.newRoomName.value.trim();
    if (!name) return;
    showError(el.chatError, "");
    try {
      const room = await request("POST", "/rooms", { name, kind: "public" });
      el.newRoomName.value = "";
      rememberRoom(room);
      renderRooms();
      openRoom(room.id);
    } catch (err) {
      showError(el.chatError, err.message);
    }
  }

  async function joinRoom(roomId) {
    const room = await request("POST", `/rooms/${encodeURIComponent(roomId)}/join`);
    rememberRoom(room && room.id ? room : { id: roomId, name: roomId.slice(0, 8) });
    renderRooms();
    openRoom(roomId);
  }

  async function onJoinSubmit(event) {
    event.preventDefault();
    const id = el.joinRoomId.value.trim();
    if (!id) return;
    showError(el.chatError, "");
    try {
      await joinRoom(id);
      el.joinRoomId.value = "";
    } catch (err) {
      showError(el.chatError, err.message);
    }
  }

  function openRoom(roomId) {
    if (!state.rooms.has(roomId)) return;
    stopTyping();
    state.currentRoomId = roomId;
    const room = state.rooms.get(roomId);
    room.unread = 0;
    history.replaceState(null, "", `#room=${encodeURIComponent(roomId)}`);
    el.roomTitle.textContent = roomName(room);
    el.roomId.textContent = roomId;
    el.input.disabled = false;
    el.send.disabled = false;
    renderRooms();
    renderMessages({ toBottom: true });
    renderTyping();
    renderPresence();
    subscribeCurrentRoom();
    if (!state.historyCursor.has(roomId)) {
      loadHistory(roomId, { initial: true });
    } else {
      scheduleMarkRead();
    }
    el.input.focus();
  }

  // --- history -------------------------------------------------------------------------------------------

  function roomMessages(roomId) {
    let m = state.messages.get(roomId);
    if (!m) {
      m = new Map();
      state.messages.set(roomId, m);
    }
    return m;
  }

  function upsertMessage(msg) {
    if (!msg || !msg.roomId || typeof msg.seq !== "number") return false;
    const map = roomMessages(msg.roomId);
    const isNew = !map.has(msg.seq);
    map.set(msg.seq, { ...map.get(msg.seq), ...msg });
    if (msg.senderId && msg.senderHandle) state.handles.set(msg.senderId, msg.senderHandle);
    if (msg.seq > (state.lastSeq.get(msg.roomId) || 0)) state.lastSeq.set(msg.roomId, msg.seq);
    if (msg.clientMessageId && state.pending.has(msg.clientMessageId) && msg.senderId === state.session.user.id) {
      state.pending.delete(msg.clientMessageId);
    }
    return isNew;
  }

  async function loadHistory(roomId, { initial = false } = {}) {
    if (state.loadingHistory) return;
    const cursor = state.historyCursor.get(roomId);
    if (!initial && (cursor === null || cursor === undefined)) return;
    state.loadingHistory = true;
    el.historyStatus.textContent = "Loading…";
    const query = new URLSearchParams({ limit: String(HISTORY_PAGE) });
    if (!initial) query.set("before", String(cursor));
    try {
      const page = await request("GET", `/rooms/${encodeURIComponent(roomId)}/messages?${query}`);
      for (const msg of page.messages || []) upsertMessage({ ...msg, roomId: msg.roomId || roomId });
      const prev = page.prevCursor === undefined ? null : page.prevCursor;
      state.historyCursor.set(roomId, prev);
      if (roomId === state.currentRoomId) {
        if (initial) renderMessages({ toBottom: true });
        else renderMessages({ keepAnchor: true });
        scheduleMarkRead();
      }
    } catch (err) {
      showError(el.chatError, err.message);
    } finally {
      state.loadingHistory = false;
      updateHistoryStatus();
    }
    // A short first page may not fill the pane: no scrollbar means no scroll event, so keep going.
    if (
      roomId === state.currentRoomId &&
      state.historyCursor.get(roomId) != null &&
      el.messages.scrollHeight <= el.messages.clientHeight
    ) {
      loadHistory(roomId);
    }
  }

  function updateHistoryStatus() {
    const cursor = state.historyCursor.get(state.currentRoomId);
    if (!state.currentRoomId || cursor === undefined) el.historyStatus.textContent = "";
    else if (cursor === null) el.historyStatus.textContent = "Beginning of the conversation";
    else el.historyStatus.textContent = "Scroll up for older messages";
  }

  function onMessagesScroll() {
    if (el.messages.scrollTop < 40 && state.currentRoomId) loadHistory(state.currentRoomId);
  }

  // --- rendering messages ----------------------------------------------------------------------------------

  function messageItem(msg, { pending = false, failed = false, error = "" } = {}) {
    const li = document.createElement("li");
    const mine = state.session && msg.senderId === state.session.user.id;
    li.className = "message" + (mine ? " mine" : "") + (pending ? " pending" : "") + (failed ? " failed" : "");
    if (msg.body === null || msg.deletedAt) li.classList.add("deleted");
    if (typeof msg.seq === "number") li.dataset.seq = String(msg.seq);
    if (msg.clientMessageId) li.dataset.clientMessageId = msg.clientMessageId;
    const meta = document.createElement("div");
    meta.className = "meta";
    const who = document.createElement("span");
    who.className = "sender";
    who.textContent = msg.senderHandle || handleOf(msg.senderId);
    const when = document.createElement("span");
    when.className = "time";
    when.textContent = fmtTime(msg.createdAt);
    const st = document.createElement("span");
    st.className = "state";
    if (msg.editedAt && !msg.deletedAt) st.textContent = "edited";
    if (failed && error) st.title = error;
    meta.append(who, when, st);
    // Own, stored, not deleted: edit / delete (editMessage / deleteMessage frames).
    if (mine && typeof msg.seq === "number" && msg.body !== null && !msg.deletedAt && !pending && !failed) {
      const edit = document.createElement("button");
      edit.type = "button";
      edit.className = "link edit";
      edit.textContent = "edit";
      edit.addEventListener("click", () => editMessage(msg));
      const del = document.createElement("button");
      del.type = "button";
      del.className = "link delete";
      del.textContent = "delete";
      del.addEventListener("click", () => deleteMessage(msg));
      meta.append(edit, del);
    }
    const body = document.createElement("div");
    body.className = "body";
    body.textContent = msg.body === null || msg.deletedAt ? "message deleted" : msg.body;
    li.append(meta, body);
    return li;
  }

  function renderMessages({ toBottom = false, keepAnchor = false } = {}) {
    const box = el.messages;
    const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    const prevHeight = box.scrollHeight;
    const prevTop = box.scrollTop;
    const roomId = state.currentRoomId;
    const items = [];
    if (roomId) {
      const sorted = [...roomMessages(roomId).values()].sort((a, b) => a.seq - b.seq);
      for (const msg of sorted) items.push(messageItem(msg));
      for (const [cid, p] of state.pending) {
        if (p.roomId !== roomId) continue;
        items.push(
          messageItem(
            { clientMessageId: cid, senderId: state.session.user.id, senderHandle: state.session.user.handle, body: p.body, createdAt: p.createdAt },
            { pending: !p.failed, failed: p.failed, error: p.error },
          ),
        );
      }
    }
    el.messageList.replaceChildren(...items);
    updateHistoryStatus();
    if (keepAnchor) box.scrollTop = box.scrollHeight - prevHeight + prevTop;
    else if (toBottom || nearBottom) box.scrollTop = box.scrollHeight;
  }

  function editMessage(msg) {
    const body = window.prompt("Edit message", msg.body);
    if (body === null || !body.trim() || body === msg.body) return;
    if (!sendFrame({ action: "editMessage", roomId: msg.roomId, seq: msg.seq, body })) {
      showError(el.chatError, "Not connected; try again in a moment.");
    }
  }

  function deleteMessage(msg) {
    if (!window.confirm("Delete this message?")) return;
    if (!sendFrame({ action: "deleteMessage", roomId: msg.roomId, seq: msg.seq })) {
      showError(el.chatError, "Not connected; try again in a moment.");
    }
  }

  // --- sending ----------------------------------------------------------------------------------------------

  function sendFrame(frame) {
    if (!state.ws || !state.wsOpen) return false;
    state.ws.send(JSON.stringify(frame));
    return true;
  }

  function transmit(cid) {
    const p = state.pending.get(cid);
    if (!p) return;
    p.sentAt = Date.now();
    sendFrame({ action: "sendMessage", roomId: p.roomId, clientMessageId: cid, body: p.body, requestId: cid });
  }

  function onComposerSubmit(event) {
    event.preventDefault();
    const body = el.input.value;
    if (!body.trim() || !state.currentRoomId) return;
    const cid = uuid();
    state.pending.set(cid, { roomId: state.currentRoomId, body, createdAt: new Date().toISOString(), sentAt: 0, failed: false, error: "" });
    el.input.value = "";
    stopTyping();
    transmit(cid); // offline: stays pending and goes out after reconnect
    renderMessages({ toBottom: true });
  }

  function checkAcks() {
    const now = Date.now();
    for (const [cid, p] of state.pending) {
      if (!p.failed && state.wsOpen && now - p.sentAt > ACK_TIMEOUT_MS) transmit(cid); // idempotent resend
    }
  }

  // --- typing ---------------------------------------------------------------------------------------------------

  function onInput() {
    if (!state.currentRoomId) return;
    if (!el.input.value) {
      stopTyping();
      return;
    }
    const now = Date.now();
    if (now - state.lastTypingSent > TYPING_SEND_EVERY_MS) {
      state.lastTypingSent = now;
      state.typingActive = sendFrame({ action: "typing", roomId: state.currentRoomId, isTyping: true });
    }
  }

  function stopTyping() {
    if (state.typingActive && state.currentRoomId) {
      sendFrame({ action: "typing", roomId: state.currentRoomId, isTyping: false });
    }
    state.typingActive = false;
    state.lastTypingSent = 0;
  }

  function onTypingFrame(frame) {
    if (!state.session || frame.userId === state.session.user.id) return;
    if (frame.handle) state.handles.set(frame.userId, frame.handle);
    let room = state.typing.get(frame.roomId);
    if (!room) {
      room = new Map();
      state.typing.set(frame.roomId, room);
    }
    const prev = room.get(frame.userId);
    if (prev) clearTimeout(prev.timer);
    if (frame.isTyping === false) {
      room.delete(frame.userId);
    } else {
      const timer = setTimeout(() => {
        room.delete(frame.userId);
        renderTyping();
      }, TYPING_SHOW_MS);
      room.set(frame.userId, { handle: frame.handle || handleOf(frame.userId), timer });
    }
    renderTyping();
  }

  function renderTyping() {
    const room = state.typing.get(state.currentRoomId);
    const names = room ? [...room.values()].map((t) => t.handle) : [];
    if (!names.length) el.typing.textContent = "";
    else if (names.length === 1) el.typing.textContent = `${names[0]} is typing…`;
    else el.typing.textContent = `${names.join(", ")} are typing…`;
  }

  // --- presence ----------------------------------------------------------------------------------------------------

  function renderPresence() {
    el.presence.replaceChildren();
    if (!state.session) return;
    // Me, then everyone a presence frame told us about (co-members), online first.
    const people = [[state.session.user.id, state.wsOpen]];
    const others = [...state.presence].filter(([id]) => id !== state.session.user.id);
    others.sort((a, b) => (a[1] === b[1] ? handleOf(a[0]).localeCompare(handleOf(b[0])) : a[1] === "online" ? -1 : 1));
    for (const [userId, status] of others) people.push([userId, status === "online"]);
    for (const [userId, isOnline] of people) {
      const span = document.createElement("span");
      span.className = "user" + (isOnline ? " online" : "");
      span.dataset.userId = userId;
      span.textContent = handleOf(userId);
      span.title = isOnline ? "online" : "offline";
      el.presence.append(span);
    }
  }

  // --- read position ------------------------------------------------------------------------------------------------

  function scheduleMarkRead() {
    clearTimeout(state.markReadTimer);
    state.markReadTimer = setTimeout(() => {
      const roomId = state.currentRoomId;
      const seq = roomId ? state.lastSeq.get(roomId) : 0;
      if (roomId && seq && document.visibilityState === "visible") sendFrame({ action: "markRead", roomId, seq });
    }, 800);
  }

  // --- WebSocket -----------------------------------------------------------------------------------------------------

  function subscribeCurrentRoom() {
    if (!state.wsOpen) return;
    if (state.subscribedRoomId && state.subscribedRoomId !== state.currentRoomId) {
      sendFrame({ action: "leaveRoom", roomId: state.subscribedRoomId });
    }
    if (state.currentRoomId) {
      sendFrame({ action: "joinRoom", roomId: state.currentRoomId });
      state.subscribedRoomId = state.currentRoomId;
    }
  }

  function connect() {
    if (!state.session || state.ws) return;
    clearTimeout(state.reconnectTimer);
    setConn(state.reconnectAttempt ? "reconnecting" : "connecting");
    const sep = state.cfg.wsUrl.includes("?") ? "&" : "?";
    const ws = new WebSocket(`${state.cfg.wsUrl}${sep}token=${encodeURIComponent(state.session.accessToken)}`);
    state.ws = ws;
    let opened = false;
    ws.addEventListener("open", () => {
      if (state.ws !== ws) return;
      opened = true;
      state.wsOpen = true;
      state.reconnectAttempt = 0;
      state.subscribedRoomId = null;
      setConn("online");
      onConnected();
    });
    ws.addEventListener("message", (e) => {
      let frame;
      try {
        frame = JSON.parse(e.data);
      } catch (_) {
        return;
      }
      handleFrame(frame);
    });
    ws.addEventListener("close", () => {
      if (state.ws !== ws) return;
      state.ws = null;
      state.wsOpen = false;
      clearInterval(state.pingTimer);
      if (!state.session) {
        setConn("offline");
        return;
      }
      setConn("reconnecting");
      // A refused handshake is most often an expired access token: refresh, then retry.
      const before = opened ? Promise.resolve(true) : refreshTokens();
      before.finally(scheduleReconnect);
    });
  }

  function scheduleReconnect() {
    if (!state.session) return;
    const backoff = Math.min(10000, 500 * 2 ** state.reconnectAttempt) * (0.5 + Math.random() / 2);
    const delay = Math.max(backoff, state.holdReconnectUntil - Date.now());
    state.reconnectAttempt += 1;
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = setTimeout(connect, delay);
  }

  function closeSocket() {
    clearTimeout(state.reconnectTimer);
    clearInterval(state.pingTimer);
    const ws = state.ws;
    state.ws = null;
    state.wsOpen = false;
    if (ws) ws.close(1000, "bye");
    setConn("offline");
  }

  function onConnected() {
    state.pingTimer = setInterval(() => sendFrame({ action: "ping" }), PING_EVERY_MS);
    subscribeCurrentRoom();
    // Fill what we missed while away, for every room we have messages of.
    for (const [roomId, seq] of state.lastSeq) {
      if (state.rooms.has(roomId)) sendFrame({ action: "resume", roomId, sinceSeq: seq });
    }
    for (const cid of state.pending.keys()) transmit(cid);
  }

  function handleFrame(frame) {
    switch (frame.type) {
      case "message":
      case "messageEdited":
      case "messageDeleted": {
        const msg = frame.message;
        const isNew = upsertMessage(msg);
        if (msg.roomId === state.currentRoomId) {
          renderMessages();
          scheduleMarkRead();
          // The sender stopped typing once the message arrived.
          const typers = state.typing.get(msg.roomId);
          if (typers && typers.has(msg.senderId)) {
            clearTimeout(typers.get(msg.senderId).timer);
            typers.delete(msg.senderId);
            renderTyping();
          }
        } else if (isNew && frame.type === "message") {
          const room = state.rooms.get(msg.roomId);
          if (room) {
            room.unread = (room.unread || 0) + 1;
            renderRooms();
          } else {
            loadRooms().catch(() => {}); // added to a room by someone else
          }
        }
        break;
      }
      case "ack": {
        const p = state.pending.get(frame.clientMessageId);
        if (p) {
          state.pending.delete(frame.clientMessageId);
          upsertMessage({
            id: frame.messageId,
            roomId: frame.roomId,
            seq: frame.seq,
            senderId: state.session.user.id,
            senderHandle: state.session.user.handle,
            clientMessageId: frame.clientMessageId,
            body: p.body,
            createdAt: frame.createdAt,
          });
          if (frame.roomId === state.currentRoomId) renderMessages({ toBottom: true });
        }
        break;
      }
      case "resumed": {
        for (const msg of frame.messages || []) upsertMessage(msg);
        if (frame.more) sendFrame({ action: "resume", roomId: frame.roomId, sinceSeq: frame.nextSinceSeq });
        if (frame.roomId === state.currentRoomId) renderMessages();
        break;
      }
      case "typing":
        onTypingFrame(frame);
        break;
      case "presence": {
        // Frames can cross on the wire (a reload: the old socket's "offline" after the new
        // socket's "online"): one not newer than the last applied for that user is stale.
        const last = state.presenceVersion.get(frame.userId);
        if (typeof frame.version === "number" && last !== undefined && frame.version <= last) break;
        if (frame.status === "online" || frame.status === "offline") {
          state.presence.set(frame.userId, frame.status);
          if (typeof frame.version === "number") state.presenceVersion.set(frame.userId, frame.version);
        }
        renderPresence();
        break;
      }
      case "read": {
        const room = state.rooms.get(frame.roomId);
        if (room) {
          room.unread = 0;
          renderRooms();
        }
        break;
      }
      case "error": {
        const p = frame.requestId && state.pending.get(frame.requestId);
        if (p) {
          if (frame.code === "rate_limited") break; // the ack timer resends it
          p.failed = true;
          p.error = frame.message;
          renderMessages();
        }
        showError(el.chatError, frame.message || frame.code);
        break;
      }
      default:
        break; // joined, left, pong: nothing to do
    }
  }

  // --- start ------------------------------------------------------------------------------------------------------

  async function main() {
    state.cfg = await loadConfig();
    el.authForm.addEventListener("submit", onAuthSubmit);
    el.logout.addEventListener("click", () => signOut());
    el.createRoomForm.addEventListener("submit", createRoom);
    el.joinRoomForm.addEventListener("submit", onJoinSubmit);
    el.composer.addEventListener("submit", onComposerSubmit);
    el.input.addEventListener("input", onInput);
    el.messages.addEventListener("scroll", onMessagesScroll);
    window.addEventListener("online", () => {
      if (!state.ws) connect();
    });
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") scheduleMarkRead();
    });
    setInterval(checkAcks, 2000);
    const saved = restoreSession();
    if (saved && saved.accessToken) {
      state.session = saved;
      try {
        await enterChat();
      } catch (err) {
        signOut(err.message);
      }
    }
    document.body.dataset.ready = "true";
  }

  // Test seam (tests/e2e/test_browser_chat.py): drop the socket as a network failure would and keep
  // it down for pauseMs, so a test can show that messages sent meanwhile arrive through resume.
  window.chatflowTest = {
    dropConnection(pauseMs = 0) {
      state.holdReconnectUntil = Date.now() + pauseMs;
      if (state.ws) state.ws.close(4000, "test: connection dropped");
    },
    connectionState: () => el.connStatus.dataset.state,
  };

  main();
})();
