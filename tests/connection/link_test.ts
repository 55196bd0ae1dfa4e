import { test } from "node:test";
import { assert, assertEquals } from "../assert.ts";
import { Link } from "../../src/connection/link.ts";
import { streamTransport } from "../../src/adapters/streams.ts";
import type { Transport, TransportSink } from "../../src/transport.ts";
import { nextTurn } from "../../src/timers.ts";
import { within } from "../_helpers.ts";

/** How long any one step may take on a loaded machine before the test fails instead of hanging (ms). */
const STEP = 20000;
/** Turns of the event loop given to the link to do something it must not (an absence cannot be awaited). */
const QUIET_TURNS = 20;

async function quietTurns(): Promise<void> {
  for (let i = 0; i < QUIET_TURNS; i++) await nextTurn();
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A link over a streams transport: `peer` writes what the link reads (a TransformStream takes a
 * chunk only when the transport reads, so a write resolves once read), and `sent` collects what
 * the link's transport writes; `closed` resolves once the transport closed its writable.
 */
function linked() {
  const incoming = new TransformStream<Uint8Array, Uint8Array>();
  const sent: string[] = [];
  const closed = Promise.withResolvers<void>();
  const outgoing = new WritableStream<Uint8Array>({
    write: (chunk) => void sent.push(decoder.decode(chunk)),
    close: () => closed.resolve(),
    abort: () => closed.resolve(),
  });
  const transport = streamTransport({ readable: incoming.readable, writable: outgoing });
  const link = new Link(transport);
  const peer = incoming.writable.getWriter();
  // A write the link never reads fails once the transport cancels it; the tests look at what arrived.
  peer.closed.catch(() => {});
  return {
    link,
    transport,
    sent,
    /** Writes a chunk from the peer; resolves once the link's transport read it. */
    write: (text: string) => {
      const written = peer.write(encoder.encode(text));
      written.catch(() => {});
      return written;
    },
    /** The peer ends the stream (EOF). */
    end: () => peer.close().catch(() => {}),
    closed: within(closed.promise, "the transport closed", STEP),
  };
}

/** A handshake feed that records what it is fed (`null` as "EOF") and completes when `done` says so. */
function feeder(done: (seen: string) => boolean) {
  const fed: (string | null)[] = [];
  let seen = "";
  const feed = (chunk: Uint8Array | null): boolean => {
    fed.push(chunk === null ? null : decoder.decode(chunk));
    if (chunk !== null) seen += decoder.decode(chunk);
    return done(seen);
  };
  return { fed, feed };
}

/** An open sink that records its chunks and its end. */
function opener() {
  const chunks: string[] = [];
  let ends = 0;
  let dataAfterEnd = 0;
  const ended = Promise.withResolvers<void>();
  const waits: { text: string; resolve: () => void }[] = [];
  const sink: TransportSink = {
    data(chunk) {
      if (ends > 0) dataAfterEnd++;
      chunks.push(decoder.decode(chunk));
      const all = chunks.join("");
      for (const wait of waits) if (all === wait.text) wait.resolve();
      return false;
    },
    end() {
      ends++;
      ended.resolve();
    },
  };
  return {
    sink,
    chunks,
    ends: () => ends,
    dataAfterEnd: () => dataAfterEnd,
    ended: () => within(ended.promise, "the open sink's end()", STEP),
    /** Resolves once the chunks received, joined, are `text`. */
    got(text: string): Promise<void> {
      if (chunks.join("") === text) return Promise.resolve();
      const { promise, resolve } = Promise.withResolvers<void>();
      waits.push({ text, resolve });
      return within(promise, `the open sink got ${JSON.stringify(text)}`, STEP);
    },
  };
}

test("Link.handshake() feeds each chunk until feed returns true, then pauses until the next step", async () => {
  const { link, write } = linked();
  try {
    const first = feeder((seen) => seen === "AB");
    const step = link.handshake(first.feed);
    await write("A");
    await write("B");
    await within(step, "the first step", STEP);
    assertEquals(first.fed, ["A", "B"]);
    // Written after the step: the paused link reads it only at the next step.
    const pending = write("C");
    await quietTurns();
    assertEquals(first.fed, ["A", "B"], "nothing fed after the step completed");
    const second = feeder((seen) => seen === "CD");
    const next = link.handshake(second.feed);
    await within(pending, "the write after the step", STEP);
    await write("D");
    await within(next, "the second step", STEP);
    assertEquals(first.fed, ["A", "B"]);
    assertEquals(second.fed, ["C", "D"]);
    assert(!link.ended);
  } finally {
    link.close();
  }
});

test("Link.handshake() rejects with what the feed threw, and reads nothing more until the next step", async () => {
  const { link, write } = linked();
  try {
    const broken = new Error("a broken feed");
    const step = link.handshake(() => {
      throw broken;
    });
    await write("A");
    const error = await within(step.then(() => undefined, (e) => e), "the failed step", STEP);
    assert(error === broken, "rejected with the feed's error");
    const pending = write("B");
    pending.catch(() => {});
    await quietTurns();
    const next = feeder((seen) => seen === "B");
    const again = link.handshake(next.feed);
    await within(again, "the next step", STEP);
    assertEquals(next.fed, ["B"]);
    assert(!link.ended);
  } finally {
    link.close();
  }
});

test("Link.handshake() feeds null at the end of the stream, which completes the step; later steps get null at once", async () => {
  const { link, write, end } = linked();
  try {
    const first = feeder(() => false);
    const step = link.handshake(first.feed);
    await write("GET");
    end();
    await within(step, "the step at EOF", STEP);
    assertEquals(first.fed, ["GET", null]);
    assert(link.ended);
    const later = feeder(() => false);
    await within(link.handshake(later.feed), "a step after EOF", STEP);
    assertEquals(later.fed, [null]);
  } finally {
    link.close();
  }
});

test("Link.handshake() paused between steps feeds the peer's EOF to the next step only", async () => {
  const { link, write, end } = linked();
  try {
    const first = feeder((seen) => seen === "head");
    const step = link.handshake(first.feed);
    await write("head");
    await within(step, "the first step", STEP);
    end();
    await quietTurns();
    assert(!link.ended, "the paused link did not read the EOF yet");
    const second = feeder(() => false);
    await within(link.handshake(second.feed), "the step at EOF", STEP);
    assertEquals(first.fed, ["head"]);
    assertEquals(second.fed, [null]);
    assert(link.ended);
  } finally {
    link.close();
  }
});

test("Link.open() after the handshake delivers every later chunk in order once resumed, then the end once", async () => {
  const { link, write, end } = linked();
  try {
    const head = feeder((seen) => seen === "head");
    const step = link.handshake(head.feed);
    await write("head");
    await within(step, "the handshake", STEP);
    // Written while the link is paused between the handshake and open().
    const early = write("1");
    early.catch(() => {});
    await quietTurns();
    const open = opener();
    link.open(open.sink);
    await quietTurns();
    assertEquals(open.chunks, [], "nothing reaches the open sink before resume()");
    link.resume();
    await within(early, "the write before open()", STEP);
    for (const text of ["2", "3", "45"]) await write(text);
    await open.got("12345");
    assertEquals(open.chunks, ["1", "2", "3", "45"]);
    assertEquals(head.fed, ["head"], "the handshake's feed got nothing after its step");
    end();
    await open.ended();
    await quietTurns();
    assertEquals(open.ends(), 1);
    assertEquals(open.dataAfterEnd(), 0);
    assert(link.ended);
  } finally {
    link.close();
  }
});

test("Link.open() after the stream ended calls the sink's end() at once", async () => {
  const { link, end } = linked();
  try {
    const head = feeder(() => false);
    const step = link.handshake(head.feed);
    end();
    await within(step, "the step at EOF", STEP);
    const open = opener();
    link.open(open.sink);
    assertEquals(open.ends(), 1);
    assertEquals(open.chunks, []);
  } finally {
    link.close();
  }
});

/** Opens a link over `linked()` with a recording sink, past a one-chunk handshake. */
async function openLink() {
  const pipe = linked();
  const step = pipe.link.handshake(() => true);
  await pipe.write("head");
  await within(step, "the handshake", STEP);
  const open = opener();
  pipe.link.open(open.sink);
  pipe.link.resume();
  return { ...pipe, open };
}

test("Link.linger() reads and drops what the peer still sends, closes once it goes quiet, and resolves", async () => {
  const { link, write, open, closed } = await openLink();
  try {
    await write("x");
    await open.got("x");
    const started = performance.now();
    // The longest linger there is (2 s): the link closes earlier, once the peer is quiet.
    const lingering = link.linger(2000);
    // A peer still sending: each write resolves only once the link's transport read it.
    for (let i = 0; i < 50; i++) await within(write("y".repeat(1000)), "a write while lingering", STEP);
    await within(lingering, "linger()", STEP);
    const elapsed = performance.now() - started;
    await closed;
    assert(link.ended);
    assertEquals(open.chunks, ["x"], "nothing read while lingering reached the open sink");
    assert(elapsed < 2000, `closed after ${elapsed} ms: the 2 s timeout, not the peer's quiet, closed it`);
  } finally {
    link.close();
  }
});

test("Link.linger() closes at once when the peer ends the stream, and resolves", async () => {
  const { link, write, end, open, closed } = await openLink();
  try {
    const lingering = link.linger(60000);
    await within(write("bye"), "a write while lingering", STEP);
    end();
    await within(lingering, "linger()", STEP);
    await closed;
    assert(link.ended);
    assertEquals(open.chunks, [], "nothing read while lingering reached the open sink");
  } finally {
    link.close();
  }
});

test("Link.linger() after the stream ended closes the transport and resolves at once", async () => {
  const { link, end, open, closed } = await openLink();
  try {
    end();
    await open.ended();
    await within(link.linger(60000), "linger()", STEP);
    await closed;
  } finally {
    link.close();
  }
});

test("Link.linger() closes after its timeout when the peer never goes quiet", async () => {
  const { link, write, closed } = await openLink();
  let talking = true;
  // A peer that writes a chunk every turn of the event loop, until its writes fail.
  const chatter = (async () => {
    while (talking) {
      try {
        await write("z");
      } catch {
        return;
      }
      await nextTurn();
    }
  })();
  try {
    const timeout = 300;
    await within(link.linger(timeout), "linger()", timeout + STEP);
    await closed;
    assert(link.ended);
  } finally {
    talking = false;
    link.close();
    await within(chatter, "the peer's writes end", STEP);
  }
});

test("Link passes pause() and resume() to its transport, and close() closes it", () => {
  const calls: string[] = [];
  const transport: Transport = {
    start: () => calls.push("start"),
    pause: () => calls.push("pause"),
    resume: () => calls.push("resume"),
    write: () => {},
    close: () => calls.push("close"),
    hints: {},
    remoteAddress: undefined,
    localAddress: undefined,
  };
  const link = new Link(transport);
  link.handshake(() => false);
  link.pause();
  link.resume();
  link.handshake(() => false); // Started already: resumes.
  link.close();
  assertEquals(calls, ["start", "pause", "resume", "resume", "close"]);
});
