// The client's rules as pure logic: seq order, presence by version, backoff, tolerant parsing.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Backoff, PresenceBook, SeqOrder, parseFrame } from "../chatflow.js";

test("seq order releases in order, exactly once", () => {
  const order = new SeqOrder();
  assert.equal(order.startAt(10), true);
  assert.equal(order.startAt(3), false);
  assert.deepEqual(order.offer(12, "b"), []);
  assert.equal(order.hasGap, true);
  assert.deepEqual(order.offer(13, "c"), []);
  assert.deepEqual(order.offer(12, "b-again"), []);
  assert.deepEqual(order.offer(11, "a"), ["a", "b", "c"]);
  assert.equal(order.lastSeq, 13);
  assert.deepEqual(order.offer(12, "late"), []);
  assert.deepEqual(order.offer(14, "d"), ["d"]);
  assert.deepEqual(new SeqOrder().offer(7, "x"), ["x"]);
  const reset = new SeqOrder(50);
  reset.offer(53, "c");
  assert.deepEqual(reset.reset(52), ["c"]);
  assert.deepEqual(reset.reset(5), []);
  assert.deepEqual(reset.offer(6, "n"), ["n"]);
});

test("presence is applied by version", () => {
  const book = new PresenceBook();
  assert.equal(book.apply({ userId: "u1", status: "online", version: 5, handle: "ann" }), true);
  assert.equal(book.apply({ userId: "u1", status: "offline", version: 4, handle: null }), false);
  assert.equal(book.apply({ userId: "u1", status: "offline", version: 5, handle: null }), false);
  assert.equal(book.get("u1").status, "online");
  assert.equal(book.apply({ userId: "u1", status: "offline", version: 6, handle: null }), true);
  assert.deepEqual(book.get("u1"), { userId: "u1", status: "offline", version: 6, handle: "ann" });
  assert.deepEqual(book.online(), []);
});

test("backoff grows with jitter and caps", () => {
  const low = new Backoff(500, 8000, () => 0);
  assert.deepEqual(Array.from({ length: 6 }, () => low.next()), [250, 500, 1000, 2000, 4000, 4000]);
  const high = new Backoff(500, 8000, () => 1);
  assert.deepEqual(Array.from({ length: 6 }, () => high.next()), [500, 1000, 2000, 4000, 8000, 8000]);
  for (let i = 0; i < 100; i++) high.next();
  high.reset();
  assert.equal(high.next(), 500);
});

test("frames parse tolerantly", () => {
  const message = { id: "m1", roomId: "r1", seq: 3, senderId: "u1", senderHandle: "ann", clientMessageId: "c", body: "hi", createdAt: "2026-11-25T17:00:07Z", editedAt: null, deletedAt: null, reactions: {} };
  const frame = parseFrame(JSON.stringify({ type: "message", message }));
  assert.equal(frame.type, "message");
  assert.equal(frame.message.seq, 3);
  assert.equal(parseFrame(JSON.stringify({ type: "message", message: { ...message, seq: "3" } })).type, "unknown");
  assert.equal(parseFrame("not json").type, "unknown");
  assert.equal(parseFrame("[1]").type, "unknown");
  const later = parseFrame(JSON.stringify({ type: "reaction", requestId: "r-1" }));
  assert.deepEqual([later.type, later.requestId], ["unknown", "r-1"]);
  const error = parseFrame(JSON.stringify({ type: "error", code: "rate_limited", message: "slow", action: "typing", requestId: "q", retryAfterMs: 734 }));
  assert.deepEqual([error.code, error.action, error.requestId, error.extra], ["rate_limited", "typing", "q", { retryAfterMs: 734 }]);
  const gateway = parseFrame(JSON.stringify({ message: "Internal server error", requestId: "apigw" }));
  assert.deepEqual([gateway.type, gateway.requestId], ["gatewayError", null]);
  const joined = parseFrame(JSON.stringify({ type: "joined", roomId: "r1", presence: { online: [{ userId: "u1", handle: "ann", version: 9 }, { bogus: 1 }], more: false } }));
  assert.deepEqual(joined.presence.online, [{ userId: "u1", status: "online", version: 9, handle: "ann" }]);
  assert.equal(parseFrame(JSON.stringify({ type: "joined", roomId: "r1" })).presence, null);
  assert.equal(parseFrame(JSON.stringify({ type: "resync" })).type, "resync");
});
