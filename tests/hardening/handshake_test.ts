// Hostile opening handshakes against a real Sock over loopback TCP: every one is answered with the
// right HTTP status (or dropped at the handshake timeout) and the connection closed, no handler runs,
// and nothing from the request comes back in a response. The core's own checks are unit-tested in
// http_test.ts, handshake_test.ts and server_protocol_test.ts; this proves the server applies them.

import { test } from "node:test";
import assert from "node:assert/strict";
import { Sock, type SockOptions } from "../../src/server/sock.ts";
import type { Adapter, Transport, TransportSink } from "../../src/transport.ts";
import { ServerProtocol } from "../../src/core/server_protocol.ts";
import {
  buildFrame,
  joinBytes,
  latin1Bytes,
  upgradeRequest,
  type UpgradeRequestOptions,
} from "../_helpers.ts";
import { RawPeer, serverFrames, sleep, SLOW_PEERS, slowPeers } from "../_hardening.ts";

/** A Sock on a free loopback port whose handler and upgrade hook count the connections they see. */
async function server(options: SockOptions = {}) {
  const seen = { handlers: 0, upgrades: 0, errors: [] as unknown[] };
  const app = new Sock({
    pingInterval: 0,
    ...options,
    upgrade: options.upgrade ?? (() => void seen.upgrades++),
    onError: (error) => seen.errors.push(error),
  });
  app.route("/chat", async (ws) => {
    seen.handlers++;
    for await (const message of ws) await ws.send(message);
  });
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  return { app, port, seen };
}

/**
 * The server's answer to `bytes`: status, head and body; after anything but a 101, read until the
 * server closes the connection (at most 5 s) and say how it did.
 */
async function exchange(port: number, bytes: Uint8Array | string) {
  const peer = await RawPeer.open(port);
  try {
    await peer.write(typeof bytes === "string" ? latin1Bytes(bytes) : bytes);
    await peer.until((text) => text.includes("\r\n\r\n"), 20000);
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(peer.text)?.[1] ?? 0);
    const ending = status === 101 ? undefined : await peer.endedWithin(20000);
    const text = peer.text;
    const end = text.indexOf("\r\n\r\n");
    return {
      status,
      head: end < 0 ? text : text.slice(0, end),
      body: end < 0 ? "" : text.slice(end + 4),
      ending,
    };
  } finally {
    peer.destroy();
  }
}

const request = (options: UpgradeRequestOptions) => upgradeRequest({ target: "/chat", ...options });

test("Hostile handshakes: oversized heads, overlong lines and too many fields get 431 or 414, then TCP close", async () => {
  const { app, port, seen } = await server();
  try {
    const filler = (n: number, size: number) =>
      Array.from({ length: n }, (_, i) => [`X-Filler-${i}`, "f".repeat(size)] as [string, string]);
    const cases: [string, string, number][] = [
      ["a 20 KiB head of 100 fields", request({ extra: filler(100, 190) }), 431],
      ["a 9000-byte request line", request({ target: "/chat?" + "q".repeat(9000) }), 414],
      ["a 9000-byte header line", request({ extra: [["X-Long", "v".repeat(9000)]] }), 431],
      ["129 header fields", request({ extra: filler(124, 1) }), 431],
      ["1 MiB without a line end", "GET /chat HTTP/1.1\r\nX: " + "a".repeat(1 << 20), 431],
      ["1 MiB of blank-free lines", "GET /chat HTTP/1.1\r\n" + "X: y\r\n".repeat(180_000), 431],
    ];
    for (const [label, bytes, status] of cases) {
      const answer = await exchange(port, bytes);
      assert.equal(answer.status, status, label);
      assert.match(answer.head, /\r\nConnection: close(\r\n|$)/, label);
      assert.ok(answer.ending, `${label}: the server closed the connection`);
      console.log(`handshake: ${label} -> ${answer.status}, then ${answer.ending}`);
    }
    assert.equal(seen.upgrades + seen.handlers, 0, "no hook or handler ran");
    assert.deepEqual(seen.errors, []);
  } finally {
    await app.close();
  }
});

