// Chatflow web chat: plain JS on the project's JavaScript client (clients/js/chatflow.js, served as
// /chatflow.js), which carries the protocol's rules (docs/clients.md): one send in flight per room
// (two messages typed quickly keep their order for everyone), unacked sends resent with the same
// clientMessageId, messages per room in seq order exactly once (gaps and reconnects filled with
// resume), presence by version, tokens refreshed before they expire.
// This page does the rest: sign-in, the conversation list (HTTP), rendering, keyboard use.
// Every user-supplied string is rendered with textContent (never innerHTML). docs/web-chat.md.
import { ChatflowClient } from "./chatflow.js";
import { STORAGE_KEY as ENDPOINTS_KEY, normalizeUrl, resolveEndpoints } from "./config.js";
import { checkLogin, checkRegistration, describeError } from "./errors.js";

const HISTORY_PAGE = 30;
const SESSION_KEY = "chatflow.session";
const GROUP_WINDOW_MS = 5 * 60_000; // consecutive messages of one sender within this share a header
const PRESENCE_REFRESH_MS = 10_000;
const NARROW = window.matchMedia("(max-width: 759px)");

const $ = (id) => document.getElementById(id);
const el = Object.fromEntries(
  [
    "conn-status", "me", "logout", "auth-view", "auth-form", "auth-handle", "auth-password", "auth-error",
    "auth-handle-error", "auth-password-error", "server-host", "server-form", "server-note",
    "server-http", "server-ws", "server-reset", "server-error", "chat-view", "room-list", "no-rooms", "dm-list",
    "dm-form", "dm-handle", "create-room-form", "new-room-name", "new-room-private", "public-room-list", "no-public-rooms",
    "join-room-form", "join-room-id", "sidebar-error", "back-btn", "back-unread", "room-title", "room-subtitle",
    "presence-note", "invite-panel", "invite-link-row", "invite-link", "copy-invite", "add-member-form",
    "add-member-handle", "invite-status", "members-btn", "online-count", "members-panel", "members-summary",
    "presence", "leave-room-btn", "conn-banner", "messages", "history-status", "message-list", "room-empty",
    "typing-indicator", "composer", "message-input", "send-btn", "chat-error", "confirm-delete",
    "confirm-delete-text", "announcer",
  ].map((id) => [id.replace(/-([a-z])/g, (_, c) => c.toUpperCase()), $(id)]),
);

const state = {
  endpoints: null,
  chat: null, // the ChatflowClient of the signed-in session
  rooms: new Map(), // roomId -> room (wire shape: name, kind, peer, role, memberCount)
  currentRoomId: null,
  joinedRoomId: null, // the room whose live stream (typing) this page subscribed to
  historyLoaded: new Set(),
  loadingHistory: new Set(), // rooms with a history page in flight
  failed: new Map(), // clientMessageId -> refused send (kept on screen: retry or discard)
  handles: new Map(), // userId -> handle
  members: new Map(), // roomId -> Map(userId -> handle): who the page knows is in the room
  snapshots: "unknown", // does the server offer presence snapshots? "unknown" | "yes" | "no"
  snapshotSeen: new Set(), // rooms whose snapshot arrived at least once
  snapshot: new Map(), // roomId -> {ids, asked}: the last complete snapshot (who was online)
  snapshotAsked: new Map(), // roomId -> the stamp when its snapshot was last asked for
  partialSnapshots: new Map(), // roomId -> ids of a paged snapshot's pages so far
  presenceFetching: new Set(), // rooms with a `presence` request in flight
  presenceStamp: new Map(), // userId -> stamp of the last presence change applied
  stamp: 0, // orders presence changes and snapshots
  editing: null, // {roomId, seq, draft, error}
  newFrom: new Map(), // roomId -> read position when opened ("New messages" divider)
  rendered: new Map(), // key -> {sig, node} of the open room's list items
  markReadTimer: null,
  markReadRoom: null, // the room a scheduled read mark is for
  presenceTimer: null,
  presenceRefreshedAt: 0,
  roomsReload: null, // a loadRooms() in flight for rooms that showed up
};

// --- small helpers -----------------------------------------------------------------------------

function show(target, message) {
  target.textContent = message || "";
  target.hidden = !message;
}

function showError(target, err) {
  show(target, typeof err === "string" ? err : describeError(err).message);
}

/** Empty a form field after its request succeeded, unless the user typed something new meanwhile. */
function clearIfUnchanged(input, submitted) {
  if (input.value !== submitted) return false;
  input.value = "";
  return true;
}

