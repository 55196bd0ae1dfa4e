/**
 * The `Transport` contract (src/transport.ts), one suite run over every transport this runtime
 * has: its own adapter's (`detectAdapter()`) over loopback TCP, and the streams adapter over a
 * pair of TransformStreams (default readers) and over a pair of byte streams (BYOB readers).
 *
 * @module
 */

import { once } from "node:events";
import { connect as connectNode } from "node:net";
import { test } from "node:test";
import { assert, assertEquals, assertStrictEquals } from "../assert.ts";
import { detectAdapter } from "../../src/adapters/mod.ts";
import { streamTransport } from "../../src/adapters/streams.ts";
import type { Transport, TransportSink } from "../../src/transport.ts";
import { nextTurn } from "../../src/timers.ts";
import { within } from "../_helpers.ts";

const IS_DENO = "Deno" in globalThis && !("Bun" in globalThis);
const RUNTIME = IS_DENO ? "Deno" : "Bun" in globalThis ? "Bun" : "this runtime";

/** How long any one step may take on a loaded machine before the test fails instead of hanging (ms). */
const STEP = 20000;

/**
 * Turns of the event loop (each a timer, so I/O is polled in between) given to a transport to do
 * something it must not do, such as calling `data()` while paused. An absence cannot be awaited:
 * this is its chance to show.
 */
const QUIET_TURNS = 20;

async function quietTurns(): Promise<void> {
  for (let i = 0; i < QUIET_TURNS; i++) await nextTurn();
}

/** The byte at offset `at` of every stream these tests write: a prime period, so a chunk out of place shows. */
const patternByte = (at: number) => at % 251;

/** `length` bytes of the pattern from offset `from`. */
function pattern(from: number, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (from + i) % 251;
  return bytes;
}

/** A sink that checks every byte against the pattern and records how `data()` and `end()` were called. */
class Recorder implements TransportSink {
  /** Bytes received. */
  received = 0;
  /** The first offset whose byte was not the pattern's, if any. */
  mismatch: number | undefined;
  /** Every chunk as handed over (views, not copies), when `keepViews`. */
  views: Uint8Array[] = [];
  /** The buffer of every chunk, in order. */
  buffers: ArrayBufferLike[] = [];
  /** What `data()` returns for the nth chunk (from 0); `false` by default. */
  keep: (index: number) => boolean = () => false;
  keepViews = false;
  /** Set by the test while the transport is paused. */
  paused = false;
  dataWhilePaused = 0;
  dataAfterEnd = 0;
  emptyChunks = 0;
  ends = 0;
  readonly #ended = Promise.withResolvers<void>();
  #waits: { bytes: number; resolve: () => void }[] = [];

  data(chunk: Uint8Array): boolean {
    if (this.paused) this.dataWhilePaused++;
    if (this.ends > 0) this.dataAfterEnd++;
    if (chunk.length === 0) this.emptyChunks++;
    if (this.mismatch === undefined) {
      for (let i = 0; i < chunk.length; i++) {
        if (chunk[i] !== patternByte(this.received + i)) {
          this.mismatch = this.received + i;
          break;
        }
      }
    }
    const index = this.buffers.length;
    this.buffers.push(chunk.buffer);
    if (this.keepViews) this.views.push(chunk);
    this.received += chunk.length;
    this.#waits = this.#waits.filter((wait) => wait.bytes > this.received || (wait.resolve(), false));
    return this.keep(index);
  }

  end(): void {
    this.ends++;
    this.#ended.resolve();
  }

  /** Resolves once `bytes` bytes arrived in all. */
  bytes(bytes: number, label = `${bytes} bytes`): Promise<void> {
    if (this.received >= bytes) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#waits.push({ bytes, resolve });
    return within(promise, `${label} (got ${this.received})`, STEP);
  }

