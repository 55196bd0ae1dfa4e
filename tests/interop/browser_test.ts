/**
 * The chat example in a real browser: headless Chromium (Debian's package)
 * opens the page our server serves, in two tabs, and chats with itself and
 * with sock's client. Chromium is driven over the DevTools protocol with
 * sock's own `connect()`. Skipped (visibly) when `/usr/bin/chromium` is missing.
 *
 * Set `SOCK_BROWSER_SCREENSHOT=/tmp/chat.png` to save a screenshot of a tab.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { connect } from "../../src/client.ts";
import type { Connection } from "../../src/connection/connection.ts";
import { Sock } from "../../src/server/sock.ts";
import { chatApp } from "../../examples/chat/app.ts";

const CHROMIUM = "/usr/bin/chromium";
/** The test body must finish by then; cleanup has the rest of the 30 s. */
const BODY_BUDGET = 22_000;

/** The chat server of examples/chat/, on a free loopback port. */
async function chatServer() {
  const errors: unknown[] = [];
  const app = chatApp((error) => errors.push(error));
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  return { app, port, errors, close: () => app.close(2000) };
}

/** An echo server with permessage-deflate; `extensions` lists what each connection agreed to. */
async function deflateEcho() {
  const app = new Sock({ deflate: true, maxMessageSize: 4 << 20 });
  const extensions: string[] = [];
  app.route("/echo", async (ws) => {
    extensions.push(ws.extensions);
    for await (const message of ws) await ws.send(message);
  });
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  return { port, extensions, close: () => app.close(2000) };
}

/** Page script: sends 1 MB of JSON as text and as bytes, and a small message, to the echo server. */
const exchangeLargeMessages = (port: number) =>
  `(async () => {
    const ws = new WebSocket("ws://127.0.0.1:${port}/echo");
    ws.binaryType = "arraybuffer";
    await new Promise((resolve, reject) => (ws.onopen = resolve, ws.onerror = () => reject(new Error("no connection"))));
    let text = "";
    for (let i = 0; text.length < 1000000; i++) text += JSON.stringify({ i, user: "user" + (i % 50), ok: i % 3 === 0 }) + "\\n";
    const bytes = new TextEncoder().encode(text);
    const echoed = [];
    for (const message of [text, bytes, text.slice(0, 3000)]) {
      const back = await new Promise((resolve) => (ws.onmessage = (event) => resolve(event.data), ws.send(message)));
      echoed.push(typeof message === "string"
        ? back === message
        : back.byteLength === bytes.length && new Uint8Array(back).every((b, i) => b === bytes[i]));
    }
    ws.close();
    return { extensions: ws.extensions, echoed };
  })()`;

// ---- A child process on either runtime ----

/** A started process: its PID, its stderr, its exit, and `kill`. */
interface Child {
  pid: number;
  stderr: ReadableStream<Uint8Array>;
  exited: Promise<unknown>;
  kill(signal: "SIGTERM" | "SIGKILL"): void;
}

/** The part of `Bun.spawn` used here, declared locally instead of depending on bun-types. */
interface BunSpawn {
  spawn(cmd: string[], options: { stdin: "ignore"; stdout: "ignore"; stderr: "pipe" }): {
    pid: number;
    stderr: ReadableStream<Uint8Array>;
    exited: Promise<number>;
    kill(signal?: string): void;
  };
}

function spawn(command: string, args: string[]): Child {
  if ("Bun" in globalThis) {
    const bun = (globalThis as unknown as { Bun: BunSpawn }).Bun;
    const proc = bun.spawn([command, ...args], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
    return { pid: proc.pid, stderr: proc.stderr, exited: proc.exited, kill: (signal) => proc.kill(signal) };
  }
  const child = new Deno.Command(command, { args, stdin: "null", stdout: "null", stderr: "piped" }).spawn();
  return { pid: child.pid, stderr: child.stderr, exited: child.status, kill: (signal) => child.kill(signal) };
}

/** Resolves `true` when `promise` settles within `ms`, `false` otherwise. */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const done = await Promise.race([
    promise.then(() => true, () => true),
    new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), ms)),
  ]);
  clearTimeout(timer);
  return done;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Drains a process's stderr to the end (so the pipe never fills), keeping a
 * tail for error messages; `url` resolves with the `DevTools listening on`
 * address, or rejects if stderr ends without one.
 */
function watchStderr(stderr: ReadableStream<Uint8Array>) {
  let text = "";
  let found: ((url: string) => void) | undefined;
  let ended: ((error: Error) => void) | undefined;
  const url = new Promise<string>((resolve, reject) => {
    found = resolve;
    ended = reject;
  });
  const done = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of stderr) {
      text = (text + decoder.decode(chunk, { stream: true })).slice(-16384);
      const match = /DevTools listening on (ws:\/\/\S+)/.exec(text);
      if (match) found?.(match[1]);
    }
  })().catch(() => {}).finally(() => ended?.(new Error(`chromium exited before listening:\n${text}`)));
  return { url, done, tail: () => text };
}