test("Hostile handshakes: slowloris, an unfinished head and silence are dropped at handshakeTimeout", async () => {
  const timeout = 600;
  const { app, port, seen } = await server({ handshakeTimeout: timeout });
  try {
    const bytes = latin1Bytes(request({}));
    const results = await slowPeers(port, bytes);
    for (const [i, label] of SLOW_PEERS.entries()) {
      const { ms, ending, answer } = results[i];
      console.log(`handshake: ${label} -> closed after ${Math.round(ms)} ms (handshakeTimeout ${timeout})`);
      assert.ok(ending, `${label}: closed`);
      assert.equal(answer, "", `${label}: dropped without an answer`);
      // Not at once (the server's clock starts at its accept, which a busy machine may run well
      // before this process sees its connect, so the lower bound is half the timeout); after it,
      // as soon as a busy machine gets to it: a generous bound, a few times the timeout plus seconds.
      assert.ok(ms >= timeout / 2 && ms < 4 * timeout + 3000, `${label}: closed after ${ms} ms`);
    }
    assert.equal(seen.handlers, 0);
  } finally {
    await app.close();
  }
});

test("Hostile handshakes: NUL, bare CR or LF, obs-fold and bad field names get 400", async () => {
  const { app, port, seen } = await server();
  try {
    const valid = request({});
    const cases: [string, string][] = [
      ["NUL in a value", request({ extra: [["X-A", "a\0b"]] })],
      ["a bare CR", valid.replace("Upgrade: websocket\r\n", "Upgrade: websocket\rX-A: b\r\n")],
      ["a bare LF", valid.replace("Upgrade: websocket\r\n", "Upgrade: websocket\n")],
      ["obs-fold", valid.replace("Upgrade: websocket\r\n", "Upgrade: websocket\r\n  , h2c\r\n")],
      ["whitespace before the colon", valid.replace("Upgrade: websocket", "Upgrade : websocket")],
      ["a field name that is no token", request({ extra: [["X(A)", "b"]] })],
      ["DEL in a value", request({ extra: [["X-A", "a\x7fb"]] })],
    ];
    for (const [label, bytes] of cases) {
      const answer = await exchange(port, bytes);
      assert.equal(answer.status, 400, label);
      assert.ok(answer.ending, `${label}: closed`);
    }
    assert.equal(seen.upgrades + seen.handlers, 0);
  } finally {
    await app.close();
  }
});

test("Hostile handshakes: duplicate or conflicting Key, Version and Host, other methods, versions and bodies", async () => {
  const { app, port, seen } = await server();
  try {
    const key = "Sec-WebSocket-Key";
    const cases: [string, string, number][] = [
      ["two keys", request({ extra: [[key, "AAAAAAAAAAAAAAAAAAAAAA=="]] }), 400],
      ["the same key twice", request({ extra: [[key, "dGhlIHNhbXBsZSBub25jZQ=="]] }), 400],
      ["a key of 15 bytes", request({ set: { [key]: "AAAAAAAAAAAAAAAAAAAA" } }), 400],
      ["no key", request({ set: { [key]: null } }), 400],
      ["versions 13 and 8", request({ extra: [["Sec-WebSocket-Version", "8"]] }), 426],
      ["version 13, 8 on one line", request({ set: { "Sec-WebSocket-Version": "13, 8" } }), 426],
      ["version 8", request({ set: { "Sec-WebSocket-Version": "8" } }), 426],
      ["two Hosts", request({ extra: [["Host", "evil.example"]] }), 400],
      ["an empty Host", request({ set: { Host: "" } }), 400],
      ["POST", request({ method: "POST" }), 405],
      ["PUT", request({ method: "PUT" }), 405],
      ["CONNECT", request({ method: "CONNECT" }), 405],
      ["HTTP/1.0", request({ version: "HTTP/1.0" }), 400],
      ["HTTP/2.0", request({ version: "HTTP/2.0" }), 505],
      ["a Content-Length body", request({ extra: [["Content-Length", "5"]] }) + "hello", 400],
      [
        "a chunked body",
        request({ extra: [["Transfer-Encoding", "chunked"]] }) + "5\r\nhello\r\n0\r\n\r\n",
        400,
      ],
    ];
    for (const [label, bytes, status] of cases) {
      const answer = await exchange(port, bytes);
      assert.equal(answer.status, status, label);
      if (status === 405) assert.match(answer.head, /\r\nAllow: GET/, label);
      if (status === 426) assert.match(answer.head, /\r\nSec-WebSocket-Version: 13/, label);
      assert.ok(answer.ending, `${label}: closed`);
    }
    assert.equal(seen.upgrades + seen.handlers, 0);
    const empty = await exchange(port, request({ extra: [["Content-Length", "0"]] }));
    assert.equal(empty.status, 101, "Content-Length: 0 is no body");
  } finally {
    await app.close();
  }
});

