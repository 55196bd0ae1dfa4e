/**
 * Hono served by sock (examples/hono.ts): Hono routes plain HTTP through sock's `fetch` and its
 * `/ws` route upgrades through `sock.upgrade()`. Driven by the runtime's own fetch and sock's
 * client, by Node's fetch (undici), by curl, and by headless Chromium.
 *
 * Hono is the copy installed in tools/dev (`npm ci --prefix tools/dev`), loaded by path: Deno runs
 * here without a node_modules directory of its own. A missing copy fails the tests. curl and
 * Chromium are skipped (visibly) when missing, as in browser_test.ts.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { connect } from "../../src/client.ts";
import type { Connection } from "../../src/connection/connection.ts";
import { Sock } from "../../src/server/sock.ts";
import { HONO_VERSION, honoApp, type HonoAppOptions, type HonoModules } from "../../examples/hono.ts";
import { CHROMIUM, type Chromium, launchChromium, spawn, until } from "../_chromium.ts";

const CURL = "/usr/bin/curl";
const HONO_DIR = new URL("../../tools/dev/node_modules/hono/", import.meta.url);

// ---- Hono from tools/dev, and the app on a free port ----

let loaded: Promise<HonoModules> | undefined;

/** Hono from tools/dev/node_modules, checked to be the version tools/dev pins and the example names. */
function loadHono(): Promise<HonoModules> {
  return loaded ??= (async () => {
    let manifest: { version: string };
    try {
      manifest = JSON.parse(await readFile(new URL("package.json", HONO_DIR), "utf8"));
    } catch (error) {
      throw new Error(`hono is not installed in tools/dev: run \`npm ci --prefix tools/dev\` (${error})`);
    }
    const tools = JSON.parse(
      await readFile(new URL("../../tools/dev/package.json", import.meta.url), "utf8"),
    );
    assert.equal(tools.devDependencies.hono, HONO_VERSION, "tools/dev/package.json pins the example's Hono");
    assert.equal(
      manifest.version,
      HONO_VERSION,
      "tools/dev has the pinned Hono: run `npm ci --prefix tools/dev`",
    );
    // By path (specifiers built at run time, so nothing is fetched to type-check this file).
    const [{ Hono }, { streamSSE }] = await Promise.all([
      import(new URL("dist/index.js", HONO_DIR).href),
      import(new URL("dist/helper/streaming/index.js", HONO_DIR).href),
    ]);
    assert.equal(typeof Hono, "function");
    assert.equal(typeof streamSSE, "function");
    return { Hono, streamSSE };
  })();
}

/** The example's app on a free loopback port; `errors` collects what reached `onError`. */
async function serve(options: HonoAppOptions = {}) {
  const errors: unknown[] = [];
  const logged: string[] = [];
  const { sock } = honoApp(await loadHono(), {
    ticks: 3,
    tickInterval: 400,
    log: (line) => logged.push(line),
    onError: (error) => errors.push(error),
    ...options,
  });
  const { port } = await sock.listen({ hostname: "127.0.0.1", port: 0 });
  return { sock, port, base: `http://127.0.0.1:${port}`, errors, logged, close: () => sock.close(2000) };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `ok` every 20 ms for up to `ms`. */
async function eventually(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Parses server-sent events into `{ event, data, id }` records. */
function parseEvents(text: string): { event?: string; data?: string; id?: string }[] {
  return text.split("\n\n").filter((block) => block.trim() !== "").map((block) => {
    const record: Record<string, string> = {};
    for (const line of block.split("\n")) {
      const at = line.indexOf(": ");
      if (at > 0) record[line.slice(0, at)] = line.slice(at + 2);
    }
    return record;
  });
}

const TICKS_AND_DONE = [
  { event: "tick", data: '{"tick":1}', id: "1" },
  { event: "tick", data: '{"tick":2}', id: "2" },
  { event: "tick", data: '{"tick":3}', id: "3" },
  { event: "done", data: "bye" },
];

// ---- Commands run to their end (spawned, and killed by PID, by ../_chromium.ts) ----

/** Runs a command to its end (killed after `timeout` ms); its exit code and output. */
async function run(
  command: string,
  args: string[],
  { input, timeout = 20_000 }: { input?: Uint8Array; timeout?: number } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn(command, args, { input });
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const output = Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()]);
    const code = await Promise.race([
      child.exited,
      new Promise<never>((_, reject) =>
        timer = setTimeout(() => reject(new Error(`${command} ran longer than ${timeout} ms`)), timeout)
      ),
    ]);
    const [stdout, stderr] = await output;
    return { code, stdout, stderr };
  } finally {
    clearTimeout(timer);
    child.kill();
  }
}

