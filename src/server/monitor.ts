/**
 * What a server tells its operator: lifecycle hooks, a structured log, and counters.
 *
 * @module
 */

import type { Connection } from "../connection/connection.ts";
import type { CloseResult, ProtocolStats } from "../core/protocol.ts";
import type { NetAddress } from "../transport.ts";
import type { RouteRequest } from "./sock.ts";

/**
 * How a WebSocket connection ended, for `onClose` and the log.
 *
 * @category Server
 */
export interface CloseReport extends CloseResult, ProtocolStats {
  /** Who began the close: see {@linkcode Connection.closedBy}. */
  by: "peer" | "local" | "network";
  /** How long the connection was open, in ms. */
  duration: number;
}

/**
 * A request refused before it became a WebSocket connection (or, with `fetch`, a malformed HTTP
 * request), or dropped at `handshakeTimeout`.
 *
 * @category Server
 */
export interface RejectReport {
  /** The HTTP status answered; `undefined` when the connection was dropped without an answer. */
  status: number | undefined;
  /** Why: e.g. `no route for this path`, `origin not allowed`, `handshake timeout`. */
  reason: string;
  /** The request's path, when its head arrived. */
  path: string | undefined;
  /** The client's address, when known. */
  remoteAddress: NetAddress | undefined;
}

/**
 * One line of the server's structured log.
 *
 * @category Server
 */
export type SockLogEntry =
  | { level: "info"; event: "open"; id: number; path: string; remoteAddress: NetAddress | undefined }
  | ({ level: "info"; event: "close"; id: number } & CloseReport)
  | ({ level: "warn"; event: "reject" } & RejectReport)
  | { level: "warn"; event: "keepalive-timeout"; id: number }
  | { level: "error"; event: "error"; error: unknown };

/**
 * Where the server's log goes (off unless given): one call per connection's open and close, per
 * refused request and per error, never per message.
 *
 * @example Logging as JSON lines
 * ```ts
 * import { Sock } from "@sock/sock";
 *
 * const app = new Sock({
 *   logger: { log: (entry) => console.log(JSON.stringify({ time: new Date().toISOString(), ...entry })) },
 * });
 * ```
 *
 * @category Server
 */
export interface SockLogger {
  /** Takes one entry. */
  log(entry: SockLogEntry): void;
}

/**
 * A server's counters since it was made (see {@linkcode Sock.metrics}).
 *
 * @category Server
 */
export interface SockMetrics {
  /** WebSocket connections open now. */
  connectionsOpen: number;
  /** WebSocket connections opened in all. */
  connectionsTotal: number;
  /** Messages received, over every connection (open and closed). */
  messagesReceived: number;
  /** Messages sent, over every connection. */
  messagesSent: number;
  /** Payload bytes received, as they travelled. */
  bytesReceived: number;
  /** Payload bytes sent, as they travelled. */
  bytesSent: number;
  /** Refused requests by HTTP status; `"timeout"` counts those dropped at `handshakeTimeout`. */
  rejections: Record<string, number>;
  /** Closed connections by close code. */
  closes: Record<string, number>;
  /** Connections dropped because a ping went unanswered. */
  keepaliveTimeouts: number;
  /** Plain HTTP requests handed to `fetch`. */
  httpRequests: number;
}

/** What the monitor needs of the server's options. */
export interface MonitorOptions<Data> {
  onOpen?: ((ws: Connection<Data>, request: RouteRequest) => void) | undefined;
  onClose?: ((ws: Connection<Data>, report: CloseReport) => void) | undefined;
  onReject?: ((report: RejectReport) => void) | undefined;
  onError?: ((error: unknown) => void) | undefined;
  logger?: SockLogger | undefined;
}

/**
 * The counters, hooks and log of one server. Counting costs an increment per event; hooks and the
 * log cost nothing when not given (when given, each open connection's start time is kept for its
 * `duration`).
 */
export class Monitor<Data> {
  readonly #options: MonitorOptions<Data>;
  /** Whether anything wants to hear about connections: then their start times are kept. */
  readonly #listening: boolean;
  readonly #opened = new WeakMap<Connection<Data>, number>();
  #connectionsTotal = 0;
  /** What closed connections sent and received. */
  #closedStats: ProtocolStats = { messagesReceived: 0, messagesSent: 0, bytesReceived: 0, bytesSent: 0 };
  #rejections: Record<string, number> = {};
  #closes: Record<string, number> = {};
  #keepaliveTimeouts = 0;
  #httpRequests = 0;

