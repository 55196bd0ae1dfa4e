/**
 * Connection and listen failures look the same on Deno and Bun: every kind
 * rejects with the same class and `code`, names the target `host:port`, and
 * keeps the runtime's error as `cause`. The last test prints a table of them.
 *
 * The certificate fixtures `connect_errors_*.pem` were made with OpenSSL 3.0
 * for these tests only: a CA (`connect_errors_ca.pem`) and, with one key
 * (`connect_errors_key.pem`), two leaves it signed: one for `example.invalid`
 * only (`connect_errors_wrong_name.pem`), one for localhost and 127.0.0.1 valid
 * on 1-2 January 2000 only (`connect_errors_expired.pem`, made with `openssl ca
 * -startdate 20000101000000Z -enddate 20000102000000Z`).
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { connect, ConnectError, type ConnectErrorCode, detectAdapter, ListenError, Sock } from "../mod.ts";
import type { Transport } from "../src/transport.ts";
import { pull } from "./_pull.ts";

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url), "utf8");
/** A certificate for localhost and 127.0.0.1, signed by a CA nobody trusts unless told (tls_test's). */
const localCert = { cert: fixture("tls_cert.pem"), key: fixture("tls_key.pem") };
const ca = fixture("connect_errors_ca.pem");
const key = fixture("connect_errors_key.pem");
const wrongName = { cert: fixture("connect_errors_wrong_name.pem"), key };
const expired = { cert: fixture("connect_errors_expired.pem"), key };

const runtime = "Bun" in globalThis ? "Bun" : "Deno";
const rows: { kind: string; code: string; message: string }[] = [];

/** A loopback server on a free port that hands each connection to `onConnection`. */
async function server(
  onConnection: (transport: Transport) => void,
  tls?: { cert: string; key: string },
): Promise<{ port: number; close(): void }> {
  const accepted: Transport[] = [];
  const listener = await detectAdapter().listen({ hostname: "127.0.0.1", port: 0, tls }, (transport) => {
    accepted.push(transport);
    onConnection(transport);
  });
  return {
    port: listener.address.port,
    close() {
      listener.close();
      for (const transport of accepted) transport.close();
    },
  };
}

/** A loopback port nothing listens on: one that was free a moment ago. */
async function closedPort(): Promise<number> {
  const { port, close } = await server(closeIt);
  close();
  // Deno releases a listening socket only once its pending accept has ended, on a later turn of its
  // event loop (until then a connection is accepted, then reset): wait until connecting is refused.
  for (let tries = 0; tries < 250; tries++) {
    const outcome = await detectAdapter().connect({ hostname: "127.0.0.1", port }).then(
      (transport) => transport.close(),
      (error) => error.code,
    );
    if (outcome === "ECONNREFUSED") return port;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`port ${port} still accepts connections`);
}

/** Waits for the client's first bytes (on TLS, that drives the handshake), then runs `then`. */
const afterFirstRead = (then: (transport: Transport) => unknown) => (transport: Transport) => {
  pull(transport).read().then(() => then(transport), () => transport.close());
};
const closeIt = (transport: Transport) => transport.close();

/** Runs `attempt`, which must fail with a ConnectError of `code` naming `target`, and records it. */
async function expectConnectError(
  kind: string,
  code: ConnectErrorCode,
  target: string,
  attempt: () => Promise<unknown>,
  options: { runtimeCause: boolean },
): Promise<ConnectError> {
  const error = await attempt().then(() => assert.fail(`${kind}: connected`), (e) => e);
  assert.ok(error instanceof ConnectError, `${kind}: ${error}`);
  rows.push({ kind, code: error.code, message: error.message });
  assert.equal(error.code, code, error.message);
  assert.equal(error.name, "ConnectError");
  assert.ok(error.message.includes(target), error.message);
  // The runtime's own error is kept, where there is one.
  if (options.runtimeCause) assert.ok(error.cause instanceof Error, `${kind}: cause ${error.cause}`);
  return error;
}

test("connect() to a closed loopback port fails with ECONNREFUSED", async () => {
  const port = await closedPort();
  await expectConnectError(
    "refused",
    "ECONNREFUSED",
    `127.0.0.1:${port}`,
    () => connect(`ws://127.0.0.1:${port}/`),
    { runtimeCause: true },
  );
  await expectConnectError(
    "refused (wss:)",
    "ECONNREFUSED",
    `127.0.0.1:${port}`,
    () => connect(`wss://127.0.0.1:${port}/`),
    { runtimeCause: true },
  );
});

test("connect() to a host name that does not resolve fails with ENOTFOUND", async () => {
  // .invalid never resolves (RFC 6761 §6.4); without a network, the lookup fails at once.
  const started = performance.now();
  await expectConnectError(
    "not found",
    "ENOTFOUND",
    "nonexistent.invalid:80",
    () => connect("ws://nonexistent.invalid/"),
    { runtimeCause: true },
  );
  console.log(
    `${runtime}: the lookup of nonexistent.invalid failed in ${Math.round(performance.now() - started)} ms`,
  );
});

test("connect() to a server that closes the connection during the WebSocket handshake fails with ECONNRESET", async () => {
  const { port, close } = await server(afterFirstRead(closeIt));
  try {
    const error = await expectConnectError(
      "reset (WebSocket handshake)",
      "ECONNRESET",
      `127.0.0.1:${port}`,
      () => connect(`ws://127.0.0.1:${port}/`),
      { runtimeCause: false },
    );
    assert.match(error.message, /during the WebSocket handshake/);
  } finally {
    close();
  }
});

