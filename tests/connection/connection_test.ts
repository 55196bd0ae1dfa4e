import { test } from "node:test";
import assert from "node:assert/strict";
import {
  Connection,
  Link,
  ServerProtocol,
  type ServerProtocolOptions,
  type Transport,
  type TransportSink,
} from "../../mod.ts";
import { buildFrame, counting, eventually, hex, joinBytes, readFrames, RFC_MASK } from "../_helpers.ts";

/** A transport in memory: records writes, and reads nothing until it is closed. */
function memoryTransport() {
  const writes: Uint8Array[][] = [];
  const done = { writes: 0 };
  let sink: TransportSink | undefined;
  let ended = false;
  const transport: Transport = {
    start: (s) => sink = s,
    pause: () => {},
    resume: () => {},
    write: (chunks) => {
      writes.push(chunks);
      return new Promise((resolve) =>
        setTimeout(() => {
          done.writes++;
          resolve();
        }, 5)
      );
    },
    close: () => {
      if (ended) return;
      ended = true;
      sink?.end();
    },
    hints: {},
    remoteAddress: undefined,
    localAddress: undefined,
  };
  return { transport, writes, done };
}

function openProtocol(options: ServerProtocolOptions = {}): ServerProtocol {
  const protocol = new ServerProtocol(options);
  protocol.receiveData(new TextEncoder().encode(
    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
  ));
  protocol.events();
  protocol.accept();
  protocol.dataToSend();
  return protocol;
}

/**
 * A transport that reads the given chunks (one a microtask, as reads resolve), then those the test
 * pushes (`push`, `null` for the end), and records every write. A chunk the sink did not keep goes
 * to `onRelease`, as a transport reading into it again would.
 */
function scriptedTransport(chunks: Uint8Array[], onRelease?: (chunk: Uint8Array) => void) {
  const writes: Uint8Array[][] = [];
  const queue: (Uint8Array | null)[] = [...chunks];
  let sink: TransportSink | undefined;
  let paused = false;
  let scheduled = false;
  let ended = false;
  const next = () => {
    scheduled = false;
    if (!sink || paused || ended || queue.length === 0) return;
    const chunk = queue.shift()!;
    if (chunk === null) {
      ended = true;
      return sink.end();
    }
    if (!sink.data(chunk)) onRelease?.(chunk);
    schedule();
  };
  const schedule = () => {
    if (scheduled) return;
    scheduled = true;
    queueMicrotask(next);
  };
  const transport: Transport = {
    start: (s) => {
      sink = s;
      schedule();
    },
    pause: () => paused = true,
    resume: () => {
      paused = false;
      schedule();
    },
    write: (written) => {
      writes.push(written.map((chunk) => chunk.slice()));
    },
    close: () => {
      if (ended) return;
      ended = true;
      queue.length = 0;
      sink?.end();
    },
    hints: {},
    remoteAddress: undefined,
    localAddress: undefined,
  };
  const push = (chunk: Uint8Array | null) => {
    queue.push(chunk);
    schedule();
  };
  return { transport, writes, push };
}

test("Connection batches messages sent in a burst into one write", async () => {
  const { transport, writes } = memoryTransport();
  const ws = new Connection(await openProtocol(), new Link(transport), { pingInterval: 0 });
  const sends = [];
  for (let i = 0; i < 50; i++) sends.push(ws.send(`message ${i}`));
  assert.ok(ws.bufferedAmount > 0, "queued bytes are counted");
  await Promise.all(sends);
  await ws.drain();
  assert.ok(writes.length <= 2, `50 sends took ${writes.length} writes`);
  const total = writes.flat().reduce((n, chunk) => n + chunk.length, 0);
  assert.equal(total, 50 * 2 + [...Array(50).keys()].reduce((n, i) => n + `message ${i}`.length, 0));
  assert.equal(ws.bufferedAmount, 0);
  ws.terminate();
  await ws.closed;
});

