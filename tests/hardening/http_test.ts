// Hostile plain HTTP requests against a real Sock with `fetch`, over loopback TCP: SECURITY.md's
// handshake table applied to requests that are not upgrades, plus the framing attacks of request
// smuggling. Each is answered with the right status (or dropped at the head's timeout) and the
// connection closed; the handler never sees it, nor a request smuggled behind it. The core's
// rules are unit-tested in tests/core/http_server_test.ts; this proves the server applies them.

import { test } from "node:test";
import assert from "node:assert/strict";
import { Sock, type SockOptions } from "../../src/server/sock.ts";
import { latin1Bytes } from "../_helpers.ts";
import { RawPeer, SLOW_PEERS, slowPeers } from "../_hardening.ts";

/** A Sock with `fetch` on a free loopback port, recording the paths its handler sees. */
async function server(options: SockOptions = {}) {
  const seen = { paths: [] as string[], errors: [] as unknown[] };
  const app = new Sock({
    pingInterval: 0,
    maxBodySize: 1024,
    fetch: async (request) => {
      const url = new URL(request.url);
      seen.paths.push(url.pathname);
      if (url.pathname === "/reflect") {
        // An application copying request data into a header: the Headers class refuses CR and LF.
        return new Response("x", { headers: { "X-Query": decodeURIComponent(url.search.slice(1)) } });
      }
      return new Response(request.body ? `read ${(await request.arrayBuffer()).byteLength}` : "ok");
    },
    ...options,
    onError: (error) => seen.errors.push(error),
  });
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  return { app, port, seen };
}

/** Everything the server answers to `bytes`, read until it closes the connection (at most 20 s). */
async function exchange(port: number, bytes: string) {
  const peer = await RawPeer.open(port);
  try {
    await peer.write(latin1Bytes(bytes));
    const ending = await peer.endedWithin(20000);
    const text = peer.text;
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
    const end = text.indexOf("\r\n\r\n");
    return { status, head: end < 0 ? text : text.slice(0, end), text, ending };
  } finally {
    peer.destroy();
  }
}

const get = (target = "/", extra = "") => `GET ${target} HTTP/1.1\r\nHost: a\r\n${extra}\r\n`;
const post = (extra: string, body: string) => `POST /upload HTTP/1.1\r\nHost: a\r\n${extra}\r\n${body}`;
/** A valid request behind a hostile one: it must never reach the handler. */
const SMUGGLED = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";

test("Hostile HTTP: heads over the limits get 431 or 414, then TCP close", async () => {
  const { app, port, seen } = await server();
  try {
    const filler = (n: number, size: number) =>
      Array.from({ length: n }, (_, i) => `X-Filler-${i}: ${"f".repeat(size)}\r\n`).join("");
    const cases: [string, string, number][] = [
      ["a 20 KiB head of 100 fields", get("/", filler(100, 190)), 431],
      ["a 9000-byte request line", get("/?" + "q".repeat(9000)), 414],
      ["a 9000-byte header line", get("/", `X-Long: ${"v".repeat(9000)}\r\n`), 431],
      ["129 header fields", get("/", filler(128, 1)), 431],
      ["1 MiB without a line end", "GET / HTTP/1.1\r\nX: " + "a".repeat(1 << 20), 431],
    ];
    for (const [label, bytes, status] of cases) {
      const answer = await exchange(port, bytes + SMUGGLED);
      assert.equal(answer.status, status, label);
      assert.match(answer.head, /\r\nConnection: close(\r\n|$)/, label);
      assert.ok(answer.ending, `${label}: the server closed the connection`);
    }
    assert.deepEqual(seen.paths, [], "the handler saw none of them");
    assert.deepEqual(seen.errors, []);
  } finally {
    await app.close();
  }
});