function make(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function me() {
  return state.chat && state.chat.user;
}

function handleOf(userId) {
  const user = me();
  if (user && userId === user.id) return user.handle;
  return state.handles.get(userId) || "someone";
}

/**
 * Online as far as the page knows: the client's presence (frames and snapshot entries, by
 * version). A snapshot lists who is online when the server reads it, which is after it was asked
 * for; so a member missing from a complete snapshot whose last presence change reached the page
 * BEFORE the page asked is offline (their `offline` frame was missed, e.g. while this page was
 * disconnected). A change that arrived after asking may be newer than the snapshot and stands:
 * docs/protocol.md's merge rule for everything else.
 */
function isOnline(userId, roomId = null) {
  const user = me();
  if (user && userId === user.id) return state.chat.state === "connected";
  if (state.chat?.presenceOf(userId)?.status !== "online") return false;
  const snap = roomId && state.snapshot.get(roomId);
  return !snap || snap.ids.has(userId) || (state.presenceStamp.get(userId) || 0) > snap.asked;
}

function askingForSnapshot(roomId) {
  state.snapshotAsked.set(roomId, state.stamp);
}

function roomName(room) {
  if (!room) return "";
  if (room.kind === "dm") return room.peer ? room.peer.handle : "Direct message";
  return room.name || "Untitled room";
}

const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long" });
const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short" });

function parseTime(iso) {
  const d = iso ? new Date(iso) : null;
  return d && !Number.isNaN(d.getTime()) ? d : null;
}

function dayLabel(date) {
  const today = new Date();
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (date.toDateString() === today.toDateString()) return "Today";
  if (date.toDateString() === yesterday.toDateString()) return "Yesterday";
  return dayFormat.format(date);
}

function announce(text) {
  el.announcer.textContent = "";
  // A fresh text node after a tick: screen readers announce changes, not repeats.
  setTimeout(() => (el.announcer.textContent = text), 50);
}

/** Text with http(s) links as anchors; everything else stays text. */
function linkified(text) {
  const nodes = [];
  let last = 0;
  for (const match of text.matchAll(/\bhttps?:\/\/[^\s<>"']+/g)) {
    let url = match[0].replace(/[),.;:!?\]]+$/, "");
    let href = null;
    try {
      const parsed = new URL(url);
      if (parsed.protocol === "http:" || parsed.protocol === "https:") href = parsed.href;
    } catch {
      href = null;
    }
    if (!href) continue;
    if (match.index > last) nodes.push(document.createTextNode(text.slice(last, match.index)));
    nodes.push(make("a", { href, target: "_blank", rel: "noopener noreferrer nofollow", text: url }));
    last = match.index + url.length;
  }
  if (last < text.length) nodes.push(document.createTextNode(text.slice(last)));
  return nodes;
}

// --- endpoints and session -----------------------------------------------------------------------

async function loadEndpoints() {
  let hosted = null;
  try {
    const res = await fetch("config.json", { cache: "no-store" });
    if (res.ok) hosted = await res.json();
  } catch {
    hosted = null; // served without a config: the page's own origin
  }
  let saved = null;
  try {
    saved = JSON.parse(localStorage.getItem(ENDPOINTS_KEY) || "null");
  } catch {
    saved = null;
  }
  return resolveEndpoints({ origin: location.origin, search: location.search, hosted, saved });
}

function renderServerSettings() {
  const ep = state.endpoints;
  el.serverHost.textContent = new URL(ep.httpUrl).host;
  el.serverHttp.value = ep.httpUrl;
  el.serverWs.value = ep.wsUrl;
  const editable = ep.overridable;
  for (const input of [el.serverHttp, el.serverWs]) input.readOnly = !editable;
  el.serverForm.querySelector("#server-save").hidden = !editable;
  el.serverReset.hidden = !editable || !["saved", "query"].includes(ep.source);
  el.serverNote.textContent = editable
    ? "Point this page at another Chatflow deployment (LocalStack, AWS). Your password is sent to this server."
    : "This page is set up for this server.";
}

function onServerSave(event) {
  event.preventDefault();
  const httpUrl = normalizeUrl(el.serverHttp.value, ["http:", "https:"]);
  const wsUrl = normalizeUrl(el.serverWs.value, ["ws:", "wss:"]);
  if (!httpUrl) return show(el.serverError, "Enter the HTTP API's address, starting with https:// or http://");
  if (!wsUrl) return show(el.serverError, "Enter the WebSocket API's address, starting with wss:// or ws://");
  localStorage.setItem(ENDPOINTS_KEY, JSON.stringify({ httpUrl, wsUrl }));
  sessionStorage.removeItem(SESSION_KEY); // a session belongs to the server that issued it
  location.assign(location.pathname); // without ?http=&ws=, which would win over the saved pair
}

function onServerReset() {
  localStorage.removeItem(ENDPOINTS_KEY);
  sessionStorage.removeItem(SESSION_KEY);
  location.assign(location.pathname);
}

function restoreSession() {
  try {
    const raw = sessionStorage.getItem(SESSION_KEY);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

function newClient() {
  const chat = new ChatflowClient({ httpUrl: state.endpoints.httpUrl, wsUrl: state.endpoints.wsUrl });
  chat.on("session", ({ session }) => {
    if (session) sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
    else sessionStorage.removeItem(SESSION_KEY);
  });
  chat.on("state", ({ state: s }) => setConn(s));
  chat.on("connected", () => {
    // After a reconnect the client re-joins the room by itself, right after this event.
    if (state.joinedRoomId) askingForSnapshot(state.joinedRoomId);
    subscribeCurrentRoom();
  });
  chat.on("message", onMessage);
  chat.on("messageEdited", onMessageChanged);
  chat.on("messageDeleted", onMessageChanged);
  chat.on("history", ({ messages }) => {
    for (const m of messages) learnMember(m.roomId, m.senderId, m.senderHandle);
  });
  for (const name of ["sendQueued", "sendAcked"]) {
    chat.on(name, ({ outgoing }) => outgoing.roomId === state.currentRoomId && renderMessages({ toBottom: true }));
  }
  chat.on("sendFailed", ({ outgoing }) => {
    if (outgoing.error?.name === "SessionExpired" || outgoing.error?.name === "ClientClosed") return;
    state.failed.set(outgoing.clientMessageId, outgoing);
    if (outgoing.roomId === state.currentRoomId) {
      showError(el.chatError, outgoing.error);
      renderMessages();
    }
  });
  chat.on("typing", ({ roomId, userId, handle }) => {
    learnMember(roomId, userId, handle);
    if (roomId === state.currentRoomId) renderTyping();
  });
  chat.on("presence", (p) => {
    if (p.handle) state.handles.set(p.userId, p.handle);
    state.presenceStamp.set(p.userId, ++state.stamp);
    // Someone came online that the open room does not list: they may be a member the page never
    // heard of (joined since the snapshot). Ask again.
    if (p.status === "online" && state.currentRoomId && !state.members.get(state.currentRoomId)?.has(p.userId)) {
      schedulePresenceRefresh();
    }
    renderPresence();
    renderRoomLists();
  });
  chat.on("roomPresence", ({ roomId, online, more }) => {
    state.snapshots = "yes";
    state.snapshotSeen.add(roomId);
    for (const p of online) learnMember(roomId, p.userId, p.handle, { fromSnapshot: true });
    // A complete snapshot also says who is NOT online (an offline frame missed while this page
    // was disconnected); pages of a paged one add up until the last.
    const ids = state.partialSnapshots.get(roomId) || new Set();
    for (const p of online) ids.add(p.userId);
    if (more) {
      state.partialSnapshots.set(roomId, ids);
      if (roomId === state.currentRoomId && !state.presenceFetching.has(roomId)) refreshPresence(roomId);
    } else {
      state.partialSnapshots.delete(roomId);
      // Unasked for (no record): it lists who is online, and asserts nobody offline.
      state.snapshot.set(roomId, { ids, asked: state.snapshotAsked.get(roomId) ?? -1 });
    }
    renderPresence();
    renderRoomLists();
  });
  chat.on("read", () => renderRoomLists());
  chat.on("positionReset", ({ roomId }) => roomId === state.currentRoomId && renderMessages());
  chat.on("serverError", (err) => {
    if (err.code === "connection_not_found") return; // the client reconnects by itself
    showError(el.chatError, { name: "ActionRefused", ...err });
  });
  chat.on("closed", ({ error }) => {
    if (error && state.chat === chat) signOut(describeError(error).message);
  });
  return chat;
}

// --- connection state ---------------------------------------------------------------------------

const CONN_LABELS = { idle: "offline", connecting: "connecting", connected: "online", reconnecting: "reconnecting", closed: "offline" };

function setConn(clientState) {
  const name = CONN_LABELS[clientState] || "offline";
  el.connStatus.dataset.state = name;
  el.connStatus.textContent = name;
  el.connStatus.hidden = !state.chat;
  const down = state.chat && name !== "online" && !el.chatView.hidden;
  const doing = name === "offline" ? "You're offline." : "Reconnecting…";
  show(el.connBanner, down ? `${doing} Messages you send now go out as soon as the connection is back.` : "");
  renderPresence();
}

// --- sign in / out ---------------------------------------------------------------------------------

function showFieldErrors(fields) {
  for (const [name, input, slot] of [["handle", el.authHandle, el.authHandleError], ["password", el.authPassword, el.authPasswordError]]) {
    show(slot, fields[name] || "");
    if (fields[name]) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }
  const first = fields.handle ? el.authHandle : fields.password ? el.authPassword : null;
  if (first) first.focus();
}

async function onAuthSubmit(event) {
  event.preventDefault();
  const mode = event.submitter && event.submitter.value === "register" ? "register" : "login";
  const handle = el.authHandle.value.trim();
  const password = el.authPassword.value;
  show(el.authError, "");
  const local = mode === "register" ? checkRegistration({ handle, password }) : checkLogin({ handle, password });
  showFieldErrors(local);
  if (Object.keys(local).length) return;
  for (const b of el.authForm.querySelectorAll("button")) b.disabled = true;
  const chat = newClient();
  try {
    await (mode === "register" ? chat.register(handle, password) : chat.login(handle, password));
    state.chat = chat;
    el.authPassword.value = "";
    await enterChat();
  } catch (err) {
    const { message, fields } = describeError(err);
    if (state.chat) {
      signOut(message); // signed in, but the chat could not load
    } else {
      showFieldErrors(fields);
      show(el.authError, message);
    }
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
  for (const collection of [state.rooms, state.failed, state.members, state.snapshotSeen, state.snapshot, state.snapshotAsked, state.partialSnapshots, state.presenceStamp, state.newFrom, state.rendered, state.historyLoaded]) collection.clear();
  Object.assign(state, { currentRoomId: null, joinedRoomId: null, editing: null, snapshots: "unknown" });
  el.messageList.replaceChildren();
  el.chatView.hidden = true;
  el.authView.hidden = false;
  el.me.hidden = true;
  el.logout.hidden = true;
  setConn("closed");
  updateTitle();
  show(el.authError, message || "");
  el.authHandle.focus();
}

async function enterChat() {
  const user = me();
  el.authView.hidden = true;
  el.chatView.hidden = false;
  el.me.hidden = false;
  el.logout.hidden = false;
  el.me.textContent = `@${user.handle}`;
  el.me.dataset.userId = user.id;
  setPane("list");
  await loadRooms();
  await state.chat.connect();
  const wanted = new URLSearchParams(location.hash.slice(1)).get("room");
  if (wanted && !state.rooms.has(wanted)) {
    await joinRoom(wanted).catch((err) => showError(el.sidebarError, err));
  } else if (wanted) {
    openRoom(wanted, { focus: false });
  } else if (!NARROW.matches && state.rooms.size) {
    openRoom(state.rooms.keys().next().value, { focus: false });
  }
}

// --- rooms -------------------------------------------------------------------------------------------

function rememberRoom(room) {
  const prev = state.rooms.get(room.id);
  state.rooms.set(room.id, { ...prev, ...room });
  if (room.peer && room.peer.id) {
    state.handles.set(room.peer.id, room.peer.handle);
    learnMember(room.id, room.peer.id, room.peer.handle);
  }
}

function learnMember(roomId, userId, handle, { fromSnapshot = false } = {}) {
  if (!roomId || !userId) return;
  if (handle) state.handles.set(userId, handle);
  if (!state.members.has(roomId)) state.members.set(roomId, new Map());
  const known = state.members.get(roomId);
  const isNew = !known.has(userId);
  if (isNew || (handle && !known.get(userId))) known.set(userId, handle || null);
  const room = state.rooms.get(roomId);
  if (isNew && room && room.memberCount < known.size) {
    room.memberCount = known.size; // someone joined since the room was loaded
    if (roomId === state.currentRoomId) renderRoomHeader();
  }
  if (isNew && roomId === state.currentRoomId && userId !== me()?.id) {
    renderPresence();
    if (!fromSnapshot) schedulePresenceRefresh(); // someone the snapshot did not list: online?
  }
}

async function loadRooms() {
  for (const room of await state.chat.loadRooms()) rememberRoom(room);
  renderRoomLists();
  await loadPublicRooms();
}

/** loadRooms once for a burst of messages from rooms the page does not know yet. */
function reloadRooms() {
  state.roomsReload ??= loadRooms()
    .catch(() => {})
    .finally(() => (state.roomsReload = null));
  return state.roomsReload;
}

async function loadPublicRooms() {
  try {
    const pub = await state.chat.api.rooms({ scope: "public" });
    renderPublicRooms(pub.filter((r) => !r.isMember && !state.rooms.has(r.id)));
  } catch {
    renderPublicRooms([]);
  }
}

function unreadOf(roomId) {
  return state.chat ? state.chat.room(roomId).unread : 0;
}

function roomButton(room) {
  const unread = room.id === state.currentRoomId ? 0 : unreadOf(room.id);
  const current = room.id === state.currentRoomId;
  const mark = { dm: "", private: "🔒 ", public: "# " }[room.kind] ?? "# ";
  const label = make("span", { class: "room-name", text: mark + roomName(room) });
  const button = make(
    "button",
    {
      type: "button",
      class: "room-link" + (unread ? " unread" : ""),
      "aria-current": current ? "true" : null,
      dataset: { roomId: room.id },
      onclick: () => openRoom(room.id),
    },
    room.kind === "dm" && room.peer ? make("span", { class: "dot" + (isOnline(room.peer.id, room.id) ? " online" : ""), "aria-hidden": "true" }) : null,
    label,
    unread ? make("span", { class: "badge", "aria-hidden": "true", text: unread > 99 ? "99+" : String(unread) }) : null,
    unread ? make("span", { class: "sr-only", text: `, ${unread} unread` }) : null,
    room.kind === "dm" && room.peer ? make("span", { class: "sr-only", text: isOnline(room.peer.id, room.id) ? ", online" : ", offline" }) : null,
  );
  return make("li", { dataset: { roomId: room.id } }, button);
}

function renderRoomLists() {
  const channels = [];
  const dms = [];
  for (const room of state.rooms.values()) (room.kind === "dm" ? dms : channels).push(roomButton(room));
  keepFocus(() => {
    el.roomList.replaceChildren(...channels);
    el.dmList.replaceChildren(...dms);
  });
  el.noRooms.hidden = channels.length > 0;
  updateTitle();
}

/** Re-render a list without losing keyboard focus on a room button inside it. */
function keepFocus(render) {
  const focusedRoom = document.activeElement?.closest?.(".room-link")?.dataset.roomId;
  render();
  if (focusedRoom) document.querySelector(`.room-link[data-room-id="${CSS.escape(focusedRoom)}"]`)?.focus();
}

function updateTitle() {
  let total = 0;
  let elsewhere = 0;
  if (state.chat) {
    for (const id of state.rooms.keys()) {
      const n = unreadOf(id);
      total += n;
      if (id !== state.currentRoomId) elsewhere += n;
    }
  }
  document.title = total ? `(${total}) Chatflow` : "Chatflow";
  show(el.backUnread, elsewhere ? String(elsewhere) : "");
  el.backBtn.setAttribute("aria-label", elsewhere ? `Back to conversations (${elsewhere} unread)` : "Back to conversations");
}

function renderPublicRooms(rooms) {
  el.publicRoomList.replaceChildren(
    ...rooms.map((room) =>
      make(
        "li",
        { dataset: { roomId: room.id } },
        make("span", { class: "room-name", text: `# ${roomName(room)}` }),
        make("span", { class: "room-meta", text: `${room.memberCount ?? "?"} ${room.memberCount === 1 ? "member" : "members"}` }),
        make("button", {
          type: "button",
          class: "secondary small",
          text: "Join",
          "aria-label": `Join ${roomName(room)}`,
          onclick: () => joinRoom(room.id).catch((err) => showError(el.sidebarError, err)),
        }),
      ),
    ),
  );
  el.noPublicRooms.hidden = rooms.length > 0;
}

async function onCreateRoom(event) {
  event.preventDefault();
  const typed = el.newRoomName.value;
  const name = typed.trim();
  show(el.sidebarError, "");
  if (!name) return showError(el.sidebarError, "Give the room a name.");
  try {
    const room = await state.chat.api.createRoom(name, { kind: el.newRoomPrivate.checked ? "private" : "public" });
    if (clearIfUnchanged(el.newRoomName, typed)) el.newRoomPrivate.checked = false;
    rememberRoom(room);
    renderRoomLists();
    openRoom(room.id);
  } catch (err) {
    showError(el.sidebarError, err);
  }
}

async function joinRoom(roomId) {
  const room = await state.chat.api.joinRoom(roomId).catch(async (err) => {
    if (err.code === "already_member") return state.chat.api.room(roomId);
    throw err;
  });
  rememberRoom(room);
  renderRoomLists();
  await loadPublicRooms();
  openRoom(room.id);
}

/** An invite link (…#room=<id>) or a bare room id. */
function roomIdFrom(text) {
  const trimmed = text.trim();
  const fromHash = new URLSearchParams(trimmed.includes("#") ? trimmed.slice(trimmed.indexOf("#") + 1) : "").get("room");
  const id = fromHash || trimmed;
  return /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id) ? id.toLowerCase() : null;
}

async function onJoinSubmit(event) {
  event.preventDefault();
  show(el.sidebarError, "");
  const typed = el.joinRoomId.value;
  const id = roomIdFrom(typed);
  if (!id) return showError(el.sidebarError, "That doesn't look like an invite link. Paste the whole link you were sent.");
  try {
    await joinRoom(id);
    clearIfUnchanged(el.joinRoomId, typed);
  } catch (err) {
    showError(el.sidebarError, err);
  }
}

async function openDm(target) {
  const room = await state.chat.api.openDm(target);
  rememberRoom(room);
  renderRoomLists();
  openRoom(room.id);
}

async function onDmSubmit(event) {
  event.preventDefault();
  show(el.sidebarError, "");
  const typed = el.dmHandle.value;
  const handle = typed.trim().replace(/^@/, "");
  if (!handle) return showError(el.sidebarError, "Enter the handle of the person to message.");
  try {
    await openDm({ handle });
    clearIfUnchanged(el.dmHandle, typed);
  } catch (err) {
    showError(el.sidebarError, err);
  }
}

async function onLeaveRoom() {
  const roomId = state.currentRoomId;
  const room = state.rooms.get(roomId);
  if (!room || room.kind === "dm") return;
  try {
    await state.chat.api.leaveRoom(roomId);
  } catch (err) {
    return showError(el.chatError, err);
  }
  if (state.joinedRoomId === roomId) {
    state.joinedRoomId = null;
    state.chat.leave(roomId).catch(() => {});
  }
  state.rooms.delete(roomId);
  state.currentRoomId = null;
  history.replaceState(null, "", location.pathname + location.search);
  closePopovers();
  renderRoomLists();
  renderRoomHeader();
  renderMessages();
  setPane("list");
  loadPublicRooms();
}

// --- the open room --------------------------------------------------------------------------------

function setPane(pane) {
  el.chatView.dataset.pane = pane;
}

function openRoom(roomId, { focus = true } = {}) {
  if (!state.rooms.has(roomId)) return;
  if (roomId !== state.currentRoomId) {
    flushMarkRead();
    stopTyping();
    state.editing = null;
    state.rendered.clear();
    el.messageList.replaceChildren();
    closePopovers();
    el.invitePanel.open = false;
    show(el.chatError, "");
    const { unread, readSeq } = state.chat.room(roomId);
    if (unread) state.newFrom.set(roomId, readSeq || 0);
    else state.newFrom.delete(roomId);
  }
  state.currentRoomId = roomId;
  history.replaceState(null, "", `${location.pathname}${location.search}#room=${encodeURIComponent(roomId)}`);
  setPane("room");
  renderRoomHeader();
  renderRoomLists();
  renderMessages({ toBottom: true });
  renderTyping();
  renderPresence();
  subscribeCurrentRoom();
  if (!state.historyLoaded.has(roomId)) loadHistory(roomId);
  else scheduleMarkRead();
  if (focus || !NARROW.matches) el.messageInput.focus();
}

function renderRoomHeader() {
  const room = state.rooms.get(state.currentRoomId);
  el.roomTitle.textContent = room ? roomName(room) : "Pick a conversation";
  el.roomTitle.dataset.roomId = room ? room.id : "";
  let subtitle = "";
  if (room?.kind === "dm") subtitle = "Direct message";
  else if (room) subtitle = [room.topic, room.kind === "private" ? "Private room" : "Public room", room.memberCount ? `${room.memberCount} ${room.memberCount === 1 ? "member" : "members"}` : ""].filter(Boolean).join(" · ");
  el.roomSubtitle.textContent = subtitle;
  const isChannel = room && room.kind !== "dm";
  el.invitePanel.hidden = !isChannel || !(room.kind === "public" || room.role === "owner");
  el.inviteLinkRow.hidden = !room || room.kind !== "public";
  el.addMemberForm.hidden = !room || room.role !== "owner";
  el.inviteLink.value = room ? `${location.origin}${location.pathname}${location.search}#room=${room.id}` : "";
  el.membersBtn.hidden = !room;
  el.leaveRoomBtn.hidden = !isChannel;
  el.messageInput.disabled = !room;
  el.sendBtn.disabled = !room;
  el.messageInput.placeholder = room ? `Message ${room.kind === "dm" ? "" : "#"}${roomName(room)}` : "Write a message";
  el.messageInput.setAttribute("aria-label", room ? `Message ${roomName(room)}` : "Message");
}

/** The open room's live stream (typing) and presence snapshot: joinRoom it, leaveRoom the
 *  previous one. The client re-joins it by itself after reconnects. */
function subscribeCurrentRoom() {
  const chat = state.chat;
  const roomId = state.currentRoomId;
  if (!chat || !roomId || chat.state !== "connected") return;
  if (state.joinedRoomId === roomId) return;
  if (state.joinedRoomId) chat.leave(state.joinedRoomId).catch(() => {});
  state.joinedRoomId = roomId;
  askingForSnapshot(roomId);
  chat
    .join(roomId)
    .then(() => {
      // Servers that answer joinRoom without a snapshot may still have the presence action.
      if (!state.snapshotSeen.has(roomId) && state.snapshots !== "no") refreshPresence(roomId);
    })
    .catch((err) => {
      if (state.joinedRoomId === roomId) state.joinedRoomId = null; // the next (re)connect tries again
      showError(el.chatError, err);
    });
}

/** The people panel: a column on wide screens, a drop-down under the "People" button below. */
function toggleMembers(open = !el.membersPanel.classList.contains("open")) {
  el.membersPanel.classList.toggle("open", open);
  el.membersBtn.setAttribute("aria-expanded", String(open));
  if (open) el.membersPanel.querySelector("button, summary")?.focus();
}

function closePopovers() {
  toggleMembers(false);
  show(el.inviteStatus, "");
}

async function onCopyInvite() {
  el.inviteLink.select();
  try {
    await navigator.clipboard.writeText(el.inviteLink.value);
    show(el.inviteStatus, "Link copied.");
  } catch {
    show(el.inviteStatus, "Selected: copy it with Ctrl+C (⌘C).");
  }
}

async function onAddMember(event) {
  event.preventDefault();
  const typed = el.addMemberHandle.value;
  const handle = typed.trim().replace(/^@/, "");
  if (!handle) return show(el.inviteStatus, "Enter the handle of the person to add.");
  try {
    const added = await state.chat.api.addMember(state.currentRoomId, { handle });
    learnMember(state.currentRoomId, added.userId, added.handle);
    clearIfUnchanged(el.addMemberHandle, typed);
    show(el.inviteStatus, `${added.handle} was added.`);
  } catch (err) {
    show(el.inviteStatus, describeError(err).message);
  }
}

// --- history ---------------------------------------------------------------------------------------

async function loadHistory(roomId) {
  if (state.loadingHistory.has(roomId) || !state.chat) return;
  const initial = !state.historyLoaded.has(roomId);
  if (!initial && !state.chat.room(roomId).hasMoreHistory) return;
  state.loadingHistory.add(roomId);
  if (roomId === state.currentRoomId) el.historyStatus.textContent = "Loading…";
  try {
    await state.chat.loadHistory(roomId, { limit: HISTORY_PAGE });
    state.historyLoaded.add(roomId);
    if (roomId === state.currentRoomId) {
      renderMessages(initial ? { toBottom: true } : { keepAnchor: true });
      scheduleMarkRead();
    }
  } catch (err) {
    showError(el.chatError, err);
  } finally {
    state.loadingHistory.delete(roomId);
    updateHistoryStatus();
  }
  // A short first page may not fill the pane: no scrollbar means no scroll event, so keep going.
  if (roomId === state.currentRoomId && state.chat && state.chat.room(roomId).hasMoreHistory && el.messages.scrollHeight <= el.messages.clientHeight) {
    loadHistory(roomId);
  }
}

function updateHistoryStatus() {
  const roomId = state.currentRoomId;
  const loaded = roomId && state.chat && state.historyLoaded.has(roomId);
  const empty = loaded && !el.messageList.querySelector(".message");
  el.roomEmpty.hidden = !empty;
  if (!loaded || empty) el.historyStatus.textContent = "";
  else if (!state.chat.room(roomId).hasMoreHistory) el.historyStatus.textContent = "Beginning of the conversation";
  else el.historyStatus.textContent = "Scroll up for older messages";
}

function onMessagesScroll() {
  if (el.messages.scrollTop < 40 && state.currentRoomId) loadHistory(state.currentRoomId);
}

// --- live messages -----------------------------------------------------------------------------------

function onMessage({ message, own, source }) {
  learnMember(message.roomId, message.senderId, message.senderHandle);
  if (message.roomId === state.currentRoomId) {
    renderMessages();
    renderTyping(); // the sender stopped typing once the message arrived
    scheduleMarkRead();
    if (!own && source === "live") announce(`${handleOf(message.senderId)}: ${(message.body || "").slice(0, 200)}`);
  } else if (state.rooms.has(message.roomId)) {
    renderRoomLists();
  } else {
    reloadRooms(); // added to a room (or a new direct message) by someone else
  }
}

function onMessageChanged({ message }) {
  if (message.roomId !== state.currentRoomId) return;
  if (state.editing && state.editing.seq === message.seq && message.deletedAt) state.editing = null;
  renderMessages();
}

// --- rendering messages --------------------------------------------------------------------------------

/** The open room's items in display order: messages by seq, then own sends not stored yet. */
function timelineItems() {
  const roomId = state.currentRoomId;
  const user = me();
  if (!roomId || !state.chat || !user) return [];
  const items = [];
  const newFrom = state.newFrom.get(roomId);
  let prev = null;
  let lastDay = null;
  let newShown = false;
  const push = (msg, kind, extra = {}) => {
    const at = parseTime(msg.createdAt) || new Date();
    const day = at.toDateString();
    if (day !== lastDay) {
      items.push({ key: `d:${day}`, sig: dayLabel(at), divider: dayLabel(at) });
      lastDay = day;
      prev = null;
    }
    if (kind === "stored" && newFrom !== undefined && !newShown && msg.seq > newFrom && msg.senderId !== user.id) {
      items.push({ key: "new", sig: "new", divider: "New messages", isNew: true });
      newShown = true;
      prev = null;
    }
    const grouped = Boolean(prev && prev.senderId === msg.senderId && at - prev.at < GROUP_WINDOW_MS && !prev.deleted);
    const mine = msg.senderId === user.id;
    const editing = kind === "stored" && state.editing?.seq === msg.seq;
    const key = kind === "stored" ? `m:${msg.seq}` : `${kind}:${msg.clientMessageId}`;
    const sig = JSON.stringify([msg.body, msg.editedAt, msg.deletedAt, grouped, editing && state.editing.error, editing, kind]);
    items.push({ key, sig, msg, kind, grouped, mine, editing, ...extra });
    prev = { senderId: msg.senderId, at, deleted: Boolean(msg.deletedAt) };
  };
  for (const msg of state.chat.messages(roomId)) push(msg, "stored");
  const own = { senderId: user.id, senderHandle: user.handle };
  for (const out of state.chat.room(roomId).pending) push({ ...own, clientMessageId: out.clientMessageId, body: out.body, createdAt: out.createdAt }, "pending");
  for (const out of state.failed.values()) {
    if (out.roomId === roomId) push({ ...own, clientMessageId: out.clientMessageId, body: out.body, createdAt: out.createdAt }, "failed", { error: describeError(out.error).message });
  }
  return items;
}

function buildItem(item) {
  if (item.divider) {
    return make("li", { class: "divider" + (item.isNew ? " new" : ""), role: "separator", dataset: { key: item.key } }, make("span", { text: item.divider }));
  }
  const { msg, kind, mine, grouped, editing } = item;
  const deleted = msg.body === null || Boolean(msg.deletedAt);
  const at = parseTime(msg.createdAt);
  const li = make("li", {
    onclick: (event) => !event.target.closest("button, a, textarea") && li.classList.toggle("selected"),
    class: ["message", mine && "mine", grouped && "grouped", kind === "pending" && "pending", kind === "failed" && "failed", deleted && "deleted", editing && "editing"].filter(Boolean).join(" "),
    dataset: { key: item.key, ...(kind === "stored" ? { seq: String(msg.seq) } : {}), ...(msg.clientMessageId ? { clientMessageId: msg.clientMessageId } : {}) },
  });
  let stateText = "";
  if (kind === "pending") stateText = "sending…";
  else if (kind === "failed") stateText = "not sent";
  else if (msg.editedAt && !deleted) stateText = "(edited)";
  li.append(
    make(
      "div",
      { class: "meta" },
      make("span", { class: "sender", text: msg.senderHandle || handleOf(msg.senderId) }),
      at ? make("time", { class: "time", datetime: at.toISOString(), title: fullFormat.format(at), text: timeFormat.format(at) }) : null,
    ),
  );
  if (editing) li.append(editForm(msg));
  else li.append(make("div", { class: "body" }, ...(deleted ? [document.createTextNode("message deleted")] : linkified(msg.body))));
  if (stateText && !editing) li.append(make("span", { class: "state", title: item.error || null, text: stateText }));
  if (kind === "failed") {
    li.append(
      make(
        "div",
        { class: "actions always" },
        make("button", { type: "button", class: "link retry", text: "Retry", onclick: () => retrySend(msg.clientMessageId) }),
        make("button", { type: "button", class: "link discard", text: "Discard", onclick: () => discardSend(msg.clientMessageId) }),
      ),
    );
  } else if (mine && kind === "stored" && !deleted && !editing) {
    const when = at ? ` from ${timeFormat.format(at)}` : "";
    li.append(
      make(
        "div",
        { class: "actions toolbar" },
        make("button", { type: "button", class: "link edit", text: "Edit", "aria-label": `Edit your message${when}`, onclick: () => startEdit(msg.seq) }),
        make("button", { type: "button", class: "link delete", text: "Delete", "aria-label": `Delete your message${when}`, onclick: () => confirmDelete(msg) }),
      ),
    );
  }
  return li;
}

/**
 * Render the open room by keys: an item whose content did not change keeps its DOM node, so focus,
 * an edit in progress and the scroll position survive every incoming message.
 */
function renderMessages({ toBottom = false, keepAnchor = false } = {}) {
  const box = el.messages;
  const nearBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  const prevHeight = box.scrollHeight;
  const prevTop = box.scrollTop;
  const focusedKey = document.activeElement?.closest?.("#message-list > li")?.dataset.key;
  const next = new Map();
  const nodes = timelineItems().map((item) => {
    const known = state.rendered.get(item.key);
    const node = known && known.sig === item.sig ? known.node : buildItem(item);
    next.set(item.key, { sig: item.sig, node });
    return node;
  });
  const list = el.messageList;
  nodes.forEach((node, i) => {
    if (list.children[i] !== node) list.insertBefore(node, list.children[i] || null);
  });
  while (list.children.length > nodes.length) list.lastElementChild.remove();
  state.rendered = next;
  if (focusedKey && !list.contains(document.activeElement)) {
    // The focused message was rebuilt (edited elsewhere, stored): keep focus near it.
    next.get(focusedKey)?.node.querySelector("button, textarea")?.focus();
  }
  if (state.editing) {
    const textarea = list.querySelector(".edit-form textarea");
    if (textarea && document.activeElement !== textarea && !textarea.dataset.focused) {
      textarea.dataset.focused = "1";
      textarea.focus();
      textarea.setSelectionRange(textarea.value.length, textarea.value.length);
    }
  }
  updateHistoryStatus();
  if (keepAnchor) box.scrollTop = box.scrollHeight - prevHeight + prevTop;
  else if (toBottom || nearBottom) box.scrollTop = box.scrollHeight;
}

// --- edit and delete ---------------------------------------------------------------------------------------

function startEdit(seq) {
  const msg = state.chat.messages(state.currentRoomId).find((m) => m.seq === seq);
  if (!msg || msg.body === null) return;
  state.editing = { roomId: msg.roomId, seq, draft: msg.body, error: "" };
  renderMessages();
  el.messageList.querySelector(".editing")?.scrollIntoView({ block: "nearest" });
}

function editForm(msg) {
  const textarea = make("textarea", { "aria-label": "Edit message", maxlength: "4000", rows: "2" });
  textarea.value = state.editing.draft;
  textarea.addEventListener("input", () => (state.editing.draft = textarea.value));
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      cancelEdit();
    } else if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      saveEdit(msg);
    }
  });
  return make(
    "form",
    { class: "edit-form", novalidate: true, onsubmit: (event) => (event.preventDefault(), saveEdit(msg)) },
    textarea,
    state.editing.error ? make("p", { class: "error", role: "alert", text: state.editing.error }) : null,
    make(
      "div",
      { class: "row" },
      make("small", { class: "hint", text: "Enter to save · Esc to cancel" }),
      make("button", { type: "button", class: "secondary small cancel", text: "Cancel", onclick: cancelEdit }),
      make("button", { type: "submit", class: "small save", text: "Save" }),
    ),
  );
}

