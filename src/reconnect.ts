/**
 * Reconnection: `for await (const ws of reconnecting(url))` yields a fresh connection each time
 * the last one ended for a reason worth another try, with exponential backoff and full jitter in
 * between, as python-websockets' `async for websocket in connect(...)` does.
 *
 * What is worth another try is decided in one place, {@linkcode isRetryable}: failures of the
 * network or of the server's moment (refused, reset, timed out, 5xx, 429, a proxy's 5xx or SOCKS5
 * failure to reach the server, closes 1001, 1006, 1011–1014), not refusals that another try would
 * meet again (4xx, certificate errors, 1008, an application's 4xxx close).
 *
 * @module
 */

import { connect, type ConnectOptions, HandshakeRejected } from "./client.ts";
import type { Connection } from "./connection/connection.ts";
import { ConnectionClosed } from "./connection/closed.ts";
import { CloseCode } from "./core/close.ts";
import { Socks5Error } from "./core/proxy.ts";
import { ReadyState } from "./core/protocol.ts";
import { ConnectError, type ConnectErrorCode, SYSTEM_CONNECT_CODES } from "./net_errors.ts";
import { startTimer } from "./timers.ts";

/**
 * How long {@linkcode reconnecting} waits before each reconnection attempt: attempt `n` (1, 2, …
 * since the last stable connection) waits `min(max, initial × factorⁿ⁻¹)`, times a random number
 * in [0, 1) with full jitter ("Exponential Backoff and Jitter", AWS Architecture Blog, 2015), so
 * that clients dropped at the same moment do not come back at the same moment.
 *
 * @category Client
 *
 * @example 100 ms doubling up to 10 s, without jitter: 100, 200, 400, … 10000, 10000
 * ```ts
 * import type { BackoffOptions } from "@sock/sock";
 *
 * const backoff: BackoffOptions = { initial: 100, factor: 2, max: 10_000, jitter: "none" };
 * ```
 */
export interface BackoffOptions {
  /** The delay before the first reconnection attempt, in ms, before jitter. Default 1000. */
  initial?: number;
  /** What each further attempt multiplies the delay by; at least 1. Default 2. */
  factor?: number;
  /** The longest delay, in ms, also the cap of a `Retry-After`. Default 30000. */
  max?: number;
  /**
   * `"full"`: a random delay between 0 and the step's, as above. `"none"`: exactly the step's, for
   * a single client or a test. Default `"full"`.
   */
  jitter?: "full" | "none";
  /** The random numbers in [0, 1) that full jitter takes. Default `Math.random`. */
  random?: () => number;
}

/**
 * What {@linkcode ReconnectOptions.onRetry} is told before each wait.
 *
 * @category Client
 *
 * @example A log line
 * ```ts
 * import type { RetryInfo } from "@sock/sock";
 *
 * const log = ({ attempt, delay, error }: RetryInfo) =>
 *   console.warn(`reconnection attempt ${attempt} in ${delay} ms after ${error}`);
 * ```
 */
export interface RetryInfo {
  /** The reconnection attempt about to be made: 1, 2, … since the last stable connection. */
  attempt: number;
  /** How long the loop waits before it, in ms. */
  delay: number;
  /**
   * Why: what `connect()` rejected with, or a {@linkcode ConnectionClosed} for a connection that
   * ended.
   */
  error: unknown;
}

/**
 * Options of {@linkcode reconnecting}: those of `connect()` for every attempt, and when and how
 * often to try again.
 *
 * @category Client
 *
 * @example At most 10 tries in a row, logged
 * ```ts
 * import type { ReconnectOptions } from "@sock/sock";
 *
 * const options: ReconnectOptions = {
 *   backoff: { initial: 500, max: 10_000 },
 *   maxRetries: 10,
 *   onRetry: ({ attempt, delay }) => console.warn(`attempt ${attempt} in ${delay} ms`),
 * };
 * ```
 */
export interface ReconnectOptions extends ConnectOptions {
  /** The delays between attempts. */
  backoff?: BackoffOptions;
  /**
   * Reconnection attempts in a row, without a stable connection in between, before the loop gives
   * up and throws the last error. `0` never tries again. Default `Infinity`.
   */
  maxRetries?: number;
  /**
   * How long a connection must stay open, in ms, to count as stable: the end of a stable
   * connection starts the backoff again from `initial`, while one that ends sooner counts as one
   * more failed attempt (a server that accepts and drops at once meets growing delays). `0` counts
   * every connection that opened as stable, as python-websockets does. Default 5000.
   */
  stableAfter?: number;
  /**
   * Decides whether a failure is worth another attempt. Default {@linkcode isRetryable}.
   *
   * @param error What `connect()` rejected with, or a {@linkcode ConnectionClosed} for a
   *   connection that ended.
   * @returns `true` to try again after the backoff.
   */
  retry?: (error: unknown) => boolean;
  /**
   * Told before each wait: the attempt number, the delay chosen and why (for logs and tests).
   *
   * @param info The attempt, the delay and the error.
   */
  onRetry?: (info: RetryInfo) => void;
  /**
   * Stops for good: aborts connecting, the handshake and the wait between attempts, and closes the
   * open connection with 1000. The loop then ends without an error.
   */
  signal?: AbortSignal;
}