test("Connection works with a transport whose writes complete at once (write returns nothing)", async () => {
  const frames = [
    buildFrame(0x81, new TextEncoder().encode("one"), RFC_MASK),
    buildFrame(0x82, counting(3), RFC_MASK),
  ];
  const { transport, writes } = scriptedTransport(frames);
  const ws = new Connection(await openProtocol(), new Link(transport), {
    pingInterval: 0,
    sendHighWaterMark: 4,
  });
  for (let i = 0; i < 2; i++) await ws.send((await ws.receive({ timeout: 2000 }))!);
  await ws.send("past the high-water mark");
  await ws.drain();
  assert.equal(ws.bufferedAmount, 0);
  const sent = joinBytes(writes.flat());
  const expected = joinBytes([hex("81 03"), new TextEncoder().encode("one"), hex("82 03"), counting(3)]);
  assert.deepEqual(sent.subarray(0, expected.length), expected);
  assert.equal(new TextDecoder().decode(sent.subarray(expected.length + 2)), "past the high-water mark");
  ws.terminate();
  await ws.closed;
});

test("Connection.send waits for the socket once bufferedAmount passes sendHighWaterMark", async () => {
  const { transport, done } = memoryTransport();
  const ws = new Connection(await openProtocol(), new Link(transport), {
    pingInterval: 0,
    sendHighWaterMark: 1000,
  });
  let settled = false;
  const small = ws.send("x".repeat(100));
  await small;
  assert.equal(done.writes, 0, "under the mark, send resolves before the socket took the bytes");
  const big = ws.send(new Uint8Array(5000)).then(() => settled = true);
  await new Promise((resolve) => setTimeout(resolve, 1));
  assert.equal(settled, false, "past the mark, send waits for the write");
  await big;
  assert.ok(done.writes >= 1, "past the mark, send resolved only after a write completed");
  ws.terminate();
  await ws.closed;
});

test("Connection lets the transport read into a buffer again only when no message is a view of it", async () => {
  // Reads hand over fresh buffers; a released one is scribbled over at once, as a transport reusing it would.
  const big = counting(8192), split = counting(6000, 7);
  const whole = buildFrame(0x82, big, RFC_MASK);
  const parted = buildFrame(0x82, split, RFC_MASK);
  const reads = [whole, parted.slice(0, 3000), parted.slice(3000)];
  const released: Uint8Array[] = [];
  const { transport } = scriptedTransport(reads, (chunk) => {
    released.push(chunk);
    chunk.fill(0xee);
  });
  const ws = new Connection(await openProtocol(), new Link(transport), { pingInterval: 0 });
  const first = await ws.receive({ timeout: 2000 });
  const second = await ws.receive({ timeout: 2000 });
  assert.deepEqual(first, big, "the message delivered in place is untouched");
  assert.deepEqual(second, split, "the message copied out of two reads is untouched");
  assert.equal(
    released.length,
    2,
    "both reads of the split message came back, the one holding a message did not",
  );
  assert.ok(released.every((chunk) => chunk.buffer !== whole.buffer));
  ws.terminate();
  await ws.closed;
});

const text = (s: string) => buildFrame(0x81, new TextEncoder().encode(s), RFC_MASK);
const closeFrame = (code: number) => buildFrame(0x88, hex(code.toString(16).padStart(4, "0")), RFC_MASK);

test("Connection.forEach passes messages in order, answers a read in one write, and resolves after a normal close", async () => {
  const { transport, writes, push } = scriptedTransport([joinBytes([text("a"), text("b"), text("c")])]);
  const ws = new Connection(await openProtocol(), new Link(transport), { pingInterval: 0 });
  const seen: string[] = [];
  const done = ws.forEach((message, final) => {
    assert.equal(final, true);
    seen.push(message as string);
    return ws.send((message as string).toUpperCase());
  });
  // Wait for the first write, in however many turns it takes here: it must carry all three replies.
  await eventually(() => writes.length > 0, "the replies' write");
  assert.deepEqual(seen, ["a", "b", "c"]);
  assert.equal(writes.length, 1, "three replies to one read went out in one write");
  assert.deepEqual(readFrames(writes[0]).map((f) => new TextDecoder().decode(f.payload)), ["A", "B", "C"]);
  push(text("d"));
  await eventually(() => seen.length === 4, "d reached the callback");
  push(closeFrame(1000));
  assert.equal(await done, undefined);
  assert.deepEqual(seen, ["a", "b", "c", "d"]);
  assert.equal((await ws.closed).code, 1000);
  await assert.rejects(ws.forEach(() => {}), TypeError, "a second forEach is refused");
});

