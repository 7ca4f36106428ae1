// The JavaScript client end to end against a running Chatflow (CHATFLOW_HTTP_URL + CHATFLOW_WS_URL:
// tests/e2e/test_client_js.py starts the local stack and runs this file; any deployed stage works).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, test } from "node:test";

import WebSocket from "ws";

import { ActionRefused, ApiError, ChatflowClient, ChatflowError, HttpApi } from "../chatflow.js";

const httpUrl = process.env.CHATFLOW_HTTP_URL;
const wsUrl = process.env.CHATFLOW_WS_URL;
const skip = !httpUrl || !wsUrl ? "set CHATFLOW_HTTP_URL and CHATFLOW_WS_URL" : false;
const PASSWORD = "correct-horse-battery-staple";
const clients = [];

after(async () => {
  await Promise.all(clients.map((c) => c.close()));
});

async function user(prefix) {
  const chat = new ChatflowClient({ httpUrl, wsUrl, WebSocket });
  clients.push(chat);
  await chat.register(`${prefix}${randomBytes(4).toString("hex")}`, PASSWORD);
  const messages = [];
  chat.on("message", (event) => messages.push(event));
  await chat.connect();
  return { chat, messages };
}

async function sharedRoom(owner, ...members) {
  const room = await owner.api.createRoom(`js-${randomBytes(3).toString("hex")}`);
  for (const m of members) await m.api.joinRoom(room.id);
  return room.id;
}

