import { test } from "node:test";
import assert from "node:assert/strict";
import { Connection, ServerProtocol, type Transport } from "../mod.ts";
import { buildFrame, counting, RFC_MASK } from "./_helpers.ts";

/** A transport in memory: records writes, and reads what the test pushes (nothing here). */
function memoryTransport() {
  const writes: Uint8Array[][] = [];
  const done = { writes: 0 };
  let end: ((bytes: Uint8Array | null) => void) | undefined;
  const transport: Transport = {
    read: () => new Promise((resolve) => end = resolve),
    write: (chunks) => {
      writes.push(chunks);
      return new Promise((resolve) =>
        setTimeout(() => {
          done.writes++;
          resolve();
        }, 5)
      );
    },
    close: () => end?.(null),
    remoteAddress: undefined,
    localAddress: undefined,
  };
  return { transport, writes, done };
}

async function openProtocol(): Promise<ServerProtocol> {
  const protocol = new ServerProtocol();
  protocol.receiveData(new TextEncoder().encode(
    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
  ));
  protocol.events();
  await protocol.accept();
  protocol.dataToSend();
  return protocol;
}

test("Connection batches messages sent in a burst into one write", async () => {
  const { transport, writes } = memoryTransport();
  const ws = new Connection(await openProtocol(), transport, { pingInterval: 0 });
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

test("Connection.send waits for the socket once bufferedAmount passes sendHighWaterMark", async () => {
  const { transport, done } = memoryTransport();
  const ws = new Connection(await openProtocol(), transport, { pingInterval: 0, sendHighWaterMark: 1000 });
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

test("Connection gives read buffers back to the transport only when no message is a view of them", async () => {
  // Reads hand over fresh buffers; a released one is scribbled over at once, as a transport reusing it would.
  const big = counting(8192), split = counting(6000, 7);
  const whole = buildFrame(0x82, big, RFC_MASK);
  const parted = buildFrame(0x82, split, RFC_MASK);
  const reads = [whole, parted.slice(0, 3000), parted.slice(3000)];
  const released: Uint8Array[] = [];
  let pending: ((bytes: Uint8Array | null) => void) | undefined;
  let closed = false;
  const transport: Transport = {
    read: () => {
      const next = closed ? null : reads.shift();
      if (next !== undefined) return Promise.resolve(next);
      return new Promise<Uint8Array | null>((resolve) => pending = resolve);
    },
    write: () => Promise.resolve(),
    release: (chunk) => {
      released.push(chunk);
      chunk.fill(0xee);
    },
    close: () => {
      closed = true;
      pending?.(null);
    },
    remoteAddress: undefined,
    localAddress: undefined,
  };
  const ws = new Connection(await openProtocol(), transport, { pingInterval: 0 });
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
