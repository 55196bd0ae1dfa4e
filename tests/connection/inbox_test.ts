import { test } from "node:test";
import { assert, assertEquals, assertInstanceOf, assertRejects, assertStrictEquals } from "../assert.ts";
import { Inbox, type InboxOwner, type Message, type MessagePart } from "../../src/connection/inbox.ts";
import { ConnectionClosed } from "../../src/connection/closed.ts";
import { QUEUED } from "../../src/connection/outbox.ts";
import type { CloseResult } from "../../src/core/protocol.ts";
import { nextTurn } from "../../src/timers.ts";
import { ABNORMAL, pending, within } from "../_helpers.ts";

/** What a loaded 2-core machine may add to any timer, in ms. */
const MARGIN = 2000;

/** The connection an inbox belongs to, as its owner's functions must be given it. */
const CONNECTION = { name: "the connection" };
type Connection = typeof CONNECTION;

/**
 * An owner that records which of its functions the inbox called, in order (marked when called with
 * another connection than the inbox's).
 */
function owner(): InboxOwner<Connection> & { calls: string[]; count(name: string): number } {
  const calls: string[] = [];
  const call = (name: string, connection: Connection) =>
    void calls.push(connection === CONNECTION ? name : `${name} with another connection`);
  return {
    calls,
    count: (name) => calls.filter((c) => c === name).length,
    waiting: (connection) => call("waiting", connection),
    answered: (connection) => call("answered", connection),
    drained: (connection) => call("drained", connection),
    consumerFailed: (connection) => call("consumerFailed", connection),
    notice: (connection, event) => call(`${event.type} ${new TextDecoder().decode(event.data)}`, connection),
  };
}

/** An inbox of {@linkcode CONNECTION} with the high-water mark `high`. */
const inboxOf = (own: InboxOwner<Connection>, high: number) => new Inbox(CONNECTION, own, high);

const part = (data: Message, final = true): MessagePart => ({ data, final });

const CLEAN: CloseResult = {
  code: 1000,
  reason: "",
  wasClean: true,
  received: { code: 1000, reason: "" },
  sent: { code: 1000, reason: "" },
};

test("Inbox.receive() returns messages in the order they were pushed", async () => {
  const inbox = inboxOf(owner(), 16);
  inbox.push(part("one"));
  inbox.push(part(new Uint8Array([2])));
  inbox.push(part("three"));
  assertEquals(await inbox.receive(), "one");
  assertEquals(await inbox.receive(), new Uint8Array([2]));
  assertEquals(await inbox.receive(), "three");
});

test("Inbox.receive() joins the pieces of a streamed message; receivePart() returns them one by one", async () => {
  const inbox = inboxOf(owner(), 16);
  inbox.push(part("he", false));
  inbox.push(part("llo", true));
  inbox.push(part(new Uint8Array([1, 2]), false));
  inbox.push(part(new Uint8Array([3]), true));
  assertEquals(await inbox.receive(), "hello");
  assertEquals(await inbox.receive(), new Uint8Array([1, 2, 3]));
  inbox.push(part("a", false));
  inbox.push(part("b", true));
  assertEquals(await inbox.receivePart(), part("a", false));
  assertEquals(await inbox.receivePart(), part("b", true));
});

test("Inbox waiters resolve in order as messages arrive, and the owner hears that the application waits", async () => {
  const own = owner();
  const inbox = inboxOf(own, 16);
  const first = inbox.receive();
  const second = inbox.receive();
  assertEquals(own.count("waiting"), 2);
  assert(await pending(first), "nothing pushed yet");
  inbox.push(part("a"));
  inbox.push(part("b"));
  assertEquals(await first, "a");
  assertEquals(await second, "b");
  // Each went to its waiter, none to the queue.
  assert(!inbox.full);
  assert(await pending(inbox.receive()));
});