test("Hostile handshakes: 16 KiB pathological extension and subprotocol offers parse in linear time", async () => {
  const limits = { maxHeadSize: 64 << 10, maxLineLength: 32 << 10 };
  const { app, port } = await server({ ...limits, subprotocols: ["chat"] });
  try {
    const n = 16 << 10;
    // Each offer at a size: the test compares the same offer at n and at n / 16.
    const cases: [string, (n: number) => [string, string], number][] = [
      ["extension params a;a;a…", (n) => ["Sec-WebSocket-Extensions", "x" + ";a".repeat(n / 2)], 101],
      ["extension commas ,,,…", (n) => ["Sec-WebSocket-Extensions", ",".repeat(n)], 101],
      [
        "extension escapes \\a\\a…",
        (n) => ["Sec-WebSocket-Extensions", 'x; p="' + "\\a".repeat(n / 2) + '"'],
        101,
      ],
      ["an unterminated quoted string", (n) => ["Sec-WebSocket-Extensions", 'x; p="' + "a".repeat(n)], 400],
      ["extension = chains", (n) => ["Sec-WebSocket-Extensions", "x; p=" + "=".repeat(n)], 400],
      ["8192 subprotocols a,a,…", (n) => ["Sec-WebSocket-Protocol", "a,".repeat(n / 2)], 101],
      ["a 16 KiB subprotocol", (n) => ["Sec-WebSocket-Protocol", "a".repeat(n)], 101],
      ["subprotocols with spaces", (n) => ["Sec-WebSocket-Protocol", "a ".repeat(n / 2) + "b"], 400],
    ];
    /** How long the core takes to parse and check `bytes`, `times` times over. */
    const parse = (bytes: Uint8Array, times: number) => {
      const start = performance.now();
      for (let i = 0; i < times; i++) {
        const core = new ServerProtocol(limits);
        core.receiveData(bytes);
        core.events();
      }
      return performance.now() - start;
    };
    for (const [label, header, status] of cases) {
      const bytes = latin1Bytes(request({ extra: [header(n)] }));
      const small = latin1Bytes(request({ extra: [header(n / 16)] }));
      // Linear time: parsing the offer once costs about what parsing one 16 times smaller costs 16
      // times (less, as each of those also parses the rest of a head). Quadratic time would make
      // it 16 times that. A ratio of two measurements taken side by side, not a duration: on a
      // loaded machine both slow down alike. Median of 9 rounds, each long enough to measure.
      let times = 1;
      while (parse(bytes, times) < 2 && times < 1 << 12) times *= 2;
      const ratios: number[] = [], durations: number[] = [];
      for (let round = 0; round < 9; round++) {
        const once = parse(bytes, times);
        ratios.push(once / parse(small, times * 16));
        durations.push(once / times);
      }
      const ratio = ratios.sort((a, b) => a - b)[4];
      const median = durations.sort((a, b) => a - b)[4];
      const start = performance.now();
      const answer = await exchange(port, bytes);
      const total = performance.now() - start;
      console.log(
        `handshake: ${label} (${bytes.length} bytes) -> ${answer.status}; core parse ${
          median.toFixed(3)
        } ms, ${ratio.toFixed(2)}× sixteen of a sixteenth; round trip ${total.toFixed(1)} ms`,
      );
      assert.equal(answer.status, status, label);
      assert.ok(ratio < 4, `${label}: parsing it took ${ratio.toFixed(2)}× parsing 1/16 of it 16 times`);
    }
  } finally {
    await app.close();
  }
});

