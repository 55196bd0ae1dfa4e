// Hostile opening handshakes against a real Sock over loopback TCP: every one is answered with the
// right HTTP status (or dropped at the handshake timeout) and the connection closed, no handler runs,
// and nothing from the request comes back in a response. The core's own checks are unit-tested in
// http_test.ts, handshake_test.ts and server_protocol_test.ts; this proves the server applies them.

import { test } from "node:test";
import assert from "node:assert/strict";
import { Sock, type SockOptions } from "../src/server.ts";
import { ServerProtocol } from "../src/core/server_protocol.ts";
import { latin1Bytes, upgradeRequest, type UpgradeRequestOptions } from "./_helpers.ts";
import { RawPeer, sleep } from "./_hardening.ts";

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
    await peer.until((text) => text.includes("\r\n\r\n"), 5000);
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(peer.text)?.[1] ?? 0);
    const ending = status === 101 ? undefined : await peer.endedWithin(5000);
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
    const trickle = async () => {
      // One byte every 100 ms: the head would take over 15 s.
      const peer = await RawPeer.open(port);
      const start = performance.now();
      for (let i = 0; i < bytes.length && !peer.ending; i++) {
        await peer.write(bytes.subarray(i, i + 1));
        await Promise.race([sleep(100), peer.ended]);
      }
      await peer.endedWithin(5000);
      peer.destroy();
      return { ms: performance.now() - start, ending: peer.ending, answer: peer.text };
    };
    const stall = async (sent: Uint8Array) => {
      const peer = await RawPeer.open(port);
      const start = performance.now();
      await peer.write(sent);
      const ending = await peer.endedWithin(5000);
      peer.destroy();
      return { ms: performance.now() - start, ending, answer: peer.text };
    };
    const results = await Promise.all([
      trickle(),
      stall(bytes.subarray(0, bytes.length - 2)), // all but the final CRLF
      stall(new Uint8Array(0)), // nothing at all
    ]);
    for (const [i, label] of ["one byte per 100 ms", "a head without its blank line", "silence"].entries()) {
      const { ms, ending, answer } = results[i];
      console.log(`handshake: ${label} -> closed after ${Math.round(ms)} ms (handshakeTimeout ${timeout})`);
      assert.ok(ending, `${label}: closed`);
      assert.equal(answer, "", `${label}: dropped without an answer`);
      assert.ok(ms >= timeout - 50 && ms < timeout + 2000, `${label}: closed after ${ms} ms`);
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
  const { app, port } = await server({ ...limits, protocols: ["chat"] });
  try {
    const n = 16 << 10;
    const cases: [string, [string, string], number][] = [
      ["extension params a;a;a…", ["Sec-WebSocket-Extensions", "x" + ";a".repeat(n / 2)], 101],
      ["extension commas ,,,…", ["Sec-WebSocket-Extensions", ",".repeat(n)], 101],
      ["extension escapes \\a\\a…", ["Sec-WebSocket-Extensions", 'x; p="' + "\\a".repeat(n / 2) + '"'], 101],
      ["an unterminated quoted string", ["Sec-WebSocket-Extensions", 'x; p="' + "a".repeat(n)], 400],
      ["extension = chains", ["Sec-WebSocket-Extensions", "x; p=" + "=".repeat(n)], 400],
      ["8192 subprotocols a,a,…", ["Sec-WebSocket-Protocol", "a,".repeat(n / 2)], 101],
      ["a 16 KiB subprotocol", ["Sec-WebSocket-Protocol", "a".repeat(n)], 101],
      ["subprotocols with spaces", ["Sec-WebSocket-Protocol", "a ".repeat(n / 2) + "b"], 400],
    ];
    for (const [label, header, status] of cases) {
      const bytes = latin1Bytes(request({ extra: [header] }));
      // The core's time to parse and check the head, median of 9 runs.
      const times: number[] = [];
      for (let i = 0; i < 9; i++) {
        const core = new ServerProtocol(limits);
        const start = performance.now();
        core.receiveData(bytes);
        core.events();
        times.push(performance.now() - start);
      }
      const median = times.sort((a, b) => a - b)[4];
      const start = performance.now();
      const answer = await exchange(port, bytes);
      const total = performance.now() - start;
      console.log(
        `handshake: ${label} (${bytes.length} bytes) -> ${answer.status}; core parse ${
          median.toFixed(2)
        } ms, ` +
          `round trip ${total.toFixed(1)} ms`,
      );
      assert.equal(answer.status, status, label);
      assert.ok(median < 50, `${label}: parsing took ${median} ms`);
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
    upgrade: (request) => {
      const { mode, value } = request.params;
      if (mode === "header") return { headers: { "X-Room": value } };
      if (mode === "reject") return { reject: { status: 401, headers: { "X-Why": value }, body: value } };
      if (mode === "name") return { headers: { [value]: "1" } };
      if (mode === "protocol") return { protocol: value };
      return undefined;
    },
  });
  app.route("/:mode/:value", (ws) => ws.close());
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const injected = encodeURIComponent(`x\r\n${marker}`);
    const cases: [string, string, number][] = [
      ["a hook copying a param into a header", request({ target: `/header/${injected}` }), 500],
      ["a hook copying a param into a rejection header", request({ target: `/reject/${injected}` }), 500],
      ["a hook using a param as a header name", request({ target: `/name/${injected}` }), 500],
      ["a hook choosing a subprotocol not offered", request({ target: `/protocol/${injected}` }), 500],
      ["a malformed percent-encoding", request({ target: "/header/%E0%A4%A" }), 400],
      ["a target with CRLF escapes and no route", request({ target: `/${injected}` }), 404],
      [
        "a subprotocol that is no token",
        request({ target: "/x/y", extra: [["Sec-WebSocket-Protocol", "a b"]] }),
        400,
      ],
      [
        "header values the server never echoes",
        request({ target: "/x/y", extra: [["X-Evil", marker]] }),
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