function cancelEdit() {
  state.editing = null;
  renderMessages();
  el.messageInput.focus();
}

async function saveEdit(msg) {
  const editing = state.editing;
  if (!editing) return;
  const body = editing.draft;
  if (!body.trim()) {
    editing.error = "A message can't be empty. To remove it, use Delete.";
    return renderMessages();
  }
  if (body === msg.body) return cancelEdit();
  try {
    await state.chat.edit(msg.roomId, msg.seq, body);
    if (state.editing === editing) cancelEdit();
  } catch (err) {
    if (state.editing !== editing) return;
    editing.error = describeError(err).message;
    renderMessages();
  }
}

function confirmDelete(msg) {
  el.confirmDeleteText.textContent = msg.body;
  const dialog = el.confirmDelete;
  dialog.returnValue = "";
  dialog.onclose = () => {
    if (dialog.returnValue === "delete") {
      state.chat.delete(msg.roomId, msg.seq).catch((err) => showError(el.chatError, err));
    }
    el.messageInput.focus();
  };
  dialog.showModal();
  $("confirm-delete-cancel").focus();
}

function editLastOwnMessage() {
  const user = me();
  const own = state.chat.messages(state.currentRoomId).filter((m) => m.senderId === user.id && m.body !== null && !m.deletedAt);
  if (own.length) startEdit(own[own.length - 1].seq);
}