// ---- The DevTools protocol over sock's client ----

/** An error answer from Chromium. */
class CdpError extends Error {
  override name = "CdpError";
}

/** JSON-RPC over a sock `Connection`: commands with ids, to the browser or to a flattened session. */
class Cdp {
  #ws: Connection;
  #next = 1;
  #pending = new Map<number, { resolve: (result: unknown) => void; reject: (error: unknown) => void }>();
  #closed = false;
  readonly reading: Promise<void>;

  constructor(ws: Connection) {
    this.#ws = ws;
    this.reading = this.#read();
  }

  async #read(): Promise<void> {
    let reason: unknown = new Error("the DevTools connection closed");
    try {
      for await (const message of this.#ws) {
        if (typeof message !== "string") continue;
        const answer = JSON.parse(message) as { id?: number; result?: unknown; error?: { message: string } };
        if (typeof answer.id !== "number") continue; // an event
        const waiter = this.#pending.get(answer.id);
        this.#pending.delete(answer.id);
        if (answer.error) waiter?.reject(new CdpError(answer.error.message));
        else waiter?.resolve(answer.result);
      }
    } catch (error) {
      reason = error;
    } finally {
      this.#closed = true;
      for (const waiter of this.#pending.values()) waiter.reject(reason);
      this.#pending.clear();
    }
  }

  /** Sends a command and waits (at most `timeout` ms) for its answer. */
  async call<T = Record<string, unknown>>(
    method: string,
    params: Record<string, unknown> = {},
    sessionId?: string,
    timeout = 5000,
  ): Promise<T> {
    if (this.#closed) throw new Error(`${method}: the DevTools connection is closed`);
    const id = this.#next++;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const answer = new Promise<unknown>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new Error(`${method}: no answer within ${timeout} ms`));
      }, timeout);
    });
    try {
      await this.#ws.send(
        JSON.stringify(sessionId ? { id, method, params, sessionId } : { id, method, params }),
      );
      return await answer as T;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Evaluates an expression in a page and returns its value (a promise's, once settled). */
  async evaluate(sessionId: string, expression: string): Promise<unknown> {
    const { result, exceptionDetails } = await this.call<{
      result: { value?: unknown };
      exceptionDetails?: { text: string; exception?: { description?: string } };
    }>("Runtime.evaluate", { expression, returnByValue: true, awaitPromise: true }, sessionId);
    if (exceptionDetails) {
      throw new CdpError(exceptionDetails.exception?.description ?? exceptionDetails.text);
    }
    return result.value;
  }

  /** Opens a tab on `url` and attaches to it; returns the session id. */
  async open(url: string): Promise<string> {
    const { targetId } = await this.call<{ targetId: string }>("Target.createTarget", { url });
    const { sessionId } = await this.call<{ sessionId: string }>("Target.attachToTarget", {
      targetId,
      flatten: true,
    });
    return sessionId;
  }
}

/**
 * Polls `probe` every 50 ms until `ok` holds, up to `deadline`. Answers of
 * Chromium's that are errors (a page still loading) count as "not yet".
 */
async function until<T>(
  what: string,
  probe: () => Promise<T>,
  ok: (value: T) => boolean,
  deadline: number,
): Promise<T> {
  let last: unknown;
  while (true) {
    try {
      const value = await probe();
      if (ok(value)) return value;
      last = value;
    } catch (error) {
      if (!(error instanceof CdpError)) throw error;
      last = error;
    }
    if (Date.now() > deadline) {
      const shown = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`timed out waiting for ${what}; last: ${shown}`);
    }
    await sleep(50);
  }
}

/** The next chat message (not a system line) a sock client receives, before `deadline`. */
async function nextChat(ws: Connection, deadline: number): Promise<{ name: string; text: string }> {
  while (true) {
    const message = await ws.receive({ timeout: Math.max(1, deadline - Date.now()) });
    if (typeof message !== "string") throw new Error(`unexpected message: ${String(message)}`);
    const parsed = JSON.parse(message);
    if (parsed.type === "message") return { name: parsed.name, text: parsed.text };
  }
}

const STATUS = `document.getElementById("status")?.textContent ?? null`;
const LOG = `Array.from(document.querySelectorAll("#log li"), (li) => li.textContent)`;
const say = (name: string, text: string) =>
  `(() => {
    document.getElementById("name").value = ${JSON.stringify(name)};
    document.getElementById("text").value = ${JSON.stringify(text)};
    document.getElementById("form").requestSubmit();
    return document.getElementById("text").value;
  })()`;

const title = "the chat page works in headless Chromium: two tabs and sock's client talk through the server";

