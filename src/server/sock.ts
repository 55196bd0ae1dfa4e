/**
 * The route server (flask-sock's role): paths to handlers, over any adapter.
 *
 * @module
 */

import {
  checkSubprotocols,
  type HeadersInit,
  parseUpgradeRequest,
  type UpgradeRequest,
} from "../core/handshake.ts";
import { type HttpRequestEvent, HttpServerProtocol } from "../core/http_server.ts";
import { type ProtocolEvent, ReadyState } from "../core/protocol.ts";
import { ServerProtocol, type ServerProtocolOptions } from "../core/server_protocol.ts";
import {
  type PerMessageDeflateOptions,
  PerMessageDeflateServer,
} from "../core/deflate/permessage_deflate.ts";
import { CloseCode } from "../core/close.ts";
import { detectAdapter } from "../adapters/mod.ts";
import { Connection, type ServerHub } from "../connection/connection.ts";
import { type ConnectionOptions, connectionSettings } from "../connection/options.ts";
import { checkOption } from "../core/options.ts";
import { ConnectionClosed, ignore } from "../connection/closed.ts";
import type { Message } from "../connection/inbox.ts";
import { Link } from "../connection/link.ts";
import type { Adapter, Endpoint, Listener, NetAddress, Transport } from "../transport.ts";
import { Deadlines, nextTurn, settledWithin } from "../timers.ts";
import { Router } from "./router.ts";
import { HttpSession, ServeInfo } from "./http.ts";
import {
  type CloseReport,
  Monitor,
  type RejectReport,
  type SockLogEntry,
  type SockLogger,
  type SockMetrics,
} from "./monitor.ts";

export { ServeInfo };
export type { Backplane };
export type { CloseReport, RejectReport, SockLogEntry, SockLogger, SockMetrics };
import { Topics } from "./topics.ts";
import type { Backplane } from "./backplane.ts";

/**
 * What a handler learns about the request that opened its connection.
 *
 * @category Server
 */
export interface RouteRequest {
  /** The path, e.g. `/rooms/lobby`. */
  path: string;
  /** The query string without `?`. */
  query: string;
  /** Route parameters, percent-decoded, e.g. `{ room: "lobby" }` for `/rooms/:room` (what they may hold: {@linkcode Sock.route}). */
  params: Record<string, string>;
  /** The full parsed request. */
  upgrade: UpgradeRequest;
}

/**
 * Handles one connection; returning closes it with 1000, throwing with 1011
 * (a `ConnectionClosed` from the connection itself just ends it).
 *
 * @category Server
 */
export type Handler<Data = unknown> = (ws: Connection<Data>, request: RouteRequest) => unknown;

/**
 * An HTTP response the `upgrade` hook sends instead of upgrading.
 *
 * @category Server
 */
export interface HttpResponse {
  /** The status. Default 403. */
  status?: number;
  /** Response headers. */
  headers?: HeadersInit;
  /** The body; a string is sent as UTF-8 text/plain unless `headers` set a type. */
  body?: string | Uint8Array;
}

/**
 * What the `upgrade` hook decides: accept with these settings, or `{ reject }`.
 *
 * @category Server
 */
export type UpgradeDecision<Data = unknown> =
  | {
    /** The subprotocol: one the client offered, or `null` for none. Default: the `subprotocols` option's pick. */
    subprotocol?: string | null;
    /** Extra 101 response headers. */
    headers?: HeadersInit;
    /** Per-connection data, as `ws.data`. */
    data?: Data;
  }
  | { /** The response instead of the upgrade. */ reject: HttpResponse };

/**
 * Options of a {@linkcode Sock} server.
 *
 * @category Server
 */
