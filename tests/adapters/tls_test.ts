import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { connect } from "../../src/client.ts";
import { Sock } from "../../src/server/sock.ts";

// A throwaway CA and a certificate it signed for localhost and 127.0.0.1, made for these tests only.
const fixture = (name: string) => readFileSync(new URL(`../fixtures/${name}`, import.meta.url), "utf8");
const ca = fixture("tls_ca.pem");
const cert = fixture("tls_cert.pem");
const key = fixture("tls_key.pem");

test("Sock over TLS talks to sock's wss: client that trusts its certificate", async () => {
  const app = new Sock();
  app.route("/echo", async (ws) => {
    for await (const message of ws) await ws.send(message);
  });
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0, tls: { cert, key } });
  try {
    const ws = await connect(`wss://localhost:${port}/echo`, { caCerts: [ca] });
    await ws.send("over TLS");
    assert.equal(await ws.receive({ timeout: 5000 }), "over TLS");
    const payload = new Uint8Array(200_000).map((_, i) => i);
    await ws.send(payload);
    assert.deepEqual(await ws.receive({ timeout: 5000 }), payload);
    const closed = await ws.close(1000, "done");
    assert.equal(closed.wasClean, true);
  } finally {
    await app.close();
  }
});

test("sock's wss: client refuses a certificate it does not trust", async () => {
  const app = new Sock();
  app.route("/*", () => {});
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0, tls: { cert, key } });
  try {
    const outcome = await connect(`wss://localhost:${port}/`).then(() => "connected", () => "refused");
    assert.equal(outcome, "refused");
  } finally {
    await app.close();
  }
});