/** An HTTP/1.1 response as curl -i prints it: status, headers (names lowercased) and body. */
function parseHttp(text: string): { status: number; headers: [string, string][]; body: string } {
  const end = text.indexOf("\r\n\r\n");
  assert.ok(end > 0, `no response head in ${JSON.stringify(text.slice(0, 200))}`);
  const [statusLine, ...lines] = text.slice(0, end).split("\r\n");
  const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine)?.[1]);
  const headers = lines.map((line): [string, string] => {
    const at = line.indexOf(":");
    return [line.slice(0, at).toLowerCase(), line.slice(at + 1).trim()];
  });
  return { status, headers, body: text.slice(end + 4) };
}

const header = (headers: [string, string][], name: string) =>
  headers.filter(([key]) => key === name).map(([, value]) => value);

// ---- (a) The runtime's own fetch, and sock's client on the Hono-routed WebSocket ----

test("hono: runtime fetch: JSON, a JSON echo, the page, HEAD, 404, 426", { timeout: 30_000 }, async () => {
  const server = await serve();
  try {
    const hello = await fetch(`${server.base}/api/hello`);
    assert.equal(hello.status, 200);
    assert.equal(hello.headers.get("content-type"), "application/json");
    assert.deepEqual(await hello.json(), {
      message: "hello from Hono on sock",
      runtime: "Bun" in globalThis ? "Bun" : "Deno",
      client: "127.0.0.1",
    });

    const payload = { text: "héllo ✓", list: [1, 2, 3], nested: { ok: true }, big: "x".repeat(100_000) };
    const echo = await fetch(`${server.base}/api/echo`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(payload),
    });
    assert.equal(echo.status, 200);
    assert.deepEqual(await echo.json(), { echo: payload });

    const notJson = await fetch(`${server.base}/api/echo`, { method: "POST", body: "{ nope" });
    assert.equal(notJson.status, 400);
    assert.deepEqual(await notJson.json(), { error: "the body is not JSON" });

    const page = await fetch(`${server.base}/`);
    assert.equal(page.status, 200);
    assert.equal(page.headers.get("content-type"), "text/html; charset=UTF-8");
    const html = await page.text();
    assert.match(html, /<title>Hono on sock<\/title>/);
    assert.match(html, /new WebSocket\(/);

    const head = await fetch(`${server.base}/`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get("content-type"), "text/html; charset=UTF-8");
    assert.equal(await head.text(), "");

    const missing = await fetch(`${server.base}/nowhere`);
    assert.equal(missing.status, 404);
    await missing.body?.cancel();

    // /ws is Hono's route; a request there that is not an upgrade gets sock.upgrade()'s 426.
    const plain = await fetch(`${server.base}/ws`);
    assert.equal(plain.status, 426);
    assert.equal(plain.headers.get("upgrade"), "websocket");
    await plain.body?.cancel();
    assert.deepEqual(server.errors, []);
  } finally {
    await server.close();
  }
});

test("hono: Hono's getConnInfo, Deno's and Bun's, reads sock's info", { timeout: 30_000 }, async () => {
  type ConnInfo = (c: unknown) => { remote: Record<string, unknown> };
  const { Hono } = await loadHono();
  const [{ getConnInfo: denoConnInfo }, { getConnInfo: bunConnInfo }] = await Promise.all([
    import(new URL("dist/adapter/deno/conninfo.js", HONO_DIR).href) as Promise<{ getConnInfo: ConnInfo }>,
    import(new URL("dist/adapter/bun/conninfo.js", HONO_DIR).href) as Promise<{ getConnInfo: ConnInfo }>,
  ]);
  const app = new Hono();
  app.get("/conn", (c) => c.json({ deno: denoConnInfo(c).remote, bun: bunConnInfo(c).remote }));
  const errors: unknown[] = [];
  const sock = new Sock({
    fetch: (request, info) => app.fetch(request, info),
    onError: (e) => errors.push(e),
  });
  const { port } = await sock.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const response = await fetch(`http://127.0.0.1:${port}/conn`);
    assert.equal(response.status, 200);
    const { deno, bun } = await response.json();
    assert.equal(deno.address, "127.0.0.1");
    assert.equal(deno.transport, "tcp");
    assert.equal(bun.address, "127.0.0.1");
    assert.equal(bun.addressType, "IPv4");
    assert.ok(
      Number.isInteger(deno.port) && deno.port > 0 && deno.port === bun.port,
      JSON.stringify({ deno, bun }),
    );
    assert.deepEqual(errors, []);
  } finally {
    await sock.close(2000);
  }
});