test("Hostile handshakes: an Origin outside the allow-list gets 403 before any hook or handler", async () => {
  const { app, port, seen } = await server({ origins: ["https://good.example"] });
  try {
    const origin = (value: string) => ["Origin", value] as [string, string];
    const cases: [string, string][] = [
      ["an unknown Origin", request({ extra: [origin("https://evil.example")] })],
      ["no Origin", request({})],
      ["Origin: null", request({ extra: [origin("null")] })],
      [
        "the allowed Origin twice",
        request({ extra: [origin("https://good.example"), origin("https://good.example")] }),
      ],
      ["the allowed Origin as a prefix", request({ extra: [origin("https://good.example.evil.example")] })],
      ["the allowed Origin in another case", request({ extra: [origin("https://GOOD.example")] })],
    ];
    for (const [label, bytes] of cases) {
      const answer = await exchange(port, bytes);
      assert.equal(answer.status, 403, label);
      assert.ok(!answer.body.includes("evil"), `${label}: the Origin is not echoed`);
    }
    assert.equal(seen.upgrades + seen.handlers, 0, "no hook or handler ran");
    const good = await exchange(port, request({ extra: [origin("https://good.example")] }));
    assert.equal(good.status, 101);
  } finally {
    await app.close();
  }
});

test("Hostile handshakes: nothing from the request is reflected into a response unchecked", async () => {
  const errors: unknown[] = [];
  const marker = "Set-Cookie: pwned=1";
  const app = new Sock({
    pingInterval: 0,
    onError: (error) => errors.push(error),
    // An application that copies request data into its answer: sock must refuse CR, LF and NUL.
    // (Route parameters cannot hold them, so the value comes from the query, decoded by the app.)
    upgrade: (request) => {
      const { mode } = request.params;
      const value = decodeURIComponent(request.upgrade.query);
      if (mode === "header") return { headers: { "X-Room": value } };
      if (mode === "reject") return { reject: { status: 401, headers: { "X-Why": value }, body: value } };
      if (mode === "name") return { headers: { [value]: "1" } };
      if (mode === "protocol") return { subprotocol: value };
      return undefined;
    },
  });
  app.route("/:mode", (ws) => ws.close());
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const injected = encodeURIComponent(`x\r\n${marker}`);
    const cases: [string, string, number][] = [
      ["a hook copying the query into a header", request({ target: `/header?${injected}` }), 500],
      ["a hook copying the query into a rejection header", request({ target: `/reject?${injected}` }), 500],
      ["a hook using the query as a header name", request({ target: `/name?${injected}` }), 500],
      ["a hook choosing a subprotocol not offered", request({ target: `/protocol?${injected}` }), 500],
      ["a malformed percent-encoding", request({ target: "/%E0%A4%A" }), 400],
      ["a route parameter with CRLF escapes", request({ target: `/${injected}` }), 400],
      ["a target with CRLF escapes and no route", request({ target: `/x/${injected}` }), 404],
      [
        "a subprotocol that is no token",
        request({ target: "/x", extra: [["Sec-WebSocket-Protocol", "a b"]] }),
        400,
      ],
      [
        "header values the server never echoes",
        request({ target: "/x", extra: [["X-Evil", marker]] }),
        101,
      ],
    ];
    for (const [label, bytes, status] of cases) {
      const answer = await exchange(port, bytes);
      assert.equal(answer.status, status, label);
      assert.ok(!answer.head.includes("pwned"), `${label}: nothing injected: ${answer.head}`);
      for (const line of answer.head.split("\r\n").slice(1)) {
        assert.match(
          line,
          /^(Content-Type|Content-Length|Connection|Upgrade|Sec-WebSocket-Accept): /,
          `${label}: only the server's own headers`,
        );
      }
    }
    // The application's mistakes surface as errors to it, not as bytes on the wire.
    assert.equal(errors.length, 4);
    assert.ok(errors.every((error) => error instanceof TypeError));
  } finally {
    await app.close();
  }
});

