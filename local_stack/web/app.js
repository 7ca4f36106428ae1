// Chatflow web chat: plain JS on the project's JavaScript client (clients/js/chatflow.js, served as
// /chatflow.js), which carries the protocol's rules (docs/clients.md): one send in flight per room
// (two messages typed quickly keep their order for everyone), unacked sends resent with the same
// clientMessageId, messages per room in seq order exactly once (gaps and reconnects filled with
// resume), presence by version, tokens refreshed before they expire.
// This page does the rest: auth forms, the room list (HTTP), rendering.
// Every user-supplied string is rendered with textContent (never innerHTML).
import { ApiError, ChatflowClient, SessionExpired } from "./chatflow.js";

const HISTORY_PAGE = 30;
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
  chat: null, // the ChatflowClient of the signed-in session
  rooms: new Map(), // roomId -> room (wire shape: names, kind, peer)
  currentRoomId: null,
  joinedRoomId: null, // the room whose live stream (typing) this page subscribed to
  historyLoaded: new Set(), // rooms whose newest history page was loaded
  loadingHistory: false,
  failed: new Map(), // clientMessageId -> refused send (kept on screen as "not sent")
  handles: new Map(), // userId -> handle
  markReadTimer: null,
};

// --- utilities ---------------------------------------------------------------------------------

function showError(target, message) {
  target.textContent = message || "";
  target.hidden = !message;
}

const CONN_LABELS = { idle: "offline", connecting: "connecting", connected: "online", reconnecting: "reconnecting", closed: "offline" };

function setConn(clientState) {
  const name = CONN_LABELS[clientState] || "offline";
  el.connStatus.dataset.state = name;
  el.connStatus.textContent = name;
  renderPresence();
}

function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

function me() {
  return state.chat && state.chat.user;
}

function handleOf(userId) {
  const user = me();
  if (user && userId === user.id) return user.handle;
  return state.handles.get(userId) || `user ${String(userId).slice(0, 6)}`;
}

