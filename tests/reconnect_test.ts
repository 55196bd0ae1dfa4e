// reconnecting() and isRetryable() (src/reconnect.ts) against real servers: sock's own Sock in this
// process (restarted on its port, refusing with 503, accepting then dropping), and an echo server in
// a child process killed with SIGKILL and started again. Every test asserts the attempts and the
// delays onRetry reports against the configured schedule (jitter "none", or a fixed random), never
// wall-clock margins; waits are on events, each bounded with within().

import { describe, it } from "node:test";
import * as net from "node:net";
import { HandshakeRejected } from "../src/client.ts";
import type { Connection } from "../src/connection/connection.ts";
import { ConnectionClosed } from "../src/connection/closed.ts";
import { ProtocolError } from "../src/core/errors.ts";
import { HttpHeaders } from "../src/core/http.ts";
import { Socks5Error } from "../src/core/proxy.ts";
import { ConnectError } from "../src/net_errors.ts";
import { isRetryable, reconnecting, type ReconnectOptions, type RetryInfo } from "../src/reconnect.ts";
import { Sock, type SockOptions } from "../src/server/sock.ts";
import { assert, assertEquals, assertInstanceOf, assertStrictEquals, assertThrows } from "./assert.ts";
import { within } from "./_helpers.ts";
import { freePort, spawnScript } from "./_hardening.ts";

/** Every wait here is bounded by this; none of them should come near it. */
const BOUND = 20_000;

/** `initial · factor^i` capped at `max`, for `i` in 0…n-1: the delays without jitter. */
function schedule(n: number, initial: number, factor = 2, max = Infinity): number[] {
  return Array.from({ length: n }, (_, i) => Math.min(max, initial * factor ** i));
}

/** A Sock on a free loopback port, quiet about handlers that throw on purpose. */
async function serve(
  route: (ws: Connection, app: Sock) => unknown,
  options: SockOptions = {},
): Promise<{ app: Sock; port: number; url: string }> {
  const app = new Sock({ onError: () => {}, ...options });
  app.route("/", (ws) => route(ws, app));
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  return { app, port, url: `ws://127.0.0.1:${port}/` };
}

/** What one run of the loop did. */
interface Run {
  /** What onRetry was told, in order. */
  retries: RetryInfo[];
  /** Connections the loop yielded. */
  connections: number;
  /** What the loop threw, or `undefined` when it ended quietly. */
  error: unknown;
}

/**
 * Runs the loop to its end (bounded), with jitter off and a 10 ms start unless `options` say
 * otherwise; `body` gets each connection (by default nothing: the loop waits for its close).
 */
async function run(
  url: string,
  options: ReconnectOptions = {},
  body: (ws: Connection, n: number) => unknown = () => {},
): Promise<Run> {
  const retries: RetryInfo[] = [];
  let connections = 0;
  let error: unknown;
  const loop = async () => {
    for await (
      const ws of reconnecting(url, {
        backoff: { initial: 10, jitter: "none" },
        ...options,
        onRetry: (info) => {
          retries.push(info);
          options.onRetry?.(info);
        },
      })
    ) {
      if (await body(ws, ++connections) === "break") break;
    }
  };
  await within(loop().catch((e) => (error = e)), "the loop", BOUND);
  return { retries, connections, error };
}

const attempts = (retries: RetryInfo[]) => retries.map((info) => info.attempt);
const delays = (retries: RetryInfo[]) => retries.map((info) => info.delay);
const codes = (retries: RetryInfo[]) => retries.map((info) => (info.error as ConnectionClosed).code);

