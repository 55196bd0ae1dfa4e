import { test } from "node:test";
import assert from "node:assert/strict";
import { Connection, ServerProtocol, type Transport } from "../mod.ts";

/** A transport in memory: records writes, and reads what the test pushes (nothing here). */
function memoryTransport() {
  const writes: Uint8Array[][] = [];
  let end: ((bytes: Uint8Array | null) => void) | undefined;
  const transport: Transport = {
    read: () => new Promise((resolve) => end = resolve),
    write: (chunks) => {
      writes.push(chunks);
      return new Promise((resolve) => setTimeout(resolve, 5));
    },
    close: () => end?.(null),
    remoteAddress: undefined,
    localAddress: undefined,
  };
  return { transport, writes };
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

test("Connection batches messages sent while a write is in flight into one write", async () => {
  const { transport, writes } = memoryTransport();
  const ws = new Connection(await openProtocol(), transport, { pingInterval: 0 });
  const sends = [];
  for (let i = 0; i < 50; i++) sends.push(ws.send(`message ${i}`));
  assert.ok(ws.bufferedAmount > 0, "queued bytes are counted");
  await Promise.all(sends);
  assert.ok(writes.length <= 2, `50 sends took ${writes.length} writes`);
  const total = writes.flat().reduce((n, chunk) => n + chunk.length, 0);
  assert.equal(total, 50 * 2 + [...Array(50).keys()].reduce((n, i) => n + `message ${i}`.length, 0));
  assert.equal(ws.bufferedAmount, 0);
  ws.terminate();
  await ws.closed;
});
