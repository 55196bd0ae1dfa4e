import { test } from "node:test";
import { assert, assertEquals, assertInstanceOf, assertRejects, assertStrictEquals } from "../assert.ts";
import { Outbox } from "../../src/connection/outbox.ts";
import type { ServerProtocol } from "../../src/core/server_protocol.ts";
import type { Transport } from "../../src/transport.ts";
import { nextTurn } from "../../src/timers.ts";
import { openServer, pending, readFrames, within } from "../_helpers.ts";

/** How long any one step may take on a loaded machine before the test fails instead of hanging (ms). */
const STEP = 20000;

const decoder = new TextDecoder();

/**
 * A transport that records every write (the buffers as handed over, and copies of them) and answers
 * each with what the test arranged: taken at once by default, or a promise the test settles.
 */
function fakeTransport() {
  const writes: Uint8Array[][] = [];
  const copies: Uint8Array[][] = [];
  const answers: (() => Promise<void> | void)[] = [];
  const waits: { count: number; resolve: () => void }[] = [];
  let closes = 0;
  const transport: Transport = {
    start() {},
    pause() {},
    resume() {},
    write(chunks) {
      writes.push([...chunks]);
      copies.push(chunks.map((chunk) => chunk.slice()));
      for (const wait of waits) if (wait.count === writes.length) wait.resolve();
      return answers.shift()?.();
    },
    close() {
      closes++;
    },
    hints: {},
    remoteAddress: undefined,
    localAddress: undefined,
  };
  return {
    transport,
    writes,
    /** The payloads of the frames of each write, as text. */
    texts: () => copies.map((chunks) => readFrames(chunks).map((frame) => decoder.decode(frame.payload))),
    closes: () => closes,
    /** The next write returns a promise; settle it with what this returns. */
    hold(): PromiseWithResolvers<void> {
      const held = Promise.withResolvers<void>();
      answers.push(() => held.promise);
      return held;
    },
    /** The next write fails: its promise rejects, or with `sync` the call throws. */
    fail(error: Error, sync = false) {
      answers.push(() => {
        if (sync) throw error;
        return Promise.reject(error);
      });
    },
    /** Resolves once `count` writes were made. */
    written(count: number): Promise<void> {
      if (writes.length >= count) return Promise.resolve();
      const { promise, resolve } = Promise.withResolvers<void>();
      waits.push({ count, resolve });
      return within(promise, `write ${count}`, STEP);
    },
  };
}

/** What `settled()` and `afterWrite()` reject with after a failed write: the connection closed. */
class Closed extends Error {}

/** An OPEN server core, a fake transport, and an outbox over them; `close()` lets go of its idle deadline. */
async function setup() {
  const server: ServerProtocol = await openServer();
  const fake = fakeTransport();
  const connection = { name: "the connection" };
  const outbox = new Outbox(
    server,
    fake.transport,
    connection,
    (given) => Promise.reject(given === connection ? new Closed("closed") : new Error("another connection")),
  );
  return { server, fake, outbox };
}

test("Outbox.schedule() sends everything queued in one turn as one write, at the end of the turn", async () => {
  const { server, fake, outbox } = await setup();
  try {
    for (const text of ["one", "two", "three"]) {
      server.sendText(text);
      outbox.schedule();
    }
    assert(outbox.scheduled);
    await Promise.resolve();
    assertEquals(fake.writes.length, 0, "not before the end of the turn");
    await fake.written(1);
    assertEquals(fake.writes[0].length, 1, "one buffer");
    assertEquals(fake.texts(), [["one", "two", "three"]]);
    assert(!outbox.scheduled);
    await nextTurn();
    assertEquals(fake.writes.length, 1, "no second write");
  } finally {
    outbox.close();
  }
});

test("Outbox.now() writes what is queued at once, and a write scheduled for the turn's end is then not repeated", async () => {
  const { server, fake, outbox } = await setup();
  try {
    server.sendText("a");
    outbox.schedule();
    server.sendText("b");
    outbox.now();
    assertEquals(fake.texts(), [["a", "b"]], "during the call");
    await nextTurn();
    await nextTurn();
    assertEquals(fake.writes.length, 1);
    outbox.now(); // Nothing queued: nothing written.
    assertEquals(fake.writes.length, 1);
  } finally {
    outbox.close();
  }
});