test("Inbox.receive() with a timeout rejects with a TimeoutError after it, and a later message is kept", async () => {
  const inbox = inboxOf(owner(), 16);
  const timeout = 50;
  const started = performance.now();
  const error = await assertRejects(() => within(inbox.receive(timeout), "the timeout", timeout + MARGIN));
  const elapsed = performance.now() - started;
  assertInstanceOf(error, DOMException);
  assertEquals(error.name, "TimeoutError");
  assert(elapsed >= timeout - 1, `rejected after ${elapsed} ms, before its timeout of ${timeout} ms`);
  // The timed-out waiter is gone: the next message waits in the queue for the next receive().
  inbox.push(part("later"));
  assertEquals(await inbox.receive(), "later");
});

test("Inbox.receive() with a timeout resolves when a message comes first", async () => {
  const inbox = inboxOf(owner(), 16);
  const received = inbox.receive(60000);
  inbox.push(part("soon"));
  assertEquals(await received, "soon");
});

test("Inbox is full at its high-water mark and calls drained() once the queue is down to a quarter of it", async () => {
  const own = owner();
  const high = 8;
  const inbox = inboxOf(own, high);
  for (let i = 0; i < high - 1; i++) inbox.push(part(`m${i}`));
  assert(!inbox.full, "one under the mark");
  inbox.push(part(`m${high - 1}`));
  assert(inbox.full, "at the mark");
  assertEquals(inbox.room(100), 1, "at least one message per read, even when full");
  assertEquals(await inbox.receive(), "m0");
  assert(!inbox.full);
  // Down to 6, 5, 4, 3 queued: not yet the low-water mark (8 / 4 = 2).
  for (let i = 1; i <= 4; i++) assertEquals(await inbox.receive(), `m${i}`);
  assertEquals(own.count("drained"), 0);
  assertEquals(await inbox.receive(), "m5");
  assertEquals(own.count("drained"), 1, "2 queued: at the low-water mark");
  assertEquals(await inbox.receive(), "m6");
  assertEquals(await inbox.receive(), "m7");
  assertEquals(own.count("drained"), 1, "once");
});

test("Inbox.room() is what is left under the high-water mark, at least one and at most the limit given", () => {
  const inbox = inboxOf(owner(), 4);
  assertEquals(inbox.room(100), 4);
  assertEquals(inbox.room(2), 2);
  inbox.push(part("a"));
  assertEquals(inbox.room(100), 3);
});

test("Inbox.forEach() gets the queued messages at once, then each new one as it is pushed", async () => {
  const own = owner();
  const inbox = inboxOf(own, 16);
  inbox.push(part("q1"));
  inbox.push(part("q2"));
  const seen: [Message, boolean][] = [];
  const done = inbox.forEach((data, final) => void seen.push([data, final]));
  assertEquals(seen, [["q1", true], ["q2", true]], "the queue, during the call");
  assert(own.count("answered") >= 1, "the owner hears the queue was answered");
  assert(inbox.consuming);
  assertEquals(inbox.room(1000), 1000, "an idle callback takes messages as they come");
  inbox.push(part("live", false));
  assertEquals(seen.at(-1), ["live", false], "a live message, during push()");
  inbox.close(CLEAN);
  assertStrictEquals(await within(done, "forEach() after a clean close", 10000), undefined);
  assertEquals(seen.length, 3);
});

test("Inbox.forEach() rejects a second call", async () => {
  const inbox = inboxOf(owner(), 16);
  inbox.forEach(() => {});
  await assertRejects(() => inbox.forEach(() => {}), TypeError);
});

test("Inbox.forEach() queues later messages while a promise the callback returned is pending", async () => {
  const own = owner();
  const inbox = inboxOf(own, 16);
  const seen: Message[] = [];
  const hold = Promise.withResolvers<void>();
  inbox.forEach((data) => {
    seen.push(data);
    if (data === "slow") return hold.promise;
  });
  inbox.push(part("slow"));
  inbox.push(part("next"));
  inbox.push(part("last"));
  assertEquals(seen, ["slow"]);
  assert(!inbox.consuming, "busy with a promise");
  assertEquals(inbox.room(1000), 14, "queued messages count against the high-water mark again");
  await nextTurn();
  assertEquals(seen, ["slow"], "still held back");
  hold.resolve();
  await nextTurn();
  assertEquals(seen, ["slow", "next", "last"]);
  assert(inbox.consuming);
});