export interface SockOptions<Data = unknown> extends ServerProtocolOptions, ConnectionOptions {
  /** The runtime adapter; detected by default. */
  adapter?: Adapter;
  /**
   * How long a client may take to send a request head, in ms: from the connection's start, or
   * from the first byte of a later request on a persistent connection. Default 10000. The
   * `upgrade` hook and `fetch` are not timed.
   */
  handshakeTimeout?: number;
  /**
   * Subprotocols the server speaks, preferred first: the first one in this list that the client
   * offered is chosen, whatever the client's own order (the `upgrade` hook can decide otherwise).
   * None is chosen when the client offered none of them.
   */
  subprotocols?: string[];
  /**
   * Allowed `Origin` values, compared exactly; others get 403. `null` in the list admits requests
   * without an `Origin` (non-browser clients send none) while those with one are still checked.
   * Default: any.
   */
  origins?: (string | null)[];
  /** Sees each routed request before the upgrade: accept with settings, or reject. */
  upgrade?: (
    request: RouteRequest,
  ) => UpgradeDecision<Data> | undefined | Promise<UpgradeDecision<Data> | undefined>;
  /**
   * Answers every request that is not a WebSocket upgrade to a route, as `Deno.serve` and
   * `Bun.serve` take it (Hono's `app.fetch` fits): HTTP/1.1 with persistent connections,
   * pipelining, streamed request and response bodies. It can upgrade a request itself with
   * {@linkcode Sock.upgrade}. A handler that throws or rejects gets 500 and `onError`.
   * Without it, requests that are not upgrades get 426. `request.signal` aborts when the client
   * goes away; it is made when first read (5 µs per request saved on Deno), so copies of the
   * request (`request.clone()`, `new Request(request)`) do not follow it.
   */
  fetch?: (request: Request, info: ServeInfo) => Response | Promise<Response>;
  /** Largest request body in bytes (with `fetch`); a longer one gets 413. Default 16 MiB. */
  maxBodySize?: number;
  /** How long a persistent connection may wait for its next request, in ms (with `fetch`). Default 5000. */
  keepAliveTimeout?: number;
  /** How long a request body may go without a byte while it is read, in ms (with `fetch`). Default 30000. */
  bodyTimeout?: number;
  /** Called with errors thrown by handlers and hooks. */
  onError?: (error: unknown) => void;
  /**
   * Carries `publish` to this application's other processes and machines (and theirs here): e.g.
   * `new RedisBackplane({ url })`. Default: none, `publish` reaches this process's members only.
   */
  backplane?: Backplane;
  /** Called when a WebSocket connection opens, before its handler runs. */
  onOpen?: (ws: Connection<Data>, request: RouteRequest) => void;
  /** Called once when a WebSocket connection has closed: how, who began it, how long, how much. */
  onClose?: (ws: Connection<Data>, report: CloseReport) => void;
  /**
   * Called for every request refused (a WebSocket handshake answered 4xx or 5xx; with `fetch`, a
   * malformed HTTP request too) and every connection dropped at `handshakeTimeout`.
   */
  onReject?: (report: RejectReport) => void;
  /** A structured log of every connection's life, refused request and error. Default: none. */
  logger?: SockLogger;
  /**
   * Accept permessage-deflate (RFC 7692) offers: `true` with the defaults, or
   * the settings. Default `false`: offers are declined.
   */
  deflate?: boolean | PerMessageDeflateOptions;
}

/**
 * What {@linkcode Sock.upgrade} takes besides the request and the handler.
 *
 * @category Server
 */
export interface UpgradeOptions<Data = unknown> {
  /** The subprotocol: one the client offered. Default: the `subprotocols` option's pick. */
  subprotocol?: string;
  /** Extra 101 response headers. */
  headers?: HeadersInit;
  /** Per-connection data, as `ws.data`. */
  data?: Data;
}

/** An upgrade request that was accepted: what its handler needs. */
interface Opened<Data> {
  handler: Handler<Data>;
  request: RouteRequest;
  subprotocol: string | undefined;
  headers: HeadersInit | undefined;
  data: Data | undefined;
}

/** A request `fetch` may upgrade: its head, and the upgrade once `upgrade()` accepted it. */
interface Upgradable<Data> {
  event: HttpRequestEvent;
  remoteAddress: NetAddress | undefined;
  opened: Opened<Data> | undefined;
}

/** A refused request's answer goes out before its connection closes, within this many ms. */
const LINGER = 2000;
const NO_BYTES = new Uint8Array(0);
/** Pipelined requests one connection has answered before the others get a turn. */
const PIPELINE_TURN = 64;

/**
 * Writes the handshake's answer; a peer gone by then is no server error (its handler, if any,
 * sees 1006). Returns a promise only when the write does not complete at once.
 */
function writeQuietly(transport: Transport, chunks: Uint8Array[]): Promise<void> | undefined {
  try {
    return transport.write(chunks)?.catch(ignore);
  } catch {
    return undefined; // Nothing to report.
  }
}

