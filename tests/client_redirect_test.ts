// connect()'s followRedirects (src/client.ts) against Sock servers whose `upgrade` hook answers
// some paths with a redirect and records what each request carried. Everything on 127.0.0.1.

import { after, before, describe, it } from "node:test";
import * as fs from "node:fs";
import { connect, type ConnectOptions, HandshakeRejected } from "../src/client.ts";
import type { Connection } from "../src/connection/connection.ts";
import { Sock } from "../src/server/sock.ts";
import { ConnectError } from "../src/net_errors.ts";
import { assertEquals, assertRejects } from "./assert.ts";
import { within } from "./_helpers.ts";

const BOUND = 15_000;
const fixture = (name: string) => fs.readFileSync(new URL(`./fixtures/${name}`, import.meta.url), "utf8");
const ca = fixture("tls_ca.pem");

interface Seen {
  target: string;
  authorization: string | null;
  cookie: string | null;
  other: string | null;
}

interface Server {
  port: number;
  /** Every request, in order. */
  seen: Seen[];
  /** `path` answers `status` with `Location: location` (set by the test). */
  redirects: Map<string, [number, string | undefined]>;
  close(): Promise<void>;
}

/** A Sock echo server whose `upgrade` hook redirects the paths in `redirects`. */
async function server(tls?: boolean): Promise<Server> {
  const seen: Seen[] = [];
  const redirects = new Map<string, [number, string | undefined]>();
  const app = new Sock({
    upgrade(request) {
      const headers = request.upgrade.headers;
      seen.push({
        target: request.upgrade.target,
        authorization: headers.get("authorization"),
        cookie: headers.get("cookie"),
        other: headers.get("x-other"),
      });
      const redirect = redirects.get(request.path);
      if (!redirect) return undefined;
      const [status, location] = redirect;
      return { reject: { status, headers: location === undefined ? [] : [["Location", location]] } };
    },
  });
  app.route("/*", async (ws) => {
    for await (const message of ws) await ws.send(message);
  });
  const listening = await app.listen({
    hostname: "127.0.0.1",
    port: 0,
    ...(tls ? { tls: { cert: fixture("tls_cert.pem"), key: fixture("tls_key.pem") } } : {}),
  });
  return { port: listening.port, seen, redirects, close: () => app.close() };
}

async function roundTrip(ws: Connection): Promise<void> {
  await ws.send("after the redirects");
  assertEquals(await ws.receive({ timeout: BOUND }), "after the redirects");
  assertEquals((await within(ws.close(1000), "close", BOUND)).wasClean, true);
}

const follow: ConnectOptions = { followRedirects: true, timeout: BOUND, proxy: false };