  /** Resolves at `end()`. */
  ended(label = "end()"): Promise<void> {
    return within(this.#ended.promise, label, STEP);
  }
}

/** Two connected transports, `a` and `b`, not started. */
interface Pair {
  a: Transport;
  b: Transport;
  /** The listener's port, for a TCP pair. */
  port?: number;
  close(): void;
}

interface Kind {
  name: string;
  /** Whether it is the runtime adapter's TCP transport. */
  tcp: boolean;
  /** A write that cannot be taken while the peer does not read (bytes). */
  bigWrite: number;
  pair(): Promise<Pair>;
}

async function tcpPair(): Promise<Pair> {
  const adapter = detectAdapter();
  const accepted = Promise.withResolvers<Transport>();
  const listener = await adapter.listen({ hostname: "127.0.0.1", port: 0 }, accepted.resolve);
  const port = listener.address.port;
  let a: Transport | undefined;
  try {
    a = await within(adapter.connect({ hostname: "127.0.0.1", port }), "connect", STEP);
    const b = await within(accepted.promise, "accept", STEP);
    return {
      a,
      b,
      port,
      close() {
        a!.close();
        b.close();
        listener.close();
      },
    };
  } catch (error) {
    a?.close();
    listener.close();
    throw error;
  }
}

function transformPair(): Promise<Pair> {
  const ab = new TransformStream<Uint8Array, Uint8Array>();
  const ba = new TransformStream<Uint8Array, Uint8Array>();
  const a = streamTransport({ readable: ba.readable, writable: ab.writable });
  const b = streamTransport({ readable: ab.readable, writable: ba.writable });
  return Promise.resolve({ a, b, close: () => (a.close(), b.close()) });
}

/**
 * A one-way pipe whose readable end is a byte stream (so the transport reads it with a BYOB
 * reader): a chunk written is enqueued, as a copy, when the reader asks for bytes, and only then
 * does its write resolve, as a TransformStream's would.
 */
function bytePipe(): { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> } {
  const queue: { chunk: Uint8Array; taken: () => void }[] = [];
  let closing = false;
  let wake: (() => void) | undefined;
  let writeController!: WritableStreamDefaultController;
  const readable = new ReadableStream({
    type: "bytes",
    async pull(controller) {
      while (queue.length === 0 && !closing) await new Promise<void>((resolve) => wake = resolve);
      const next = queue.shift();
      if (next) {
        controller.enqueue(next.chunk.slice());
        next.taken();
      } else {
        controller.close();
        controller.byobRequest?.respond(0);
      }
    },
    cancel(reason) {
      // The reading end went away: writing fails, as on a reset socket.
      writeController.error(reason ?? new Error("the reader cancelled"));
      for (const { taken } of queue.splice(0)) taken();
    },
  });
  const writable = new WritableStream<Uint8Array>({
    start(controller) {
      writeController = controller;
    },
    write(chunk) {
      return new Promise<void>((taken) => {
        queue.push({ chunk, taken });
        wake?.();
      });
    },
    close() {
      closing = true;
      wake?.();
    },
    abort() {
      closing = true;
      wake?.();
    },
  });
  return { readable: readable as ReadableStream<Uint8Array>, writable };
}

function bytePair(): Promise<Pair> {
  const ab = bytePipe();
  const ba = bytePipe();
  const a = streamTransport({ readable: ba.readable, writable: ab.writable });
  const b = streamTransport({ readable: ab.readable, writable: ba.writable });
  return Promise.resolve({ a, b, close: () => (a.close(), b.close()) });
}

const KINDS: Kind[] = [
  // 64 MiB is more than the socket buffers of both ends can hold while the reader does not read
  // (Linux's tcp_rmem and tcp_wmem maximums are 6 and 4 MiB by default, and they grow only as the
  // reader reads); a stream pair takes no more than its reader asks for.
  {
    name: `the ${detectAdapter().name} adapter over loopback TCP`,
    tcp: true,
    bigWrite: 64 << 20,
    pair: tcpPair,
  },
  { name: "the streams adapter over TransformStreams", tcp: false, bigWrite: 1 << 20, pair: transformPair },
  { name: "the streams adapter over byte streams", tcp: false, bigWrite: 1 << 20, pair: bytePair },
];

/** Runs `body` with a fresh pair, closed afterwards whatever happens. */
async function withPair(kind: Kind, body: (pair: Pair) => Promise<void>): Promise<void> {
  const pair = await kind.pair();
  try {
    await body(pair);
  } finally {
    pair.close();
  }
}

/** Writes `length` bytes of the pattern from `from` in pieces of at most `piece` bytes, one write() each. */
async function writePattern(t: Transport, from: number, length: number, piece: number): Promise<void> {
  for (let at = 0; at < length; at += piece) {
    await t.write([pattern(from + at, Math.min(piece, length - at))]);
  }
}

for (const kind of KINDS) {
  test(`${kind.name}: chunks arrive in order, every byte once`, async () => {
    await withPair(kind, async ({ a, b }) => {
      const sink = new Recorder();
      b.start(sink);
      // Pieces of many sizes, and one write() of several buffers.
      let sent = 0;
      for (const size of [1, 2, 3, 100, 1000, 4095, 4096, 4097, 65536, 7]) {
        await a.write([pattern(sent, size)]);
        sent += size;
      }
      await a.write([pattern(sent, 10), pattern(sent + 10, 20000), pattern(sent + 20010, 5)]);
      sent += 20015;
      await sink.bytes(sent);
      assertEquals(sink.mismatch, undefined, "every byte in order");
      assertEquals(sink.received, sent);
      assertEquals(sink.emptyChunks, 0, "no empty chunks");
      assertEquals(sink.ends, 0);
    });
  });

  test(`${kind.name}: bytes and the end the peer sent before start() reach the sink after it, in order`, async () => {
    await withPair(kind, async ({ a, b }) => {
      // Not awaited: a stream pair takes nothing before the transport reads. More than a MiB, which
      // Bun's adapter holds before it pauses the socket.
      const total = 4 << 20;
      const writing = writePattern(a, 0, total, 65536).then(() => a.close());
      writing.catch(() => {});
      await quietTurns();
      const sink = new Recorder();
      b.start(sink);
      await sink.ended("end() after start()");
      await within(writing, "the writes", STEP);
      assertEquals(sink.received, total, "every byte before end()");
      assertEquals(sink.mismatch, undefined);
      assertEquals(sink.ends, 1);
    });
  });

  test(`${kind.name}: pause() before start() starts it paused: nothing reaches the sink until resume()`, async () => {
    await withPair(kind, async ({ a, b }) => {
      const sink = new Recorder();
      b.pause();
      sink.paused = true;
      b.start(sink);
      const sent = a.write([pattern(0, 100)]);
      sent?.catch(() => {});
      await quietTurns();
      assertEquals(sink.received, 0, "data() before resume()");
      sink.paused = false;
      b.resume();
      await sink.bytes(100);
      assertEquals(sink.dataWhilePaused, 0);
      assertEquals(sink.mismatch, undefined);
    });
  });

  test(`${kind.name}: pause() stops data() until resume(), which delivers everything sent meanwhile`, async () => {
    await withPair(kind, async ({ a, b }) => {
      const sink = new Recorder();
      b.start(sink);
      await a.write([pattern(0, 100)]);
      await sink.bytes(100, "before pause()");
      b.pause();
      sink.paused = true;
      const total = 100 + 4 * 16384;
      // Not awaited: a stream pair takes no more than the reader asks for, and it is paused.
      const writing = writePattern(a, 100, total - 100, 16384);
      writing.catch(() => {});
      await quietTurns();
      assertEquals(sink.dataWhilePaused, 0, "no data() while paused");
      assertEquals(sink.received, 100);
      sink.paused = false;
      b.resume();
      await sink.bytes(total, "after resume()");
      await within(writing, "the writes", STEP);
      assertEquals(sink.mismatch, undefined, "nothing lost or reordered across the pause");
      assertEquals(sink.received, total);
    });
  });

  test(`${kind.name}: the peer's EOF reaches end() once, after every byte it sent before`, async () => {
    await withPair(kind, async ({ a, b }) => {
      const sink = new Recorder();
      b.start(sink);
      await writePattern(a, 0, 100000, 8192);
      a.close();
      await sink.ended("end() after the peer closed");
      assertEquals(sink.received, 100000, "every byte came before end()");
      assertEquals(sink.mismatch, undefined);
      // Closing after the end, twice, calls end() no more.
      b.close();
      b.close();
      await quietTurns();
      assertEquals(sink.ends, 1);
      assertEquals(sink.dataAfterEnd, 0);
    });
  });

  test(`${kind.name}: the peer's EOF while paused waits for resume(), then follows the held bytes`, async () => {
    await withPair(kind, async ({ a, b }) => {
      const sink = new Recorder();
      b.start(sink);
      b.pause();
      sink.paused = true;
      const writing = writePattern(a, 0, 50000, 10000).then(() => a.close());
      writing.catch(() => {});
      await quietTurns();
      assertEquals(sink.dataWhilePaused, 0);
      assertEquals(sink.ends, 0, "no end() while paused");
      sink.paused = false;
      b.resume();
      await sink.ended("end() after resume()");
      await within(writing, "the writes", STEP);
      assertEquals(sink.received, 50000, "every byte came before end()");
      assertEquals(sink.mismatch, undefined);
      await quietTurns();
      assertEquals(sink.ends, 1);
      assertEquals(sink.dataAfterEnd, 0);
    });
  });

  test(`${kind.name}: pause() from inside data() holds back the next chunks and the end until resume()`, async () => {
    await withPair(kind, async ({ a, b }) => {
      const sink = new Recorder();
      // The first chunk pauses, as a handshake step that found its end does.
      sink.keep = (index) => {
        if (index === 0) {
          b.pause();
          sink.paused = true;
        }
        return false;
      };
      b.start(sink);
      const writing = (async () => {
        for (let i = 0; i < 10; i++) {
          await a.write([pattern(i * 1000, 1000)]);
          if (i === 0) await sink.bytes(1, "the first chunk");
        }
        a.close();
      })();
      writing.catch(() => {});
      await sink.bytes(1, "the first chunk");
      await quietTurns();
      assertEquals(sink.dataWhilePaused, 0, "no data() after the pause inside data()");
      assertEquals(sink.ends, 0, "no end() while paused");
      sink.paused = false;
      b.resume();
      await sink.ended("end() after resume()");
      await within(writing, "the writes", STEP);
      assertEquals(sink.received, 10000);
      assertEquals(sink.mismatch, undefined);
      await quietTurns();
      assertEquals(sink.ends, 1);
      assertEquals(sink.dataAfterEnd, 0);
    });
  });

  test(`${kind.name}: close() leads to end() once, even called twice, and the peer sees the end`, async () => {
    await withPair(kind, async ({ a, b }) => {
      const sink = new Recorder();
      const peer = new Recorder();
      b.start(sink);
      a.start(peer);
      b.close();
      b.close();
      await sink.ended("end() after close()");
      await peer.ended("the peer's end()");
      await quietTurns();
      assertEquals(sink.ends, 1);
      assertEquals(peer.ends, 1);
      assertEquals(sink.received, 0);
    });
  });

  test(`${kind.name}: close() while paused leads to end() once, without data() for what was held`, async () => {
    await withPair(kind, async ({ a, b }) => {
      const sink = new Recorder();
      b.start(sink);
      await a.write([pattern(0, 10)]);
      await sink.bytes(10);
      b.pause();
      sink.paused = true;
      a.write([pattern(10, 1000)])?.catch(() => {});
      await quietTurns();
      b.close();
      await sink.ended("end() after close() while paused");
      await quietTurns();
      assertEquals(sink.ends, 1);
      assertEquals(sink.dataWhilePaused, 0, "close() is not resume()");
      assertEquals(sink.dataAfterEnd, 0);
    });
  });

  test(`${kind.name}: close() from inside data() stops data() at once; end() follows once`, async () => {
    await withPair(kind, async ({ a, b }) => {
      // Several chunks read before start() (and, on Bun, held), handed over by start().
      for (let i = 0; i < 5; i++) {
        a.write([pattern(i * 100, 100)])?.catch(() => {});
        await quietTurns();
      }
      let calls = 0;
      let ends = 0;
      const ended = Promise.withResolvers<void>();
      b.start({
        data() {
          calls++;
          b.close();
          return false;
        },
        end() {
          ends++;
          ended.resolve();
        },
      });
      await within(ended.promise, "end() after close() inside data()", STEP);
      await quietTurns();
      assertEquals(calls, 1, "data() after close()");
      assertEquals(ends, 1);
    });
  });

  test(`${kind.name}: a sink whose data() throws ends the connection: end() once, and the peer sees it`, async () => {
    await withPair(kind, async ({ a, b }) => {
      let ends = 0;
      const ended = Promise.withResolvers<void>();
      b.start({
        data() {
          throw new Error("a broken sink");
        },
        end() {
          ends++;
          ended.resolve();
        },
      });
      const peer = new Recorder();
      a.start(peer);
      a.write([pattern(0, 10)])?.catch(() => {});
      await within(ended.promise, "end() after data() threw", STEP);
      await peer.ended("the peer's end()");
      await quietTurns();
      assertEquals(ends, 1);
    });
  });

  test(`${kind.name}: write() of more than the peer takes waits while it is paused, then resolves`, async () => {
    await withPair(kind, async ({ a, b }) => {
      const sink = new Recorder();
      b.start(sink);
      b.pause();
      sink.paused = true;
      const half = kind.bigWrite / 2;
      let settled = false;
      const writing = Promise.resolve(a.write([pattern(0, half), pattern(half, half)])).then(() => {
        settled = true;
      });
      writing.catch(() => {});
      await quietTurns();
      assert(!settled, `a write of ${kind.bigWrite} bytes resolved while the peer did not read`);
      sink.paused = false;
      b.resume();
      await sink.bytes(kind.bigWrite);
      await within(writing, "the big write", STEP);
      assertEquals(sink.mismatch, undefined);
      assertEquals(sink.received, kind.bigWrite);
    });
  });

  test(`${kind.name}: a chunk data() kept (returned true) is never read into again`, async () => {
    await withPair(kind, async ({ a, b }) => {
      const sink = new Recorder();
      sink.keep = () => true;
      sink.keepViews = true;
      b.start(sink);
      // One write at a time, each awaited at the sink: every chunk a read of its own.
      let sent = 0;
      for (const size of [10, 20, 500, 3000, 10, 70000, 10]) {
        await a.write([pattern(sent, size)]);
        sent += size;
        await sink.bytes(sent);
      }
      const views = sink.views;
      let at = 0;
      for (const view of views) {
        for (let i = 0; i < view.length; i++) {
          if (view[i] !== patternByte(at + i)) throw new Error(`a kept chunk changed at offset ${at + i}`);
        }
        at += view.length;
      }
      assertEquals(at, sent);
    });
  });

  test(`${kind.name}: hints is an object`, async () => {
    await withPair(kind, ({ a, b }) => {
      for (const t of [a, b]) assert(typeof t.hints === "object" && t.hints !== null);
      return Promise.resolve();
    });
  });

  if (kind.tcp) {
    test(`${kind.name}: remoteAddress and localAddress name both ends of the connection`, async () => {
      await withPair(kind, ({ a, b, port }) => {
        assertEquals(a.remoteAddress, { hostname: "127.0.0.1", port: port! });
        assertEquals(b.localAddress?.port, port);
        assertEquals(a.localAddress?.port, b.remoteAddress?.port);
        return Promise.resolve();
      });
    });
  }
}

const REUSE =
  "the Deno adapter reads the next chunk into the buffer data() returned false for, and into a new one " +
  "after it returned true";
// Only Deno's adapter reads into a buffer of its own; Bun's hands over a fresh one each time.
if (IS_DENO) {
  test(REUSE, async () => {
    await withPair(KINDS[0], async ({ a, b }) => {
      const sink = new Recorder();
      sink.keep = (index) => index === 1; // Not the first chunk, the second.
      sink.keepViews = true;
      b.start(sink);
      // Small chunks, each read on its own: the read buffer keeps its size, so only data()'s answer decides.
      for (let i = 0; i < 3; i++) {
        await a.write([pattern(i * 10, 10)]);
        await sink.bytes((i + 1) * 10);
      }
      assertEquals(sink.buffers.length, 3, "one chunk per write");
      assertStrictEquals(sink.buffers[1], sink.buffers[0], "not kept: the same buffer again");
      assert(sink.buffers[2] !== sink.buffers[1], "kept: a new buffer");
      assertEquals([...sink.views[1]], [...pattern(10, 10)], "the kept chunk is intact");
    });
  });
}

test(`the ${RUNTIME} adapter: a peer's reset while paused ends the stream only at resume(), after what was read before it`, async () => {
  const adapter = detectAdapter();
  const accepted = Promise.withResolvers<Transport>();
  const listener = await adapter.listen({ hostname: "127.0.0.1", port: 0 }, accepted.resolve);
  const peer = connectNode(listener.address.port, "127.0.0.1");
  let b: Transport | undefined;
  try {
    await within(once(peer, "connect"), "the peer's connect", STEP);
    b = await within(accepted.promise, "accept", STEP);
    const sink = new Recorder();
    b.start(sink);
    peer.write(pattern(0, 10));
    await sink.bytes(10);
    b.pause();
    sink.paused = true;
    // Bytes the runtime may read (and the transport hold) while paused, then a reset (RST).
    await new Promise<void>((resolve) => peer.write(pattern(10, 100000), () => resolve()));
    await quietTurns();
    peer.resetAndDestroy();
    // Time for the reset to arrive: the sink must hear nothing of it while paused.
    await new Promise((resolve) => setTimeout(resolve, 200));
    await quietTurns();
    assertEquals(sink.ends, 0, "end() while paused");
    assertEquals(sink.dataWhilePaused, 0);
    sink.paused = false;
    b.resume();
    await sink.ended("end() after resume()");
    await quietTurns();
    assertEquals(sink.ends, 1);
    assertEquals(sink.dataAfterEnd, 0);
    // What the kernel had not handed to the runtime is lost to the reset; what it had arrives whole.
    assertEquals(sink.mismatch, undefined);
    assert(sink.received >= 10);
  } finally {
    peer.destroy();
    b?.close();
    listener.close();
  }
});