/**
 * A WebSocket server with routes, and an HTTP/1.1 server for the app's other requests on the same
 * port (`fetch`). The same code runs on Deno and Bun.
 *
 * @category Server
 *
 * @example An echo route
 * ```ts ignore
 * import { Sock } from "@sock/sock/server";
 *
 * const app = new Sock();
 * app.route("/echo", async (ws) => {
 *   for await (const message of ws) await ws.send(message);
 * });
 * await app.listen({ hostname: "127.0.0.1", port: 9001 });
 * ```
 *
 * @example A page and an API beside a WebSocket route
 * ```ts ignore
 * import { Sock } from "@sock/sock/server";
 *
 * const app = new Sock({
 *   fetch: async (request) =>
 *     new URL(request.url).pathname === "/api/echo"
 *       ? Response.json(await request.json())
 *       : new Response("<p>hello</p>", { headers: { "Content-Type": "text/html" } }),
 * });
 * app.route("/chat", (ws) => ws.forEach((message) => app.publish("chat", message)));
 * await app.listen({ hostname: "127.0.0.1", port: 9001 });
 * ```
 *
 * @example Typed per-connection data
 * ```ts ignore
 * import { Sock } from "@sock/sock/server";
 *
 * const app = new Sock<{ user: string }>({
 *   upgrade: (request) => ({ data: { user: new URLSearchParams(request.query).get("user") ?? "guest" } }),
 * });
 * app.route("/chat", (ws) => ws.send(`hello ${ws.data.user}`)); // ws.data: { user: string }
 * ```
 *
 * @typeParam Data The type of `ws.data`: what the `upgrade` hook or {@linkcode Sock.upgrade} attaches.
 */
export class Sock<Data = unknown> {
  readonly #options: SockOptions<Data>;
  #router = new Router<Handler<Data>>();
  #listeners: Listener[] = [];
  #topics: Topics<Connection>;
  /** `backplane.start()`, once the server first listens. */
  #backplaneStarted: Promise<void> | undefined;
  #hub: ServerHub = {
    subscribe: (ws, topic) => this.#topics.subscribe(ws, topic),
    unsubscribe: (ws, topic) => this.#topics.unsubscribe(ws, topic),
    topicsOf: (ws) => this.#topics.topicsOf(ws),
    closed: (ws) => {
      this.#topics.leave(ws);
      this.connections.delete(ws as Connection<Data>);
      // Closed by what came with its handshake: reported once its open was (see #websocket).
      if (this.#opening) this.#closedEarly = ws as Connection<Data>;
      else this.#monitor.closed(ws as Connection<Data>);
    },
    keepaliveTimeout: (ws) => this.#monitor.keepaliveTimeout(ws as Connection<Data>),
  };
  readonly #monitor: Monitor<Data>;
  /** A connection is being made (its constructor may close it already)… */
  #opening = false;
  /** …and closed meanwhile. */
  #closedEarly: Connection<Data> | undefined;
  /**
   * Connections whose request head is incomplete (the first, or a later one that started), dropped at
   * their deadline; `close()` drops them at once.
   */
  #handshakes: Deadlines<Link>;
  #handshakeTimeout: number;
  /** Persistent connections waiting for their next request, closed at their deadline. */
  #idle: Deadlines<Link>;
  #keepAliveTimeout: number;
  /** Request bodies waited for, failed at their deadline. */
  #stalls: Deadlines<HttpSession>;
  #bodyTimeout: number;
  /** Connections served through `fetch`, and when each is over. */
  #sessions = new Map<HttpSession, Promise<void>>();
  /** Upgrade requests handed to `fetch`, by their `Request`. */
  #upgradable = new WeakMap<Request, Upgradable<Data>>();
  #closing = false;
  /** Passes an error to `onError` (and the log): one function for every connection. */
  #reportError = (error: unknown): void => this.#monitor.error(error);
  /** The open connections. */
  readonly connections: Set<Connection<Data>> = new Set();