describe("connect() with followRedirects", () => {
  let a: Server, b: Server, secure: Server;
  before(async () => {
    [a, b, secure] = await Promise.all([server(), server(), server(true)]);
  });
  after(async () => {
    await Promise.allSettled([a?.close(), b?.close(), secure?.close()]);
  });
  const reset = () => {
    for (const s of [a, b, secure]) {
      s.seen.length = 0;
      s.redirects.clear();
    }
  };

  for (const status of [301, 302, 303, 307, 308]) {
    it(`connect() follows a ${status} with an absolute Location to another server`, async () => {
      reset();
      a.redirects.set("/start", [status, `ws://127.0.0.1:${b.port}/echo?from=a`]);
      const ws = await connect(`ws://127.0.0.1:${a.port}/start`, follow);
      assertEquals(ws.remoteAddress?.port, b.port);
      await roundTrip(ws);
      assertEquals(a.seen.map((s) => s.target), ["/start"]);
      assertEquals(b.seen.map((s) => s.target), ["/echo?from=a"]);
    });
  }

  it("connect() resolves relative Locations against the URL that redirected, and maps http: to ws:", async () => {
    reset();
    a.redirects.set("/dir/a", [302, "/dir/b"]);
    a.redirects.set("/dir/b", [307, "c?x=1#fragment"]);
    a.redirects.set("/dir/c", [301, `http://127.0.0.1:${a.port}/final`]);
    await roundTrip(await connect(`ws://127.0.0.1:${a.port}/dir/a`, follow));
    assertEquals(a.seen.map((s) => s.target), ["/dir/a", "/dir/b", "/dir/c?x=1", "/final"]);
  });

  it("connect() follows a relative Location from a URL with credentials, which it does not pass on", async () => {
    reset();
    a.redirects.set("/start", [302, "/echo"]);
    await roundTrip(await connect(`ws://user:pw@127.0.0.1:${a.port}/start`, follow));
    assertEquals(a.seen.map((s) => s.target), ["/start", "/echo"]);
    // A Location naming credentials of its own is still refused, even the same ones.
    a.redirects.set("/start", [302, `ws://user:pw@127.0.0.1:${a.port}/echo`]);
    const error = await assertRejects(
      () => connect(`ws://user:pw@127.0.0.1:${a.port}/start`, follow),
      ConnectError,
    );
    assertEquals(error.code, "BAD_REDIRECT");
  });

  it("connect() does not follow by default: the redirect is a HandshakeRejected", async () => {
    reset();
    a.redirects.set("/start", [302, `ws://127.0.0.1:${b.port}/echo`]);
    const error = await assertRejects(
      () => connect(`ws://127.0.0.1:${a.port}/start`, { timeout: BOUND, proxy: false }),
      HandshakeRejected,
    );
    assertEquals(error.response.status, 302);
    assertEquals(b.seen.length, 0);
  });

  it("connect() keeps a redirect without Location a HandshakeRejected", async () => {
    reset();
    a.redirects.set("/start", [302, undefined]);
    const error = await assertRejects(
      () => connect(`ws://127.0.0.1:${a.port}/start`, follow),
      HandshakeRejected,
    );
    assertEquals(error.response.status, 302);
  });

  it("connect() refuses a loop with TOO_MANY_REDIRECTS", async () => {
    reset();
    a.redirects.set("/ping", [302, "/pong"]);
    a.redirects.set("/pong", [302, "/ping"]);
    const error = await assertRejects(() => connect(`ws://127.0.0.1:${a.port}/ping`, follow), ConnectError);
    assertEquals(error.code, "TOO_MANY_REDIRECTS");
    assertEquals(error.port, a.port);
    assertEquals(a.seen.map((s) => s.target), ["/ping", "/pong"]);
  });

  it("connect() follows at most maxRedirects (default 10), then fails with TOO_MANY_REDIRECTS", async () => {
    reset();
    for (let i = 0; i < 12; i++) a.redirects.set(`/n${i}`, [307, `/n${i + 1}`]);
    // 12 redirects: over the default.
    const error = await assertRejects(() => connect(`ws://127.0.0.1:${a.port}/n0`, follow), ConnectError);
    assertEquals(error.code, "TOO_MANY_REDIRECTS");
    assertEquals(a.seen.length, 11);
    // /n9 to /n12: 3 redirects, exactly the maximum.
    await roundTrip(await connect(`ws://127.0.0.1:${a.port}/n9`, { ...follow, maxRedirects: 3 }));
    const zero = await assertRejects(
      () => connect(`ws://127.0.0.1:${a.port}/n11`, { ...follow, maxRedirects: 0 }),
      ConnectError,
    );
    assertEquals(zero.code, "TOO_MANY_REDIRECTS");
    await assertRejects(
      () => connect(`ws://127.0.0.1:${a.port}/`, { ...follow, maxRedirects: -1 }),
      RangeError,
    );
  });

  it("connect() drops Authorization and Cookie on a redirect to another origin, keeps them within one", async () => {
    reset();
    a.redirects.set("/a", [302, "/b"]);
    a.redirects.set("/b", [308, `ws://127.0.0.1:${b.port}/c`]);
    const headers = { Authorization: "Bearer secret", Cookie: "session=1", "X-Other": "kept" };
    await roundTrip(await connect(`ws://127.0.0.1:${a.port}/a`, { ...follow, headers }));
    for (const seen of a.seen) {
      assertEquals([seen.authorization, seen.cookie, seen.other], ["Bearer secret", "session=1", "kept"]);
    }
    assertEquals(b.seen.length, 1);
    assertEquals([b.seen[0]!.authorization, b.seen[0]!.cookie, b.seen[0]!.other], [null, null, "kept"]);
    // Another port on the same host is another origin, with headers given as pairs too.
    reset();
    a.redirects.set("/a", [301, `ws://localhost:${a.port}/b`]);
    await roundTrip(
      await connect(`ws://127.0.0.1:${a.port}/a`, { ...follow, headers: [["authorization", "Basic eDp5"]] }),
    );
    assertEquals(a.seen.map((s) => s.authorization), ["Basic eDp5", null]);
  });

  it("connect() refuses a redirect from wss: to ws: with INSECURE_REDIRECT", async () => {
    reset();
    secure.redirects.set("/start", [302, `ws://127.0.0.1:${b.port}/echo`]);
    const error = await assertRejects(
      () => connect(`wss://localhost:${secure.port}/start`, { ...follow, caCerts: [ca] }),
      ConnectError,
    );
    assertEquals(error.code, "INSECURE_REDIRECT");
    assertEquals(b.seen.length, 0);
  });

  it("connect() follows a redirect from ws: to wss:", async () => {
    reset();
    a.redirects.set("/start", [302, `https://localhost:${secure.port}/echo`]);
    const ws = await connect(`ws://127.0.0.1:${a.port}/start`, { ...follow, caCerts: [ca] });
    assertEquals(ws.remoteAddress?.port, secure.port);
    await roundTrip(ws);
  });

  it("connect() fails with BAD_REDIRECT for a Location it cannot follow", async () => {
    for (const location of ["mailto:someone@example.com", "ws://user:pw@127.0.0.1/", "http://[bad"]) {
      reset();
      a.redirects.set("/start", [302, location]);
      const error = await assertRejects(
        () => connect(`ws://127.0.0.1:${a.port}/start`, follow),
        ConnectError,
      );
      assertEquals(error.code, "BAD_REDIRECT", location);
    }
  });
});