test("Outbox writes one at a time: what is queued while a write is pending goes in one write after it", async () => {
  const { server, fake, outbox } = await setup();
  try {
    const first = fake.hold();
    server.sendText("a");
    outbox.now();
    assertEquals(fake.writes.length, 1);
    server.sendText("b");
    outbox.now();
    server.sendText("c");
    outbox.schedule();
    await nextTurn();
    await nextTurn();
    assertEquals(fake.writes.length, 1, "the next write waits for the pending one");
    first.resolve();
    await fake.written(2);
    assertEquals(fake.texts(), [["a"], ["b", "c"]]);
  } finally {
    outbox.close();
  }
});

test("Outbox.afterWrite() returns one promise for every caller waiting on the same write, settled when it is done", async () => {
  const { server, fake, outbox } = await setup();
  try {
    const first = fake.hold();
    server.sendText("a");
    outbox.now();
    const second = fake.hold();
    server.sendText("b");
    const p1 = outbox.afterWrite();
    server.sendText("c");
    const p2 = outbox.afterWrite();
    assertStrictEquals(p2, p1, "one promise for the write after the pending one");
    first.resolve();
    await fake.written(2);
    assertEquals(fake.texts(), [["a"], ["b", "c"]]);
    assert(await pending(p1), "b and c are not written yet");
    // A caller now waits on the write after the one in progress.
    server.sendText("d");
    const p3 = outbox.afterWrite();
    assert(p3 !== p1, "the next write, the next promise");
    second.resolve();
    await within(p1, "the write of b and c", STEP);
    await fake.written(3);
    await within(p3, "the write of d", STEP);
    assertEquals(fake.texts(), [["a"], ["b", "c"], ["d"]]);
  } finally {
    outbox.close();
  }
});

test("Outbox.flush() resolves once what was queued before it is written; with lazy it writes at the end of the turn", async () => {
  const { server, fake, outbox } = await setup();
  try {
    server.sendText("a");
    const flushed = outbox.flush(true);
    assertEquals(fake.writes.length, 0, "lazy: not at once");
    await within(flushed, "a lazy flush", STEP);
    assertEquals(fake.texts(), [["a"]]);
    const held = fake.hold();
    server.sendText("b");
    const eager = outbox.flush();
    assertEquals(fake.writes.length, 2, "not lazy: at once");
    assert(await pending(eager), "the write is not done");
    held.resolve();
    await within(eager, "the flush", STEP);
    // Nothing queued: resolves without a write.
    await within(outbox.flush(), "an empty flush", STEP);
    assertEquals(fake.writes.length, 2);
  } finally {
    outbox.close();
  }
});

test("Outbox.bufferedAmount counts bytes queued in the core and bytes handed to the transport until it took them", async () => {
  const { server, fake, outbox } = await setup();
  try {
    assertEquals(outbox.bufferedAmount, 0);
    server.sendBinary(new Uint8Array(1000));
    const queued = server.bufferedAmount;
    assert(queued >= 1000);
    assertEquals(outbox.bufferedAmount, queued);
    const held = fake.hold();
    outbox.now();
    assertEquals(server.bufferedAmount, 0, "the core handed its bytes over");
    assertEquals(outbox.bufferedAmount, queued, "in flight");
    server.sendBinary(new Uint8Array(500));
    const more = server.bufferedAmount;
    assertEquals(outbox.bufferedAmount, queued + more, "in flight plus queued");
    const done = outbox.flush();
    held.resolve();
    await within(done, "both writes", STEP);
    assertEquals(outbox.bufferedAmount, 0);
  } finally {
    outbox.close();
  }
});

test("Outbox hands a payload of LARGE_PAYLOAD bytes or more to the transport as it is, beside the small frames", async () => {
  const { server, fake, outbox } = await setup();
  try {
    const large = new Uint8Array(300000).fill(7);
    server.sendText("before");
    server.sendBinary(large);
    server.sendText("after");
    outbox.now();
    assertEquals(fake.writes.length, 1, "one write");
    const chunks = fake.writes[0];
    assert(chunks.length > 1, "not joined into one buffer");
    assert(chunks.some((chunk) => chunk.buffer === large.buffer), "the payload itself, not a copy");
  } finally {
    outbox.close();
  }
});