/** An error as a sentence: the API's message, with the fields a validation error names. */
function describe(err) {
  if (err instanceof ApiError) {
    const fields = Array.isArray(err.details.fields) ? err.details.fields : [];
    const detail = fields
      .map((f) => `${Array.isArray(f.loc) ? f.loc.filter((p) => p !== "body").join(".") : ""}: ${f.message || ""}`)
      .join("; ");
    const message = err.serverMessage || `HTTP ${err.status}`;
    return detail ? `${message} (${detail})` : message;
  }
  if (err instanceof TypeError) return "The server cannot be reached.";
  return err.serverMessage || err.message || String(err);
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

function newClient() {
  const chat = new ChatflowClient({ httpUrl: state.cfg.httpUrl, wsUrl: state.cfg.wsUrl });
  chat.on("session", ({ session }) => {
    if (session) sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
    else sessionStorage.removeItem(SESSION_KEY);
  });
  chat.on("state", ({ state: s }) => setConn(s));
  chat.on("connected", () => subscribeCurrentRoom());
  chat.on("message", onMessage);
  chat.on("messageEdited", onMessageChanged);
  chat.on("messageDeleted", onMessageChanged);
  for (const name of ["sendQueued", "sendAcked"]) chat.on(name, ({ outgoing }) => outgoing.roomId === state.currentRoomId && renderMessages({ toBottom: true }));
  chat.on("sendFailed", ({ outgoing }) => {
    if (outgoing.error instanceof SessionExpired || outgoing.error?.name === "ClientClosed") return;
    state.failed.set(outgoing.clientMessageId, outgoing);
    showError(el.chatError, describe(outgoing.error));
    if (outgoing.roomId === state.currentRoomId) renderMessages();
  });
  chat.on("typing", ({ roomId }) => roomId === state.currentRoomId && renderTyping());
  chat.on("presence", (p) => {
    if (p.handle) state.handles.set(p.userId, p.handle);
    renderPresence();
  });
  chat.on("read", () => renderRooms());
  chat.on("serverError", ({ message }) => showError(el.chatError, message));
  chat.on("closed", ({ error }) => {
    if (error && state.chat === chat) signOut("Your session ended; please sign in again.");
  });
  return chat;
}

function restoreSession() {
  try {
    const raw = sessionStorage.getItem(SESSION_KEY);
    return raw ? JSON.parse(raw) : null;
  } catch (_) {
    return null;
  }
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
  const chat = newClient();
  try {
    await (mode === "register" ? chat.register(handle, password) : chat.login(handle, password));
    state.chat = chat;
    el.authPassword.value = "";
    await enterChat();
  } catch (err) {
    if (state.chat) signOut(describe(err)); // signed in, but the chat could not load
    else showError(el.authError, describe(err));
  } finally {
    for (const b of el.authForm.querySelectorAll("button")) b.disabled = false;
  }
}

function signOut(message) {
  const chat = state.chat;
  state.chat = null;
  if (chat) {
    chat.close();
    if (!message) chat.api.logout().catch(() => {});
  }
  sessionStorage.removeItem(SESSION_KEY);
  state.rooms.clear();
  state.historyLoaded.clear();
  state.failed.clear();
  state.currentRoomId = null;
  state.joinedRoomId = null;
  el.chatView.hidden = true;
  el.authView.hidden = false;
  el.me.hidden = true;
  el.logout.hidden = true;
  setConn("closed");
  showError(el.authError, message || "");
}

async function enterChat() {
  const user = me();
  el.authView.hidden = true;
  el.chatView.hidden = false;
  el.me.hidden = false;
  el.logout.hidden = false;
  el.me.textContent = `@${user.handle}`;
  el.me.dataset.userId = user.id;
  await loadRooms();
  await state.chat.connect();
  const wanted = new URLSearchParams(location.hash.slice(1)).get("room");
  if (wanted && !state.rooms.has(wanted)) {
    await joinRoom(wanted).catch((err) => showError(el.chatError, describe(err)));
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
  for (const room of await state.chat.loadRooms()) rememberRoom(room);
  renderRooms();
  try {
    const pub = await state.chat.api.rooms({ scope: "public" });
    renderPublicRooms(pub.filter((r) => !r.isMember && !state.rooms.has(r.id)));
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
    const unread = state.chat ? state.chat.room(room.id).unread : 0;
    if (unread && room.id !== state.currentRoomId) {
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = String(unread);
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
    li.addEventListener("click", () => joinRoom(room.id).catch((err) => showError(el.chatError, describe(err))));
    el.publicRoomList.append(li);
  }
}

async function createRoom(event) {
  event.preventDefault();
  const name = el.newRoomName.value.trim();
  if (!name) return;
  showError(el.chatError, "");
  try {
    const room = await state.chat.api.createRoom(name);
    el.newRoomName.value = "";
    rememberRoom(room);
    renderRooms();
    openRoom(room.id);
  } catch (err) {
    showError(el.chatError, describe(err));
  }
}

async function joinRoom(roomId) {
  const room = await state.chat.api.joinRoom(roomId);
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
    showError(el.chatError, describe(err));
  }
}

function openRoom(roomId) {
  if (!state.rooms.has(roomId)) return;
  stopTyping();
  state.currentRoomId = roomId;
  const room = state.rooms.get(roomId);
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
  if (!state.historyLoaded.has(roomId)) loadHistory(roomId);
  else scheduleMarkRead();
  el.input.focus();
}

/** The open room's live stream (typing): joinRoom it, leaveRoom the previous one. The client
 *  re-joins it by itself after reconnects. */
function subscribeCurrentRoom() {
  const chat = state.chat;
  const roomId = state.currentRoomId;
  if (!chat || !roomId || chat.state !== "connected") return;
  if (state.joinedRoomId && state.joinedRoomId !== roomId) chat.leave(state.joinedRoomId).catch(() => {});
  if (state.joinedRoomId !== roomId) {
    state.joinedRoomId = roomId;
    chat.join(roomId).catch((err) => showError(el.chatError, describe(err)));
  }
}

// --- history -------------------------------------------------------------------------------------------

async function loadHistory(roomId) {
  if (state.loadingHistory || !state.chat) return;
  const initial = !state.historyLoaded.has(roomId);
  if (!initial && !state.chat.room(roomId).hasMoreHistory) return;
  state.loadingHistory = true;
  el.historyStatus.textContent = "Loading…";
  try {
    const older = await state.chat.loadHistory(roomId, { limit: HISTORY_PAGE });
    state.historyLoaded.add(roomId);
    for (const m of older) if (m.senderHandle) state.handles.set(m.senderId, m.senderHandle);
    if (roomId === state.currentRoomId) {
      renderMessages(initial ? { toBottom: true } : { keepAnchor: true });
      scheduleMarkRead();
    }
  } catch (err) {
    showError(el.chatError, describe(err));
  } finally {
    state.loadingHistory = false;
    updateHistoryStatus();
  }
  // A short first page may not fill the pane: no scrollbar means no scroll event, so keep going.
  if (roomId === state.currentRoomId && state.chat && state.chat.room(roomId).hasMoreHistory && el.messages.scrollHeight <= el.messages.clientHeight) {
    loadHistory(roomId);
  }
}

function updateHistoryStatus() {
  const roomId = state.currentRoomId;
  if (!roomId || !state.historyLoaded.has(roomId) || !state.chat) el.historyStatus.textContent = "";
  else if (!state.chat.room(roomId).hasMoreHistory) el.historyStatus.textContent = "Beginning of the conversation";
  else el.historyStatus.textContent = "Scroll up for older messages";
}

function onMessagesScroll() {
  if (el.messages.scrollTop < 40 && state.currentRoomId) loadHistory(state.currentRoomId);
}

// --- live messages ---------------------------------------------------------------------------------------

function onMessage({ message }) {
  if (message.senderHandle) state.handles.set(message.senderId, message.senderHandle);
  if (message.roomId === state.currentRoomId) {
    renderMessages();
    renderTyping(); // the sender stopped typing once the message arrived
    scheduleMarkRead();
  } else if (state.rooms.has(message.roomId)) {
    renderRooms();
  } else {
    loadRooms().catch(() => {}); // added to a room by someone else
  }
}

function onMessageChanged({ message }) {
  if (message.roomId === state.currentRoomId) renderMessages();
}

// --- rendering messages ----------------------------------------------------------------------------------

function messageItem(msg, { pending = false, failed = false, error = "" } = {}) {
  const li = document.createElement("li");
  const user = me();
  const mine = user && msg.senderId === user.id;
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
  if (failed) st.textContent = "not sent";
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
  if (roomId && state.chat) {
    const user = me();
    for (const msg of state.chat.messages(roomId)) items.push(messageItem(msg));
    // Own sends not acked yet, in the order typed (the client sends them one at a time).
    for (const out of state.chat.room(roomId).pending) {
      items.push(messageItem({ clientMessageId: out.clientMessageId, senderId: user.id, senderHandle: user.handle, body: out.body, createdAt: out.createdAt }, { pending: true }));
    }
    for (const out of state.failed.values()) {
      if (out.roomId !== roomId) continue;
      items.push(messageItem({ clientMessageId: out.clientMessageId, senderId: user.id, senderHandle: user.handle, body: out.body, createdAt: out.createdAt }, { failed: true, error: describe(out.error) }));
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
  state.chat.edit(msg.roomId, msg.seq, body).catch((err) => showError(el.chatError, describe(err)));
}

function deleteMessage(msg) {
  if (!window.confirm("Delete this message?")) return;
  state.chat.delete(msg.roomId, msg.seq).catch((err) => showError(el.chatError, describe(err)));
}

// --- sending ----------------------------------------------------------------------------------------------

function onComposerSubmit(event) {
  event.preventDefault();
  const body = el.input.value;
  if (!body.trim() || !state.currentRoomId || !state.chat) return;
  el.input.value = "";
  stopTyping();
  // Queued: goes out after every earlier message of the room is acked (offline: after reconnect).
  state.chat.send(state.currentRoomId, body).catch(() => {}); // failures: the sendFailed event
}

// --- typing ---------------------------------------------------------------------------------------------------

function onInput() {
  if (!state.currentRoomId || !state.chat) return;
  if (!el.input.value) stopTyping();
  else state.chat.typing(state.currentRoomId, true); // at most one frame per 3 s
}

function stopTyping() {
  if (state.chat && state.currentRoomId) state.chat.typing(state.currentRoomId, false);
}

function renderTyping() {
  const names = state.chat && state.currentRoomId ? state.chat.room(state.currentRoomId).typing.map((t) => t.handle || handleOf(t.userId)) : [];
  if (!names.length) el.typing.textContent = "";
  else if (names.length === 1) el.typing.textContent = `${names[0]} is typing…`;
  else el.typing.textContent = `${names.join(", ")} are typing…`;
}

// --- presence ----------------------------------------------------------------------------------------------------

function renderPresence() {
  el.presence.replaceChildren();
  const user = me();
  if (!user) return;
  // Me, then everyone a presence frame told us about (co-members), online first.
  const people = [[user.id, state.chat.state === "connected"]];
  const others = state.chat.knownPresence().filter((p) => p.userId !== user.id);
  others.sort((a, b) => (a.status === b.status ? handleOf(a.userId).localeCompare(handleOf(b.userId)) : a.status === "online" ? -1 : 1));
  for (const p of others) people.push([p.userId, p.status === "online"]);
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
    if (!roomId || !state.chat || document.visibilityState !== "visible") return;
    if (state.chat.room(roomId).unread) state.chat.markRead(roomId).then(renderRooms, () => {});
  }, 800);
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
    if (state.chat && state.chat.state === "idle") state.chat.connect().catch(() => {});
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") scheduleMarkRead();
  });
  const saved = restoreSession();
  if (saved && saved.accessToken) {
    const chat = newClient();
    chat.useSession(saved);
    state.chat = chat;
    try {
      await enterChat();
    } catch (err) {
      signOut(describe(err));
    }
  }
  document.body.dataset.ready = "true";
}

// Test seam (tests/e2e/test_browser_chat.py): drop the socket and keep it down for pauseMs, so a test
// can show that messages sent meanwhile arrive through resume.
window.chatflowTest = {
  async dropConnection(pauseMs = 0) {
    const chat = state.chat;
    if (!chat) return;
    await chat.disconnect();
    setTimeout(() => chat.connect().catch(() => {}), pauseMs);
  },
  connectionState: () => el.connStatus.dataset.state,
};

main();
