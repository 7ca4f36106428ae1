// The JavaScript client against a SCRIPTED server on loopback (the `ws` package's server and a
// node:http server), for server behaviour the local stack cannot be made to produce on demand:
// a lost live delivery (gap), presence frames crossing, a lost ack, `unavailable` with
// retryAfterMs, a reconnect with a send in flight, a 403 handshake that a refresh cures, the
// upcoming `resync` frame. The real server's side is in tests/e2e (e2e.test.js and Python).
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { test } from "node:test";

import WebSocket, { WebSocketServer } from "ws";

import { ChatflowClient } from "../chatflow.js";

const ROOM = "5a6b56b2-533e-4245-8d86-85666b75c5c8";
const FAST = { gapWaitMs: 50, ackTimeoutMs: 500, requestTimeoutMs: 2000, reconnectInitialMs: 10, reconnectMaxMs: 50 };

class Scripted {
  constructor({ accept = () => true } = {}) {
    this.inbox = [];
    this.waiters = [];
    this.sockets = [];
    this.tokens = [];
    this.wss = new WebSocketServer({
      port: 0,
      host: "127.0.0.1",
      verifyClient: (info, done) => {
        const token = new URL(info.req.url, "http://x").searchParams.get("token");
        this.tokens.push(token);
        if (accept(token)) done(true);
        else done(false, 403, "Forbidden");
      },
    });
    this.wss.on("connection", (ws) => {
      this.sockets.push(ws);
      ws.on("message", (raw) => {
        this.inbox.push(JSON.parse(String(raw)));
        for (const w of this.waiters.splice(0)) w();
      });
    });
  }
  static async start(opts) {
    const server = new Scripted(opts);
    await new Promise((resolve) => server.wss.once("listening", resolve));
    return server;
  }
  get url() {
    return `ws://127.0.0.1:${this.wss.address().port}/local`;
  }
  async recv(action = null, timeoutMs = 5000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.inbox.findIndex((f) => action === null || f.action === action);
      if (i >= 0) return this.inbox.splice(i, 1)[0];
      if (Date.now() > deadline) throw new Error(`no ${action ?? "frame"} from the client`);
      await new Promise((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }
  push(frame) {
    this.sockets.at(-1).send(JSON.stringify(frame));
  }
  reply(request, frame) {
    this.push({ ...frame, requestId: request.requestId });
  }
  close() {
    for (const ws of this.sockets) ws.terminate();
    return new Promise((resolve) => this.wss.close(resolve));
  }
}

const message = (seq, body = `body ${seq}`, sender = "u1") => ({
  id: `m${seq}`, roomId: ROOM, seq, senderId: sender, senderHandle: sender, clientMessageId: `c${seq}`,
  body, createdAt: "2026-11-25T17:00:07Z", editedAt: null, deletedAt: null,
});
const resumed = (since, messages, more = false) => ({
  type: "resumed", roomId: ROOM, sinceSeq: since, messages, more,
  nextSinceSeq: messages.length ? messages.at(-1).seq : since, lastSeq: messages.length ? messages.at(-1).seq : since,
});

async function client(server, options = {}) {
  const chat = new ChatflowClient({ httpUrl: "http://127.0.0.1:9", wsUrl: server.url, WebSocket, options: { ...FAST, ...options } });
  chat.useSession({ accessToken: "t", user: { id: "me", handle: "me" } });
  const events = [];
  for (const name of ["message", "presence", "serverError", "positionReset"]) chat.on(name, (d) => events.push([name, d]));
  await chat.connect();
  return { chat, events };
}

async function joinedAt(server, chat, since) {
  const joining = chat.join(ROOM, { sinceSeq: since });
  server.reply(await server.recv("joinRoom"), { type: "joined", roomId: ROOM });
  server.reply(await server.recv("resume"), resumed(since, []));
  await joining;
}

async function until(predicate, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const delivered = (events) => events.filter(([n]) => n === "message").map(([, d]) => [d.message.seq, d.source]);

test("a gap is filled with resume; nothing is delivered twice", async () => {
  const server = await Scripted.start();
  const { chat, events } = await client(server);
  try {
    await joinedAt(server, chat, 0);
    server.push({ type: "message", message: message(1) });
    server.push({ type: "message", message: message(3) });
    const resume = await server.recv("resume");
    assert.equal(resume.sinceSeq, 1);
    server.push({ type: "message", message: message(4) });
    server.reply(resume, resumed(1, [message(2), message(3), message(4)]));
    await until(() => delivered(events).length === 4);
    assert.deepEqual(delivered(events), [[1, "live"], [2, "resume"], [3, "live"], [4, "live"]]);
    assert.deepEqual(chat.messages(ROOM).map((m) => m.seq), [1, 2, 3, 4]);
    assert.equal(chat.room(ROOM).waiting, 0);
  } finally {
    await chat.close();
    await server.close();
  }
});

test("presence frames that cross on the wire are dropped by version", async () => {
  const server = await Scripted.start();
  const { chat, events } = await client(server);
  try {
    server.push({ type: "presence", userId: "u1", status: "online", version: 7 });
    server.push({ type: "presence", userId: "u1", status: "offline", version: 6 });
    server.push({ type: "presence", userId: "u1", status: "offline", version: 8 });
    await until(() => events.filter(([n]) => n === "presence").length === 2);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(events.filter(([n]) => n === "presence").map(([, p]) => [p.status, p.version]), [["online", 7], ["offline", 8]]);
  } finally {
    await chat.close();
    await server.close();
  }
});

test("unavailable and lost acks resend the same clientMessageId", async () => {
  const server = await Scripted.start();
  const { chat, events } = await client(server);
  try {
    await joinedAt(server, chat, 0);
    const outgoing = chat.send(ROOM, "hello");
    assert.equal(outgoing.state, "sending");
    const first = await server.recv("sendMessage");
    server.reply(first, { type: "error", code: "unavailable", message: "cache down", retryAfterMs: 20 });
    const second = await server.recv("sendMessage");
    const third = await server.recv("sendMessage"); // no answer to the second: resent after ackTimeoutMs
    assert.equal(second.clientMessageId, first.clientMessageId);
    assert.equal(third.clientMessageId, first.clientMessageId);
    const ack = { type: "ack", clientMessageId: first.clientMessageId, roomId: ROOM, seq: 1, messageId: "m1", createdAt: null, duplicate: true };
    server.reply(third, ack);
    server.reply(second, ack); // the late ack of an earlier attempt: ignored
    const result = await outgoing;
    assert.deepEqual([result.seq, result.duplicate, outgoing.attempts, outgoing.state], [1, true, 3, "acked"]);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(delivered(events), [[1, "ack"]]);
    assert.deepEqual(events.filter(([n]) => n === "serverError"), []);
  } finally {
    await chat.close();
    await server.close();
  }
});

test("after a reconnect the room is resumed before unacked sends go again, in order", async () => {
  const server = await Scripted.start();
  const { chat, events } = await client(server);
  try {
    await joinedAt(server, chat, 0);
    const one = chat.send(ROOM, "one");
    const two = chat.send(ROOM, "two");
    const sent = await server.recv("sendMessage");
    assert.equal(sent.body, "one"); // one in flight: "two" waits
    server.sockets.at(-1).terminate();
    const rejoin = await server.recv();
    assert.equal(rejoin.action, "joinRoom");
    server.reply(rejoin, { type: "joined", roomId: ROOM });
    const resume = await server.recv();
    assert.deepEqual([resume.action, resume.sinceSeq], ["resume", 0]);
    server.reply(resume, resumed(0, [message(1, "one", "me")]));
    const resent = await server.recv();
    assert.deepEqual([resent.action, resent.body, resent.clientMessageId], ["sendMessage", "one", sent.clientMessageId]);
    server.reply(resent, { type: "ack", clientMessageId: resent.clientMessageId, roomId: ROOM, seq: 1, messageId: "m1", createdAt: null, duplicate: true });
    const next = await server.recv();
    assert.equal(next.body, "two");
    server.reply(next, { type: "ack", clientMessageId: next.clientMessageId, roomId: ROOM, seq: 2, messageId: "m2", createdAt: null, duplicate: false });
    assert.deepEqual([(await one).seq, (await two).seq], [1, 2]);
    assert.deepEqual(delivered(events), [[1, "resume"], [2, "ack"]]);
  } finally {
    await chat.close();
    await server.close();
  }
});

test("resync re-subscribes and resumes every room", async () => {
  const server = await Scripted.start();
  const { chat } = await client(server);
  try {
    await joinedAt(server, chat, 5);
    server.push({ type: "resync" });
    const rejoin = await server.recv("joinRoom");
    server.reply(rejoin, { type: "joined", roomId: ROOM });
    const resume = await server.recv("resume");
    assert.equal(resume.sinceSeq, 5);
    server.reply(resume, resumed(5, []));
  } finally {
    await chat.close();
    await server.close();
  }
});

test("a 403 handshake is retried once after a token refresh", async () => {
  const server = await Scripted.start({ accept: (token) => token === "fresh" });
  const http = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      res.setHeader("Content-Type", "application/json");
      if (req.url === "/auth/refresh" && JSON.parse(body).refreshToken === "rt-1") {
        res.end(JSON.stringify({ accessToken: "fresh", refreshToken: "rt-2", expiresIn: 900, user: { id: "me", handle: "me" } }));
      } else {
        res.statusCode = 401;
        res.end(JSON.stringify({ error: { code: "invalid_refresh_token", message: "no" } }));
      }
    });
  });
  await new Promise((resolve) => http.listen(0, "127.0.0.1", resolve));
  const chat = new ChatflowClient({ httpUrl: `http://127.0.0.1:${http.address().port}`, wsUrl: server.url, WebSocket, options: FAST });
  const sessions = [];
  chat.on("session", ({ session }) => sessions.push(session));
  chat.useSession({ accessToken: "stale", refreshToken: "rt-1", user: { id: "me", handle: "me" } });
  try {
    await chat.connect();
    assert.deepEqual(server.tokens, ["stale", "fresh"]);
    assert.equal(chat.session.refreshToken, "rt-2");
    assert.equal(sessions.at(-1).accessToken, "fresh"); // the app can persist the rotated pair
    // Refused again and the refresh token is no longer accepted: the session ends, no retry loop.
    chat.useSession({ accessToken: "stale", refreshToken: "rt-1-used", user: { id: "me", handle: "me" } });
    const closed = chat.once("closed", { timeoutMs: 5000 });
    chat.dropConnection();
    const { error } = await closed;
    assert.equal(error.name, "SessionExpired");
    assert.equal(chat.state, "closed");
  } finally {
    await chat.close();
    await server.close();
    await new Promise((resolve) => http.close(resolve));
  }
});