/**
 * Connection failures of the network or of the moment, worth another attempt. An allow-list: the
 * others (the server's certificate or TLS setup, a proxy's credentials or a redirect's refusal, and
 * any code added later) would fail the same way again until someone changes a setting.
 * `PROXY_REFUSED` depends on why: see {@linkcode proxyMayRetry}.
 */
const RETRYABLE_CONNECT: ReadonlySet<ConnectErrorCode> = new Set<ConnectErrorCode>([
  ...SYSTEM_CONNECT_CODES, // The system's: refused, not found, timed out, reset, unreachable.
  "UNKNOWN",
]);

/**
 * Closes worth another connection: the server is going away or restarting (1001, 1012), asks to
 * come back later (1013), failed (1011, 1014), or the connection dropped without a close frame
 * (1006). The others say the conversation is over (1000, 1005) or that the same conversation would
 * fail again (1002, 1003, 1007–1010, 1015, and the applications' 3000–4999).
 */
const RETRYABLE_CLOSE: ReadonlySet<number> = new Set<number>([
  CloseCode.GoingAway,
  CloseCode.AbnormalClosure,
  CloseCode.InternalError,
  CloseCode.ServiceRestart,
  CloseCode.TryAgainLater,
  CloseCode.BadGateway,
]);

/**
 * SOCKS5 replies (RFC 1928 §6) of the moment: general failure (1), network or host unreachable (3,
 * 4), connection refused (5), TTL expired (6). Not: not allowed (2), unsupported (7, 8).
 */
const RETRYABLE_SOCKS_REPLY: ReadonlySet<number> = new Set([1, 3, 4, 5, 6]);

/** Closes that end the loop without an error when not retried: the conversation is over. */
const NORMAL_CLOSE: ReadonlySet<number> = new Set<number>([CloseCode.Normal, CloseCode.NoStatusReceived]);

/**
 * Whether a failure is worth another attempt: the default rule of {@linkcode reconnecting}.
 *
 * | failure                                                                                       | retried |
 * | --------------------------------------------------------------------------------------------- | ------- |
 * | `ConnectError` `ECONNREFUSED`, `ECONNRESET`, `ETIMEDOUT`, `ENOTFOUND`, `E*UNREACH`, `UNKNOWN` | yes     |
 * | `ConnectError` `PROXY_REFUSED` with 408, 429, 5xx except 501 and 505, or SOCKS5 reply 1, 3–6  | yes     |
 * | `ConnectError` other codes (`CERT_*`, `TLS_HANDSHAKE_FAILED`, other proxy and redirect ones)  | no      |
 * | `DOMException` `TimeoutError` (`connect()`'s `timeout`)                                       | yes     |
 * | `HandshakeRejected` 408, 429, 5xx except 501 and 505                                          | yes     |
 * | `HandshakeRejected` other statuses (400, 401, 403, 404…)                                      | no      |
 * | `ConnectionClosed` 1001, 1006, 1011, 1012, 1013, 1014                                         | yes     |
 * | `ConnectionClosed` 1000, 1005 (the loop ends without an error)                                | no      |
 * | `ConnectionClosed` 1002, 1003, 1007–1010, 1015, 3000–4999                                     | no      |
 * | anything else (`ProtocolError`, `TypeError`, `RangeError`, aborts)                            | no      |
 *
 * @category Client
 *
 * @param error What `connect()` rejected with, or a {@linkcode ConnectionClosed}.
 * @returns `true` when another attempt may succeed.
 *
 * @example Refused is retried, forbidden is not
 * ```ts
 * import { ConnectError, ConnectionClosed, isRetryable } from "@sock/sock";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(isRetryable(new ConnectError("ECONNREFUSED", { hostname: "127.0.0.1", port: 1 })), true);
 * const closed = (code: number) =>
 *   new ConnectionClosed({ code, reason: "", wasClean: true, received: undefined, sent: undefined });
 * assertEquals(isRetryable(closed(1012)), true); // service restart
 * assertEquals(isRetryable(closed(1008)), false); // policy violation
 * ```
 */
export function isRetryable(error: unknown): boolean {
  if (error instanceof ConnectError) {
    return error.code === "PROXY_REFUSED" ? proxyMayRetry(error.cause) : RETRYABLE_CONNECT.has(error.code);
  }
  if (error instanceof HandshakeRejected) return retryableStatus(error.response.status);
  if (error instanceof ConnectionClosed) return RETRYABLE_CLOSE.has(error.code);
  if (error instanceof DOMException) return error.name === "TimeoutError";
  return false;
}