test("Outbox: a write that rejects closes the transport and rejects the flush() that started it with its error", async () => {
  const { server, fake, outbox } = await setup();
  try {
    const broken = new Error("broken pipe");
    fake.fail(broken);
    server.sendText("lost");
    const flushed = outbox.flush();
    assertStrictEquals(await assertRejects(() => within(flushed, "flush()", STEP)), broken);
    assertEquals(fake.closes(), 1);
    assertEquals(outbox.bufferedAmount, 0, "nothing counted in flight any more");
  } finally {
    outbox.close();
  }
});

test("Outbox.afterWrite() whose write fails rejects with what the connection closing gives", async () => {
  const { server, fake, outbox } = await setup();
  try {
    fake.fail(new Error("broken pipe"));
    server.sendText("lost");
    const after = outbox.afterWrite();
    await assertRejects(() => within(after, "afterWrite()", STEP), Closed);
    assertEquals(fake.closes(), 1);
  } finally {
    outbox.close();
  }
});

test("Outbox: a write that throws at once closes the transport and rejects flush() with its error", async () => {
  const { server, fake, outbox } = await setup();
  try {
    const broken = new Error("closed already");
    fake.fail(broken, true);
    server.sendText("lost");
    const flushed = outbox.flush();
    assertStrictEquals(await assertRejects(() => within(flushed, "flush()", STEP)), broken);
    assertEquals(fake.closes(), 1);
    assertEquals(outbox.bufferedAmount, 0);
  } finally {
    outbox.close();
  }
});

test("Outbox.settled() turns a failed write into the connection's close and leaves a good one as it is", async () => {
  const { outbox } = await setup();
  try {
    await assertRejects(() => outbox.settled(Promise.reject(new Error("write failed"))), Closed);
    assertStrictEquals(await outbox.settled(Promise.resolve()), undefined);
  } finally {
    outbox.close();
  }
});

test("Outbox.drop() lets go of what is queued: it is never written", async () => {
  const { server, fake, outbox } = await setup();
  try {
    server.sendText("dropped");
    outbox.schedule();
    outbox.drop();
    assertEquals(outbox.bufferedAmount, 0);
    await nextTurn();
    await nextTurn();
    outbox.now();
    assertEquals(fake.writes.length, 0);
    server.sendText("kept");
    outbox.now();
    assertEquals(fake.texts(), [["kept"]]);
  } finally {
    outbox.close();
  }
});

test("Outbox.expireIdle() shrinks the core's buffers only once a whole idle period passed without a write", async () => {
  const { server, fake, outbox } = await setup();
  let shrunk = 0;
  server.shrinkBuffers = () => void shrunk++;
  try {
    server.sendText("a");
    outbox.now();
    assertEquals(fake.writes.length, 1);
    Outbox.expireIdle(outbox);
    assertEquals(shrunk, 0, "it wrote during the period");
    Outbox.expireIdle(outbox);
    assertEquals(shrunk, 1, "a period without writes");
    const held = fake.hold();
    server.sendText("b");
    outbox.now();
    Outbox.expireIdle(outbox);
    Outbox.expireIdle(outbox);
    assertEquals(shrunk, 1, "never while a write is in progress");
    held.resolve();
    await within(outbox.flush(), "the write", STEP);
  } finally {
    outbox.close();
  }
});

test("Outbox.close() takes it off the idle-buffer deadlines, and writes after close() do not put it back", async () => {
  const { server, outbox } = await setup();
  try {
    server.sendText("a");
    outbox.now();
    assert(outbox.idleWatched, "a write sets the idle-buffer deadline");
    outbox.close();
    assert(!outbox.idleWatched, "close() clears it");
    server.sendText("the close frame, say");
    outbox.now();
    assert(!outbox.idleWatched, "a write after close() does not set it again");
  } finally {
    outbox.close();
  }
});

test("Outbox: after a write failed, flush() and afterWrite() waiting behind it reject, and nothing more is written", async () => {
  const { server, fake, outbox } = await setup();
  try {
    const broken = new Error("broken pipe");
    const held = fake.hold();
    server.sendText("a");
    outbox.now();
    server.sendText("b");
    const flushed = outbox.flush();
    const after = outbox.afterWrite();
    held.reject(broken);
    assertStrictEquals(await assertRejects(() => within(flushed, "flush()", STEP)), broken);
    assertInstanceOf(await assertRejects(() => within(after, "afterWrite()", STEP)), Closed);
    assertEquals(fake.writes.length, 1, "the transport closed: no write follows the failed one");
    assertEquals(fake.closes(), 1);
  } finally {
    outbox.close();
  }
});