test("hono: server-sent events: the first arrives long before the end", { timeout: 30_000 }, async () => {
  const server = await serve({ ticks: 3, tickInterval: 400 });
  try {
    const started = Date.now();
    const response = await fetch(`${server.base}/events`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/event-stream");
    assert.equal(response.headers.get("cache-control"), "no-cache");
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    let firstAt = -1;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += value;
      if (firstAt < 0 && text.includes("\n\n")) {
        firstAt = Date.now() - started;
        assert.deepEqual(parseEvents(text)[0], TICKS_AND_DONE[0]);
      }
    }
    const endAt = Date.now() - started;
    assert.ok(firstAt >= 0, "an event arrived");
    // Two pauses of 400 ms separate the first tick from the end: it was not held back until then.
    assert.ok(endAt - firstAt >= 700, `first event at ${firstAt} ms, end at ${endAt} ms`);
    assert.deepEqual(parseEvents(text), TICKS_AND_DONE);
    await eventually("the stream's end in the log", () => server.logged.includes("events: done"));
    assert.deepEqual(server.errors, []);
  } finally {
    await server.close();
  }
});

test("hono: a client leaving an event stream stops it", { timeout: 30_000 }, async () => {
  const server = await serve({ ticks: 50, tickInterval: 100 });
  try {
    const abort = new AbortController();
    const response = await fetch(`${server.base}/events`, { signal: abort.signal });
    const reader = response.body!.getReader();
    const first = await reader.read();
    assert.equal(first.done, false);
    abort.abort();
    await reader.read().catch(() => {});
    await eventually(
      "the stream to notice the client left",
      () => server.logged.some((line) => line.startsWith("events: the client left after")),
    );
    assert.ok(!server.logged.includes("events: done"));
    assert.deepEqual(server.errors, []);
  } finally {
    await server.close();
  }
});

test("hono: sock's client on Hono's /ws: ws.data, text and binary echo", { timeout: 30_000 }, async () => {
  const server = await serve();
  let ws: Connection | undefined;
  try {
    ws = await connect(`ws://127.0.0.1:${server.port}/ws?name=sock`, { closeTimeout: 2000 });
    assert.equal(await ws.receive({ timeout: 5000 }), "welcome, sock");
    await ws.send("hi");
    assert.equal(await ws.receive({ timeout: 5000 }), "echo: hi");
    const bytes = new Uint8Array([0, 1, 2, 255]);
    await ws.send(bytes);
    assert.deepEqual(await ws.receive({ timeout: 5000 }), bytes);
    assert.equal(server.sock.connections.size, 1);
    assert.deepEqual([...server.sock.connections][0].data, { name: "sock" });
    await ws.close(1000);
    await eventually("the handler to end", () => server.logged.includes("ws: sock left"));
    assert.deepEqual(server.errors, []);
  } finally {
    ws?.terminate();
    await server.close();
  }
});

// ---- (b) Node's fetch (undici): keep-alive, JSON, a streamed upload, SSE, HEAD ----

const NODE_SCRIPT = `
const base = process.argv[1];
const out = {};
const hello = await fetch(base + "/api/hello");
out.hello = { status: hello.status, type: hello.headers.get("content-type"), body: await hello.json() };
const echo = await fetch(base + "/api/echo", {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ from: "node", text: "héllo ✓", list: [1, 2, 3] }),
});
out.echo = { status: echo.status, body: await echo.json() };
// A body of unknown length: undici sends it chunked, in pieces over time.
const encoder = new TextEncoder();
const pieces = ['{"from":', '"node stream",', '"n":', "42}"];
const stream = new ReadableStream({
  async pull(controller) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    const piece = pieces.shift();
    if (piece === undefined) controller.close();
    else controller.enqueue(encoder.encode(piece));
  },
});
const streamed = await fetch(base + "/api/echo", {
  method: "POST",
  headers: { "content-type": "application/json" },
  body: stream,
  duplex: "half",
});
out.streamed = { status: streamed.status, body: await streamed.json() };
const started = Date.now();
const events = await fetch(base + "/events");
out.eventsType = events.headers.get("content-type");
const decoder = new TextDecoder();
let text = "";
for await (const chunk of events.body) {
  text += decoder.decode(chunk, { stream: true });
  if (out.firstAt === undefined && text.includes("\\n\\n")) out.firstAt = Date.now() - started;
}
out.endAt = Date.now() - started;
out.events = text;
const head = await fetch(base + "/", { method: "HEAD" });
out.head = { status: head.status, type: head.headers.get("content-type"), body: await head.text() };
console.log(JSON.stringify(out));
`;

