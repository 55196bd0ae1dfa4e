// connect() through HTTP proxies (src/proxy.ts, src/core/proxy.ts): Debian's tinyproxy as the real
// proxy, started on a free loopback port with a generated config (with and without BasicAuth), a
// raw TCP peer where the proxy must misbehave, and sock's own Sock servers (plain and TLS) behind.
// Environment lookup goes through a fake adapter's env(), and once through the real environment
// of a child process.

import { after, before, describe, it } from "node:test";
import * as net from "node:net";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { type ChildProcess, spawn } from "node:child_process";
import { connect, type ConnectOptions } from "../src/client.ts";
import type { Connection } from "../src/connection/connection.ts";
import { Sock } from "../src/server/sock.ts";
import { detectAdapter } from "../src/adapters/mod.ts";
import { ConnectError } from "../src/net_errors.ts";
import type { Adapter } from "../src/transport.ts";
import {
  ConnectResponseReader,
  formatConnectRequest,
  MAX_CONNECT_RESPONSE_SIZE,
  noProxyMatches,
  proxyFromEnv,
  Socks5Error,
  Socks5Handshake,
} from "../src/core/proxy.ts";
import { parseProxyUrl } from "../src/proxy.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "./assert.ts";
import { within } from "./_helpers.ts";

const BOUND = 15_000;
const TINYPROXY = "/usr/bin/tinyproxy";
const DANTED = "/usr/sbin/danted";
const fixture = (name: string) => fs.readFileSync(new URL(`./fixtures/${name}`, import.meta.url), "utf8");
const ca = fixture("tls_ca.pem");
const cert = fixture("tls_cert.pem");
const key = fixture("tls_key.pem");

/** A port nothing listens on (bound, then released). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface Proxy {
  port: number;
  /** `http://127.0.0.1:port`, with `user:pass@` when asked. */
  url(credentials?: string): string;
  close(): Promise<void>;
}

