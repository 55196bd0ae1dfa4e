/**
 * Headless Chromium (Debian's `/usr/bin/chromium`) for the interop tests, driven over the DevTools
 * protocol with sock's own `connect()`; and the child-process helpers it runs on, which work on Deno
 * and on Bun and kill by PID. Registers no tests: a test that needs Chromium checks
 * `existsSync(CHROMIUM)` and registers a visible `test.skip` when it is missing.
 *
 * @module
 */

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { connect } from "../src/client.ts";
import type { Connection } from "../src/connection/connection.ts";

/** Where the browser is expected: Debian's `chromium` package. */
export const CHROMIUM = "/usr/bin/chromium";

// ---- A child process on either runtime, killed by PID ----

/** A started process. */
export interface Child {
  /** Its process id, which {@linkcode Child.kill} signals. */
  readonly pid: number;
  /** Its standard output; `null` when spawned with `stdout: "ignore"`. */
  readonly stdout: ReadableStream<Uint8Array> | null;
  /** Its standard error, always piped. */
  readonly stderr: ReadableStream<Uint8Array>;
  /** Resolves with the exit code once the process has ended and been reaped. */
  readonly exited: Promise<number>;
  /**
   * Sends `signal` (SIGKILL unless told) to the PID, unless the process has been reaped: its PID
   * could belong to another process by then. Never throws.
   */
  kill(signal?: "SIGTERM" | "SIGKILL"): void;
}

/** What {@linkcode spawn} gives the child besides its arguments. */
export interface SpawnOptions {
  /** Written to its stdin, which is then closed; without it, stdin is empty. */
  input?: Uint8Array;
  /** Whether its stdout is piped to {@linkcode Child.stdout} (the default) or discarded. */
  stdout?: "pipe" | "ignore";
}

/** The part of `Bun.spawn` used here, declared locally instead of depending on bun-types. */
interface BunSpawn {
  spawn(cmd: string[], options: {
    stdin: "ignore" | Blob;
    stdout: "pipe" | "ignore";
    stderr: "pipe";
  }): {
    pid: number;
    stdout: ReadableStream<Uint8Array>;
    stderr: ReadableStream<Uint8Array>;
    exited: Promise<number>;
  };
}

/** Starts `command` with `args` on either runtime; its stderr is always piped. */
export function spawn(command: string, args: string[], options: SpawnOptions = {}): Child {
  const { input, stdout = "pipe" } = options;
  let pid: number, out: ReadableStream<Uint8Array> | null, err: ReadableStream<Uint8Array>;
  let exited: Promise<number>;
  if ("Bun" in globalThis) {
    const bun = (globalThis as unknown as { Bun: BunSpawn }).Bun;
    const proc = bun.spawn([command, ...args], {
      stdin: input ? new Blob([input as Uint8Array<ArrayBuffer>]) : "ignore",
      stdout,
      stderr: "pipe",
    });
    ({ pid, stderr: err, exited } = proc);
    out = stdout === "pipe" ? proc.stdout : null;
  } else {
    const child = new Deno.Command(command, {
      args,
      stdin: input ? "piped" : "null",
      stdout: stdout === "pipe" ? "piped" : "null",
      stderr: "piped",
    }).spawn();
    if (input) {
      const writer = child.stdin.getWriter();
      writer.write(input).then(() => writer.close()).catch(() => {});
    }
    ({ pid, stderr: err } = child);
    out = stdout === "pipe" ? child.stdout : null;
    exited = child.status.then((status) => status.code);
  }
  let reaped = false;
  exited.then(() => reaped = true, () => reaped = true);
  return {
    pid,
    stdout: out,
    stderr: err,
    exited,
    kill(signal = "SIGKILL") {
      if (reaped) return;
      try {
        process.kill(pid, signal);
      } catch { /* gone meanwhile */ }
    },
  };
}