test("Inbox.forEach() does not wait on the promise send() returns when it queued without waiting", () => {
  const inbox = inboxOf(owner(), 16);
  const seen: Message[] = [];
  inbox.forEach((data) => {
    seen.push(data);
    return QUEUED;
  });
  inbox.push(part("a"));
  inbox.push(part("b"));
  assertEquals(seen, ["a", "b"]);
  assert(inbox.consuming);
});

test("Inbox.forEach() with a callback that throws calls consumerFailed() and rejects with the error", async () => {
  const own = owner();
  const inbox = inboxOf(own, 16);
  const oops = new Error("oops");
  const seen: Message[] = [];
  const done = inbox.forEach((data) => {
    seen.push(data);
    throw oops;
  });
  inbox.push(part("a"));
  inbox.push(part("b"));
  assertStrictEquals(await assertRejects(() => done), oops);
  assertEquals(own.count("consumerFailed"), 1);
  assertEquals(seen, ["a"], "no message after the failure reaches it");
  assertEquals(await inbox.receive(), "b", "later messages queue for receive()");
});

test("Inbox.forEach() with a callback whose promise rejects calls consumerFailed() and rejects with the error", async () => {
  const own = owner();
  const inbox = inboxOf(own, 16);
  const oops = new Error("async oops");
  const done = inbox.forEach(() => Promise.reject(oops));
  inbox.push(part("a"));
  assertStrictEquals(await assertRejects(() => within(done, "forEach()", 10000)), oops);
  assertEquals(own.count("consumerFailed"), 1);
});

test("Inbox.close() settles waiters: undefined after a clean 1000, ConnectionClosed for 1006", async () => {
  const clean = inboxOf(owner(), 16);
  const waiting = [clean.receive(), clean.receive(), clean.receivePart()];
  clean.close(CLEAN);
  assertEquals(await Promise.all(waiting), [undefined, undefined, undefined]);
  assertStrictEquals(await clean.receive(), undefined, "a receive() after the close");
  assertEquals(await clean.next(), { done: true, value: undefined });

  const dropped = inboxOf(owner(), 16);
  const waiter = dropped.receive();
  const timed = dropped.receive(60000);
  dropped.close(ABNORMAL);
  for (const promise of [waiter, timed, dropped.receive()]) {
    const error = await assertRejects(() => promise, ConnectionClosed);
    assertEquals(error.code, 1006);
  }
});

test("Inbox.close() leaves queued messages to be read first", async () => {
  const inbox = inboxOf(owner(), 16);
  inbox.push(part("before"));
  inbox.close(ABNORMAL);
  assertEquals(await inbox.receive(), "before");
  await assertRejects(() => inbox.receive(), ConnectionClosed);
});

test("Inbox.close() ends forEach() once its callback had the queued messages: resolved if clean, else rejected", async () => {
  const clean = inboxOf(owner(), 16);
  const seen: Message[] = [];
  const hold = Promise.withResolvers<void>();
  const done = clean.forEach((data) => {
    seen.push(data);
    if (data === "slow") return hold.promise;
  });
  clean.push(part("slow"));
  clean.push(part("queued"));
  clean.close(CLEAN);
  assert(await pending(done), "a callback is still busy, a message still queued");
  hold.resolve();
  assertStrictEquals(await within(done, "forEach()", 10000), undefined);
  assertEquals(seen, ["slow", "queued"]);

  const dropped = inboxOf(owner(), 16);
  const ended = dropped.forEach(() => {});
  dropped.close(ABNORMAL);
  const error = await assertRejects(() => within(ended, "forEach()", 10000), ConnectionClosed);
  assertEquals(error.code, 1006);
});

test("Inbox.next() iterates the messages, then ends after a clean close", async () => {
  const inbox = inboxOf(owner(), 16);
  inbox.push(part("x"));
  const waiting = inbox.next();
  assertEquals(await waiting, { done: false, value: "x" });
  const later = inbox.next();
  inbox.push(part("y"));
  assertEquals(await later, { done: false, value: "y" });
  const last = inbox.next();
  inbox.close(CLEAN);
  assertEquals(await last, { done: true, value: undefined });
});