/** Runs `command` in the foreground; resolves once its output shows `readyText`. */
async function daemon(
  command: string,
  args: (dir: string) => string[],
  files: Record<string, string>,
  readyText: string,
): Promise<{ close(): Promise<void> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sock-proxy-"));
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  const child: ChildProcess = spawn(command, args(dir), { stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const ready = Promise.withResolvers<void>();
  let log = "";
  const onData = (data: Uint8Array) => {
    log += new TextDecoder().decode(data);
    if (log.includes(readyText)) ready.resolve();
  };
  child.stdout!.on("data", onData);
  child.stderr!.on("data", onData);
  child.once("exit", () => ready.reject(new Error(`${command} exited: ${log}`)));
  child.once("error", (error) => ready.reject(error));
  const close = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await within(exited, `${command} exit`, BOUND);
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    await within(ready.promise, `${command} start`, BOUND);
  } catch (error) {
    await close();
    throw error;
  }
  return { close };
}

/** tinyproxy in the foreground on a free port; resolves once it accepts connections. */
async function tinyproxy(options: { auth?: boolean; connectPorts?: number[] } = {}): Promise<Proxy> {
  const port = await freePort();
  const conf = [
    `Port ${port}`,
    "Listen 127.0.0.1",
    "Timeout 30",
    "MaxClients 50",
    "Allow 127.0.0.1",
    "LogLevel Info",
    ...(options.auth ? ["BasicAuth user pass"] : []),
    ...(options.connectPorts ?? []).map((p) => `ConnectPort ${p}`),
  ].join("\n");
  const { close } = await daemon(
    TINYPROXY,
    (dir) => ["-d", "-c", path.join(dir, "tinyproxy.conf")],
    { "tinyproxy.conf": conf + "\n" },
    "Accepting connections",
  );
  return {
    port,
    url: (credentials) => `http://${credentials ? `${credentials}@` : ""}127.0.0.1:${port}`,
    close,
  };
}

/** Dante's SOCKS5 server in the foreground on a free port, refusing connections to `blockedPort`. */
async function danted(blockedPort: number): Promise<Proxy> {
  const port = await freePort();
  const conf = [
    "logoutput: stderr",
    `internal: 127.0.0.1 port = ${port}`,
    "external: 127.0.0.1",
    "clientmethod: none",
    "socksmethod: none",
    "user.privileged: root",
    "user.unprivileged: nobody",
    "client pass { from: 127.0.0.1/32 to: 0.0.0.0/0 }",
    `socks block { from: 127.0.0.1/32 to: 0.0.0.0/0 port = ${blockedPort} }`,
    "socks pass { from: 127.0.0.1/32 to: 0.0.0.0/0 command: connect }",
  ].join("\n");
  const { close } = await daemon(
    DANTED,
    (dir) => ["-f", path.join(dir, "danted.conf"), "-N", "1", "-p", path.join(dir, "danted.pid")],
    { "danted.conf": conf + "\n" },
    "running",
  );
  return {
    port,
    url: (credentials) => `socks5://${credentials ? `${credentials}@` : ""}127.0.0.1:${port}`,
    close,
  };
}

/** An echo server; `seen` records the hosts the requests named. */
async function echoServer(tls?: boolean): Promise<{ port: number; seen: string[]; close(): Promise<void> }> {
  const app = new Sock();
  const seen: string[] = [];
  app.route("/echo", async (ws) => {
    seen.push(ws.request?.headers.get("host") ?? "");
    for await (const message of ws) await ws.send(message);
  });
  const { port } = await app.listen({
    hostname: "127.0.0.1",
    port: 0,
    ...(tls ? { tls: { cert, key } } : {}),
  });
  return { port, seen, close: () => app.close() };
}

/** A round trip, then a clean close. */
async function roundTrip(ws: Connection, text = "through the proxy"): Promise<void> {
  await ws.send(text);
  assertEquals(await ws.receive({ timeout: BOUND }), text);
  const closed = await within(ws.close(1000), "close", BOUND);
  assertEquals(closed.wasClean, true);
}

/** The detected adapter, with `env()` reading `vars` instead of the environment. */
function withEnv(vars: Record<string, string>): Adapter {
  const adapter = detectAdapter();
  return Object.assign(Object.create(adapter) as Adapter, { env: (name: string) => vars[name] });
}

const available = fs.existsSync(TINYPROXY);

describe("connect() through tinyproxy", { skip: !available && "tinyproxy not installed" }, () => {
  let open: Proxy, authed: Proxy, ws: Awaited<ReturnType<typeof echoServer>>;
  let wss: Awaited<ReturnType<typeof echoServer>>;
  const options: ConnectOptions = { timeout: BOUND, proxy: false };

  before(async () => {
    ws = await echoServer();
    wss = await echoServer(true);
    open = await tinyproxy();
    authed = await tinyproxy({ auth: true });
  });
  after(async () => {
    await Promise.allSettled([open?.close(), authed?.close(), ws?.close(), wss?.close()]);
  });

  it("connect() reaches a ws: server through an HTTP proxy", async () => {
    const conn = await connect(`ws://127.0.0.1:${ws.port}/echo`, { ...options, proxy: open.url() });
    // The connection's peer is the proxy, not the server.
    assertEquals(conn.remoteAddress?.port, open.port);
    await roundTrip(conn);
  });

  it("connect() runs TLS to the wss: server inside the tunnel, checked against the server's name", async () => {
    const conn = await connect(`wss://localhost:${wss.port}/echo`, {
      ...options,
      caCerts: [ca],
      proxy: open.url(),
    });
    assertEquals(conn.remoteAddress?.port, open.port);
    await roundTrip(conn, "over TLS through the proxy");
    assertEquals(wss.seen.at(-1), `localhost:${wss.port}`);
  });

  it("connect() sends the proxy URL's credentials as Proxy-Authorization, for ws: and wss:", async () => {
    const proxy = authed.url("user:pass");
    await roundTrip(await connect(`ws://127.0.0.1:${ws.port}/echo`, { ...options, proxy }));
    await roundTrip(await connect(`wss://localhost:${wss.port}/echo`, { ...options, caCerts: [ca], proxy }));
  });

  it("connect() fails with PROXY_AUTH_FAILED naming the proxy on a 407", async () => {
    for (const credentials of [undefined, "user:wrong"]) {
      const error = await assertRejects(
        () => connect(`ws://127.0.0.1:${ws.port}/echo`, { ...options, proxy: authed.url(credentials) }),
        ConnectError,
      );
      assertEquals(error.code, "PROXY_AUTH_FAILED");
      assertEquals([error.hostname, error.port], ["127.0.0.1", authed.port]);
      assert(/\b40[17]\b/.test(error.message), error.message);
    }
  });

  it("connect() fails with PROXY_REFUSED when the proxy will not tunnel to that port", async () => {
    const strict = await tinyproxy({ connectPorts: [1] });
    try {
      const error = await assertRejects(
        () => connect(`ws://127.0.0.1:${ws.port}/echo`, { ...options, proxy: strict.url() }),
        ConnectError,
      );
      assertEquals(error.code, "PROXY_REFUSED");
      assertEquals(error.port, strict.port);
      assert(error.message.includes("403"), error.message);
    } finally {
      await strict.close();
    }
  });

  it("connect() checks the wss: server's certificate through the tunnel", async () => {
    // Not trusted: no caCerts.
    const error = await assertRejects(
      () => connect(`wss://localhost:${wss.port}/echo`, { ...options, proxy: open.url() }),
      ConnectError,
    );
    assertEquals(error.code, "CERT_UNTRUSTED");
    // The error names the server, not the proxy.
    assertEquals([error.hostname, error.port], ["localhost", wss.port]);
  });

  it("connect() takes HTTP_PROXY for ws: and HTTPS_PROXY for wss: from the adapter's env()", async () => {
    const adapter = withEnv({ HTTP_PROXY: open.url(), HTTPS_PROXY: authed.url("user:pass") });
    const plain = await connect(`ws://127.0.0.1:${ws.port}/echo`, { timeout: BOUND, adapter });
    assertEquals(plain.remoteAddress?.port, open.port);
    await roundTrip(plain);
    const secure = await connect(`wss://localhost:${wss.port}/echo`, {
      timeout: BOUND,
      adapter,
      caCerts: [ca],
    });
    assertEquals(secure.remoteAddress?.port, authed.port);
    await roundTrip(secure);
  });

  it("connect() falls back to ALL_PROXY, reads lower-case names, and goes direct for NO_PROXY hosts", async () => {
    const all = withEnv({ all_proxy: open.url() });
    const viaAll = await connect(`ws://127.0.0.1:${ws.port}/echo`, { timeout: BOUND, adapter: all });
    assertEquals(viaAll.remoteAddress?.port, open.port);
    await roundTrip(viaAll);
    for (const noProxy of ["127.0.0.1", `localhost, 127.0.0.1:${ws.port}`, "*"]) {
      const adapter = withEnv({ http_proxy: open.url(), NO_PROXY: noProxy });
      const direct = await connect(`ws://127.0.0.1:${ws.port}/echo`, { timeout: BOUND, adapter });
      assertEquals(direct.remoteAddress?.port, ws.port, noProxy);
      await roundTrip(direct);
    }
    // Another port than the NO_PROXY entry's: through the proxy.
    const adapter = withEnv({ HTTP_PROXY: open.url(), NO_PROXY: "127.0.0.1:1" });
    const proxied = await connect(`ws://127.0.0.1:${ws.port}/echo`, { timeout: BOUND, adapter });
    assertEquals(proxied.remoteAddress?.port, open.port);
    await roundTrip(proxied);
  });

  it("connect() ignores the environment with proxy: false, and for ws: with only HTTPS_PROXY set", async () => {
    const down = `http://127.0.0.1:${await freePort()}`;
    for (
      const [vars, proxy] of [
        [{ HTTP_PROXY: down }, false],
        [{ HTTPS_PROXY: down }, undefined],
      ] as const
    ) {
      const conn = await connect(`ws://127.0.0.1:${ws.port}/echo`, {
        timeout: BOUND,
        adapter: withEnv(vars),
        proxy,
      });
      assertEquals(conn.remoteAddress?.port, ws.port);
      await roundTrip(conn);
    }
  });

  it("connect() reads HTTP_PROXY from the real environment (a child process)", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sock-proxy-env-"));
    const script = path.join(dir, "child.ts");
    const client = new URL("../src/client.ts", import.meta.url).href;
    fs.writeFileSync(
      script,
      `import { connect } from ${JSON.stringify(client)};\n` +
        `const ws = await connect("ws://127.0.0.1:${ws.port}/echo", { timeout: 10000 });\n` +
        `console.log("peer " + ws.remoteAddress?.port);\n` +
        `await ws.close(1000);\n` +
        // Not waiting for the connection's timers.
        `(await import("node:process")).default.exit(0);\n`,
    );
    const isDeno = "Deno" in globalThis;
    const args = isDeno ? ["run", "--allow-net", "--allow-env", "--allow-read", script] : [script];
    const child = spawn(process.execPath, args, {
      env: { ...process.env, HTTP_PROXY: open.url(), NO_PROXY: "", no_proxy: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout!.on("data", (data: Uint8Array) => output += new TextDecoder().decode(data));
    child.stderr!.on("data", (data: Uint8Array) => output += new TextDecoder().decode(data));
    try {
      const code = await within(
        new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code))),
        "child",
        BOUND,
      );
      assertEquals(code, 0, output);
      assert(output.includes(`peer ${open.port}`), output);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

/**
 * A small SOCKS5 server that asks for user "user", password "pass" (RFC 1929), then relays to the
 * IPv4 address or host name asked for: the user name and password path, which Dante checks against
 * the system's accounts only.
 */
async function socksWithPassword(): Promise<Proxy> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on("error", () => {});
    let buffer = new Uint8Array(0);
    let stage = 0;
    const onData = (data: Uint8Array) => {
      buffer = new Uint8Array([...buffer, ...data]);
      if (stage === 0 && buffer.length >= 2 + buffer[1]!) {
        const offered = [...buffer.subarray(2, 2 + buffer[1]!)];
        buffer = buffer.subarray(2 + buffer[1]!);
        client.write(new Uint8Array([5, offered.includes(2) ? 2 : 0xff]));
        if (!offered.includes(2)) return void client.end();
        stage = 1;
      }
      if (
        stage === 1 && buffer.length >= 2 && buffer.length >= 3 + buffer[1]! + (buffer[2 + buffer[1]!] ?? 255)
      ) {
        const text = new TextDecoder();
        const user = text.decode(buffer.subarray(2, 2 + buffer[1]!));
        const pass = text.decode(buffer.subarray(3 + buffer[1]!, 3 + buffer[1]! + buffer[2 + buffer[1]!]!));
        buffer = buffer.subarray(3 + buffer[1]! + buffer[2 + buffer[1]!]!);
        const ok = user === "user" && pass === "pass";
        client.write(new Uint8Array([1, ok ? 0 : 1]));
        if (!ok) return void client.end();
        stage = 2;
      }
      if (stage === 2 && buffer.length >= 7) {
        const type = buffer[3];
        const length = type === 1 ? 10 : 7 + buffer[4]!;
        if (buffer.length < length) return;
        const host = type === 1
          ? [...buffer.subarray(4, 8)].join(".")
          : new TextDecoder().decode(buffer.subarray(5, 5 + buffer[4]!));
        const port = (buffer[length - 2]! << 8) | buffer[length - 1]!;
        client.off("data", onData);
        const upstream = net.connect(port, host, () => {
          client.write(new Uint8Array([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]));
          client.pipe(upstream).pipe(client);
        });
        sockets.add(upstream);
        upstream.on("error", () => client.destroy());
        stage = 3;
      }
    };
    client.on("data", onData);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    url: (credentials) => `socks5://${credentials ? `${credentials}@` : ""}127.0.0.1:${port}`,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe("connect() through SOCKS5", { skip: !fs.existsSync(DANTED) && "danted not installed" }, () => {
  let dante: Proxy, withPassword: Proxy, ws: Awaited<ReturnType<typeof echoServer>>;
  let wss: Awaited<ReturnType<typeof echoServer>>;
  let blocked: number;
  const options: ConnectOptions = { timeout: BOUND, proxy: false };

  before(async () => {
    ws = await echoServer();
    wss = await echoServer(true);
    blocked = await freePort();
    dante = await danted(blocked);
    withPassword = await socksWithPassword();
  });
  after(async () => {
    await Promise.allSettled([dante?.close(), withPassword?.close(), ws?.close(), wss?.close()]);
  });

  it("connect() reaches ws: and wss: servers through Dante", async () => {
    const plain = await connect(`ws://127.0.0.1:${ws.port}/echo`, { ...options, proxy: dante.url() });
    assertEquals(plain.remoteAddress?.port, dante.port);
    await roundTrip(plain);
    // The name goes to the proxy, which resolves it; the certificate is checked against it.
    const secure = await connect(`wss://localhost:${wss.port}/echo`, {
      ...options,
      caCerts: [ca],
      proxy: dante.url(),
    });
    assertEquals(secure.remoteAddress?.port, dante.port);
    await roundTrip(secure, "over TLS through SOCKS5");
  });

  it("connect() fails with PROXY_REFUSED naming the proxy when Dante refuses or cannot connect", async () => {
    for (const [port, reply] of [[blocked, "2"], [await freePort(), "5"]] as const) {
      const error = await assertRejects(
        () => connect(`ws://127.0.0.1:${port}/echo`, { ...options, proxy: dante.url() }),
        ConnectError,
      );
      assertEquals(error.code, "PROXY_REFUSED");
      assertEquals(error.port, dante.port);
      assert(error.message.includes(`SOCKS5 reply ${reply}`), error.message);
    }
  });

  it("connect() sends the SOCKS5 proxy URL's user name and password (RFC 1929)", async () => {
    const proxy = withPassword.url("user:pass");
    await roundTrip(await connect(`ws://127.0.0.1:${ws.port}/echo`, { ...options, proxy }));
    await roundTrip(await connect(`wss://localhost:${wss.port}/echo`, { ...options, caCerts: [ca], proxy }));
    for (const credentials of [undefined, "user:wrong"]) {
      const error = await assertRejects(
        () => connect(`ws://127.0.0.1:${ws.port}/echo`, { ...options, proxy: withPassword.url(credentials) }),
        ConnectError,
      );
      assertEquals(error.code, "PROXY_AUTH_FAILED");
      assertEquals(error.port, withPassword.port);
    }
  });

  it("connect() takes a socks5: ALL_PROXY from the adapter's env()", async () => {
    const conn = await connect(`ws://127.0.0.1:${ws.port}/echo`, {
      timeout: BOUND,
      adapter: withEnv({ ALL_PROXY: dante.url() }),
    });
    assertEquals(conn.remoteAddress?.port, dante.port);
    await roundTrip(conn);
  });
});

describe("connect() through a proxy that fails", () => {
  it("connect() fails with ECONNREFUSED naming the proxy when it is down", async () => {
    const port = await freePort();
    const error = await assertRejects(
      () => connect("ws://127.0.0.1:9/echo", { timeout: BOUND, proxy: `http://127.0.0.1:${port}` }),
      ConnectError,
    );
    assertEquals(error.code, "ECONNREFUSED");
    assertEquals([error.hostname, error.port], ["127.0.0.1", port]);
    assert(error.message.includes(`127.0.0.1:${port}`), error.message);
  });

  /** A raw TCP "proxy" that answers every connection with `reply` (then maybe closes). */
  async function rawProxy(
    reply: (socket: net.Socket) => void,
  ): Promise<{ port: number; close(): Promise<void> }> {
    const sockets = new Set<net.Socket>();
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on("error", () => {});
      socket.once("data", () => reply(socket));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return {
      port: (server.address() as net.AddressInfo).port,
      close: async () => {
        for (const socket of sockets) socket.destroy();
        await new Promise((resolve) => server.close(resolve));
      },
    };
  }

  const cases: [string, (socket: net.Socket) => void, string][] = [
    ["answers something that is not HTTP", (s) => s.write("SSH-2.0-OpenSSH\r\n\r\n"), "PROXY_PROTOCOL_ERROR"],
    [
      "sends an answer head over 8 KiB",
      (s) => s.write(`HTTP/1.1 200 OK\r\nX-Pad: ${"a".repeat(MAX_CONNECT_RESPONSE_SIZE)}\r\n\r\n`),
      "PROXY_PROTOCOL_ERROR",
    ],
    ["sends bytes after its 200", (s) => s.write("HTTP/1.1 200 OK\r\n\r\nearly"), "PROXY_PROTOCOL_ERROR"],
    ["closes without answering", (s) => s.end(), "ECONNRESET"],
    ["answers 502", (s) => s.end("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n"), "PROXY_REFUSED"],
  ];

  it("connect()'s PROXY_REFUSED carries the proxy's final status as its cause, after a 100", async () => {
    const proxy = await rawProxy((s) => s.end("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Busy\r\n\r\n"));
    try {
      const error = await assertRejects(
        () => connect("ws://localhost:9/", { timeout: BOUND, proxy: `127.0.0.1:${proxy.port}` }),
        ConnectError,
      );
      assertEquals(error.code, "PROXY_REFUSED");
      assertEquals(error.cause, { status: 503, statusText: "Busy" });
    } finally {
      await proxy.close();
    }
  });
  for (const [what, reply, code] of cases) {
    it(`connect() fails with ${code} when the proxy ${what}`, async () => {
      const proxy = await rawProxy(reply);
      try {
        for (const scheme of ["ws", "wss"]) {
          const error = await assertRejects(
            () => connect(`${scheme}://localhost:9/`, { timeout: BOUND, proxy: `127.0.0.1:${proxy.port}` }),
            ConnectError,
          );
          assertEquals(error.code, code);
          assertEquals(error.port, proxy.port);
        }
      } finally {
        await proxy.close();
      }
    });
  }

  it("connect()'s timeout ends a TLS handshake stuck inside the tunnel", async () => {
    const closed = Promise.withResolvers<void>();
    const proxy = await rawProxy((socket) => {
      // The tunnel opens, but the "server" behind it never answers the TLS hello.
      socket.write("HTTP/1.1 200 Connection established\r\n\r\n");
      socket.once("close", () => closed.resolve());
    });
    try {
      const error = await assertRejects(
        () => connect("wss://localhost:9/", { timeout: 300, proxy: `http://127.0.0.1:${proxy.port}` }),
        DOMException,
      );
      assertEquals(error.name, "TimeoutError");
      // Deno keeps the TCP connection under a TLS handshake it cancelled open until the handshake
      // ends (Deno.connectTls() too, without a proxy): only Bun's closes at once.
      if (!("Deno" in globalThis)) await within(closed.promise, "the tunnel closed", BOUND);
    } finally {
      await proxy.close();
    }
  });

  it("connect() refuses a proxy URL it cannot use, before connecting", async () => {
    for (const proxy of ["https://127.0.0.1:1", "socks4://127.0.0.1:1", "http://[bad"]) {
      await assertRejects(() => connect("ws://127.0.0.1:9/", { proxy }), TypeError);
    }
  });
});

/**
 * An HTTP proxy in this process: answers `CONNECT host:port` with `preamble` then 200, and relays;
 * `heads` records the requests it got.
 */
async function connectProxy(preamble = ""): Promise<Proxy & { heads: string[] }> {
  const heads: string[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on("error", () => {});
    let head = "";
    const onData = (data: Uint8Array) => {
      head += new TextDecoder().decode(data);
      if (!head.includes("\r\n\r\n")) return;
      client.off("data", onData);
      heads.push(head);
      const [, host, port] = /^CONNECT (.+):(\d+) /.exec(head)!;
      const upstream = net.connect(Number(port), host!.replace(/^\[|\]$/g, ""), () => {
        client.write(`${preamble}HTTP/1.1 200 Connection established\r\n\r\n`);
        client.pipe(upstream).pipe(client);
      });
      sockets.add(upstream);
      upstream.on("error", () => client.destroy());
    };
    client.on("data", onData);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    heads,
    url: (credentials) => `http://${credentials ? `${credentials}@` : ""}127.0.0.1:${port}`,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

describe("connect() through a CONNECT proxy in this process", () => {
  let proxy: Awaited<ReturnType<typeof connectProxy>>, ws: Awaited<ReturnType<typeof echoServer>>;
  let wss: Awaited<ReturnType<typeof echoServer>>;

  before(async () => {
    ws = await echoServer();
    wss = await echoServer(true);
    proxy = await connectProxy();
  });
  after(async () => {
    await Promise.allSettled([proxy?.close(), ws?.close(), wss?.close()]);
  });

  it("connect() skips interim 1xx answers before the proxy's 200", async () => {
    const continuing = await connectProxy(
      "HTTP/1.1 100 Continue\r\nA: b\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n",
    );
    try {
      await roundTrip(
        await connect(`ws://127.0.0.1:${ws.port}/echo`, { timeout: BOUND, proxy: continuing.url() }),
      );
      await roundTrip(
        await connect(`wss://localhost:${wss.port}/echo`, {
          timeout: BOUND,
          caCerts: [ca],
          proxy: continuing.url(),
        }),
      );
    } finally {
      await continuing.close();
    }
  });

  it("connect() does not send a Proxy-Authorization header through the tunnel; the proxy URL's goes to the proxy", async () => {
    const seen: (string | null)[] = [];
    const app = new Sock();
    app.route("/", (conn) => {
      seen.push(conn.request?.headers.get("proxy-authorization") ?? null);
      conn.close(1000);
    });
    const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const headers = { "Proxy-Authorization": "Basic c2VjcmV0", "X-Other": "kept" };
      const conn = await connect(`ws://127.0.0.1:${port}/`, {
        timeout: BOUND,
        headers,
        proxy: proxy.url("u:p"),
      });
      await within(conn.closed, "close", BOUND);
      assertEquals(seen, [null]);
      assert(
        proxy.heads.at(-1)!.includes(`Proxy-Authorization: Basic ${btoa("u:p")}\r\n`),
        proxy.heads.at(-1),
      );
      assert(!proxy.heads.at(-1)!.includes("c2VjcmV0"), proxy.heads.at(-1));
    } finally {
      await app.close();
    }
  });

  it("connect() skips environment proxies it cannot use, as Deno's fetch does, instead of failing", async () => {
    // Alone: direct.
    const alone: Record<string, string>[] = [
      { HTTPS_PROXY: "https://127.0.0.1:1" },
      { https_proxy: "socks4://127.0.0.1:1" },
    ];
    for (const vars of alone) {
      const conn = await connect(`wss://localhost:${wss.port}/echo`, {
        timeout: BOUND,
        caCerts: [ca],
        adapter: withEnv(vars),
      });
      assertEquals(conn.remoteAddress?.port, wss.port, JSON.stringify(vars));
      await roundTrip(conn);
    }
    // Then the lower-case name, then ALL_PROXY.
    const next: Record<string, string>[] = [
      { HTTPS_PROXY: "https://127.0.0.1:1", https_proxy: proxy.url() },
      { HTTPS_PROXY: "http://[bad", ALL_PROXY: proxy.url() },
    ];
    for (const vars of next) {
      const conn = await connect(`wss://localhost:${wss.port}/echo`, {
        timeout: BOUND,
        caCerts: [ca],
        adapter: withEnv(vars),
      });
      assertEquals(conn.remoteAddress?.port, proxy.port, JSON.stringify(vars));
      await roundTrip(conn);
    }
  });

  it("connect() ignores HTTP_PROXY when REQUEST_METHOD is set (httpoxy), not HTTPS_PROXY", async () => {
    const down = `http://127.0.0.1:${await freePort()}`;
    const direct = await connect(`ws://127.0.0.1:${ws.port}/echo`, {
      timeout: BOUND,
      adapter: withEnv({ HTTP_PROXY: down, http_proxy: down, REQUEST_METHOD: "GET" }),
    });
    assertEquals(direct.remoteAddress?.port, ws.port);
    await roundTrip(direct);
    const proxied = await connect(`wss://localhost:${wss.port}/echo`, {
      timeout: BOUND,
      caCerts: [ca],
      adapter: withEnv({ HTTPS_PROXY: proxy.url(), REQUEST_METHOD: "GET" }),
    });
    assertEquals(proxied.remoteAddress?.port, proxy.port);
    await roundTrip(proxied);
  });

  it("connect() goes direct for a NO_PROXY network or address, never by a suffix of an address", async () => {
    for (const noProxy of ["127.0.0.0/8", "[::ffff:0:0]/96, 127.0.0.1", "*:" + ws.port]) {
      const adapter = withEnv({ HTTP_PROXY: proxy.url(), NO_PROXY: noProxy });
      const conn = await connect(`ws://127.0.0.1:${ws.port}/echo`, { timeout: BOUND, adapter });
      assertEquals(conn.remoteAddress?.port, ws.port, noProxy);
      await roundTrip(conn);
    }
    for (const noProxy of ["0.0.1", "0.1", "128.0.0.0/1"]) {
      const adapter = withEnv({ HTTP_PROXY: proxy.url(), NO_PROXY: noProxy });
      const conn = await connect(`ws://127.0.0.1:${ws.port}/echo`, { timeout: BOUND, adapter });
      assertEquals(conn.remoteAddress?.port, proxy.port, noProxy);
      await roundTrip(conn);
    }
  });

  it("connect() refuses credentials it cannot send before connecting, without showing them", async () => {
    const before = proxy.heads.length;
    for (
      const url of [
        `socks5://user@127.0.0.1:${proxy.port}`,
        `socks5://:secret@127.0.0.1:${proxy.port}`,
        `http://user:se%0D%0Acret@127.0.0.1:${proxy.port}`,
        `http://user:secret%zz@127.0.0.1:${proxy.port}`,
      ]
    ) {
      const error = await assertRejects(() => connect("ws://127.0.0.1:9/", { proxy: url }), TypeError);
      assert(!error.message.includes("secret"), error.message);
    }
    assertEquals(proxy.heads.length, before);
  });
});

describe("the proxy rules (src/core/proxy.ts)", () => {
  it("formatConnectRequest() names the target and encodes UTF-8 credentials", () => {
    const text = new TextDecoder().decode(
      formatConnectRequest({ hostname: "example.com", port: 443 }, { username: "ü", password: "p:w" }),
    );
    assertEquals(
      text,
      `CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nProxy-Authorization: Basic ${
        btoa("\xc3\xbc:p:w")
      }\r\n\r\n`,
    );
    assertThrows(() => formatConnectRequest({ hostname: "a\r\nb", port: 1 }), TypeError);
    // Credentials of any size (no spread of their bytes onto the stack).
    const long = "x".repeat(300_000);
    const big = new TextDecoder().decode(
      formatConnectRequest({ hostname: "h", port: 1 }, { username: long, password: "p" }),
    );
    assert(big.includes(`Proxy-Authorization: Basic ${btoa(`${long}:p`)}\r\n`));
  });

  it("ConnectResponseReader skips interim 1xx heads, split at every offset; 101 is final", () => {
    const bytes = new TextEncoder().encode(
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nLink: x\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
    );
    for (let at = 0; at <= bytes.length; at++) {
      const reader = new ConnectResponseReader();
      const first = reader.write(bytes.subarray(0, at));
      const answer = first ?? reader.write(bytes.subarray(at));
      assertEquals([answer?.status, answer?.rest.length], [200, 0], `at ${at}`);
    }
    const switching = new TextEncoder().encode("HTTP/1.1 101 Switching\r\n\r\n");
    assertEquals(new ConnectResponseReader().write(switching)?.status, 101);
  });

  it("ConnectResponseReader reads an answer split at every offset", () => {
    const bytes = new TextEncoder().encode("HTTP/1.0 407 Proxy Authentication Required\r\nA: b\r\n\r\n");
    for (let at = 0; at <= bytes.length; at++) {
      const reader = new ConnectResponseReader();
      const first = reader.write(bytes.subarray(0, at));
      const answer = at === bytes.length ? first : reader.write(bytes.subarray(at));
      assertEquals([answer?.status, answer?.statusText], [407, "Proxy Authentication Required"]);
    }
  });

  it("Socks5Handshake reads the proxy's answers split at every offset, with credentials", () => {
    const answers = new Uint8Array([5, 2, 1, 0, 5, 0, 0, 3, 4, 0x68, 0x6f, 0x73, 0x74, 0, 80]);
    for (let at = 0; at <= answers.length; at++) {
      const socks = new Socks5Handshake({ hostname: "example.com", port: 443 }, {
        username: "u",
        password: "pw",
      });
      assertEquals(socks.dataToSend(), new Uint8Array([5, 2, 0, 2]));
      const sent: number[] = [];
      socks.receiveData(answers.subarray(0, at));
      sent.push(...socks.dataToSend());
      socks.receiveData(answers.subarray(at));
      sent.push(...socks.dataToSend());
      assertEquals(socks.done, true);
      const name = [...new TextEncoder().encode("example.com")];
      assertEquals(sent, [1, 1, 0x75, 2, 0x70, 0x77, 5, 1, 0, 3, 11, ...name, 1, 187]);
    }
  });

  it("Socks5Handshake encodes IPv6 targets and refuses what breaks RFC 1928", () => {
    const socks = new Socks5Handshake({ hostname: "::1", port: 1 });
    socks.dataToSend();
    socks.receiveData(new Uint8Array([5, 0]));
    assertEquals(socks.dataToSend(), new Uint8Array([5, 1, 0, 4, ...new Array(15).fill(0), 1, 0, 1]));
    const kinds: [number[], string][] = [
      [[4, 0], "protocol"],
      [[5, 0xff], "auth"],
      [[5, 2], "protocol"], // Not offered without credentials.
      [[5, 0, 5, 4, 0, 1, 0], "refused"],
      [[5, 0, 5, 0, 0, 9, 0], "protocol"],
      [[5, 0, 5, 0, 0, 1, 0, 0, 0, 0, 0, 0, 99], "protocol"], // Bytes after the reply.
    ];
    for (const [bytes, kind] of kinds) {
      const socks = new Socks5Handshake({ hostname: "127.0.0.1", port: 1 });
      const error = assertThrows(() => socks.receiveData(new Uint8Array(bytes)), Socks5Error);
      assertEquals(error.kind, kind, String(bytes));
    }
    assertThrows(() => new Socks5Handshake({ hostname: "a".repeat(256), port: 1 }), TypeError);
    assertThrows(
      () => new Socks5Handshake({ hostname: "h", port: 1 }, { username: "", password: "p" }),
      TypeError,
    );
  });

  it("parseProxyUrl() takes a bare host:port as http:, decodes credentials, defaults to port 80 (1080 for SOCKS5)", () => {
    assertEquals(parseProxyUrl("proxy.local:3128"), {
      protocol: "http",
      hostname: "proxy.local",
      port: 3128,
      credentials: undefined,
    });
    assertEquals(parseProxyUrl("socks5h://p").port, 1080);
    assertEquals(parseProxyUrl("http://a%40b:p%3A@[::1]"), {
      protocol: "http",
      hostname: "::1",
      port: 80,
      credentials: { username: "a@b", password: "p:" },
    });
    // An HTTP proxy may take an empty password (Basic sends "user:"), SOCKS5 may not.
    assertEquals(parseProxyUrl("http://user@proxy").credentials, { username: "user", password: "" });
  });

  it("parseProxyUrl() refuses credentials it cannot send, and never shows them", () => {
    for (
      const url of [
        "http://UsEr:Se/CrEt@proxy:3128", // Not a URL: "/" ends the authority.
        "UsEr:Se/CrEt@proxy:3128",
        "http://UsEr:Se%zzCrEt@proxy",
        "http://UsEr:Se%0ACrEt@proxy",
        "http://Us%0DEr:SeCrEt@proxy",
        "socks5://UsEr@proxy",
        "socks5h://:SeCrEt@proxy",
      ]
    ) {
      const error = assertThrows(() => parseProxyUrl(url), TypeError);
      assert(!/UsEr|Us%0DEr|Se.*CrEt/.test(error.message), error.message);
    }
  });

  it("noProxyMatches() takes names, suffixes, addresses, ports and *", () => {
    const yes: [string, string, number][] = [
      ["example.com", "example.com", 80],
      ["example.com", "a.b.example.com", 80],
      [".example.com", "a.example.com", 80],
      ["*.example.com", "a.example.com", 80],
      ["foo, example.com:8080", "example.com", 8080],
      ["[::1]:443", "::1", 443],
      ["::1", "::1", 443],
      ["*", "anything", 1],
      ["EXAMPLE.com", "example.COM", 1],
      ["10.0.0.0/8", "10.1.2.3", 80],
      ["192.168.1.0/24", "192.168.1.255", 80],
      ["0.0.0.0/0", "8.8.8.8", 80],
      ["fd00::/8", "fd12::1", 80],
      ["[0:0::1]", "::1", 80],
      ["0:0:0:0:0:0:0:1", "[::1]", 80],
      ["*:443", "example.com", 443],
    ];
    const no: [string, string, number][] = [
      ["example.com", "badexample.com", 80],
      ["example.com:8080", "example.com", 80],
      ["", "example.com", 80],
      ["127.0.0.1", "127.0.0.10", 80],
      ["0.0.1", "10.0.0.1", 80], // Not an address: never a suffix of one.
      ["0.1", "10.0.0.1", 80],
      ["10.0.0.0/8", "11.0.0.1", 80],
      ["10.0.0.0/33", "10.0.0.1", 80],
      ["10.0.0.0/8", "::ffff:a00:1", 80],
      ["fd00::/8", "fe00::1", 80],
      ["*:443", "example.com", 80],
      ["[::1]:8080", "::1", 80],
    ];
    for (const [list, host, port] of yes) {
      assertEquals(noProxyMatches(list, host, port), true, `${list} ${host}`);
    }
    for (const [list, host, port] of no) {
      assertEquals(noProxyMatches(list, host, port), false, `${list} ${host}`);
    }
  });

  it("proxyFromEnv() skips values the caller cannot use, and HTTP_PROXY when REQUEST_METHOD is set", () => {
    const env = (vars: Record<string, string>) => (name: string) => vars[name];
    const ws = { secure: false, hostname: "h", port: 80 };
    const wss = { secure: true, hostname: "h", port: 443 };
    const usable = (value: string) => value.startsWith("http:");
    assertEquals(proxyFromEnv(wss, env({ HTTPS_PROXY: "https:a" }), usable), undefined);
    assertEquals(proxyFromEnv(wss, env({ HTTPS_PROXY: "https:a", https_proxy: "http:b" }), usable), "http:b");
    assertEquals(proxyFromEnv(wss, env({ HTTPS_PROXY: "socks4:a", ALL_PROXY: "http:c" }), usable), "http:c");
    assertEquals(
      proxyFromEnv(ws, env({ HTTP_PROXY: "a", http_proxy: "b", REQUEST_METHOD: "GET" })),
      undefined,
    );
    assertEquals(proxyFromEnv(ws, env({ HTTP_PROXY: "a", ALL_PROXY: "c", REQUEST_METHOD: "" })), "c");
    assertEquals(proxyFromEnv(wss, env({ HTTPS_PROXY: "a", REQUEST_METHOD: "GET" })), "a");
  });

  it("proxyFromEnv() prefers the scheme's variable, upper case first, then ALL_PROXY", () => {
    const env = (vars: Record<string, string>) => (name: string) => vars[name];
    const ws = { secure: false, hostname: "h", port: 80 };
    const wss = { secure: true, hostname: "h", port: 443 };
    assertEquals(proxyFromEnv(ws, env({ HTTP_PROXY: "a", http_proxy: "b", ALL_PROXY: "c" })), "a");
    assertEquals(proxyFromEnv(ws, env({ http_proxy: "b", ALL_PROXY: "c" })), "b");
    assertEquals(proxyFromEnv(wss, env({ HTTP_PROXY: "a", ALL_PROXY: "c" })), "c");
    assertEquals(proxyFromEnv(wss, env({ HTTP_PROXY: "a" })), undefined);
    assertEquals(proxyFromEnv(wss, env({ HTTPS_PROXY: "a", no_proxy: "h" })), undefined);
  });
});