describe("reconnecting()", () => {
  it("retries a 503 exactly as many times as it came, on the schedule, then yields the connection", async () => {
    let requests = 0;
    const { app, url } = await serve((ws) => ws.send("hello"), {
      upgrade: () => (++requests <= 4 ? { reject: { status: 503, body: "busy" } } : undefined),
    });
    const messages: unknown[] = [];
    const { retries, connections, error } = await run(
      url,
      { backoff: { initial: 10, jitter: "none" } },
      async (ws) => {
        for await (const message of ws) messages.push(message);
      },
    );
    await app.close();
    assertStrictEquals(error, undefined, "the server's 1000 ends the loop quietly");
    assertEquals(attempts(retries), [1, 2, 3, 4]);
    assertEquals(delays(retries), schedule(4, 10));
    for (const { error } of retries) {
      assertInstanceOf(error, HandshakeRejected);
      assertStrictEquals(error.response.status, 503);
    }
    assertStrictEquals(requests, 5);
    assertStrictEquals(connections, 1);
    assertEquals(messages, ["hello"]);
  });

  it("follows factor and max: 10, 30, 90, 100, 100", async () => {
    let requests = 0;
    const { app, url } = await serve(() => {}, {
      upgrade: () => (++requests <= 5 ? { reject: { status: 502 } } : undefined),
    });
    const { retries, error } = await run(url, {
      backoff: { initial: 10, factor: 3, max: 100, jitter: "none" },
    });
    await app.close();
    assertStrictEquals(error, undefined);
    assertEquals(delays(retries), [10, 30, 90, 100, 100]);
    assertEquals(delays(retries), schedule(5, 10, 3, 100));
  });

  it("honours a 503's or 429's Retry-After, capped at backoff.max", async () => {
    for (const status of [503, 429]) {
      let requests = 0;
      const { app, url } = await serve(() => {}, {
        upgrade:
          () => (++requests <= 2 ? { reject: { status, headers: { "Retry-After": "1" } } } : undefined),
      });
      const { retries, error } = await run(url, { backoff: { initial: 10, max: 50, jitter: "none" } });
      await app.close();
      assertStrictEquals(error, undefined);
      assertEquals(delays(retries), [50, 50], `${status}: 1 s asked, 50 ms at most`);
    }
  });

  it("full jitter takes a random share of each step", async () => {
    const port = await freePort(); // Nothing listens there.
    const { retries, error } = await run(`ws://127.0.0.1:${port}/`, {
      backoff: { initial: 10, random: () => 0.5 },
      maxRetries: 4,
    });
    assertInstanceOf(error, ConnectError);
    assertEquals(delays(retries), schedule(4, 10).map((step) => step / 2));
  });

  it("a server that accepts then fails at once (1011) meets growing delays, not a reset", async () => {
    let opened = 0;
    const { app, url } = await serve(() => {
      opened++;
      throw new Error("crash"); // 1011
    });
    const { retries, connections, error } = await run(url, { maxRetries: 4 });
    await app.close();
    assertInstanceOf(error, ConnectionClosed, "it gives up with the last close");
    assertStrictEquals(error.code, 1011);
    assertEquals(attempts(retries), [1, 2, 3, 4]);
    assertEquals(delays(retries), schedule(4, 10));
    assertEquals(codes(retries), [1011, 1011, 1011, 1011]);
    assertStrictEquals(connections, 5);
    assertStrictEquals(opened, 5);
  });

  it("a server that accepts then drops TCP at once (1006) meets growing delays too", async () => {
    const { app, url } = await serve((ws) => ws.terminate());
    const messages: unknown[] = [];
    const { retries, connections, error } = await run(url, { maxRetries: 3 }, async (ws) => {
      try {
        for await (const message of ws) messages.push(message);
      } catch (error) {
        if (!(error instanceof ConnectionClosed)) throw error;
      }
    });
    await app.close();
    assertInstanceOf(error, ConnectionClosed);
    assertStrictEquals(error.code, 1006);
    assertEquals(delays(retries), schedule(3, 10));
    assertEquals(codes(retries), [1006, 1006, 1006]);
    assertStrictEquals(connections, 4);
    assertEquals(messages, []);
  });

  it("stableAfter: 0 counts every connection that opened as stable: the backoff starts again each time", async () => {
    const { app, url } = await serve(() => {
      throw new Error("crash");
    });
    const { retries, connections } = await run(url, { stableAfter: 0 }, (_ws, n) => {
      if (n === 4) return "break";
    });
    await app.close();
    assertEquals(attempts(retries), [1, 1, 1]);
    assertEquals(delays(retries), [10, 10, 10]);
    assertStrictEquals(connections, 4);
  });

  it("a connection that stayed open stableAfter ms resets the backoff", async () => {
    let requests = 0;
    // Refused twice, then open until the client's message (sent once stableAfter has passed), then
    // 1011; refused twice again, then open and closed with 1000.
    const { app, url } = await serve(async (ws) => {
      if ((await ws.receive()) === "crash") throw new Error("crash");
    }, {
      upgrade: () => ([1, 2, 4, 5].includes(++requests) ? { reject: { status: 503 } } : undefined),
    });
    const { retries, connections, error } = await run(url, { stableAfter: 50 }, async (ws, n) => {
      if (n === 1) {
        await new Promise((resolve) => setTimeout(resolve, 100)); // Past stableAfter, still open.
        await ws.send("crash");
      } else {
        await ws.send("bye");
      }
    });
    await app.close();
    assertStrictEquals(error, undefined);
    assertEquals(attempts(retries), [1, 2, 1, 2, 3]);
    assertEquals(delays(retries), [10, 20, 10, 20, 40]);
    assertStrictEquals(connections, 2);
  });

  it("keeps going across a server restart on the same port (1001 from close(), refused meanwhile)", async () => {
    const first = await serve(async (ws) => {
      await ws.send("first");
      await ws.closed;
    });
    let second: Sock | undefined;
    let restarted: Promise<unknown> | undefined;
    let closing: Promise<void> | undefined;
    const received: unknown[] = [];
    const { retries, connections, error } = await run(first.url, {
      backoff: { initial: 10, max: 200, jitter: "none" },
      onRetry: ({ attempt }) => {
        if (attempt === 3) {
          second = new Sock();
          second.route("/", (ws) => ws.send("second"));
          restarted = second.listen({ hostname: "127.0.0.1", port: first.port });
        }
      },
    }, async (ws, n) => {
      received.push(await ws.receive({ timeout: BOUND }));
      if (n === 1) closing = first.app.close(); // Every client gets 1001 (awaited once the body is done).
      else return "break";
    });
    await Promise.all([restarted, closing]);
    await second?.close();
    assertStrictEquals(error, undefined);
    assertEquals(received, ["first", "second"]);
    assertStrictEquals(connections, 2);
    assert(retries.length >= 3, "at least the attempts before the restart");
    assertEquals(attempts(retries), retries.map((_, i) => i + 1));
    assertEquals(delays(retries), schedule(retries.length, 10, 2, 200));
    assertStrictEquals((retries[0]!.error as ConnectionClosed).code, 1001);
    for (const { error } of retries.slice(1)) {
      assertInstanceOf(error, ConnectError);
      assertStrictEquals(error.code, "ECONNREFUSED");
    }
  });

  it("keeps going across a server process killed (SIGKILL) and started again on its port", async () => {
    const script = new URL("../examples/echo_server.ts", import.meta.url);
    const server = spawnScript(script, ["--port", "0", "--host", "127.0.0.1"]);
    let again: ReturnType<typeof spawnScript> | undefined;
    try {
      const port = Number((await server.line(/^listening on ws:\/\/127\.0\.0\.1:(\d+)$/, BOUND))[1]);
      const { retries, connections, error } = await run(`ws://127.0.0.1:${port}/`, {
        backoff: { initial: 20, max: 400, jitter: "none" },
        onRetry: ({ attempt }) => {
          if (attempt === 3) again = spawnScript(script, ["--port", String(port), "--host", "127.0.0.1"]);
        },
      }, async (ws, n) => {
        await ws.send(`hello ${n}`);
        assertEquals(await ws.receive({ timeout: BOUND }), `hello ${n}`);
        if (n === 1) {
          server.kill();
          await server.exited;
        } else {
          return "break";
        }
      });
      assertStrictEquals(error, undefined);
      assertStrictEquals(connections, 2);
      assert(retries.length >= 3, "at least the attempts before the restart");
      assertEquals(attempts(retries), retries.map((_, i) => i + 1));
      assertEquals(delays(retries), schedule(retries.length, 20, 2, 400));
      assertStrictEquals((retries[0]!.error as ConnectionClosed).code, 1006, "killed: no close frame");
      for (const { error } of retries.slice(1)) assertInstanceOf(error, ConnectError);
    } finally {
      server.kill();
      again?.kill();
      await Promise.all([server.exited, again?.exited]);
    }
  });

  it("a 4xx is thrown at once, after one attempt", async () => {
    let requests = 0;
    const { app, url } = await serve(() => {}, {
      upgrade: () => (requests++, { reject: { status: 403, body: "no" } }),
    });
    const { retries, connections, error } = await run(url);
    await app.close();
    assertInstanceOf(error, HandshakeRejected);
    assertStrictEquals(error.response.status, 403);
    assertStrictEquals(requests, 1);
    assertEquals(retries, []);
    assertStrictEquals(connections, 0);
  });

  it("a close with 1008 (or an application's 4000) ends the loop with ConnectionClosed, no reconnection", async () => {
    for (const code of [1008, 4000]) {
      let opened = 0;
      const { app, url } = await serve(async (ws) => {
        opened++;
        await ws.close(code, "go away");
      });
      const { retries, connections, error } = await run(url);
      await app.close();
      assertInstanceOf(error, ConnectionClosed);
      assertStrictEquals(error.code, code);
      assertStrictEquals(error.reason, "go away");
      assertEquals(retries, []);
      assertStrictEquals(connections, 1);
      assertStrictEquals(opened, 1);
    }
  });

  it("a close with 1000 from the server ends the loop quietly; retry can ask for more", async () => {
    let opened = 0;
    const { app, url } = await serve(() => void opened++); // Returning closes with 1000.
    const quiet = await run(url);
    assertStrictEquals(quiet.error, undefined);
    assertStrictEquals(quiet.connections, 1);
    assertEquals(quiet.retries, []);

    const always = await run(url, { retry: () => true }, (_ws, n) => (n === 3 ? "break" : undefined));
    await app.close();
    assertStrictEquals(always.connections, 3);
    assertEquals(codes(always.retries), [1000, 1000]);
    assertEquals(delays(always.retries), [10, 20]);
    assertStrictEquals(opened, 4);
  });

  it("gives up after maxRetries and throws the last error", async () => {
    const port = await freePort();
    const { retries, connections, error } = await run(`ws://127.0.0.1:${port}/`, { maxRetries: 3 });
    assertInstanceOf(error, ConnectError);
    assertStrictEquals(error.code, "ECONNREFUSED");
    assertEquals(attempts(retries), [1, 2, 3]);
    assertEquals(delays(retries), schedule(3, 10));
    for (const info of retries) assertInstanceOf(info.error, ConnectError);
    assertStrictEquals(connections, 0);
  });

  it("retries an HTTP proxy's 502 to CONNECT (the server restarting behind it), then gives up", async () => {
    let hits = 0;
    const proxy = net.createServer((socket) => {
      hits++;
      socket.on("error", () => {});
      socket.once("data", () => socket.end("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"));
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = proxy.address() as net.AddressInfo;
      const { retries, error } = await run("ws://server.invalid:9/", {
        proxy: `http://127.0.0.1:${port}`,
        maxRetries: 2,
      });
      assertInstanceOf(error, ConnectError);
      assertStrictEquals(error.code, "PROXY_REFUSED");
      assertEquals(error.cause, { status: 502, statusText: "Bad Gateway" });
      assertEquals(attempts(retries), [1, 2]);
      assertStrictEquals(hits, 3);
    } finally {
      await new Promise((resolve) => proxy.close(resolve));
    }
  });

  it("maxRetries: 0 throws the first failure", async () => {
    const port = await freePort();
    const { retries, error } = await run(`ws://127.0.0.1:${port}/`, { maxRetries: 0 });
    assertInstanceOf(error, ConnectError);
    assertEquals(retries, []);
  });

  it("aborting the signal during the backoff ends the loop at once, quietly", async () => {
    const port = await freePort();
    const controller = new AbortController();
    const { retries, error } = await run(`ws://127.0.0.1:${port}/`, {
      backoff: { initial: 600_000, max: 600_000, jitter: "none" }, // Only the abort can end this wait in time.
      signal: controller.signal,
      onRetry: () => void Promise.resolve().then(() => controller.abort()),
    });
    assertStrictEquals(error, undefined);
    assertEquals(delays(retries), [600_000]);
  });

  it("aborting the signal closes the open connection with 1000 and ends the loop", async () => {
    const received: number[] = [];
    const { app, url } = await serve(async (ws) => {
      received.push((await ws.closed).code);
    });
    const controller = new AbortController();
    const { retries, connections, error } = await run(url, { signal: controller.signal }, async (ws) => {
      controller.abort();
      for await (const _ of ws); // Ends quietly: a clean 1000.
    });
    await app.close();
    assertStrictEquals(error, undefined);
    assertStrictEquals(connections, 1);
    assertEquals(retries, []);
    assertEquals(received, [1000]);
  });

  it("an aborted signal ends the loop before any attempt", async () => {
    let requests = 0;
    const { app, url } = await serve(() => {}, { upgrade: () => void requests++ });
    const { connections, error } = await run(url, { signal: AbortSignal.abort() });
    await app.close();
    assertStrictEquals(error, undefined);
    assertStrictEquals(connections, 0);
    assertStrictEquals(requests, 0);
  });

  it("break closes the connection with 1000 and stops", async () => {
    const received: number[] = [];
    const { app, url } = await serve(async (ws) => {
      received.push((await ws.closed).code);
    });
    const { connections, error } = await run(url, {}, () => "break");
    await app.close();
    assertStrictEquals(error, undefined);
    assertStrictEquals(connections, 1);
    assertEquals(received, [1000]);
  });

  it("an exception in the body closes the connection and reaches the caller", async () => {
    const received: number[] = [];
    const { app, url } = await serve(async (ws) => {
      received.push((await ws.closed).code);
    });
    const oops = new Error("oops");
    const { connections, error } = await run(url, {}, () => {
      throw oops;
    });
    await app.close();
    assertStrictEquals(error, oops);
    assertStrictEquals(connections, 1);
    assertEquals(received, [1000]);
  });

  it("the next connection waits for the last one to close when the body returns early", async () => {
    let opened = 0;
    let release: (() => void) | undefined;
    const { app, url } = await serve(async (ws) => {
      if (++opened === 1) {
        await new Promise<void>((resolve) => (release = resolve));
        await ws.close(1012);
      }
    });
    let first: Connection | undefined;
    let released = false;
    let firstState: number | undefined;
    const { connections, error } = await run(url, {}, (ws, n) => {
      if (n === 1) {
        first = ws;
        // Returns at once; the server closes it (1012, worth another try) only later.
        setTimeout(() => {
          released = true;
          release?.();
        }, 20);
      } else {
        assert(released, "not before the server let the first one go");
        firstState = first?.readyState;
      }
    });
    await app.close();
    assertStrictEquals(error, undefined);
    assertStrictEquals(connections, 2);
    assertStrictEquals(opened, 2);
    assertStrictEquals(firstState, 3, "the first was CLOSED when the second came");
  });

  it("backoff.initial 0 retries at once, however many attempts", async () => {
    const port = await freePort();
    const { retries, error } = await run(`ws://127.0.0.1:${port}/`, {
      backoff: { initial: 0, factor: 1e10 },
      maxRetries: 40, // 1e10^39 overflows
    });
    assertInstanceOf(error, ConnectError);
    assertStrictEquals(retries.length, 40);
    assert(retries.every((info) => info.delay === 0));
  });

  it("checks its settings at once", () => {
    const url = "ws://127.0.0.1:1/";
    assertThrows(() => reconnecting(url, { backoff: { initial: -1 } }), RangeError);
    assertThrows(() => reconnecting(url, { backoff: { factor: 0.5 } }), RangeError);
    assertThrows(() => reconnecting(url, { backoff: { max: NaN } }), RangeError);
    assertThrows(() => reconnecting(url, { maxRetries: 1.5 }), RangeError);
    assertThrows(() => reconnecting(url, { stableAfter: -5 }), RangeError);
  });

  it("an invalid URL is thrown from the loop without retrying", async () => {
    const { retries, error } = await run("ftp://127.0.0.1/");
    assertInstanceOf(error, TypeError);
    assertEquals(retries, []);
  });
});

describe("isRetryable()", () => {
  const address = { hostname: "127.0.0.1", port: 1 };
  const closed = (code: number) =>
    new ConnectionClosed({ code, reason: "", wasClean: code !== 1006, received: undefined, sent: undefined });
  const rejected = (status: number) =>
    new HandshakeRejected({ status, statusText: "", headers: new HttpHeaders() }, new Uint8Array());

  it("retries the network's failures, not certificate or TLS setup errors", () => {
    for (
      const code of [
        "ECONNREFUSED",
        "ENOTFOUND",
        "ETIMEDOUT",
        "ECONNRESET",
        "ENETUNREACH",
        "EHOSTUNREACH",
        "UNKNOWN",
      ] as const
    ) {
      assertStrictEquals(isRetryable(new ConnectError(code, address)), true, code);
    }
    for (
      const code of [
        "CERT_UNTRUSTED",
        "CERT_HOSTNAME_MISMATCH",
        "CERT_EXPIRED",
        "TLS_HANDSHAKE_FAILED",
      ] as const
    ) {
      assertStrictEquals(isRetryable(new ConnectError(code, address)), false, code);
    }
  });

  it("retries a proxy's refusal for 408, 429, 5xx but 501 and 505, and SOCKS5 replies 1, 3-6", () => {
    const refused = (cause: unknown) => new ConnectError("PROXY_REFUSED", address, { cause });
    for (const status of [408, 429, 500, 502, 503, 504]) {
      assertStrictEquals(isRetryable(refused({ status, statusText: "" })), true, `${status}`);
    }
    for (const status of [400, 403, 404, 407, 501, 505]) {
      assertStrictEquals(isRetryable(refused({ status, statusText: "" })), false, `${status}`);
    }
    const socks = (reply: number) => new Socks5Error("refused", `reply ${reply}`, reply);
    for (const reply of [1, 3, 4, 5, 6]) {
      assertStrictEquals(isRetryable(refused(socks(reply))), true, `${reply}`);
    }
    for (const reply of [2, 7, 8]) assertStrictEquals(isRetryable(refused(socks(reply))), false, `${reply}`);
    assertStrictEquals(isRetryable(refused(undefined)), false);
    for (const code of ["PROXY_AUTH_FAILED", "PROXY_PROTOCOL_ERROR"] as const) {
      assertStrictEquals(isRetryable(new ConnectError(code, address, { cause: { status: 503 } })), false);
    }
  });

  it("retries 408, 429 and 5xx but 501 and 505; no other status", () => {
    for (const status of [408, 429, 500, 502, 503, 504, 511, 599]) {
      assertStrictEquals(isRetryable(rejected(status)), true, `${status}`);
    }
    for (const status of [200, 301, 400, 401, 403, 404, 426, 501, 505]) {
      assertStrictEquals(isRetryable(rejected(status)), false, `${status}`);
    }
  });

  it("retries closes 1001, 1006, 1011-1014; not 1000, 1002, 1003, 1005, 1007-1010, 1015, 3000-4999", () => {
    for (const code of [1001, 1006, 1011, 1012, 1013, 1014]) {
      assertStrictEquals(isRetryable(closed(code)), true, `${code}`);
    }
    for (const code of [1000, 1002, 1003, 1005, 1007, 1008, 1009, 1010, 1015, 3000, 4000, 4999]) {
      assertStrictEquals(isRetryable(closed(code)), false, `${code}`);
    }
  });

  it("retries connect()'s timeout; not aborts, protocol errors or mistakes", () => {
    assertStrictEquals(isRetryable(new DOMException("late", "TimeoutError")), true);
    assertStrictEquals(isRetryable(new DOMException("stop", "AbortError")), false);
    assertStrictEquals(isRetryable(new ProtocolError("bad accept", 1002)), false);
    assertStrictEquals(isRetryable(new TypeError("bad URL")), false);
    assertStrictEquals(isRetryable(new Error("?")), false);
    assertStrictEquals(isRetryable(undefined), false);
  });
});