test("disconnect() keeps queued sends; connect() resumes first, then sends", async () => {
  const server = await Scripted.start();
  const { chat, events } = await client(server);
  try {
    await joinedAt(server, chat, 0);
    const disconnected = chat.once("disconnected");
    await chat.disconnect();
    assert.equal((await disconnected).willReconnect, false);
    assert.equal(chat.state, "idle");
    const waiting = chat.send(ROOM, "written offline");
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.deepEqual(server.inbox, []);
    const connected = chat.once("connected");
    await chat.connect();
    assert.equal((await connected).reconnected, true);
    const rejoin = await server.recv();
    assert.equal(rejoin.action, "joinRoom");
    server.reply(rejoin, { type: "joined", roomId: ROOM });
    const resume = await server.recv();
    assert.equal(resume.action, "resume");
    server.reply(resume, resumed(0, [message(1)]));
    const send = await server.recv();
    assert.deepEqual([send.action, send.body], ["sendMessage", "written offline"]);
    server.reply(send, { type: "ack", clientMessageId: send.clientMessageId, roomId: ROOM, seq: 2, messageId: "m2", createdAt: null });
    assert.equal((await waiting).seq, 2);
    assert.deepEqual(delivered(events), [[1, "resume"], [2, "ack"]]);
  } finally {
    await chat.close();
    await server.close();
  }
});