  /**
   * Creates a server with no routes.
   *
   * @param options Limits, timeouts, hooks and the adapter.
   * @throws {RangeError} For a numeric option out of its range.
   * @throws {TypeError} For a subprotocol that is not a token, or one listed twice.
   */
  constructor(options: SockOptions<Data> = {}) {
    const { deflate, backplane } = options;
    this.#monitor = new Monitor(options);
    this.#topics = new Topics<Connection>(
      backplane &&
        ((topic, present) => present ? backplane.subscribe?.(topic) : backplane.unsubscribe?.(topic)),
    );
    // One timer for every handshake: it wakes eight times per timeout, so a drop comes at most an
    // eighth of it late.
    const timeout = checkOption("handshakeTimeout", options.handshakeTimeout, 10000, { min: 1 });
    this.#handshakeTimeout = timeout;
    this.#handshakes = new Deadlines(timeout / 8, (link) => {
      this.#monitor.rejected(undefined, "handshake timeout", undefined, link.transport.remoteAddress);
      link.close();
    });
    this.#keepAliveTimeout = checkOption("keepAliveTimeout", options.keepAliveTimeout, 5000, { min: 1 });
    this.#idle = new Deadlines(this.#keepAliveTimeout / 8, (link) => link.close());
    this.#bodyTimeout = checkOption("bodyTimeout", options.bodyTimeout, 30000, { min: 1 });
    this.#stalls = new Deadlines(this.#bodyTimeout / 8, (session) => session.stall());
    checkOption("maxBodySize", options.maxBodySize, 16 * 1024 * 1024, { min: 0 });
    if (options.subprotocols) checkSubprotocols(options.subprotocols);
    // A copy, taken once: later changes to the caller's object change nothing. Connection tells the
    // core when a handler has answered (endings wait for its replies), and reads the frames that
    // came with the handshake within its per-turn bounds.
    this.#options = {
      ...options,
      holdEndings: true,
      leaveUnread: true,
      extensions: deflate
        ? [new PerMessageDeflateServer(deflate === true ? {} : deflate), ...options.extensions ?? []]
        : options.extensions,
    };
    // Every option checked now, not at the first connection (and then shared by every connection).
    connectionSettings(this.#options);
  }

  /**
   * Adds a route. `:name` segments match one path segment and reach the handler as `params.name`;
   * a last segment `*` matches the rest of the path (`params["*"]`). The first matching route wins.
   *
   * Parameters are percent-decoded, and a request is answered 400 (before the `upgrade` hook or a
   * handler runs) when a decoded parameter could leave its place if used in a file path, a key or a
   * log line: a `:name` parameter holding `/`, `\`, or a control character (U+0000–U+001F, U+007F),
   * or being exactly `.` or `..`; the `*` parameter holding `\` or a control character, or a
   * segment (between `/`s) that is `.` or `..`. `*` may hold `/`. A percent-encoding that does not
   * decode as UTF-8 is answered 400 too.
   *
   * @example Routes with parameters
   * ```ts
   * import { Sock } from "./sock.ts";
   *
   * const app = new Sock()
   *   .route("/rooms/:room", (ws, request) => ws.subscribe(request.params.room))
   *   // "/files/a/b.txt" gives params["*"] === "a/b.txt"; "/files/%2e%2e/secret" is answered 400.
   *   .route("/files/*", async (ws, request) => await ws.send(request.params["*"]));
   * ```
   *
   * @param path The path pattern, e.g. `/rooms/:room`.
   * @param handler The connection handler.
   * @returns This server, for chaining.
   */
  route(path: string, handler: Handler<Data>): this {
    this.#router.add(path, handler);
    return this;
  }

  /**
   * Starts listening.
   *
   * @param endpoint Host name, port (0 for a free one), TLS, and `reusePort: true` to share the port with
   *   other processes, the kernel spreading connections among them (Linux; Deno needs `--unstable-net`).
   * @returns The bound address.
   */
  async listen(endpoint: Partial<Endpoint> = {}): Promise<Listener["address"]> {
    const adapter = this.#options.adapter ?? detectAdapter();
    const scheme = endpoint.tls ? "https:" : "http:";
    const backplane = this.#options.backplane;
    if (backplane) {
      // Messages other processes publish reach this process's members only.
      await (this.#backplaneStarted ??= Promise.resolve(
        backplane.start((topic, message) => void this.#topics.publish(topic, message)),
      ));
    }
    const listener = await adapter.listen(
      {
        hostname: endpoint.hostname ?? "0.0.0.0",
        port: endpoint.port ?? 0,
        tls: endpoint.tls,
        reusePort: endpoint.reusePort,
      },
      (transport) => this.#serve(transport, scheme).catch(this.#reportError),
    );
    this.#listeners.push(listener);
    return listener.address;
  }

  /**
   * Sends a message to every open connection subscribed to `topic`, without
   * waiting: each member's `send()` buffers it, and a member that does not read
   * is cut with 1008 once more than `maxBufferedAmount` bytes wait for it.
   *
   * Members that are not open (closing: cut, closed by a handler, or answering
   * the peer's close) are skipped at the cost of one check: nothing may follow
   * their close frame, so a publish to them would only fail. A room with a
   * member that takes seconds to close thus costs no more than one without it.
   *
   * @example A room
   * ```ts
   * import { connect, Sock } from "@sock/sock";
   * import { assertEquals } from "@std/assert";
   *
   * const app = new Sock();
   * app.route("/rooms/:room", async (ws, request) => {
   *   ws.subscribe(request.params.room);
   *   await ws.send("joined");
   *   for await (const message of ws) app.publish(request.params.room, message);
   * });
   * const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
   * const ws = await connect(`ws://127.0.0.1:${port}/rooms/lobby`);
   * assertEquals(await ws.receive({ timeout: 5000 }), "joined");
   * assertEquals(app.publish("lobby", "hello"), 1);
   * assertEquals(await ws.receive({ timeout: 5000 }), "hello");
   * assertEquals(app.publish("nobody's room", "hello"), 0);
   * await ws.close();
   * await app.close();
   * ```
   *
   * @param topic The topic.
   * @param message The message.
   * With a `backplane`, the message also goes to the members on the application's other processes
   * (not counted in what this returns).
   *
   * @param options `except`: a connection to leave out, such as the sender.
   * @returns How many members it was queued for: those not open are not
   *   counted, nor one that this message cut (its buffer was full).
   */
  publish(topic: string, message: Message, options?: { except?: Connection<Data> | undefined }): number {
    this.#options.backplane?.publish(topic, message);
    return this.#topics.publish(topic, message, options?.except as Connection | undefined);
  }

  /**
   * How many connections of this server are subscribed to `topic`, open or closing.
   *
   * @example Counting a room
   * ```ts
   * import { connect, Sock } from "@sock/sock";
   * import { assertEquals } from "@std/assert";
   *
   * const app = new Sock();
   * app.route("/rooms/:room", async (ws, request) => {
   *   ws.subscribe(request.params.room!);
   *   await ws.send("in");
   * });
   * const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
   * const ws = await connect(`ws://127.0.0.1:${port}/rooms/lobby`);
   * await ws.receive({ timeout: 5000 });
   * assertEquals(app.subscribers("lobby"), 1);
   * await ws.close(1000);
   * await app.close();
   * ```
   *
   * @param topic The topic.
   * @returns Its number of subscribers here.
   */
  subscribers(topic: string): number {
    return this.#topics.subscribers(topic);
  }

  /**
   * The server's counters: connections, messages and bytes each way (open connections' traffic so
   * far included), refused requests by status, closes by code, keepalive timeouts, plain HTTP
   * requests. A fresh object at every read.
   *
   * @example Reading the counters after a session
   * ```ts
   * import { connect, Sock } from "@sock/sock";
   * import { assertEquals } from "@std/assert";
   *
   * const app = new Sock();
   * app.route("/echo", (ws) => ws.forEach((message) => ws.send(message)));
   * const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
   * const ws = await connect(`ws://127.0.0.1:${port}/echo`);
   * await ws.send("hello");
   * await ws.receive({ timeout: 5000 });
   * await ws.close(1000);
   * await app.close();
   * const metrics = app.metrics;
   * assertEquals([metrics.connectionsTotal, metrics.messagesReceived, metrics.bytesReceived], [1, 1, 5]);
   * assertEquals(metrics.closes, { 1000: 1 });
   * ```
   */
  get metrics(): SockMetrics {
    return this.#monitor.metrics(this.connections);
  }

  /**
   * Shuts down gracefully: stops listening, drops connections still in the
   * opening handshake, closes every open connection with 1001, and drops
   * those still open after `timeout` ms.
   *
   * @param timeout How long to wait for close handshakes. Default 5000.
   */
  async close(timeout = 5000): Promise<void> {
    this.#closing = true;
    for (const listener of this.#listeners.splice(0)) listener.close();
    for (const link of [...this.#handshakes.items()]) link.close();
    // Requests in progress are answered (with `Connection: close`); idle connections close now.
    for (const [session] of this.#sessions) {
      if (session.idle) session.link.close();
      else session.http.closeAfterResponse();
    }
    const open = [...this.connections];
    const closing = open.map((ws) => ws.close(CloseCode.GoingAway, "server shutting down").catch(ignore));
    await settledWithin(Promise.all([...closing, ...this.#sessions.values()]), timeout);
    for (const ws of open) ws.terminate();
    for (const [session] of this.#sessions) session.link.close();
    if (this.#backplaneStarted) await this.#options.backplane?.close();
  }

  /**
   * Upgrades a request that `fetch` received to a WebSocket connection run by `handler`, so any
   * router can route WebSocket endpoints beside its other routes (as Bun's `server.upgrade()` and
   * Deno's `upgradeWebSocket()` do). `fetch` returns the response this gives: for an accepted
   * upgrade the server sends the 101 instead of it; for a request that is not a valid upgrade it
   * is the error to answer with (400, 403 for an origin not allowed, 405, 426).
   *
   * @example WebSocket and HTTP routes in one `fetch`
   * ```ts
   * import { connect, Sock } from "@sock/sock";
   * import { assertEquals } from "@std/assert";
   *
   * const app: Sock = new Sock({
   *   fetch: (request) =>
   *     new URL(request.url).pathname === "/ws"
   *       ? app.upgrade(request, async (ws) => await ws.send("hello"))
   *       : new Response("a page\n"),
   * });
   * const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
   * assertEquals(await (await fetch(`http://127.0.0.1:${port}/`)).text(), "a page\n");
   * const ws = await connect(`ws://127.0.0.1:${port}/ws`);
   * assertEquals(await ws.receive({ timeout: 5000 }), "hello");
   * await ws.close();
   * await app.close();
   * ```
   *
   * @param request The request `fetch` received.
   * @param handler Runs the connection, as a route's handler does.
   * @param options The subprotocol, 101 headers and `ws.data`.
   * @returns The response for `fetch` to return.
   * @throws {TypeError} For a request upgraded already, or a subprotocol the client did not offer.
   */
  upgrade(request: Request, handler: Handler<Data>, options: UpgradeOptions<Data> = {}): Response {
    const slot = this.#upgradable.get(request);
    if (!slot) {
      return new Response("Upgrade: websocket is required\n", {
        status: 426,
        headers: { Upgrade: "websocket", Connection: "Upgrade" },
      });
    }
    if (slot.opened) throw new TypeError("the request was upgraded already");
    const upgrade = parseUpgradeRequest(slot.event.head);
    const error = upgrade.error;
    if (error) {
      this.#monitor.rejected(error.status, error.message, upgrade.path, slot.remoteAddress);
      // Every error parsing an upgrade request carries the status to answer with.
      return new Response(error.message + "\n", { status: error.status!, headers: error.headers });
    }
    if (!this.#originAllowed(upgrade)) {
      this.#monitor.rejected(403, "origin not allowed", upgrade.path, slot.remoteAddress);
      return new Response("origin not allowed\n", { status: 403 });
    }
    const offered = upgrade.subprotocols;
    if (options.subprotocol !== undefined && !offered.includes(options.subprotocol)) {
      throw new TypeError("the client did not offer that subprotocol");
    }
    slot.opened = {
      handler,
      request: { path: upgrade.path, query: upgrade.query, params: {}, upgrade },
      subprotocol: options.subprotocol ?? this.#options.subprotocols?.find((p) => offered.includes(p)),
      headers: options.headers,
      data: options.data,
    };
    return new Response(null, { status: 200 });
  }

  async #serve(transport: Transport, scheme: string): Promise<void> {
    const link = new Link(transport);
    if (this.#closing) return link.close();
    this.#handshakes.set(link, this.#handshakeTimeout);
    if (this.#options.fetch) return await this.#serveHttp(link, scheme);
    const protocol = new ServerProtocol(this.#options);
    const request = await this.#readHead(protocol, link);
    this.#handshakes.delete(link);
    const routed = request && this.#route(protocol, request);
    await this.#websocket(link, protocol, routed instanceof Promise ? await routed : routed);
  }

  /**
   * Reads until the request head is complete. Nothing more is read before the answer: the core
   * keeps what came with the head (at most one read) as early data, so the answer does not depend
   * on how the runtime cut its reads.
   */
  async #readHead(protocol: ServerProtocol, link: Link): Promise<UpgradeRequest | undefined> {
    let request: UpgradeRequest | undefined;
    let failed = false;
    await link.handshake((chunk) => {
      if (chunk === null) return failed = true;
      protocol.receiveData(chunk);
      // Every event: the request may come with a failure queued behind it (too much early data).
      for (const event of protocol.events()) {
        if (event.type !== "request") return failed = true;
        request = event.request;
      }
      return request !== undefined;
    });
    return failed ? undefined : request;
  }

  /**
   * Answers an upgrade request to a route: its origin, route and `upgrade` hook decide. Returns
   * what the handler needs after an accept; after anything else the answer is queued in `protocol`.
   * Synchronous unless there is a hook to wait for: no promises or async frames per handshake for
   * the common case (in-process handshake loop on Deno, best of 6, 3 alternating runs: 30.0-32.8 ->
   * 27.7-30.6 µs).
   */
  #route(
    protocol: ServerProtocol,
    request: UpgradeRequest,
  ): Opened<Data> | undefined | Promise<Opened<Data> | undefined> {
    try {
      const routed = this.#decide(protocol, request);
      return routed instanceof Promise ? routed.catch((error) => this.#unrouted(error)) : routed;
    } catch (error) {
      return this.#unrouted(error);
    }
  }

  /** A hook that threw, or a rejection it asked for that cannot be sent: answered 500. */
  #unrouted(error: unknown): undefined {
    this.#reportError(error);
    return undefined;
  }

  #decide(
    protocol: ServerProtocol,
    request: UpgradeRequest,
  ): Opened<Data> | undefined | Promise<Opened<Data> | undefined> {
    const options = this.#options;
    if (request.error) {
      protocol.reject();
      return undefined;
    }
    if (!this.#originAllowed(request)) {
      protocol.reject(403, { body: "origin not allowed\n" });
      return undefined;
    }
    const matched = this.#router.match(request.path);
    if (!matched) {
      protocol.reject(404, { body: "no route for this path\n" });
      return undefined;
    }
    if ("refused" in matched) {
      protocol.reject(400, { body: matched.refused });
      return undefined;
    }
    const routeRequest = {
      path: request.path,
      query: request.query,
      params: matched.params,
      upgrade: request,
    };
    if (!options.upgrade) return this.#opened(protocol, matched.handler, routeRequest, undefined);
    return Promise.resolve(options.upgrade(routeRequest)).then((decision) =>
      this.#opened(protocol, matched.handler, routeRequest, decision)
    );
  }

  /** What the handler needs, once the hook's decision (if any) is in; `undefined` after a rejection. */
  #opened(
    protocol: ServerProtocol,
    handler: Handler<Data>,
    routeRequest: RouteRequest,
    decision: UpgradeDecision<Data> | undefined | void,
  ): Opened<Data> | undefined {
    // The core failed the handshake meanwhile (too much early data), or close() began.
    if (protocol.readyState !== ReadyState.Connecting || this.#closing) return undefined;
    if (decision && "reject" in decision) {
      protocol.reject(decision.reject.status ?? 403, decision.reject);
      return undefined;
    }
    const offered = routeRequest.upgrade.subprotocols;
    const chosen = decision?.subprotocol === null
      ? undefined
      : decision?.subprotocol ?? this.#options.subprotocols?.find((p) => offered.includes(p));
    return {
      handler,
      request: routeRequest,
      subprotocol: chosen,
      headers: decision?.headers,
      data: decision?.data,
    };
  }

  /**
   * Ends the opening handshake: accepts and runs the handler when `opened`, else writes the answer
   * queued in `protocol` (a rejection) and closes.
   */
  async #websocket(link: Link, protocol: ServerProtocol, opened: Opened<Data> | undefined): Promise<void> {
    if (opened && !this.#closing) {
      try {
        protocol.accept({ subprotocol: opened.subprotocol, headers: opened.headers });
      } catch (error) {
        this.#reportError(error);
        opened = undefined;
      }
    } else if (opened) {
      // Accepted while the server was shutting down: it never reaches a handler.
      return link.close();
    }
    if (!opened) {
      if (protocol.readyState === ReadyState.Connecting && protocol.request && !protocol.request.error) {
        try {
          protocol.reject(500, { body: "internal error\n" });
        } catch {
          // Answered already: the connection is just closed.
        }
      }
      const rejection = protocol.rejection;
      if (rejection) {
        this.#monitor.rejected(
          rejection.status,
          rejection.reason,
          protocol.request?.path,
          link.transport.remoteAddress,
        );
      }
      await writeQuietly(link.transport, protocol.dataToSend());
      return link.close();
    }
    const written = writeQuietly(link.transport, protocol.dataToSend());
    if (written) await written;
    this.#opening = true;
    let ws: Connection<Data>;
    try {
      ws = new Connection<Data>(
        protocol,
        link,
        this.#options,
        protocol.events() as ProtocolEvent[],
        this.#hub,
      );
    } finally {
      this.#opening = false;
    }
    ws.data = opened.data as Data;
    if (!ws.closeResult) this.connections.add(ws);
    this.#monitor.opened(ws, opened.request, link.transport.remoteAddress);
    if (this.#closedEarly === ws) {
      this.#closedEarly = undefined;
      this.#monitor.closed(ws);
    }
    let running: unknown;
    try {
      running = opened.handler(ws, opened.request);
    } catch (error) {
      running = Promise.reject(error);
    }
    this.#run(ws, running);
  }

  /**
   * Closes the connection once its handler is done: with 1000, or 1011 when it failed. Not in an
   * async function: while the handler runs, its promise and one reaction are all the server holds
   * for the connection, not the frames of `#serve` and `#websocket` with the request they routed
   * (5,000 idle connections on Bun: 4.44 -> 3.92 KiB of heap each).
   */
  #run(ws: Connection<Data>, running: unknown): void {
    Promise.resolve(running).then(
      () => void ws.close(CloseCode.Normal), // close() never rejects unhandled (see `quiet`).
      (error) => {
        // A handler stopped by its own connection closing under it is no server error.
        if (error instanceof ConnectionClosed && ws.closeResult) return;
        this.#reportError(error);
        void ws.close(CloseCode.InternalError, "internal error");
      },
    );
  }

  /** Serves a connection's requests through `fetch` until it closes or one of them upgrades. */
  async #serveHttp(link: Link, scheme: string): Promise<void> {
    const options = this.#options;
    const session = new HttpSession(
      link,
      new HttpServerProtocol(options),
      scheme,
      this.#stalls,
      this.#bodyTimeout,
    );
    const info = new ServeInfo(link.transport);
    const over = Promise.withResolvers<void>();
    this.#sessions.set(session, over.promise);
    const headStarted = () => {
      this.#idle.delete(link);
      this.#handshakes.set(link, this.#handshakeTimeout);
    };
    let burst = 0;
    try {
      for (let first = true;; first = false) {
        if (!first) this.#idle.set(link, this.#keepAliveTimeout);
        const event = await session.nextRequest(first ? undefined : headStarted);
        this.#idle.delete(link);
        this.#handshakes.delete(link);
        if (!event) {
          const refusal = session.refusal;
          if (refusal) {
            this.#monitor.rejected(refusal.status, refusal.message, undefined, link.transport.remoteAddress);
          }
          // The connection ended, or the request was refused: its answer goes out first.
          await session.flush().catch(ignore);
          return await link.linger(LINGER);
        }
        if (event.upgrade) {
          const protocol = new ServerProtocol(this.#options);
          protocol.receiveHead(event.head, NO_BYTES);
          // An upgrade to a route is the WebSocket handshake's, refused there when malformed (as
          // without `fetch`); one to no route, or whose target names none (`OPTIONS *`), is fetch's.
          const request = protocol.request;
          if (request && this.#router.match(request.path)) {
            await session.flush(); // Responses to earlier requests batched with the next one.
            protocol.receiveData(session.http.detach());
            return await this.#websocket(link, protocol, await this.#route(protocol, request));
          }
        }
        const upgraded = await this.#exchange(session, event, info);
        if (upgraded) {
          await session.flush();
          const protocol = new ServerProtocol(this.#options);
          protocol.receiveHead(event.head, session.http.detach());
          return await this.#websocket(link, protocol, upgraded);
        }
        if (session.http.keepAlive && !session.ended && !this.#closing) {
          // Requests read already (pipelined) are answered PIPELINE_TURN at a time, then the other
          // connections get a turn: on Bun, where writes and held reads complete at once, 100,000
          // pipelined GETs on one connection held the event loop for 4.7-8.5 s.
          if (!session.pipelined) burst = 0;
          else if (++burst >= PIPELINE_TURN) {
            burst = 0;
            await nextTurn();
          }
          continue;
        }
        await session.flush();
        // A body not read to its end is drained for a while first: closing on unread bytes would
        // reset the connection, and the client could lose the response.
        if (!session.http.requestDone && !session.ended) return await link.linger(LINGER);
        return link.close();
      }
    } catch (error) {
      // The response could not be written whole: the connection ends here.
      if (!session.ended) this.#reportError(error);
      link.close();
    } finally {
      this.#sessions.delete(session);
      this.#stalls.delete(session);
      over.resolve();
    }
  }

  /** One request through `fetch`, and its response; returns what an upgrade from `fetch` needs. */
  async #exchange(
    session: HttpSession,
    event: HttpRequestEvent,
    info: ServeInfo,
  ): Promise<Opened<Data> | undefined> {
    this.#monitor.httpRequest();
    const request = session.request(event);
    let response: Response;
    if (!request) {
      response = new Response("the request cannot be represented as a Request\n", { status: 400 });
    } else {
      const slot: Upgradable<Data> | undefined = event.upgrade
        ? { event, remoteAddress: session.link.transport.remoteAddress, opened: undefined }
        : undefined;
      if (slot) this.#upgradable.set(request, slot);
      try {
        response = await this.#options.fetch!(request, info);
        if (!(response instanceof Response)) {
          throw new TypeError("fetch returned something other than a Response");
        }
      } catch (error) {
        // A handler failing because the client did (a malformed body, gone) is no server error.
        if (!session.failed && !session.ended) this.#reportError(error);
        response = new Response("internal error\n", { status: 500 });
      }
      if (slot?.opened) return slot.opened;
    }
    await session.respond(event, response);
    return undefined;
  }

  #originAllowed(request: UpgradeRequest): boolean {
    const origins = this.#options.origins;
    return !origins || origins.includes(request.headers.get("origin"));
  }
}
