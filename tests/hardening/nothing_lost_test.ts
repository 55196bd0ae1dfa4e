// Nothing lost: N messages sent and then a clean close arrive all, in order, before the close, in
// both directions, with fragmentation, pings in between (inside fragmented messages too), sends
// during a streamed message, and every byte of the TCP stream cut at random points by a proxy.
// Each case runs without and with permessage-deflate: VARIANTS switches them.

import { test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "../../src/client.ts";
import type { Connection } from "../../src/connection/connection.ts";
import type { Message } from "../../src/connection/inbox.ts";
import { Sock, type SockOptions } from "../../src/server/sock.ts";
import { detectAdapter } from "../../src/adapters/mod.ts";
import type { Transport } from "../../src/transport.ts";
import { buildFrame, joinBytes, randomPieces, Rng, within } from "../_helpers.ts";
import { RawPeer, sleep } from "../_hardening.ts";
import { pull } from "../_pull.ts";

/** The option sets every case runs with, on both ends. */
const VARIANTS: { label: string; deflate: boolean }[] = [
  { label: "plain", deflate: false },
  { label: "permessage-deflate", deflate: true },
];
const N = 300;

/** A TCP proxy on loopback that forwards both ways, cutting every chunk into random pieces. */
async function choppingProxy(target: number, rng: Rng) {
  const adapter = detectAdapter();
  const open = new Set<Transport>();
  let pieces = 0;
  const pump = async (from: Transport, to: Transport) => {
    const reads = pull(from);
    for (let chunk = await reads.read(); chunk; chunk = await reads.read()) {
      for (const piece of randomPieces(rng, chunk, 1 + rng.int(1500))) {
        await to.write([piece]);
        pieces++;
        if (rng.chance(0.02)) await sleep(0); // Now and then the reader catches up between pieces.
      }
    }
    to.close();
  };
  const listener = await adapter.listen({ hostname: "127.0.0.1", port: 0 }, async (client) => {
    const upstream = await adapter.connect({ hostname: "127.0.0.1", port: target });
    open.add(client).add(upstream);
    await Promise.all([pump(client, upstream), pump(upstream, client)]).catch(() => {});
    open.delete(client);
    open.delete(upstream);
  });
  return {
    port: listener.address.port,
    pieces: () => pieces,
    close() {
      listener.close();
      for (const transport of open) transport.close();
    },
  };
}

/** `n` messages: text (some multi-byte, some repetitive) and binary, 0 to 20,000 bytes. */
function messages(rng: Rng, n: number): Message[] {
  return Array.from({ length: n }, (_, i) => {
    const size = rng.chance(0.1) ? 0 : rng.int(rng.chance(0.8) ? 500 : 20000);
    if (rng.chance(0.5)) {
      const unit = rng.pick(["a", "é", "✓", "🌍", `message ${i} `]);
      return `#${i}:` + unit.repeat(Math.ceil(size / unit.length)); // Whole characters only.
    }
    const bytes = rng.chance(0.5) ? rng.bytes(size) : new Uint8Array(size).fill(i & 0xff);
    return bytes;
  });
}

/** Sends every message in order without waiting for each, some as streams, with pings in between. */
async function sendAll(ws: Connection, list: Message[], rng: Rng): Promise<void> {
  const pending: Promise<unknown>[] = [];
  for (const message of list) {
    if (rng.chance(0.1)) pending.push(ws.ping().catch(() => {}));
    if (rng.chance(0.15) && message.length > 1) {
      // In two parts; not awaited, so the sends after it must wait for it to finish.
      let cut = rng.int(message.length);
      // Text parts are whole characters: each part is encoded to UTF-8 on its own.
      if (typeof message === "string" && /[\ud800-\udbff]/.test(message[cut - 1] ?? "")) cut++;
      const parts = typeof message === "string"
        ? [message.slice(0, cut), message.slice(cut)]
        : [message.subarray(0, cut), message.subarray(cut)];
      pending.push(ws.sendStream(parts));
    } else if (rng.chance(0.2)) {
      await ws.send(message); // Now and then, wait.
    } else {
      pending.push(ws.send(message));
    }
  }
  await Promise.all(pending);
}

function assertSameMessages(got: Message[], want: Message[], label: string): void {
  assert.equal(got.length, want.length, `${label}: ${got.length} of ${want.length} messages arrived`);
  for (let i = 0; i < want.length; i++) {
    assert.deepEqual(got[i], want[i], `${label}: message ${i}`);
  }
}

/** A server whose `/collect` handler keeps every message and whose `/send` handler sends `list`. */
async function server(options: SockOptions, list: Message[], rng: Rng) {
  const collected = Promise.withResolvers<{ messages: Message[]; code: number; clean: boolean }>();
  const app = new Sock({ ...options, pingInterval: 0 });
  app.route("/collect", async (ws) => {
    const got: Message[] = [];
    for await (const message of ws) got.push(message);
    const closed = await ws.closed;
    collected.resolve({ messages: got, code: closed.code, clean: closed.wasClean });
  });
  app.route("/send", async (ws) => {
    await sendAll(ws, list, rng);
    // Returning closes with 1000.
  });
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  return { app, port, collected: collected.promise };
}

for (const { label, deflate } of VARIANTS) {
  test(`Nothing lost (${label}): a client's ${N} messages and clean close reach the handler, all and in order`, async () => {
    const rng = new Rng(0x1057 + Number(deflate));
    const list = messages(rng, N);
    const { app, port, collected } = await server({ deflate }, [], rng);
    const proxy = await choppingProxy(port, rng);
    try {
      const ws = await connect(`ws://127.0.0.1:${proxy.port}/collect`, { deflate, fragmentSize: 1000 });
      assert.equal(ws.extensions, deflate ? "permessage-deflate" : "");
      await within(sendAll(ws, list, rng), "sending", 20000);
      const closed = await within(ws.close(1000, "done"), "closing", 20000);
      assert.equal(closed.code, 1000);
      assert.equal(closed.wasClean, true);
      const result = await within(collected, "the handler's messages", 20000);
      assertSameMessages(result.messages, list, label);
      assert.equal(result.code, 1000);
      assert.equal(result.clean, true);
      console.log(
        `nothing lost (${label}): client -> server, ${N} messages through ${proxy.pieces()} TCP pieces`,
      );
    } finally {
      proxy.close();
      await app.close();
    }
  });

  test(`Nothing lost (${label}): a handler's ${N} messages and clean close reach the client, all and in order`, async () => {
    const rng = new Rng(0x2057 + Number(deflate));
    const list = messages(rng, N);
    const { app, port } = await server({ deflate, fragmentSize: 777 }, list, new Rng(1));
    const proxy = await choppingProxy(port, rng);
    try {
      const ws = await connect(`ws://127.0.0.1:${proxy.port}/send`, { deflate, pingInterval: 0 });
      const got: Message[] = [];
      await within(
        (async () => {
          for await (const message of ws) got.push(message);
        })(),
        "receiving",
        20000,
      );
      assertSameMessages(got, list, label);
      const closed = await ws.closed;
      assert.equal(closed.code, 1000);
      assert.equal(closed.wasClean, true);
      console.log(
        `nothing lost (${label}): server -> client, ${N} messages through ${proxy.pieces()} TCP pieces`,
      );
    } finally {
      proxy.close();
      await app.close();
    }
  });
}

test("Nothing lost: raw frames with pings inside fragmented messages, cut at random points, then a close", async () => {
  const rng = new Rng(0x3057);
  const list = messages(rng, N);
  const { app, port, collected } = await server({}, [], rng);
  try {
    const key = () => rng.key();
    const frames: Uint8Array[] = [];
    for (const message of list) {
      const bytes = typeof message === "string" ? new TextEncoder().encode(message) : message;
      const pieces = 1 + rng.int(4);
      for (let p = 0, at = 0; p < pieces; p++) {
        const end = p === pieces - 1 ? bytes.length : Math.min(bytes.length, at + rng.int(bytes.length + 1));
        const opcode = p > 0 ? 0 : typeof message === "string" ? 1 : 2;
        frames.push(buildFrame((p === pieces - 1 ? 0x80 : 0) | opcode, bytes.subarray(at, end), key()));
        if (rng.chance(0.3)) frames.push(buildFrame(rng.pick([0x89, 0x8a]), rng.bytes(rng.int(126)), key()));
        at = end;
      }
    }
    frames.push(buildFrame(0x88, new Uint8Array([0x03, 0xe8]), key()));
    const stream = joinBytes(frames);
    const peer = await RawPeer.upgraded(port, "/collect");
    const cuts = randomPieces(rng, stream, 1 + rng.int(3000));
    for (const piece of cuts) {
      await peer.write(piece);
      if (rng.chance(0.05)) await sleep(0);
    }
    const result = await within(collected, "the handler's messages", 20000);
    assertSameMessages(result.messages, list, "raw");
    assert.equal(result.code, 1000);
    assert.equal(result.clean, true);
    assert.ok(await peer.endedWithin(5000), "the server closed the connection after the close handshake");
    peer.destroy();
    console.log(
      `nothing lost (raw): ${N} messages in ${frames.length} frames, written in ${cuts.length} pieces`,
    );
  } finally {
    await app.close();
  }
});