test("Hostile HTTP: malformed and ambiguous requests get 400 (or 501, 505) and close; nothing behind them is read", async () => {
  const { app, port, seen } = await server();
  try {
    const cases: [string, string, number][] = [
      ["NUL in a value", get("/", "X-A: a\0b\r\n"), 400],
      ["DEL in a value", get("/", "X-A: a\x7fb\r\n"), 400],
      ["a bare CR", "GET / HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n", 400],
      ["a bare LF", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400],
      ["obs-fold", get("/", "X-A: a\r\n  b\r\n"), 400],
      ["whitespace before the colon", get("/", "X-A : b\r\n"), 400],
      ["a field name that is no token", get("/", "X(A): b\r\n"), 400],
      ["two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400],
      ["no Host", "GET / HTTP/1.1\r\n\r\n", 400],
      ["HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505],
      ["a version that is no version", "GET / HTTP/x\r\nHost: a\r\n\r\n", 400],
      ["a target that is no path", "GET chat HTTP/1.1\r\nHost: a\r\n\r\n", 400],
      [
        "Content-Length and Transfer-Encoding (CL.TE)",
        post("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"),
        400,
      ],
      [
        "Transfer-Encoding and Content-Length (TE.CL)",
        post("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", "0\r\n\r\n"),
        400,
      ],
      ["two Content-Lengths", post("Content-Length: 1\r\nContent-Length: 1\r\n", "x"), 400],
      ["Content-Length: 1, 1", post("Content-Length: 1, 1\r\n", "x"), 400],
      ["Content-Length: +1", post("Content-Length: +1\r\n", "x"), 400],
      ["Content-Length: -1", post("Content-Length: -1\r\n", "x"), 400],
      ["Content-Length in hex", post("Content-Length: 0x1\r\n", "x"), 400],
      ["Transfer-Encoding: xchunked", post("Transfer-Encoding: xchunked\r\n", "0\r\n\r\n"), 400],
      [
        "Transfer-Encoding: chunked, identity",
        post("Transfer-Encoding: chunked, identity\r\n", "0\r\n\r\n"),
        400,
      ],
      [
        "Transfer-Encoding: chunked twice",
        post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"),
        400,
      ],
      ["Transfer-Encoding: gzip, chunked", post("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n"), 501],
      [
        "Transfer-Encoding in HTTP/1.0",
        "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
      ],
      ["a chunk size in hex with 0x", post("Transfer-Encoding: chunked\r\n", "0x1\r\nx\r\n0\r\n\r\n"), 400],
      [
        "a chunk size with a space before it",
        post("Transfer-Encoding: chunked\r\n", " 1\r\nx\r\n0\r\n\r\n"),
        400,
      ],
      [
        "a chunk size line ending in a bare LF",
        post("Transfer-Encoding: chunked\r\n", "1\nx\r\n0\r\n\r\n"),
        400,
      ],
      [
        "chunk data longer than its size",
        post("Transfer-Encoding: chunked\r\n", "1\r\nxx\r\n0\r\n\r\n"),
        400,
      ],
      [
        "a chunk size of 2^64 (over maxBodySize)",
        post("Transfer-Encoding: chunked\r\n", "10000000000000000\r\nx\r\n0\r\n\r\n"),
        413,
      ],
    ];
    for (const [label, bytes, status] of cases) {
      const answer = await exchange(port, bytes + SMUGGLED);
      assert.equal(answer.status, status, `${label}: ${answer.text.slice(0, 80)}`);
      assert.match(answer.head, /\r\nConnection: close(\r\n|$)/, label);
      assert.ok(answer.ending, `${label}: closed`);
      assert.equal(
        answer.text.split("HTTP/1.1 ").length,
        2,
        `${label}: one answer, nothing for the bytes behind it`,
      );
    }
    // The bad chunk cases reach the handler (their heads are valid): the body read fails there.
    assert.ok(!seen.paths.includes("/smuggled"), "no smuggled request was served");
    assert.deepEqual(seen.paths.filter((path) => path !== "/upload"), []);
  } finally {
    await app.close();
  }
});

test("Hostile HTTP: a body over maxBodySize gets 413, by Content-Length before the handler runs", async () => {
  const { app, port, seen } = await server({ maxBodySize: 1024 });
  try {
    const answer = await exchange(port, post("Content-Length: 1025\r\n", "x".repeat(1025)) + SMUGGLED);
    assert.equal(answer.status, 413);
    assert.ok(answer.ending);
    const chunked = await exchange(
      port,
      post("Transfer-Encoding: chunked\r\n", "400\r\n" + "x".repeat(1024) + "\r\n1\r\nx\r\n0\r\n\r\n") +
        SMUGGLED,
    );
    assert.ok(chunked.ending, "closed");
    // The chunked body's head was valid: its handler ran, and its read of the body failed (500).
    assert.deepEqual(seen.paths, ["/upload"]);
    assert.ok(!chunked.text.includes("read "), "the handler never got the whole body");
  } finally {
    await app.close();
  }
});

test("Hostile HTTP: slowloris, an unfinished head and silence are dropped at handshakeTimeout", async () => {
  const timeout = 600;
  const { app, port, seen } = await server({ handshakeTimeout: timeout });
  try {
    const bytes = latin1Bytes(get("/", "User-Agent: slow\r\n"));
    const results = await slowPeers(port, bytes);
    for (const [i, label] of SLOW_PEERS.entries()) {
      const { ms, ending, answer } = results[i];
      assert.ok(ending, `${label}: closed`);
      assert.equal(answer, "", `${label}: dropped without an answer`);
      assert.ok(ms >= timeout / 2 && ms < 4 * timeout + 3000, `${label}: closed after ${ms} ms`);
    }
    assert.deepEqual(seen.paths, []);
  } finally {
    await app.close();
  }
});

test("Hostile HTTP: request data an application copies into a header is refused (500, onError), nothing injected", async () => {
  const { app, port, seen } = await server();
  try {
    const injected = encodeURIComponent("x\r\nSet-Cookie: pwned=1");
    const answer = await exchange(port, get(`/reflect?${injected}`, "Connection: close\r\n"));
    assert.equal(answer.status, 500);
    assert.ok(!answer.text.includes("pwned"));
    assert.equal(seen.errors.length, 1);
    assert.ok(seen.errors[0] instanceof TypeError);
  } finally {
    await app.close();
  }
});

test("Hostile HTTP: a valid request, then garbage on the same connection: the first is answered, the garbage gets 400", async () => {
  const { app, port, seen } = await server();
  try {
    const answer = await exchange(port, get("/first") + "\x16\x03\x01 not http\r\n\r\n" + SMUGGLED);
    const answers = answer.text.split("HTTP/1.1 ").slice(1).map((part) => Number(part.slice(0, 3)));
    assert.deepEqual(answers, [200, 400]);
    assert.ok(answer.ending);
    assert.deepEqual(seen.paths, ["/first"]);
  } finally {
    await app.close();
  }
});