/** Resolves `true` when `promise` settles within `ms`, `false` otherwise. */
async function settles(promise: Promise<unknown>, ms: number): Promise<boolean> {
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
 * Drains a process's stderr to the end (so the pipe never fills), keeping a tail for error
 * messages; `url` resolves with the `DevTools listening on` address, or rejects if stderr ends
 * without one.
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

/** An error answer from Chromium, or an exception thrown by an evaluated expression. */
export class CdpError extends Error {
  /** `"CdpError"`. */
  override name = "CdpError";
}

/** JSON-RPC over a sock `Connection`: commands with ids, to the browser or to a flattened session. */
export class Cdp {
  #ws: Connection;
  #timeout: number;
  #next = 1;
  #pending = new Map<number, { resolve: (result: unknown) => void; reject: (error: unknown) => void }>();
  #closed = false;
  /** Settles when the connection has closed and every waiting command has been rejected. */
  readonly reading: Promise<void>;

  /** Reads answers from `ws`; a command waits `timeout` ms for its answer unless told otherwise. */
  constructor(ws: Connection, timeout = 5000) {
    this.#ws = ws;
    this.#timeout = timeout;
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
    timeout: number = this.#timeout,
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
 * Polls `probe` every 50 ms until `ok` holds, up to `deadline` (a `Date.now()` time), and returns
 * the value that passed. Chromium's error answers (a page still loading) count as "not yet"; any
 * other error ends the wait.
 */
export async function until<T>(
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

// ---- Viewport and screenshots ----

/** Gives a tab a `width` × `height` CSS-pixel viewport at one device pixel per CSS pixel. */
export async function setViewport(cdp: Cdp, sessionId: string, width: number, height: number): Promise<void> {
  await cdp.call(
    "Emulation.setDeviceMetricsOverride",
    { width, height, deviceScaleFactor: 1, mobile: false },
    sessionId,
  );
}

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/**
 * The size a PNG file declares: checks the 8-byte signature and that the first chunk is a 13-byte
 * `IHDR`, and reads its width and height.
 *
 * @throws {Error} When `bytes` is not a PNG.
 */
export function pngSize(bytes: Uint8Array): { width: number; height: number } {
  if (bytes.length < 33 || PNG_SIGNATURE.some((b, i) => bytes[i] !== b)) {
    throw new Error("not a PNG: wrong signature");
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const type = String.fromCharCode(...bytes.subarray(12, 16));
  if (view.getUint32(8) !== 13 || type !== "IHDR") throw new Error("not a PNG: the first chunk is not IHDR");
  return { width: view.getUint32(16), height: view.getUint32(20) };
}

/** Captures a tab's viewport as a PNG, writes it to `path`, and returns its bytes. */
export async function screenshot(cdp: Cdp, sessionId: string, path: string): Promise<Uint8Array> {
  const { data } = await cdp.call<{ data: string }>("Page.captureScreenshot", { format: "png" }, sessionId);
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  await writeFile(path, bytes);
  return bytes;
}

// ---- Launching and ending Chromium ----

/** How {@linkcode launchChromium} starts the browser. */
export interface ChromiumOptions {
  /** The start of the name of the fresh profile directory made in the system's temporary folder. */
  profilePrefix: string;
  /** How long Chromium has to print its DevTools address, in ms. */
  addressTimeout: number;
  /** How long a DevTools command waits for its answer unless told otherwise, in ms. */
  callTimeout: number;
}

/** A running headless Chromium and the DevTools session to it. */
export interface Chromium {
  /** The browser-level DevTools session, over sock's client. */
  readonly cdp: Cdp;
  /**
   * Asks Chromium to exit (`Browser.close`), closes the DevTools connection, ends Chromium by PID
   * if it has not exited within 3 s (SIGTERM, then SIGKILL after 3 s more) and removes its profile
   * directory. Rejects only if that removal fails.
   */
  close(): Promise<void>;
}

/**
 * Starts headless Chromium without a sandbox, on a fresh profile and a DevTools port of its
 * choosing, reads the DevTools address from its stderr and connects to it with sock's client. If
 * any step fails, what was started is ended (as by {@linkcode Chromium.close}) before the error is
 * thrown.
 */
export async function launchChromium(options: ChromiumOptions): Promise<Chromium> {
  const { profilePrefix, addressTimeout, callTimeout } = options;
  const profile = await mkdtemp(join(tmpdir(), profilePrefix));
  let chromium: Child | undefined;
  let stderr: ReturnType<typeof watchStderr> | undefined;
  let devtools: Connection | undefined;
  let cdp: Cdp | undefined;
  const close = async () => {
    // Asked over DevTools, Chromium exits as it would when its last window closes, removing the
    // /tmp/org.chromium.Chromium.* directory of its singleton socket; on a signal it leaves it behind.
    // The answer may not come before the connection drops: the exit is what is waited for.
    if (cdp) await cdp.call("Browser.close", {}, undefined, 2000).catch(() => {});
    const exited = chromium !== undefined && cdp !== undefined && await settles(chromium.exited, 3000);
    await devtools?.close().catch(() => {});
    if (cdp) await settles(cdp.reading, 1000);
    if (chromium && !exited) {
      chromium.kill("SIGTERM");
      if (!await settles(chromium.exited, 3000)) {
        chromium.kill("SIGKILL");
        await settles(chromium.exited, 2000);
      }
    }
    if (stderr) await settles(stderr.done, 1000);
    await rm(profile, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
  };
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
    ], { stdout: "ignore" });
    const watched = stderr = watchStderr(chromium.stderr);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const devtoolsUrl = await Promise.race([
      watched.url,
      new Promise<never>((_, reject) =>
        timer = setTimeout(
          () =>
            reject(new Error(`no DevTools address within ${addressTimeout / 1000} s:\n${watched.tail()}`)),
          addressTimeout,
        )
      ),
    ]).finally(() => clearTimeout(timer));
    devtools = await connect(devtoolsUrl, { closeTimeout: 1000 });
    cdp = new Cdp(devtools, callTimeout);
    return { cdp, close };
  } catch (error) {
    await close();
    throw error;
  }
}