  /** @param options The hooks and the logger. */
  constructor(options: MonitorOptions<Data>) {
    this.#options = options;
    this.#listening = !!(options.onClose || options.logger);
  }

  /** A WebSocket connection opened. */
  opened(ws: Connection<Data>, request: RouteRequest, remoteAddress: NetAddress | undefined): void {
    this.#connectionsTotal++;
    if (this.#listening) this.#opened.set(ws, performance.now());
    const { onOpen, logger } = this.#options;
    if (onOpen) this.#call(() => onOpen(ws, request));
    if (logger) this.#log({ level: "info", event: "open", id: ws.id, path: request.path, remoteAddress });
  }

  /** A WebSocket connection closed. */
  closed(ws: Connection<Data>): void {
    const result = ws.closeResult!;
    const stats = ws.stats;
    const totals = this.#closedStats;
    totals.messagesReceived += stats.messagesReceived;
    totals.messagesSent += stats.messagesSent;
    totals.bytesReceived += stats.bytesReceived;
    totals.bytesSent += stats.bytesSent;
    this.#closes[result.code] = (this.#closes[result.code] ?? 0) + 1;
    if (!this.#listening) return;
    const start = this.#opened.get(ws);
    const { code, reason, wasClean, received, sent } = result;
    const report: CloseReport = {
      code,
      reason,
      wasClean,
      received,
      sent,
      ...stats,
      by: ws.closedBy!,
      duration: start === undefined ? 0 : performance.now() - start,
    };
    const { onClose, logger } = this.#options;
    if (onClose) this.#call(() => onClose(ws, report));
    if (logger) this.#log({ level: "info", event: "close", id: ws.id, ...report });
  }

  /** A request was refused (`status`), or dropped without an answer (`undefined`). */
  rejected(
    status: number | undefined,
    reason: string,
    path: string | undefined,
    remoteAddress?: NetAddress,
  ): void {
    const key = status === undefined ? "timeout" : String(status);
    this.#rejections[key] = (this.#rejections[key] ?? 0) + 1;
    const { onReject, logger } = this.#options;
    if (!onReject && !logger) return;
    const report: RejectReport = { status, reason, path, remoteAddress };
    if (onReject) this.#call(() => onReject(report));
    if (logger) this.#log({ level: "warn", event: "reject", ...report });
  }

  /** Keepalive gave up on a connection. */
  keepaliveTimeout(ws: Connection<Data>): void {
    this.#keepaliveTimeouts++;
    if (this.#options.logger) this.#log({ level: "warn", event: "keepalive-timeout", id: ws.id });
  }

  /** A plain HTTP request went to `fetch`. */
  httpRequest(): void {
    this.#httpRequests++;
  }

  /** An error for `onError` (and the log). */
  error = (error: unknown): void => {
    if (this.#options.logger) this.#log({ level: "error", event: "error", error });
    this.#options.onError?.(error);
  };

  /** The counters now, with the open connections' traffic so far. */
  metrics(open: ReadonlySet<Connection<Data>>): SockMetrics {
    const totals = { ...this.#closedStats };
    for (const ws of open) {
      const stats = ws.stats;
      totals.messagesReceived += stats.messagesReceived;
      totals.messagesSent += stats.messagesSent;
      totals.bytesReceived += stats.bytesReceived;
      totals.bytesSent += stats.bytesSent;
    }
    return {
      connectionsOpen: open.size,
      connectionsTotal: this.#connectionsTotal,
      ...totals,
      rejections: { ...this.#rejections },
      closes: { ...this.#closes },
      keepaliveTimeouts: this.#keepaliveTimeouts,
      httpRequests: this.#httpRequests,
    };
  }

  /** Logs an entry; what the logger throws goes to `onError` (not to the logger again). */
  #log(entry: SockLogEntry): void {
    try {
      this.#options.logger!.log(entry);
    } catch (error) {
      this.#options.onError?.(error);
    }
  }

  /** Runs a hook; what it throws goes to `onError`, not to the connection that called it. */
  #call(hook: () => void): void {
    try {
      hook();
    } catch (error) {
      this.error(error);
    }
  }
}