if (!existsSync(CHROMIUM)) {
  test.skip(`${title} (chromium not installed)`, () => {});
} else {
  test(title, { timeout: 30_000 }, async () => {
    const deadline = Date.now() + BODY_BUDGET;
    const server = await chatServer();
    const profile = await mkdtemp(join(tmpdir(), "sock-chromium-"));
    let chromium: Child | undefined;
    let stderr: ReturnType<typeof watchStderr> | undefined;
    let cdp: Cdp | undefined;
    let devtools: Connection | undefined;
    let client: Connection | undefined;
    try {
      chromium = spawn(CHROMIUM, [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--remote-debugging-port=0",
        `--user-data-dir=${profile}`,
        "about:blank",
      ]);
      const watched = stderr = watchStderr(chromium.stderr);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const devtoolsUrl = await Promise.race([
        watched.url,
        new Promise<never>((_, reject) =>
          timer = setTimeout(
            () => reject(new Error(`no DevTools address within 10 s:\n${watched.tail()}`)),
            10_000,
          )
        ),
      ]).finally(() => clearTimeout(timer));

      devtools = await connect(devtoolsUrl, { closeTimeout: 1000 });
      cdp = new Cdp(devtools);
      const browser = cdp;
      const pageUrl = `http://127.0.0.1:${server.port}/`;
      const tabs = [await browser.open(pageUrl), await browser.open(pageUrl)];
      for (const [i, tab] of tabs.entries()) {
        await until(
          `tab ${i + 1} to connect`,
          () => browser.evaluate(tab, STATUS),
          (s) => s === "connected",
          deadline,
        );
      }
      const logHas = (tab: string, line: string, what: string) =>
        until(what, () => browser.evaluate(tab, LOG) as Promise<string[]>, (l) => l.includes(line), deadline);

      client = await connect(`ws://127.0.0.1:${server.port}/chat`, { closeTimeout: 1000 });

      // Tab 1 types and submits; tab 2, tab 1 itself and the sock client see it.
      assert.equal(await browser.evaluate(tabs[0], say("alice", "hello from tab 1")), "");
      await logHas(tabs[1], "alice: hello from tab 1", "tab 1's message in tab 2");
      await logHas(tabs[0], "alice: hello from tab 1", "tab 1's message in tab 1");
      assert.deepEqual(await nextChat(client, deadline), { name: "alice", text: "hello from tab 1" });

      // Tab 2 answers.
      await browser.evaluate(tabs[1], say("bob", "héllo ✓ from tab 2"));
      await logHas(tabs[0], "bob: héllo ✓ from tab 2", "tab 2's message in tab 1");
      assert.deepEqual(await nextChat(client, deadline), { name: "bob", text: "héllo ✓ from tab 2" });

      // sock's client speaks; both tabs show it.
      await client.send(JSON.stringify({ name: "sock", text: "hello from connect()" }));
      await logHas(tabs[0], "sock: hello from connect()", "the sock client's message in tab 1");
      await logHas(tabs[1], "sock: hello from connect()", "the sock client's message in tab 2");
      assert.deepEqual(await nextChat(client, deadline), { name: "sock", text: "hello from connect()" });

      const log = await browser.evaluate(tabs[1], LOG) as string[];
      assert.deepEqual(log.filter((line) => !line.includes(" online")), [
        "alice: hello from tab 1",
        "bob: héllo ✓ from tab 2",
        "sock: hello from connect()",
      ]);
      assert.ok(
        log.some((line) => line.endsWith("3 online")),
        `the sock client joined tab 2's room: ${JSON.stringify(log)}`,
      );

      // Chromium offers permessage-deflate: the chat server accepts it, and so does an echo server
      // that large compressible messages cross both ways.
      const tabConnections = [...server.app.connections].filter((ws) =>
        ws.request?.headers.get("user-agent")?.includes("Chrome")
      );
      assert.deepEqual(tabConnections.map((ws) => ws.extensions), [
        "permessage-deflate",
        "permessage-deflate",
      ]);
      const echo = await deflateEcho();
      try {
        assert.deepEqual(await browser.evaluate(tabs[0], exchangeLargeMessages(echo.port)), {
          extensions: "permessage-deflate",
          echoed: [true, true, true],
        });
        assert.equal(echo.extensions.join(), "permessage-deflate");
      } finally {
        await echo.close();
      }

      const screenshot = process.env.SOCK_BROWSER_SCREENSHOT;
      if (screenshot) {
        const { data } = await browser.call<{ data: string }>(
          "Page.captureScreenshot",
          { format: "png" },
          tabs[1],
        );
        const binary = atob(data);
        await writeFile(screenshot, Uint8Array.from(binary, (c) => c.charCodeAt(0)));
      }
      assert.deepEqual(server.errors, []);
    } finally {
      await client?.close().catch(() => {});
      await devtools?.close().catch(() => {});
      if (cdp) await within(cdp.reading, 1000);
      if (chromium) {
        try {
          chromium.kill("SIGTERM");
        } catch { /* already gone */ }
        if (!await within(chromium.exited, 3000)) {
          try {
            chromium.kill("SIGKILL");
          } catch { /* already gone */ }
          await within(chromium.exited, 2000);
        }
      }
      if (stderr) await within(stderr.done, 1000);
      await rm(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
      await server.close();
    }
  });
}