// --- sending --------------------------------------------------------------------------------------------------

function onComposerSubmit(event) {
  event.preventDefault();
  const body = el.messageInput.value;
  const roomId = state.currentRoomId;
  if (!roomId || !state.chat) return;
  if (!body.trim()) return;
  el.messageInput.value = "";
  resizeComposer();
  stopTyping();
  show(el.chatError, "");
  state.newFrom.delete(roomId); // you replied: the "New messages" marker has done its job
  // Queued: goes out after every earlier message of the room is acked (offline: after reconnect).
  state.chat.send(roomId, body).catch(() => {}); // failures: the sendFailed event
}

function retrySend(clientMessageId) {
  const out = state.failed.get(clientMessageId);
  if (!out) return;
  state.failed.delete(clientMessageId);
  show(el.chatError, "");
  // The same clientMessageId: if the first attempt was stored after all, it is not stored twice.
  state.chat.send(out.roomId, out.body, { clientMessageId }).catch(() => {});
  renderMessages();
}

function discardSend(clientMessageId) {
  state.failed.delete(clientMessageId);
  show(el.chatError, "");
  renderMessages();
  el.messageInput.focus();
}

function onComposerKeydown(event) {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    el.composer.requestSubmit();
  } else if (event.key === "ArrowUp" && !el.messageInput.value && state.currentRoomId) {
    event.preventDefault();
    editLastOwnMessage();
  }
}

