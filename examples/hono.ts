/**
 * Hono on sock: REST, server-sent events and a WebSocket on one port. Hono routes every plain
 * HTTP request (it is sock's `fetch`), and its `/ws` route hands the request to `sock.upgrade()`.
 *
 *   deno run -A examples/hono.ts [--port 8001] [--host 127.0.0.1]
 *   bun examples/hono.ts [--port 8001] [--host 127.0.0.1]
 *
 * Then open http://127.0.0.1:8001/. Deno fetches Hono from npm (`npm:hono@4.13.19`); Bun installs
 * `hono@4.13.19` on first use (its auto-install, as no node_modules is above this file). In a
 * project of your own: `import { Hono } from "npm:hono"` on Deno, or `bun add hono` and
 * `import { Hono } from "hono"` on Bun, then pass `{ Hono, streamSSE }` to `honoApp`.
 *
 * | route            | what it does                                                    |
 * | ---------------- | --------------------------------------------------------------- |
 * | `GET /`          | a page that talks to the three routes below                     |
 * | `GET /api/hello` | JSON, with the client's address (sock's `info` is Hono's `env`) |
 * | `POST /api/echo` | echoes a JSON body (400 when it is not JSON)                    |
 * | `GET /events`    | server-sent events: a few ticks, then `done`                    |
 * | `GET /ws`        | a WebSocket: a welcome, then an echo of every message           |
 *
 * @module
 */

import { Sock } from "../mod.ts";
import type { Handler } from "../mod.ts";
import { option } from "./args.ts";

/** The Hono release this example runs with (and the tests, from tools/dev). */
export const HONO_VERSION = "4.13.19";

// The parts of Hono used here, declared locally: `deno check` and the tests then need no download
// from npm (the tests pass the copy of Hono installed in tools/dev). Hono's own types cover more.

/** Hono's context `c`, as the routes below use it; `env` is what sock's `fetch` got as `info`. */
export interface HonoContext {
  req: {
    raw: Request;
    query(name: string): string | undefined;
    json(): Promise<unknown>;
  };
  env: {
    remoteAddr: { hostname: string; port: number };
  };
  json(value: unknown, status?: number): Response;
  html(html: string): Response | Promise<Response>;
}

/** A route handler. */
export type HonoRoute = (c: HonoContext) => Response | Promise<Response>;

/** A Hono app, as built here. */
export interface HonoApp {
  get(path: string, route: HonoRoute): HonoApp;
  post(path: string, route: HonoRoute): HonoApp;
  fetch(request: Request, env?: unknown): Response | Promise<Response>;
}

/** Hono's server-sent events stream (`hono/streaming`). */
export interface SSEStream {
  writeSSE(message: { data: string; event?: string; id?: string; retry?: number }): Promise<void>;
  sleep(ms: number): Promise<unknown>;
  /** Set once the client went away. */
  readonly aborted: boolean;
}

/** What this example takes from the `hono` package. */
export interface HonoModules {
  /** From `hono`. */
  Hono: new () => HonoApp;
  /** From `hono/streaming`. */
  streamSSE(c: HonoContext, run: (stream: SSEStream) => Promise<void>): Response;
}

/** Options of {@linkcode honoApp}. */
export interface HonoAppOptions {
  /** Ticks each `/events` stream sends before `done`. Default 5. */
  ticks?: number;
  /** Milliseconds between ticks. Default 1000. */
  tickInterval?: number;
  /** Where connection news go (a WebSocket opened or closed, an event stream ended). Default: nowhere. */
  log?: (line: string) => void;
  /** Where handler errors go. */
  onError?: (error: unknown) => void;
}