test("Hostile handshakes: a head with 100 KiB of frames in the same write is answered 101 on every runtime, without a server error", async () => {
  // Bun hands the server the whole write in one read, Deno 1 KiB first: the answer must not depend on it.
  const { app, port, seen } = await server({
    upgrade: async () => {
      await sleep(5);
      seen.upgrades++;
    },
  });
  try {
    const frames = Array.from(
      { length: 100 },
      (_, i) => buildFrame(0x82, new Uint8Array(1024).fill(i), [1, 2, 3, 4]),
    );
    const peer = await RawPeer.open(port);
    try {
      await peer.write(joinBytes([latin1Bytes(request({})), ...frames]));
      // Every frame comes back: the early ones were kept and delivered after the 101.
      await peer.until(() => serverFrames(peer.received).frames.length >= frames.length, 10000);
      assert.match(peer.text, /^HTTP\/1\.1 101 /);
      const echoed = serverFrames(peer.received).frames;
      assert.equal(echoed.length, frames.length);
      assert.ok(echoed.every((frame, i) => frame.payload.length === 1024 && frame.payload[0] === i));
    } finally {
      peer.destroy();
    }
    await sleep(50);
    assert.deepEqual(seen.errors, []);
    assert.equal(seen.upgrades, 1);
  } finally {
    await app.close();
  }
});

/** An adapter whose one connection reads `input` in a single read, then waits for close(); records what is written. */
function oneReadAdapter(input: Uint8Array) {
  const written: Uint8Array[] = [];
  const closed = Promise.withResolvers<null>();
  let sink: TransportSink | undefined;
  const transport: Transport = {
    start: (s) => {
      sink = s;
      queueMicrotask(() => s.data(input.slice()));
    },
    pause: () => {},
    resume: () => {},
    write: (chunks) => void written.push(...chunks.map((chunk) => chunk.slice())),
    close: () => {
      closed.resolve(null);
      sink?.end();
      sink = undefined;
    },
    hints: {},
    remoteAddress: undefined,
    localAddress: undefined,
  };
  const adapter: Adapter = {
    name: "one read",
    listen: (_endpoint, onConnection) => {
      setTimeout(() => onConnection(transport), 0);
      return Promise.resolve({ address: { hostname: "127.0.0.1", port: 1 }, close: () => {} });
    },
    connect: () => Promise.reject(new Error("not used")),
  };
  return { adapter, written, closed: closed.promise };
}

test("Hostile handshakes: early data beyond the limit in the head's own read gets 400, and no hook runs", async () => {
  // More than any built-in adapter reads at once, from an adapter that reads it all in one go.
  const { adapter, written, closed } = oneReadAdapter(
    joinBytes([latin1Bytes(request({})), new Uint8Array((512 << 10) + 1)]),
  );
  const { app, seen } = await server({ adapter });
  try {
    await closed;
    assert.match(new TextDecoder().decode(joinBytes(written)), /^HTTP\/1\.1 400 /);
    assert.deepEqual(seen.errors, []);
    assert.equal(seen.upgrades + seen.handlers, 0);
  } finally {
    await app.close();
  }
});

test("Hostile handshakes: an upgrade hook outliving handshakeTimeout is still answered (the timeout is the head's)", async () => {
  for (const [decision, status] of [[undefined, 101], [{ reject: { status: 401 } }, 401]] as const) {
    const { app, port, seen } = await server({
      handshakeTimeout: 100,
      upgrade: async () => {
        await sleep(400);
        seen.upgrades++;
        return decision;
      },
    });
    try {
      const answer = await exchange(port, request({}));
      assert.equal(answer.status, status);
      assert.equal(seen.upgrades, 1);
      assert.deepEqual(seen.errors, []);
    } finally {
      await app.close();
    }
  }
});
