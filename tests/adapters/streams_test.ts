import { test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "../../src/client.ts";
import { ConnectionClosed } from "../../src/connection/closed.ts";
import { Sock } from "../../src/server/sock.ts";
import { detectAdapter } from "../../src/adapters/mod.ts";
import { streamAdapter, type StreamPair, streamTransport } from "../../src/adapters/streams.ts";
import type { Endpoint, Transport } from "../../src/transport.ts";
import { within } from "../_helpers.ts";
import { pull } from "../_pull.ts";

/** An echo server on a free loopback port, and a route that closes with 4001 "bye". */
async function echoServer() {
  const app = new Sock({ maxMessageSize: 32 << 20 });
  app.route("/echo", async (ws) => {
    for await (const message of ws) await ws.send(message);
  });
  app.route("/bye", async (ws) => {
    await ws.close(4001, "bye");
  });
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  return { port, url: `ws://127.0.0.1:${port}`, stop: () => app.close(2000) };
}

/**
 * A runtime transport as a stream pair, the way an edge runtime's socket API
 * presents one: a default stream, or a byte stream (read with a BYOB reader).
 */
function pairOf(transport: Transport, kind: "default" | "bytes"): StreamPair {
  const reads = pull(transport);
  const writable = new WritableStream<Uint8Array>({
    write: (chunk) => transport.write([chunk]),
    close: () => transport.close(),
    abort: () => transport.close(),
  });
  if (kind === "default") {
    const readable = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const bytes = await reads.read();
        if (bytes === null) controller.close();
        else controller.enqueue(bytes);
      },
      cancel: () => transport.close(),
    });
    return { readable, writable };
  }
  const readable = new ReadableStream({
    type: "bytes",
    async pull(controller) {
      const bytes = await reads.read();
      if (bytes === null) {
        controller.close();
        controller.byobRequest?.respond(0);
      } else {
        // enqueue() transfers the buffer; copy, so a runtime's own buffer is never detached.
        controller.enqueue(bytes.slice());
      }
    },
    cancel: () => transport.close(),
  });
  return { readable, writable };
}

for (const kind of ["default", "bytes"] as const) {
  test(`connect() through streamAdapter over a ${kind} stream pair: echo, then close both ways`, async () => {
    const server = await echoServer();
    const opened: Endpoint[] = [];
    const adapter = streamAdapter(async (endpoint) => {
      opened.push(endpoint);
      return pairOf(await detectAdapter().connect(endpoint), kind);
    });
    try {
      const ws = await within(connect(`${server.url}/echo`, { adapter }), "connect");
      assert.deepEqual(opened, [{ hostname: "127.0.0.1", port: server.port, tls: undefined }]);
      await within(ws.send("héllo ✓ 🌍"), "send text");
      assert.equal(await within(ws.receive(), "echo text"), "héllo ✓ 🌍");
      for (const size of [0, 125, 126, 65536, 1 << 20]) {
        const payload = new Uint8Array(size).map((_, i) => i * 31 + (i >> 8));
        await within(ws.send(payload), `send ${size}`);
        assert.deepEqual(await within(ws.receive(), `echo ${size}`), payload, `size ${size}`);
      }
      const closed = await within(ws.close(4000, "done"), "client close");
      assert.equal(closed.code, 4000);
      assert.equal(closed.wasClean, true);
      assert.deepEqual(closed.sent, { code: 4000, reason: "done" });

      const bye = await within(connect(`${server.url}/bye`, { adapter }), "connect /bye");
      const error = await within(bye.receive().then(() => undefined, (e) => e), "server close");
      assert.ok(error instanceof ConnectionClosed);
      assert.equal(error.code, 4001);
      assert.equal(error.reason, "bye");
      assert.equal((await within(bye.closed, "closed")).wasClean, true);
    } finally {
      await server.stop();
    }
  });
}

test("streamAdapter is client-only: listen rejects with a TypeError", async () => {
  const adapter = streamAdapter(() => Promise.reject(new Error("not called")));
  assert.equal(adapter.name, "streams");
  await assert.rejects(adapter.listen({ hostname: "127.0.0.1", port: 0 }, () => {}), TypeError);
});

test("streamAdapter reports the endpoint as the remote address and passes tls to open", async () => {
  const seen: Endpoint[] = [];
  const adapter = streamAdapter((endpoint) => {
    seen.push(endpoint);
    return new TransformStream<Uint8Array, Uint8Array>();
  });
  const transport = await adapter.connect({ hostname: "example.test", port: 443, tls: true });
  assert.deepEqual(seen, [{ hostname: "example.test", port: 443, tls: true }]);
  assert.deepEqual(transport.remoteAddress, { hostname: "example.test", port: 443 });
  assert.equal(transport.localAddress, undefined);
  transport.close();
});