test("hono: Node's fetch: JSON, a streamed upload, SSE as it comes, HEAD", { timeout: 40_000 }, async () => {
  const server = await serve({ ticks: 3, tickInterval: 400 });
  try {
    const { code, stdout, stderr } = await run("node", [
      "--input-type=module",
      "-e",
      NODE_SCRIPT,
      server.base,
    ]);
    assert.equal(code, 0, `node failed:\n${stderr}`);
    const out = JSON.parse(stdout);
    assert.deepEqual(out.hello, {
      status: 200,
      type: "application/json",
      body: {
        message: "hello from Hono on sock",
        runtime: "Bun" in globalThis ? "Bun" : "Deno",
        client: "127.0.0.1",
      },
    });
    assert.deepEqual(out.echo, {
      status: 200,
      body: { echo: { from: "node", text: "héllo ✓", list: [1, 2, 3] } },
    });
    assert.deepEqual(out.streamed, { status: 200, body: { echo: { from: "node stream", n: 42 } } });
    assert.equal(out.eventsType, "text/event-stream");
    assert.deepEqual(parseEvents(out.events), TICKS_AND_DONE);
    assert.ok(out.endAt - out.firstAt >= 700, `first event at ${out.firstAt} ms, end at ${out.endAt} ms`);
    assert.deepEqual(out.head, { status: 200, type: "text/html; charset=UTF-8", body: "" });
    assert.deepEqual(server.errors, []);
  } finally {
    await server.close();
  }
});

// ---- (c) curl: raw responses, keep-alive across URLs, a chunked upload, SSE framing ----

const curlTitle = "hono: curl: raw responses, one connection for two URLs, a chunked upload, SSE framing";