test("Inbox: two receive() calls waiting get whole messages in order, the first one's pieces all to it", async () => {
  const inbox = inboxOf(owner(), 16);
  const first = inbox.receive(), second = inbox.receive();
  inbox.push(part("he", false));
  for (let i = 0; i < 3; i++) await Promise.resolve(); // The first call now waits for the rest.
  inbox.push(part("llo"));
  inbox.push(part("world"));
  assertEquals(await within(first, "first receive()"), "hello");
  assertEquals(await within(second, "second receive()"), "world");
});

test("Inbox: a receive() that times out half-way through a message gives its pieces back to the next call", async () => {
  const inbox = inboxOf(owner(), 16);
  const timedOut = inbox.receive(50);
  inbox.push(part("hel", false));
  const error = await assertRejects(() => within(timedOut, "receive(50)", 50 + MARGIN));
  assertEquals((error as DOMException).name, "TimeoutError");
  inbox.push(part("lo"));
  assertEquals(await within(inbox.receive(), "the next receive()"), "hello");
});

test("Inbox: a clean close half-way through a streamed message leaves receive() nothing, not the part read", async () => {
  const inbox = inboxOf(owner(), 16);
  const waiting = inbox.receive();
  inbox.push(part("hel", false));
  for (let i = 0; i < 3; i++) await Promise.resolve(); // The call now waits for the rest.
  inbox.close(CLEAN);
  assertStrictEquals(await within(waiting, "receive()"), undefined);

  const iterated = inboxOf(owner(), 16);
  iterated.push(part("wor", false));
  iterated.close(CLEAN);
  assertEquals(await within(iterated.next(), "next()"), { done: true, value: undefined });
});

test("Inbox.notice() reports a ping at once when no message read before it waits", () => {
  const own = owner();
  const inbox = inboxOf(own, 16);
  inbox.notice({ type: "ping", data: new TextEncoder().encode("p") });
  assertEquals(own.calls, ["ping p"]);
});

test("Inbox.notice() holds a ping or pong behind the messages read before it, until the next is asked for", async () => {
  const own = owner();
  const inbox = inboxOf(own, 16);
  const bytes = (text: string) => new TextEncoder().encode(text);
  inbox.push(part("one"));
  inbox.notice({ type: "ping", data: bytes("p") });
  inbox.push(part("two"));
  inbox.notice({ type: "pong", data: bytes("q") });
  assertEquals(own.calls, []);
  assertEquals(await inbox.receive(), "one");
  assertEquals(own.calls, []);
  assertEquals(await inbox.receive(), "two");
  assertEquals(own.calls, ["ping p"]);
  const next = inbox.receive();
  assertEquals(own.calls, ["ping p", "pong q", "waiting"]);
  inbox.push(part("three"));
  assertEquals(await next, "three");
});

test("Inbox.notice() keeps a forEach() callback's order: messages, pings and pongs as they were read", async () => {
  const own = owner();
  const inbox = inboxOf(own, 16);
  const bytes = (text: string) => new TextEncoder().encode(text);
  const later = Promise.withResolvers<void>();
  void inbox.forEach((data) => {
    own.calls.push(`message ${data}`); // One log for messages and notices.
    if (data === "one") return later.promise; // Busy: what follows queues.
  });
  inbox.push(part("one"));
  inbox.notice({ type: "ping", data: bytes("p") });
  inbox.push(part("two"));
  inbox.notice({ type: "pong", data: bytes("q") });
  const seen = () => own.calls.filter((c) => c !== "answered");
  assertEquals(seen(), ["message one"]);
  later.resolve();
  await nextTurn();
  assertEquals(seen(), ["message one", "ping p", "message two", "pong q"]);
  inbox.notice({ type: "ping", data: bytes("idle") }); // Nothing queued, the callback idle: at once.
  assertEquals(seen().at(-1), "ping idle");
  inbox.close(CLEAN);
});