test("connect() to a server that closes the connection during the TLS handshake fails with ECONNRESET", async () => {
  const { port, close } = await server(closeIt);
  try {
    const error = await expectConnectError(
      "reset (TLS handshake)",
      "ECONNRESET",
      `127.0.0.1:${port}`,
      () => connect(`wss://127.0.0.1:${port}/`),
      { runtimeCause: true },
    );
    assert.match(error.message, /during the TLS handshake/);
  } finally {
    close();
  }
});

test("connect() to a server that never answers fails with a TimeoutError naming the target once its timeout passes", async () => {
  // The caller's deadline is reported as AbortSignal.timeout() would, not as ETIMEDOUT (the system's).
  // The server reads the request and never answers: nothing depends on how fast the machine is.
  const { port, close } = await server(afterFirstRead(() => {}));
  try {
    const error = await connect(`ws://127.0.0.1:${port}/`, { timeout: 200 }).then(
      () => assert.fail("connected"),
      (e) => e,
    );
    assert.ok(error instanceof DOMException, String(error));
    rows.push({
      kind: "timeout (connect's timeout option)",
      code: `DOMException ${error.name}`,
      message: error.message,
    });
    assert.equal(error.name, "TimeoutError");
    assert.ok(error.message.includes(`127.0.0.1:${port}`), error.message);
  } finally {
    close();
  }
});

test("connect() to a certificate from a CA it does not trust fails with CERT_UNTRUSTED and the runtime's reason", async () => {
  const { port, close } = await server(afterFirstRead(closeIt), localCert);
  try {
    const error = await expectConnectError(
      "TLS untrusted",
      "CERT_UNTRUSTED",
      `127.0.0.1:${port}`,
      () => connect(`wss://127.0.0.1:${port}/`),
      { runtimeCause: true },
    );
    // The runtime's reason, after sock's own words.
    assert.match(error.message, /certificate not trusted \(.+\)$/);
  } finally {
    close();
  }
});

test("connect() to a trusted certificate for another name fails with CERT_HOSTNAME_MISMATCH", async () => {
  const { port, close } = await server(afterFirstRead(closeIt), wrongName);
  try {
    await expectConnectError(
      "TLS hostname mismatch",
      "CERT_HOSTNAME_MISMATCH",
      `127.0.0.1:${port}`,
      () => connect(`wss://127.0.0.1:${port}/`, { caCerts: [ca] }),
      { runtimeCause: true },
    );
  } finally {
    close();
  }
});

test("connect() to a trusted but expired certificate fails with CERT_EXPIRED", async () => {
  const { port, close } = await server(afterFirstRead(closeIt), expired);
  try {
    await expectConnectError(
      "TLS expired",
      "CERT_EXPIRED",
      `127.0.0.1:${port}`,
      () => connect(`wss://127.0.0.1:${port}/`, { caCerts: [ca] }),
      { runtimeCause: true },
    );
  } finally {
    close();
  }
});

test("connect() with wss: to a server that does not speak TLS fails with TLS_HANDSHAKE_FAILED", async () => {
  const { port, close } = await server(afterFirstRead(async (transport) => {
    await transport.write([
      new TextEncoder().encode("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"),
    ]);
    transport.close();
  }));
  try {
    await expectConnectError(
      "TLS other (not a TLS server)",
      "TLS_HANDSHAKE_FAILED",
      `127.0.0.1:${port}`,
      () => connect(`wss://127.0.0.1:${port}/`),
      { runtimeCause: true },
    );
  } finally {
    close();
  }
});

test("Sock.listen() on a port in use fails with ListenError EADDRINUSE naming address and port", async () => {
  const first = new Sock();
  const { port } = await first.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const error = await new Sock().listen({ hostname: "127.0.0.1", port }).then(
      () => assert.fail("listened twice"),
      (e) => e,
    );
    assert.ok(error instanceof ListenError, String(error));
    rows.push({ kind: "listen: port in use", code: error.code, message: error.message });
    assert.equal(error.code, "EADDRINUSE", error.message);
    assert.equal(error.name, "ListenError");
    assert.ok(error.message.includes(`127.0.0.1:${port}`), error.message);
    assert.ok(error.cause instanceof Error);
  } finally {
    await first.close();
  }
});

test("ConnectError writes an IPv6 address in brackets", () => {
  const error = new ConnectError("ECONNREFUSED", { hostname: "::1", port: 8080 });
  assert.equal(error.message, "ECONNREFUSED connecting to [::1]:8080: connection refused");
  assert.equal(error.hostname, "::1");
  assert.equal(error.port, 8080);
});

test("the failures above, as a table to copy", () => {
  const width = Math.max(...rows.map((row) => row.kind.length));
  const codeWidth = Math.max(...rows.map((row) => row.code.length));
  const lines = rows.map((row) =>
    `| ${row.kind.padEnd(width)} | ${row.code.padEnd(codeWidth)} | ${row.message} |`
  );
  console.log(
    [
      `\n${runtime}:`,
      `| ${"kind".padEnd(width)} | ${"code".padEnd(codeWidth)} | message |`,
      `|${"-".repeat(width + 2)}|${"-".repeat(codeWidth + 2)}|---------|`,
      ...lines,
    ].join("\n"),
  );
  assert.equal(rows.length, 11);
});