function resizeComposer() {
  const input = el.messageInput;
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight + 2, 160)}px`;
}

// --- typing -------------------------------------------------------------------------------------------------------

function onComposerInput() {
  resizeComposer();
  if (!state.currentRoomId || !state.chat) return;
  if (!el.messageInput.value) stopTyping();
  else state.chat.typing(state.currentRoomId, true); // at most one frame per 3 s
}

function stopTyping() {
  if (state.chat && state.currentRoomId) state.chat.typing(state.currentRoomId, false);
}

function renderTyping() {
  const names = state.chat && state.currentRoomId ? state.chat.room(state.currentRoomId).typing.map((t) => t.handle || handleOf(t.userId)) : [];
  let text = "";
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = "Several people are typing…";
  el.typingIndicator.textContent = text;
}

// --- people (presence) ----------------------------------------------------------------------------------------------

/** A fresh snapshot of the open room soon: at most one per PRESENCE_REFRESH_MS (a busy user's
 *  co-members elsewhere come and go all day; each would otherwise cost a request). */
function schedulePresenceRefresh() {
  if (state.snapshots !== "yes" || state.presenceTimer) return;
  const wait = Math.max(400, state.presenceRefreshedAt + PRESENCE_REFRESH_MS - Date.now());
  state.presenceTimer = setTimeout(() => {
    state.presenceTimer = null;
    state.presenceRefreshedAt = Date.now();
    if (state.currentRoomId) refreshPresence(state.currentRoomId);
  }, wait);
}

/** Ask the server who is online in the room (the `presence` action); remember if it cannot. */
async function refreshPresence(roomId) {
  if (!state.chat || state.chat.state !== "connected" || state.presenceFetching.has(roomId)) return;
  state.presenceFetching.add(roomId);
  state.partialSnapshots.delete(roomId);
  askingForSnapshot(roomId);
  try {
    await state.chat.presence(roomId); // each page arrives as a roomPresence event
  } catch (err) {
    if (err.name === "ActionRefused" && err.code === "unknown_action") state.snapshots = "no";
  } finally {
    state.presenceFetching.delete(roomId);
  }
}

function renderPresence() {
  const user = me();
  const roomId = state.currentRoomId;
  if (!user || !roomId) {
    el.presence.replaceChildren();
    el.onlineCount.textContent = "";
    el.membersSummary.textContent = "";
    return;
  }
  const known = new Map(state.members.get(roomId) || []);
  known.delete(user.id);
  const others = [...known.keys()].map((id) => ({ id, handle: handleOf(id), online: isOnline(id, roomId) }));
  others.sort((a, b) => (a.online === b.online ? a.handle.localeCompare(b.handle) : a.online ? -1 : 1));
  const people = [{ id: user.id, handle: user.handle, online: isOnline(user.id), self: true }, ...others];
  const onlineCount = people.filter((p) => p.online).length;
  const room = state.rooms.get(roomId);
  el.onlineCount.textContent = String(onlineCount);
  el.membersBtn.setAttribute("aria-label", `People: ${onlineCount} online`);
  const total = room?.memberCount && room.kind !== "dm" ? ` · ${room.memberCount} ${room.memberCount === 1 ? "member" : "members"}` : "";
  el.membersSummary.textContent = `${onlineCount} online${total}`;
  el.presenceNote.hidden = state.snapshots !== "no";
  const focusedUser = document.activeElement?.closest?.("#presence .user")?.dataset.userId;
  el.presence.replaceChildren(
    ...people.map((p) =>
      make(
        "li",
        { class: "user" + (p.online ? " online" : ""), dataset: { userId: p.id } },
        make("span", { class: "dot", "aria-hidden": "true" }),
        make("span", { class: "name", text: p.self ? `${p.handle} (you)` : p.handle }),
        make("span", { class: "sr-only", text: p.online ? "online" : "offline" }),
        p.self || room?.kind === "dm"
          ? null
          : make("button", {
              type: "button",
              class: "link message-user",
              text: "Message",
              "aria-label": `Send ${p.handle} a direct message`,
              onclick: () => openDm({ userId: p.id }).catch((err) => showError(el.chatError, err)),
            }),
      ),
    ),
  );
  if (focusedUser) el.presence.querySelector(`.user[data-user-id="${CSS.escape(focusedUser)}"] button`)?.focus();
}

// --- read position ----------------------------------------------------------------------------------------------------

/** Mark the open room read shortly after new messages show (one frame for a burst). */
function scheduleMarkRead() {
  const roomId = state.currentRoomId;
  if (!roomId || document.visibilityState !== "visible") return;
  clearTimeout(state.markReadTimer);
  state.markReadRoom = roomId;
  state.markReadTimer = setTimeout(flushMarkRead, 300);
}

/** Send a scheduled read mark now (also when leaving the room: what was shown was seen). */
function flushMarkRead() {
  clearTimeout(state.markReadTimer);
  const roomId = state.markReadRoom;
  state.markReadRoom = null;
  if (roomId && state.chat && state.chat.room(roomId).unread) state.chat.markRead(roomId).then(renderRoomLists, () => {});
}

// --- start -------------------------------------------------------------------------------------------------------------

function wireEvents() {
  el.authForm.addEventListener("submit", onAuthSubmit);
  el.serverForm.addEventListener("submit", onServerSave);
  el.serverReset.addEventListener("click", onServerReset);
  el.logout.addEventListener("click", () => signOut());
  el.createRoomForm.addEventListener("submit", onCreateRoom);
  el.joinRoomForm.addEventListener("submit", onJoinSubmit);
  el.dmForm.addEventListener("submit", onDmSubmit);
  el.composer.addEventListener("submit", onComposerSubmit);
  el.messageInput.addEventListener("input", onComposerInput);
  el.messageInput.addEventListener("keydown", onComposerKeydown);
  el.messages.addEventListener("scroll", onMessagesScroll);
  el.backBtn.addEventListener("click", () => {
    setPane("list");
    closePopovers();
    el.roomList.querySelector('[aria-current="true"]')?.focus();
  });
  el.membersBtn.addEventListener("click", () => toggleMembers());
  el.copyInvite.addEventListener("click", onCopyInvite);
  el.addMemberForm.addEventListener("submit", onAddMember);
  el.leaveRoomBtn.addEventListener("click", onLeaveRoom);
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || !el.membersPanel.classList.contains("open") || el.confirmDelete.open) return;
    closePopovers();
    el.membersBtn.focus();
  });
  // The skip link moves focus without touching the URL (its fragment would replace #room=).
  document.querySelector(".skip-link").addEventListener("click", (event) => {
    event.preventDefault();
    (el.messageInput.disabled ? el.roomList.querySelector("button") || el.dmHandle : el.messageInput).focus();
  });
  // An invite link opened in a tab that is already signed in.
  window.addEventListener("hashchange", () => {
    const wanted = new URLSearchParams(location.hash.slice(1)).get("room");
    if (!state.chat || !wanted || wanted === state.currentRoomId) return;
    if (state.rooms.has(wanted)) openRoom(wanted);
    else joinRoom(wanted).catch((err) => showError(el.sidebarError, err));
  });
  window.addEventListener("online", () => {
    if (state.chat && state.chat.state === "idle") state.chat.connect().catch(() => {});
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") scheduleMarkRead();
  });
}

async function main() {
  state.endpoints = await loadEndpoints();
  renderServerSettings();
  wireEvents();
  const saved = restoreSession();
  if (saved && saved.accessToken) {
    const chat = newClient();
    chat.useSession(saved);
    state.chat = chat;
    try {
      await enterChat();
    } catch (err) {
      signOut(describeError(err).message);
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
  /** Whether the server sent presence snapshots: "yes", "no" (it refused the action) or "unknown". */
  presenceSnapshots: () => state.snapshots,
};

main();