/** The page: a WebSocket to `/ws` and its echoes, `/api/hello`, `/api/echo` and `/events`. */
export const page = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Hono on sock</title>
<style>
  body { font: 16px/1.4 system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; }
  ul { list-style: none; padding: 0; border: 1px solid #ccc; border-radius: 6px; min-height: 3rem; }
  li { padding: .25rem .5rem; border-bottom: 1px solid #eee; }
  form { display: flex; gap: .5rem; }
  #text { flex: 1; }
  .note { color: #666; }
</style>
</head>
<body>
<h1>Hono on sock</h1>
<p>GET /api/hello: <span id="hello" class="note">…</span></p>
<p>WebSocket /ws: <span id="status" class="note">connecting…</span></p>
<form id="form">
  <input id="text" placeholder="say something" autocomplete="off">
  <button>Send</button>
</form>
<ul id="log"></ul>
<p>POST /api/echo: <span id="echo" class="note">…</span></p>
<p>Server-sent events /events:</p>
<ul id="events"></ul>
<script>
  const $ = (id) => document.getElementById(id);
  const add = (list, text) => {
    const item = document.createElement("li");
    item.textContent = text;
    $(list).append(item);
  };
  fetch("/api/hello").then((response) => response.json()).then(
    (hello) => $("hello").textContent = hello.message + " (you are " + hello.client + ")",
    (error) => $("hello").textContent = "failed: " + error,
  );
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws?name=browser");
  ws.onopen = () => $("status").textContent = "connected";
  ws.onclose = (event) => $("status").textContent = "disconnected (" + event.code + ")";
  ws.onmessage = (event) => add("log", event.data);
  $("form").onsubmit = async (event) => {
    event.preventDefault();
    const text = $("text").value;
    $("text").value = "";
    if (!text) return;
    if (ws.readyState === WebSocket.OPEN) ws.send(text);
    const response = await fetch("/api/echo", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ text }),
    });
    $("echo").textContent = JSON.stringify(await response.json());
  };
  const events = new EventSource("/events");
  events.addEventListener("tick", (event) => add("events", "tick " + JSON.parse(event.data).tick));
  events.addEventListener("done", () => {
    add("events", "done");
    events.close(); // Otherwise EventSource reconnects when the stream ends.
  });
</script>
</body>
</html>
`;

/**
 * Builds the Hono app and the sock server that serves it (not yet listening).
 *
 * @param hono The `Hono` class and `streamSSE`.
 * @param options Ticks, logging and error reporting.
 * @returns The sock server (`sock.listen()` starts it) and the Hono app.
 */
export function honoApp(hono: HonoModules, options: HonoAppOptions = {}): { sock: Sock; app: HonoApp } {
  const { ticks = 5, tickInterval = 1000, log = () => {} } = options;
  const app = new hono.Hono();
  // Hono answers every plain HTTP request; sock's `info` (remoteAddr, requestIP) becomes `c.env`.
  const sock = new Sock({ fetch: (request, info) => app.fetch(request, info), onError: options.onError });

  /** The WebSocket: a welcome with the name given at the upgrade (`ws.data`), then echoes. */
  const echo: Handler = async (ws) => {
    const { name } = ws.data as { name: string };
    log(`ws: ${name} connected`);
    try {
      await ws.send(`welcome, ${name}`);
      for await (const message of ws) {
        await ws.send(typeof message === "string" ? `echo: ${message}` : message);
      }
    } finally {
      log(`ws: ${name} left`);
    }
  };

  app.get("/", (c) => c.html(page));
  app.get("/api/hello", (c) =>
    c.json({
      message: "hello from Hono on sock",
      runtime: "Bun" in globalThis ? "Bun" : "Deno",
      client: c.env.remoteAddr.hostname,
    }));
  app.post("/api/echo", async (c) => {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      return c.json({ error: "the body is not JSON" }, 400);
    }
    return c.json({ echo: body });
  });
  app.get("/events", (c) =>
    hono.streamSSE(c, async (stream) => {
      for (let tick = 1; tick <= ticks; tick++) {
        if (tick > 1) await stream.sleep(tickInterval);
        if (stream.aborted) return log(`events: the client left after ${tick - 1} tick(s)`);
        await stream.writeSSE({ event: "tick", id: String(tick), data: JSON.stringify({ tick }) });
      }
      await stream.writeSSE({ event: "done", data: "bye" });
      log("events: done");
    }));
  // Routed by Hono, upgraded by sock: a request that is not an upgrade gets sock's 426.
  app.get("/ws", (c) => sock.upgrade(c.req.raw, echo, { data: { name: c.req.query("name") ?? "guest" } }));
  return { sock, app };
}

/**
 * Hono as this file runs it: from npm on Deno; on Bun, by name and version (auto-install). The
 * specifiers are built at run time, so type checks and tests of this module never fetch Hono.
 */
async function importHono(): Promise<HonoModules> {
  const from = "Bun" in globalThis ? `hono@${HONO_VERSION}` : `npm:hono@${HONO_VERSION}`;
  const [{ Hono }, { streamSSE }] = await Promise.all([import(from), import(`${from}/streaming`)]);
  return { Hono, streamSSE };
}

if (import.meta.main) {
  const { sock } = honoApp(await importHono(), {
    log: (line) => console.log(line),
    onError: (error) => console.error("handler failed:", error),
  });
  const host = option("host", "127.0.0.1");
  const { port } = await sock.listen({ hostname: host, port: Number(option("port", "8001")) });
  console.log(`Hono on sock: http://${host}:${port}/ (WebSocket at ws://${host}:${port}/ws)`);
}