/** 408, 429 and the 5xx that are about the moment (501 Not Implemented, 505 Version are not). */
function retryableStatus(status: number): boolean {
  if (status === 408 || status === 429) return true;
  return status >= 500 && status <= 599 && status !== 501 && status !== 505;
}

/**
 * Whether a proxy's refusal is of the moment (a server restarting looks like this through a proxy):
 * an HTTP proxy's retryable status (the `cause` is `{ status, statusText }`), or a SOCKS5 reply of
 * {@linkcode RETRYABLE_SOCKS_REPLY}.
 */
function proxyMayRetry(cause: unknown): boolean {
  if (cause instanceof Socks5Error) return RETRYABLE_SOCKS_REPLY.has(cause.reply ?? 0);
  const status = (cause as { status?: unknown } | undefined)?.status;
  return typeof status === "number" && retryableStatus(status);
}

/**
 * The server's `Retry-After` on a rejection (RFC 9110 §10.2.3), in ms: delay-seconds or an HTTP
 * date.
 */
function retryAfter(error: unknown): number | undefined {
  if (!(error instanceof HandshakeRejected)) return undefined;
  const value = error.response.headers.get("retry-after")?.trim();
  if (!value) return undefined;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** The settings of one loop, checked. */
interface Settings {
  initial: number;
  factor: number;
  max: number;
  jitter: "full" | "none";
  random: () => number;
  maxRetries: number;
  stableAfter: number;
  retry: (error: unknown) => boolean;
  onRetry: ((info: RetryInfo) => void) | undefined;
}

function nonNegative(name: string, value: number, finite = true): number {
  if (typeof value !== "number" || Number.isNaN(value) || value < 0 || (finite && !Number.isFinite(value))) {
    throw new RangeError(`${name} must be a non-negative number, not ${value}`);
  }
  return value;
}

function settingsOf(options: ReconnectOptions): Settings {
  const { backoff = {} } = options;
  const factor = backoff.factor ?? 2;
  if (typeof factor !== "number" || !(factor >= 1) || !Number.isFinite(factor)) {
    throw new RangeError(`backoff.factor must be a number of at least 1, not ${factor}`);
  }
  const jitter = backoff.jitter ?? "full";
  if (jitter !== "full" && jitter !== "none") {
    throw new RangeError(`backoff.jitter must be "full" or "none", not ${jitter}`);
  }
  const maxRetries = nonNegative("maxRetries", options.maxRetries ?? Infinity, false);
  if (maxRetries !== Infinity && !Number.isInteger(maxRetries)) {
    throw new RangeError(`maxRetries must be an integer or Infinity, not ${maxRetries}`);
  }
  return {
    initial: nonNegative("backoff.initial", backoff.initial ?? 1000),
    factor,
    max: nonNegative("backoff.max", backoff.max ?? 30000),
    jitter,
    random: backoff.random ?? Math.random,
    maxRetries,
    stableAfter: nonNegative("stableAfter", options.stableAfter ?? 5000),
    retry: options.retry ?? isRetryable,
    onRetry: options.onRetry,
  };
}

/** The wait before reconnection attempt `attempt` (1, 2, …), in ms. */
function delayOf(settings: Settings, attempt: number, error: unknown): number {
  const { initial, factor, max } = settings;
  // (0 × Infinity would be NaN, once factorⁿ overflows.)
  const step = initial === 0 ? 0 : Math.min(max, initial * factor ** (attempt - 1));
  let delay = settings.jitter === "full" ? Math.floor(settings.random() * step) : step;
  const after = retryAfter(error);
  if (after !== undefined) delay = Math.min(max, Math.max(delay, after));
  return delay;
}

/** Resolves after `ms` with `true`, or with `false` as soon as `signal` aborts. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (waited: boolean) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", abort);
      resolve(waited);
    };
    const abort = () => done(false);
    const timer = startTimer(() => done(true), ms);
    signal?.addEventListener("abort", abort, { once: true });
  });
}

/**
 * Opens a connection, then a new one each time the last one ended for a reason worth another try:
 * an async iterable of connections, as python-websockets' `async for websocket in connect(...)`.
 *
 * - Each iteration yields an open connection. The next one is opened once the loop body is done
 *   with it **and** it has closed: the body can read it to its end, or hand it on and return.
 * - Its end, as a {@linkcode ConnectionClosed}, and each failure of `connect()` go to `retry`
 *   ({@linkcode isRetryable} by default). Worth another try: the loop waits the backoff (see
 *   {@linkcode BackoffOptions}; a 429 or 503's `Retry-After` is honoured, up to `backoff.max`) and
 *   tries again, telling `onRetry` first. Not: a close with 1000 or 1005 ends the loop quietly,
 *   anything else is thrown from it.
 * - The backoff starts again from `backoff.initial` after a stable connection (one that stayed open
 *   `stableAfter` ms); a connection that ends sooner counts as a failed attempt, so a server that
 *   accepts and drops at once meets growing delays.
 * - It gives up after `maxRetries` attempts in a row fail, throwing the last error.
 * - `break` (or an exception in the body) closes the open connection with 1000 and stops; so does
 *   aborting `signal`, and then the loop ends quietly.
 *
 * Iterating a connection (`for await (const message of ws)`) throws {@linkcode ConnectionClosed}
 * after an abnormal close, such as 1006 or 1011: catch it in the body (as with python-websockets),
 * or the exception ends the loop as any other would.
 *
 * @category Client
 *
 * @param url A `ws:` or `wss:` URL.
 * @param options `connect()`'s options for every attempt, the backoff and the rules.
 * @returns The connections, one at a time.
 * @throws {RangeError} At once, for a backoff setting, `maxRetries` or `stableAfter` out of range.
 * @throws {HandshakeRejected} From the loop, for a refusal not worth another try (a 4xx), or the
 *   last one when it gives up.
 * @throws {ConnectError} From the loop, for a failure not worth another try (certificate, TLS, a
 *   proxy's or a redirect's), or the last one when it gives up.
 * @throws {ConnectionClosed} From the loop, when a connection closed with a code not worth another
 *   try (such as 1008 or 4000) or the last one when it gives up.
 *
 * @example The server restarts: the client is back, and the loop ends when the server says 1000
 * ```ts
 * import { ConnectionClosed, reconnecting, Sock } from "@sock/sock";
 * import { assertEquals } from "@std/assert";
 *
 * const app = new Sock();
 * let visits = 0;
 * app.route("/", async (ws) => {
 *   if (++visits === 1) return await ws.close(1012, "restarting"); // worth another try
 *   await ws.send("welcome back"); // then the handler returns: 1000, the end
 * });
 * const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
 *
 * const received = [];
 * for await (const ws of reconnecting(`ws://127.0.0.1:${port}/`, { backoff: { initial: 10 } })) {
 *   try {
 *     for await (const message of ws) received.push(message);
 *   } catch (error) {
 *     if (!(error instanceof ConnectionClosed)) throw error; // the loop decides from the code
 *   }
 * }
 * assertEquals(received, ["welcome back"]);
 * assertEquals(visits, 2);
 * await app.close();
 * ```
 */
export function reconnecting(
  url: string | URL,
  options: ReconnectOptions = {},
): AsyncGenerator<Connection, void, undefined> {
  const settings = settingsOf(options);
  const { backoff: _backoff, maxRetries: _max, stableAfter: _stable, retry: _retry, onRetry: _on, ...rest } =
    options;
  return loop(url, rest, settings);
}

async function* loop(
  url: string | URL,
  options: ConnectOptions,
  settings: Settings,
): AsyncGenerator<Connection, void, undefined> {
  const { signal } = options;
  /** Reconnection attempts since the start or the last stable connection. */
  let attempt = 0;
  while (!signal?.aborted) {
    let failure: unknown;
    let ws: Connection | undefined;
    try {
      ws = await connect(url, options);
    } catch (error) {
      failure = error;
    }
    if (ws) {
      const open = ws;
      // Stable if still open after stableAfter ms: checked then, not when the body is done, which
      // may be long after the close.
      let stable = settings.stableAfter === 0;
      const timer = stable ? undefined : startTimer(() => {
        stable = open.readyState === ReadyState.Open;
      }, settings.stableAfter);
      const abort = () => void open.close(CloseCode.Normal).catch(() => {});
      signal?.addEventListener("abort", abort, { once: true });
      try {
        yield open;
        // The body is done with it; the next connection comes once it has closed.
        failure = new ConnectionClosed(await open.closed);
      } finally {
        clearTimeout(timer);
        signal?.removeEventListener("abort", abort);
        // After `break`, an exception in the body, or return(): the loop stops.
        if (open.readyState !== ReadyState.Closed) await open.close(CloseCode.Normal).catch(() => {});
      }
      if (stable) attempt = 0;
    }
    if (signal?.aborted) return;
    if (!settings.retry(failure)) {
      if (failure instanceof ConnectionClosed && NORMAL_CLOSE.has(failure.code)) return;
      throw failure;
    }
    if (attempt >= settings.maxRetries) throw failure;
    attempt++;
    const delay = delayOf(settings, attempt, failure);
    settings.onRetry?.({ attempt, delay, error: failure });
    if (!await pause(delay, signal)) return;
  }
}