test("streamTransport copies chunks of a default stream, whose source may reuse its buffer", async () => {
  const source = (shared: Uint8Array) => {
    let n = 0;
    return new ReadableStream<Uint8Array>({
      pull(controller) {
        // The same buffer every time, overwritten: legal for a source, fatal without a copy.
        shared.fill(++n);
        if (n > 3) controller.close();
        else controller.enqueue(shared);
      },
    }, { highWaterMark: 0 });
  };
  const shared = new Uint8Array(8);
  const copying = pull(streamTransport({ readable: source(shared), writable: new WritableStream() }));
  const kept = [await copying.read(), await copying.read(), await copying.read()];
  assert.deepEqual(kept.map((bytes) => bytes?.[0]), [1, 2, 3]);
  assert.ok(kept.every((bytes) => bytes !== shared));
  assert.equal(await copying.read(), null);

  const trusting = streamTransport({ readable: source(shared), writable: new WritableStream() }, {
    copy: false,
  });
  assert.equal(await pull(trusting).read(), shared, "copy: false hands the chunk over as is");
  trusting.close();
});

test("streamTransport reads a byte stream into buffers the caller may keep", async () => {
  let n = 0;
  const readable = new ReadableStream({
    type: "bytes",
    pull(controller) {
      n++;
      if (n > 3) {
        controller.close();
        controller.byobRequest?.respond(0);
        return;
      }
      // Small reads and a large one, each handed over to a sink that keeps it.
      controller.enqueue(new Uint8Array(n === 2 ? 70000 : 10).fill(n));
    },
  });
  const transport = pull(streamTransport({ readable, writable: new WritableStream() }));
  const kept: Uint8Array[] = [];
  let total = 0;
  while (true) {
    const bytes = await within(transport.read(), "read");
    if (bytes === null) break;
    kept.push(bytes);
    total += bytes.length;
  }
  assert.equal(total, 10 + 70000 + 10);
  assert.equal(kept[0].length, 10);
  assert.ok(kept[0].every((b) => b === 1), "the first small read is intact after later reads");
  assert.ok(kept.at(-1)!.every((b) => b === 3));
  assert.ok(kept.slice(1, -1).every((bytes) => bytes.every((b) => b === 2)));
});

test("streamTransport.write resolves only once the sink took every chunk (backpressure)", async () => {
  const taken: number[] = [];
  let release: (() => void) | undefined;
  const writable = new WritableStream<Uint8Array>({
    write(chunk) {
      taken.push(chunk.length);
      return new Promise<void>((resolve) => release = resolve);
    },
  });
  const transport = streamTransport({ readable: new ReadableStream(), writable });
  let done = false;
  const write = Promise.resolve(transport.write([new Uint8Array(1), new Uint8Array(0), new Uint8Array(2)]))
    .then(() => done = true);
  for (const expected of [[1], [1, 2]]) {
    await within(new Promise<void>((resolve) => setTimeout(resolve, 10)), "tick");
    assert.deepEqual(taken, expected, "empty chunks are skipped; the next waits for the sink");
    assert.equal(done, false);
    release!();
  }
  await within(write, "write");
  assert.equal(done, true);
  transport.close();
});

test("streamTransport.close ends reading, closes the writable, calls pair.close once", async () => {
  const events: string[] = [];
  const pair: StreamPair = {
    readable: new ReadableStream({ cancel: () => void events.push("cancel") }),
    writable: new WritableStream({ close: () => void events.push("close writable") }),
    close: () => void events.push("pair.close"),
  };
  const transport = streamTransport(pair);
  const reads = pull(transport);
  const pending = reads.read();
  transport.close();
  transport.close();
  assert.equal(await within(pending, "pending read"), null);
  assert.equal(await reads.read(), null);
  await assert.rejects(async () => await transport.write([new Uint8Array(1)]), TypeError);
  await within(new Promise<void>((resolve) => setTimeout(resolve, 10)), "tick");
  assert.deepEqual(events, ["cancel", "pair.close", "close writable"]);
});

test("streamTransport ends reading on an errored stream, and on chunks that are not bytes", async () => {
  const errored = streamTransport({
    readable: new ReadableStream({ start: (controller) => controller.error(new Error("reset")) }),
    writable: new WritableStream({ write: () => Promise.reject(new Error("broken pipe")) }),
  });
  assert.equal(await pull(errored).read(), null);
  await assert.rejects(async () => await errored.write([new Uint8Array(1)]), /broken pipe/);
  errored.close();

  const strings = streamTransport({
    readable: new ReadableStream<unknown>({
      start: (controller) => controller.enqueue("text"),
    }) as ReadableStream<Uint8Array>,
    writable: new WritableStream(),
  });
  const delivered: unknown[] = [];
  const ended = Promise.withResolvers<void>();
  strings.start({ data: (chunk) => (delivered.push(chunk), false), end: ended.resolve });
  await within(ended.promise, "the end of the stream");
  assert.deepEqual(delivered, [], "a chunk that is not bytes never reaches the sink");
  strings.close();
});
