import { test } from "node:test";
import { assert, assertEquals } from "../assert.ts";
import { Connection, Link, ServerProtocol, type Transport, type TransportSink } from "../../mod.ts";
import { nextTurn } from "../../src/timers.ts";
import { buildFrame, joinBytes, RFC_MASK, within } from "../_helpers.ts";

const encoder = new TextEncoder();

const REQUEST = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/** Masked text frames, one per message, in one buffer. */
const frames = (messages: string[]) =>
  joinBytes(messages.map((message) => buildFrame(0x81, message, RFC_MASK)));

/** `count` messages named `${prefix}0`, `${prefix}1`, … */
const named = (prefix: string, count: number) => Array.from({ length: count }, (_, i) => `${prefix}${i}`);

/**
 * A server core past its handshake, holding `early` (frames that came in the same read as the
 * request) unread, as Sock leaves them for the connection.
 */
function acceptedWith(early: Uint8Array): ServerProtocol {
  const protocol = new ServerProtocol({ holdEndings: true, leaveUnread: true });
  protocol.receiveData(joinBytes([encoder.encode(REQUEST), early]));
  protocol.events();
  protocol.accept();
  protocol.dataToSend();
  return protocol;
}

/**
 * A transport that behaves as Bun's: the runtime pushes chunks (`push`), held while the sink pauses
 * and handed over synchronously from `start()` and `resume()`. Records pauses and writes.
 */
function pushTransport() {
  const held: (Uint8Array | null)[] = [];
  const log = { pauses: 0, resumes: 0 };
  let sink: TransportSink | undefined;
  let paused = false;
  let ended = false;
  const deliver = () => {
    while (sink && !paused && !ended && held.length > 0) {
      const chunk = held.shift()!;
      if (chunk === null) {
        ended = true;
        sink.end();
      } else sink.data(chunk);
    }
  };
  const transport: Transport = {
    start: (s) => {
      sink = s;
      deliver();
    },
    pause: () => {
      if (!paused) log.pauses++;
      paused = true;
    },
    resume: () => {
      if (!paused) return;
      log.resumes++;
      paused = false;
      deliver();
    },
    write: () => {},
    close: () => {
      if (ended) return;
      ended = true;
      held.length = 0;
      queueMicrotask(() => sink?.end());
    },
    hints: {},
    remoteAddress: undefined,
    localAddress: undefined,
  };
  return {
    transport,
    log,
    isPaused: () => paused,
    /** The runtime read `chunk` (`null`: the end of the stream). */
    push(chunk: Uint8Array | null) {
      held.push(chunk);
      deliver();
    },
  };
}

/** Receives `count` messages. */
async function receiveAll(ws: Connection, count: number): Promise<string[]> {
  const got: string[] = [];
  for (let i = 0; i < count; i++) got.push(await within(ws.receive(), `message ${i}`) as string);
  return got;
}

test("Reader: frames that came with the handshake, more than one turn may read, all come before chunks read later", async () => {
  // More messages than one turn delivers (2,048), so the rest of the early chunk waits for a later
  // turn while the transport already holds the next chunk and hands it over as soon as it resumes.
  const early = named("early", 5000);
  const protocol = await acceptedWith(frames(early));
  const pipe = pushTransport();
  pipe.push(frames(["later"]));
  const ws = new Connection(protocol, new Link(pipe.transport), { pingInterval: 0, receiveQueueSize: 10000 });
  try {
    assertEquals(await receiveAll(ws, 5001), [...early, "later"]);
  } finally {
    ws.terminate();
  }
});

test("Reader pauses the transport while the receive queue is full and resumes once it drained to a quarter", async () => {
  const protocol = await acceptedWith(new Uint8Array(0));
  const pipe = pushTransport();
  const ws = new Connection(protocol, new Link(pipe.transport), { pingInterval: 0, receiveQueueSize: 8 });
  try {
    pipe.push(frames(named("m", 8)));
    assert(pipe.isPaused(), "paused at the high-water mark (8 queued)");
    pipe.push(frames(["held"]));
    // Down to 3 queued: still above a quarter of 8, so still paused.
    assertEquals(await receiveAll(ws, 5), named("m", 5));
    await nextTurn();
    assert(pipe.isPaused(), "still paused above the low-water mark");
    // The sixth leaves 2 queued, at the low-water mark: reading resumes, the held chunk comes in.
    assertEquals(await receiveAll(ws, 4), ["m5", "m6", "m7", "held"]);
    assert(!pipe.isPaused(), "reading resumed");
  } finally {
    ws.terminate();
  }
});

test("Reader: a chunk of more messages than one turn delivers lets other work run between its parts", async () => {
  const protocol = await acceptedWith(new Uint8Array(0));
  const pipe = pushTransport();
  const ws = new Connection(protocol, new Link(pipe.transport), { pingInterval: 0 });
  try {
    const got: string[] = [];
    let turns = 0;
    let counting = true;
    const count = async () => {
      while (counting) {
        await nextTurn();
        turns++;
      }
    };
    const counter = count();
    const done = ws.forEach((data) => void got.push(data as string));
    pipe.push(frames(named("m", 10000)));
    // forEach() took what one turn delivers at once; the rest comes in later turns.
    assert(got.length < 10000, `${got.length} messages delivered within the read`);
    const before = turns;
    while (got.length < 10000) await nextTurn();
    assert(turns > before, "other work ran before the rest of the chunk was read");
    assertEquals(got, named("m", 10000));
    counting = false;
    await counter;
    pipe.push(null);
    await within(done.catch(() => {}), "forEach() after the end");
  } finally {
    ws.terminate();
  }
});

test("Reader: the end of the stream comes after every message read before it", async () => {
  const protocol = await acceptedWith(frames(named("early", 3000)));
  const pipe = pushTransport();
  pipe.push(frames(["last"]));
  pipe.push(null);
  const ws = new Connection(protocol, new Link(pipe.transport), { pingInterval: 0, receiveQueueSize: 10000 });
  try {
    assertEquals(await receiveAll(ws, 3001), [...named("early", 3000), "last"]);
    const closed = await within(ws.closed, "closed");
    assertEquals(closed.code, 1006);
  } finally {
    ws.terminate();
  }
});