if (!existsSync(CURL)) {
  test.skip(`${curlTitle} (curl not installed)`, () => {});
} else {
  test(curlTitle, { timeout: 40_000 }, async () => {
    const server = await serve({ ticks: 3, tickInterval: 200 });
    try {
      const curl = (args: string[], input?: Uint8Array) =>
        run(CURL, ["-sS", "--max-time", "15", ...args], { input });

      const hello = await curl(["-i", `${server.base}/api/hello`]);
      assert.equal(hello.code, 0, hello.stderr);
      const helloResponse = parseHttp(hello.stdout);
      assert.equal(helloResponse.status, 200);
      assert.deepEqual(header(helloResponse.headers, "content-type"), ["application/json"]);
      assert.deepEqual(header(helloResponse.headers, "content-length"), [String(helloResponse.body.length)]);
      assert.equal(JSON.parse(helloResponse.body).message, "hello from Hono on sock");

      // Two URLs in one invocation: HTTP/1.1 keep-alive carries both over one connection.
      const both = await curl(["--http1.1", "-v", `${server.base}/api/hello`, `${server.base}/`]);
      assert.equal(both.code, 0, both.stderr);
      assert.match(both.stderr, /Re-using existing connection/);
      assert.equal((both.stderr.match(/Connected to 127\.0\.0\.1/g) ?? []).length, 1, both.stderr);
      assert.match(both.stdout, /^\{"message":"hello from Hono on sock",/);
      assert.match(both.stdout, /<title>Hono on sock<\/title>/);

      // A chunked upload from stdin, large enough for several chunks.
      const payload = { from: "curl", items: Array.from({ length: 5000 }, (_, i) => ({ i, word: `w${i}` })) };
      const upload = await curl([
        "-i",
        "-v",
        "-H",
        "Transfer-Encoding: chunked",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        "@-",
        `${server.base}/api/echo`,
      ], new TextEncoder().encode(JSON.stringify(payload)));
      assert.equal(upload.code, 0, upload.stderr);
      assert.match(upload.stderr, /^> Transfer-Encoding: chunked\r?$/m);
      assert.doesNotMatch(upload.stderr, /^> Content-Length/im);
      const uploadResponse = parseHttp(upload.stdout);
      assert.equal(uploadResponse.status, 200);
      assert.deepEqual(JSON.parse(uploadResponse.body), { echo: payload });

      // SSE: sock frames the stream itself (chunked, one Transfer-Encoding: Hono's own is dropped).
      const events = await curl(["-i", "-N", `${server.base}/events`]);
      assert.equal(events.code, 0, events.stderr);
      const eventsResponse = parseHttp(events.stdout);
      assert.equal(eventsResponse.status, 200);
      assert.deepEqual(header(eventsResponse.headers, "transfer-encoding"), ["chunked"]);
      assert.deepEqual(header(eventsResponse.headers, "content-type"), ["text/event-stream"]);
      assert.deepEqual(header(eventsResponse.headers, "content-length"), []);
      assert.deepEqual(parseEvents(eventsResponse.body), TICKS_AND_DONE);

      const head = await curl(["-I", `${server.base}/`]);
      assert.equal(head.code, 0, head.stderr);
      const headResponse = parseHttp(head.stdout);
      assert.equal(headResponse.status, 200);
      assert.deepEqual(header(headResponse.headers, "content-type"), ["text/html; charset=UTF-8"]);
      assert.equal(headResponse.body, "");

      const plain = await curl(["-i", `${server.base}/ws`]);
      assert.equal(parseHttp(plain.stdout).status, 426);
      assert.deepEqual(server.errors, []);
    } finally {
      await server.close();
    }
  });
}

// ---- (d) Headless Chromium: the page, its WebSocket to Hono's /ws, fetch and EventSource ----

/** The page's state, as the test reads it. */
const PAGE_STATE = `(() => {
  const text = (id) => document.getElementById(id)?.textContent ?? null;
  const items = (id) => Array.from(document.querySelectorAll("#" + id + " li"), (li) => li.textContent);
  return { hello: text("hello"), status: text("status"), log: items("log"), echo: text("echo"), events: items("events") };
})()`;

interface PageState {
  hello: string | null;
  status: string | null;
  log: string[];
  echo: string | null;
  events: string[];
}

const chromiumTitle = "hono: headless Chromium: the page's WebSocket to Hono's /ws, fetch and EventSource";

if (!existsSync(CHROMIUM)) {
  test.skip(`${chromiumTitle} (chromium not installed)`, () => {});
} else {
  test(chromiumTitle, { timeout: 45_000 }, async () => {
    const deadline = Date.now() + 30_000;
    const server = await serve({ ticks: 3, tickInterval: 200 });
    let chromium: Chromium | undefined;
    try {
      chromium = await launchChromium({
        profilePrefix: "sock-hono-chromium-",
        addressTimeout: 15_000,
        callTimeout: 10_000,
      });
      const browser = chromium.cdp;
      const tab = await browser.open(`${server.base}/`);
      const state = () => browser.evaluate(tab, PAGE_STATE) as Promise<PageState>;

      // On load: fetch("/api/hello"), the WebSocket's welcome, and every server-sent event.
      const loaded = await until(
        "the page to load its data",
        state,
        (s) => s.status === "connected" && s.log.length >= 1 && s.events.includes("done") && s.hello !== "…",
        deadline,
      );
      assert.equal(loaded.hello, "hello from Hono on sock (you are 127.0.0.1)");
      assert.deepEqual(loaded.log, ["welcome, browser"]);
      assert.deepEqual(loaded.events, ["tick 1", "tick 2", "tick 3", "done"]);

      // The form: the WebSocket echoes the text, and fetch POSTs it to /api/echo.
      await browser.evaluate(
        tab,
        `(() => {
          document.getElementById("text").value = "héllo from Chromium ✓";
          document.getElementById("form").requestSubmit();
        })()`,
      );
      const answered = await until(
        "the echoes",
        state,
        (s) => s.log.length >= 2 && s.echo !== "…",
        deadline,
      );
      assert.deepEqual(answered.log, ["welcome, browser", "echo: héllo from Chromium ✓"]);
      assert.equal(answered.echo, JSON.stringify({ echo: { text: "héllo from Chromium ✓" } }));

      // The browser's WebSocket is the server's only connection, with the data the upgrade gave it.
      const connections = [...server.sock.connections];
      assert.equal(connections.length, 1);
      assert.deepEqual(connections[0].data, { name: "browser" });
      assert.match(connections[0].request?.headers.get("user-agent") ?? "", /Chrome/);

      // Binary from the page comes back as it went.
      const binary = await browser.evaluate(
        tab,
        `new Promise((resolve) => {
          const ws = new WebSocket("ws://" + location.host + "/ws?name=bytes");
          ws.binaryType = "arraybuffer";
          ws.onmessage = (event) => {
            if (typeof event.data === "string") return ws.send(new Uint8Array([1, 2, 3, 250]));
            resolve(Array.from(new Uint8Array(event.data)));
            ws.close();
          };
        })`,
      );
      assert.deepEqual(binary, [1, 2, 3, 250]);
      assert.deepEqual(server.errors, []);
    } finally {
      await chromium?.close();
      await server.close();
    }
  });
}