async function until(predicate, what, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const inRoom = (messages, roomId) => messages.filter((e) => e.message.roomId === roomId);

test("rapid sends keep the order typed, for the sender and the recipient", { skip }, async () => {
  const alice = await user("alice");
  const bob = await user("bob");
  const room = await sharedRoom(alice.chat, bob.chat);
  await bob.chat.join(room);
  const bodies = Array.from({ length: 15 }, (_, i) => `quick ${i}`);
  const sends = bodies.map((b) => alice.chat.send(room, b)); // no waiting in between
  const acks = await Promise.all(sends);
  assert.deepEqual(acks.map((a) => a.seq), bodies.map((_, i) => i + 1));
  await until(() => inRoom(bob.messages, room).length === 15, "bob's 15 messages");
  assert.deepEqual(inRoom(bob.messages, room).map((e) => e.message.body), bodies);
  assert.deepEqual(inRoom(alice.messages, room).map((e) => [e.message.body, e.own, e.source]), bodies.map((b) => [b, true, "ack"]));
  assert.deepEqual(bob.chat.messages(room).map((m) => m.body), bodies);
});

test("dropped connections mid-conversation: every message once, in order", { skip }, async () => {
  const alice = await user("alice");
  const bob = await user("bob");
  const room = await sharedRoom(alice.chat, bob.chat);
  await bob.chat.join(room);
  await alice.chat.join(room);
  let reconnects = 0;
  for (const c of [alice.chat, bob.chat]) c.on("connected", ({ reconnected }) => (reconnects += reconnected ? 1 : 0));
  const bodies = Array.from({ length: 24 }, (_, i) => `m${String(i).padStart(2, "0")}`);
  const sends = bodies.map((b) => alice.chat.send(room, b));
  let cuts = 0;
  for (const victim of [bob.chat, alice.chat, bob.chat, alice.chat]) {
    await until(() => sends.filter((s) => s.state === "acked").length >= 5 * (cuts + 1), "progress");
    await until(() => victim.state === "connected", "a connection to cut");
    victim.dropConnection();
    cuts += 1;
  }
  const acks = await Promise.all(sends);
  assert.deepEqual(acks.map((a) => a.seq), bodies.map((_, i) => i + 1));
  await until(() => inRoom(bob.messages, room).length >= 24, "bob's 24 messages");
  await bob.chat.ping(); // anything in flight has arrived: no duplicates after it
  assert.deepEqual(inRoom(bob.messages, room).map((e) => e.message.body), bodies);
  assert.deepEqual(inRoom(alice.messages, room).map((e) => e.message.seq), bodies.map((_, i) => i + 1));
  assert.ok(reconnects >= cuts, `${reconnects} reconnects for ${cuts} cuts`);
  const stored = await bob.chat.history(room, { limit: 100 });
  assert.deepEqual(stored.messages.map((m) => m.body), bodies);
});

test("edit, delete, typing, read marks and presence", { skip }, async () => {
  const alice = await user("alice");
  const bob = await user("bob");
  const room = await sharedRoom(alice.chat, bob.chat);
  await alice.chat.join(room);
  await bob.chat.join(room);
  const edited = alice.chat.once("messageEdited", { timeoutMs: 30_000 });
  const ack = await bob.chat.send(room, "helo");
  assert.equal((await bob.chat.edit(room, ack.seq, "hello")).body, "hello");
  assert.equal((await edited).message.body, "hello");
  await until(() => alice.chat.messages(room).some((m) => m.body === "hello"), "the edit in alice's timeline");

  const typing = alice.chat.once("typing", { timeoutMs: 30_000 });
  assert.equal(bob.chat.typing(room), true);
  assert.equal(bob.chat.typing(room), false); // throttled
  assert.deepEqual(await typing, { roomId: room, userId: bob.chat.user.id, handle: bob.chat.user.handle, isTyping: true });

  const deleted = alice.chat.once("messageDeleted", { timeoutMs: 30_000 });
  await bob.chat.delete(room, ack.seq);
  assert.equal((await deleted).message.body, null);

  assert.equal(alice.chat.room(room).unread, 1);
  assert.equal(await alice.chat.markRead(room), 1);
  assert.equal(alice.chat.room(room).unread, 0);

  const offline = alice.chat.once("presence", { filter: (p) => p.userId === bob.chat.user.id && p.status === "offline", timeoutMs: 30_000 });
  await bob.chat.close();
  assert.ok((await offline).version > 0);
  assert.equal(alice.chat.presenceOf(bob.chat.user.id).status, "offline");
});

test("refused actions reject with the protocol's code; the connection stays usable", { skip }, async () => {
  const alice = await user("alice");
  const room = (await alice.chat.api.createRoom(`js-${randomBytes(3).toString("hex")}`)).id;
  await assert.rejects(alice.chat.send(room, "x".repeat(5000)), (err) => err instanceof ActionRefused && err.code === "body_too_long" && err.extra.max === 4000);
  await assert.rejects(alice.chat.edit(room, 99, "nothing"), (err) => err instanceof ActionRefused && err.code === "message_not_found");
  assert.equal((await alice.chat.send(room, "still here")).seq, 1);
});

test("a refused token is refreshed before the handshake is retried", { skip }, async () => {
  const { chat } = await user("tok");
  const { refreshToken, user: me } = chat.session;
  await chat.close();
  const again = new ChatflowClient({ httpUrl, wsUrl, WebSocket });
  clients.push(again);
  again.useSession({ accessToken: "not-a-jwt", refreshToken, user: me });
  await again.connect();
  assert.notEqual(again.session.accessToken, "not-a-jwt");
  assert.ok(await again.ping());
});

test("changePassword keeps this client signed in with a fresh pair; the old tokens are void", { skip }, async () => {
  const { chat } = await user("pw");
  const before = chat.session;
  await assert.rejects(chat.api.changePassword("not my password", "a new secret 2"), (err) => err instanceof ApiError && err.status === 401 && err.code === "invalid_credentials");
  const me = await chat.api.changePassword(PASSWORD, "a new secret 2");
  assert.equal(me.id, before.user.id);
  assert.notEqual(chat.session.accessToken, before.accessToken);
  assert.notEqual(chat.session.refreshToken, before.refreshToken);
  assert.equal((await chat.api.me()).id, me.id); // still signed in here
  const stale = new HttpApi({ httpUrl });
  stale.useSession({ accessToken: before.accessToken, refreshToken: before.refreshToken, user: before.user });
  await assert.rejects(stale.me(), (err) => err instanceof ChatflowError); // old pair: refused, refresh revoked
  const fresh = new HttpApi({ httpUrl });
  assert.equal((await fresh.login(me.handle, "a new secret 2")).id, me.id);
});