test("Connection.forEach waits for a promise the callback returns before the next message", async () => {
  const { transport, push } = scriptedTransport([joinBytes([text("1"), text("2"), text("3")])]);
  const ws = new Connection(await openProtocol(), new Link(transport), { pingInterval: 0 });
  // Read before forEach is called: these queued messages come first.
  await new Promise((resolve) => setTimeout(resolve, 10));
  const log: string[] = [];
  let running = 0;
  const done = ws.forEach(async (message) => {
    assert.equal(running++, 0, "one callback at a time");
    log.push(`start ${message}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
    log.push(`end ${message}`);
    running--;
  });
  push(text("4"));
  await eventually(() => log.length === 8, "the callback ended for 4");
  push(closeFrame(1000));
  await done;
  assert.deepEqual(log, ["1", "2", "3", "4"].flatMap((n) => [`start ${n}`, `end ${n}`]));
});

test("Connection.forEach rejects with what the callback threw and closes with 1011", async () => {
  for (const fail of ["throw", "reject"]) {
    const { transport, writes } = scriptedTransport([joinBytes([text("x"), text("y")])]);
    const ws = new Connection(await openProtocol(), new Link(transport), {
      pingInterval: 0,
      closeTimeout: 50,
    });
    const seen: unknown[] = [];
    const error = new Error(fail);
    const done = ws.forEach((message) => {
      seen.push(message);
      if (fail === "throw") throw error;
      return Promise.reject(error);
    });
    await assert.rejects(done, (e) => e === error);
    const closed = await ws.closed;
    assert.deepEqual(seen, ["x"], `${fail}: no message after the failure reaches the callback`);
    assert.equal(closed.sent?.code, 1011);
    const frames = readFrames(writes.flat());
    assert.equal(frames.at(-1)?.first, 0x88);
    assert.deepEqual(frames.at(-1)?.payload.subarray(0, 2), hex("03 f3"));
  }
});

test("Connection.forEach rejects with ConnectionClosed after an abnormal close, and passes pieces with streamMessages", async () => {
  const protocol = await openProtocol({ streamMessages: true });
  const first = buildFrame(0x02, counting(3), RFC_MASK), last = buildFrame(0x80, counting(2, 3), RFC_MASK);
  const { transport, push } = scriptedTransport([joinBytes([first, last])]);
  const ws = new Connection(protocol, new Link(transport), { pingInterval: 0 });
  const pieces: [number[], boolean][] = [];
  const done = ws.forEach((data, final) => {
    pieces.push([[...(data as Uint8Array)], final]);
  });
  push(null);
  const error = await done.catch((e) => e);
  assert.equal(error?.name, "ConnectionClosed");
  assert.equal(error.code, 1006);
  assert.deepEqual(pieces, [[[0, 1, 2], false], [[3, 4], true]]);
});

test("Connection.forEach takes any value a callback returns: only a thenable holds the next message back", async () => {
  const { transport, push } = scriptedTransport([joinBytes([text("a"), text("b"), text("c"), text("d")])]);
  const ws = new Connection(await openProtocol(), new Link(transport), { pingInterval: 0 });
  const seen: string[] = [];
  const results: unknown[] = [null, 0, "", { then: (resolve: () => void) => setTimeout(resolve, 5) }];
  const done = ws.forEach((message) => {
    seen.push(message as string);
    return results[seen.length - 1];
  });
  // Had null, 0 or "" held the next message back, the rest would never come.
  await eventually(() => seen.length === 4, "all four messages reached the callback");
  assert.deepEqual(seen, ["a", "b", "c", "d"]);
  assert.equal(ws.readyState, 1, "still open");
  push(closeFrame(1000));
  assert.equal(await done, undefined);
});

test("Connection.close() on a connection that failed closes its transport at once", async () => {
  // A reserved opcode: the core fails the connection with 1002.
  const { transport } = scriptedTransport([buildFrame(0x83, new Uint8Array(0), RFC_MASK)]);
  let closes = 0;
  const close = transport.close;
  transport.close = () => {
    closes++;
    close();
  };
  const ws = new Connection(await openProtocol(), new Link(transport), { pingInterval: 0 });
  assert.equal((await ws.closed).code, 1002);
  const before = closes;
  await ws.close();
  assert.ok(closes > before, "close() closed the transport");
});
