/**
 * The route server (flask-sock's role): paths to handlers, over any adapter.
 *
 * @module
 */

import { checkSubprotocols, type HeadersInit, type UpgradeRequest } from "../core/handshake.ts";
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
import type { Adapter, Endpoint, Listener, Transport } from "../transport.ts";
import { Deadlines, settledWithin } from "../timers.ts";
import { Router } from "./router.ts";
import { Topics } from "./topics.ts";

/** What a handler learns about the request that opened its connection. */
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
 */
export type Handler = (ws: Connection, request: RouteRequest) => unknown;

/** An HTTP response the server sends instead of upgrading. */
export interface HttpResponse {
  /** The status. Default 200 for `fallback`, 403 for `upgrade`. */
  status?: number;
  /** Response headers. */
  headers?: HeadersInit;
  /** The body; a string is sent as UTF-8 text/plain unless `headers` set a type. */
  body?: string | Uint8Array;
}

/** What the `upgrade` hook decides: accept with these settings, or `{ reject }`. */
export type UpgradeDecision =
  | {
    /** The subprotocol: one the client offered, or `null` for none. Default: the `subprotocols` option's pick. */
    subprotocol?: string | null;
    /** Extra 101 response headers. */
    headers?: HeadersInit;
    /** Per-connection data, as `ws.data`. */
    data?: unknown;
  }
  | { /** The response instead of the upgrade. */ reject: HttpResponse };

/** Options of a {@linkcode Sock} server. */
export interface SockOptions extends ServerProtocolOptions, ConnectionOptions {
  /** The runtime adapter; detected by default. */
  adapter?: Adapter;
  /** How long a client may take to send its request head, in ms. Default 10000. */
  handshakeTimeout?: number;
  /**
   * Subprotocols the server speaks, preferred first: the first one in this list that the client
   * offered is chosen, whatever the client's own order (the `upgrade` hook can decide otherwise).
   * None is chosen when the client offered none of them.
   */
  subprotocols?: string[];
  /** Allowed `Origin` values; others (and a missing Origin) get 403. Default: any. */
  origins?: string[];
  /** Sees each routed request before the upgrade: accept with settings, or reject. */
  upgrade?: (request: RouteRequest) => UpgradeDecision | undefined | Promise<UpgradeDecision | undefined>;
  /**
   * Answers plain HTTP requests (no upgrade), e.g. to serve a page; without it they get 426.
   * A HEAD request gets the response's head only, its `Content-Length` that of the body.
   */
  fallback?: (request: UpgradeRequest) => HttpResponse | Promise<HttpResponse>;
  /** Called with errors thrown by handlers and hooks. */
  onError?: (error: unknown) => void;
  /**
   * Accept permessage-deflate (RFC 7692) offers: `true` with the defaults, or
   * the settings. Default `false`: offers are declined.
   */
  deflate?: boolean | PerMessageDeflateOptions;
}

/** A request that was upgraded: what its handler needs. */
interface Opened {
  handler: Handler;
  request: RouteRequest;
  events: ProtocolEvent[];
  data: unknown;
}

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
 * A WebSocket server with routes. The same code runs on Deno and Bun.
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
 */
export class Sock {
  readonly #options: SockOptions;
  #router = new Router<Handler>();
  #listeners: Listener[] = [];
  #topics = new Topics<Connection>();
  #hub: ServerHub = {
    subscribe: (ws, topic) => this.#topics.subscribe(ws, topic),
    unsubscribe: (ws, topic) => this.#topics.unsubscribe(ws, topic),
    topicsOf: (ws) => this.#topics.topicsOf(ws),
    closed: (ws) => {
      this.#topics.leave(ws);
      this.connections.delete(ws);
    },
  };
  /** Connections still in the opening handshake, dropped at their deadline; `close()` drops them at once. */
  #handshakes: Deadlines<Link>;
  #handshakeTimeout: number;
  #closing = false;
  /** Passes an error to `onError`: one function for every connection. */
  #reportError = (error: unknown): void => this.#options.onError?.(error);
  /** The open connections. */
  readonly connections: Set<Connection> = new Set();

  /**
   * Creates a server with no routes.
   *
   * @param options Limits, timeouts, hooks and the adapter.
   * @throws {RangeError} For a numeric option out of its range.
   * @throws {TypeError} For a subprotocol that is not a token, or one listed twice.
   */
  constructor(options: SockOptions = {}) {
    const { deflate } = options;
    // One timer for every handshake: it wakes eight times per timeout, so a drop comes at most an
    // eighth of it late.
    const timeout = checkOption("handshakeTimeout", options.handshakeTimeout, 10000, { min: 1 });
    this.#handshakeTimeout = timeout;
    this.#handshakes = new Deadlines(timeout / 8, (link) => link.close());
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
  route(path: string, handler: Handler): this {
    this.#router.add(path, handler);
    return this;
  }

  /**
   * Starts listening.
   *
   * @param endpoint Host name and port (0 for a free one).
   * @returns The bound address.
   */
  async listen(endpoint: Partial<Endpoint> = {}): Promise<Listener["address"]> {
    const adapter = this.#options.adapter ?? detectAdapter();
    const listener = await adapter.listen(
      { hostname: endpoint.hostname ?? "0.0.0.0", port: endpoint.port ?? 0, tls: endpoint.tls },
      (transport) => this.#serve(transport).catch(this.#reportError),
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
   * @returns How many members it was queued for: those not open are not
   *   counted, nor one that this message cut (its buffer was full).
   */
  publish(topic: string, message: Message): number {
    return this.#topics.publish(topic, message);
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
    const open = [...this.connections];
    const closing = open.map((ws) => ws.close(CloseCode.GoingAway, "server shutting down").catch(ignore));
    await settledWithin(Promise.all(closing), timeout);
    for (const ws of open) ws.terminate();
  }

  async #serve(transport: Transport): Promise<void> {
    const link = new Link(transport);
    const open = await this.#open(link);
    if (!open) return;
    const { protocol, opened } = open;
    const ws = new Connection(protocol, link, this.#options, opened.events, this.#hub);
    ws.data = opened.data;
    if (!ws.closeResult) this.connections.add(ws);
    try {
      await opened.handler(ws, opened.request);
      await ws.close(CloseCode.Normal);
    } catch (error) {
      // A handler stopped by its own connection closing under it is no server error.
      if (error instanceof ConnectionClosed && ws.closeResult) return;
      this.#options.onError?.(error);
      await ws.close(CloseCode.InternalError, "internal error");
    }
  }

  /**
   * The opening handshake within its timeout; after anything but an accept,
   * the answer is written and the transport closed.
   */
  async #open(link: Link): Promise<{ protocol: ServerProtocol; opened: Opened } | undefined> {
    if (this.#closing) {
      link.close();
      return undefined;
    }
    const protocol = new ServerProtocol(this.#options);
    this.#handshakes.set(link, this.#handshakeTimeout);
    let opened: Opened | undefined;
    try {
      opened = await this.#handshake(protocol, link);
    } catch (error) {
      this.#options.onError?.(error);
      try {
        if (protocol.readyState === ReadyState.Connecting) protocol.reject(500, { body: "internal error\n" });
      } catch {
        // Answered already (accept() failed after committing): the connection is just closed.
      }
    } finally {
      this.#handshakes.delete(link);
    }
    if (opened && this.#closing) {
      // Accepted while the server was shutting down: it never reaches a handler.
      link.close();
      return undefined;
    }
    if (!opened) {
      await writeQuietly(link.transport, protocol.dataToSend());
      link.close();
      return undefined;
    }
    return { protocol, opened };
  }

  /**
   * Reads until the request head is complete, then answers it; returns what the handler needs after an
   * accept. Nothing more is read before the answer: the core keeps what came with the head (at most one
   * read) as early data, so the answer does not depend on how the runtime cut its reads.
   */
  async #handshake(protocol: ServerProtocol, link: Link): Promise<Opened | undefined> {
    const options = this.#options;
    // Over without an answer from here: the core failed it (and queued its own answer), or the
    // handshake timeout or close() dropped the link while a hook ran.
    const over = () => protocol.readyState !== ReadyState.Connecting || this.#dropped(link);
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
    if (failed || !request) return undefined;
    if (request.error) {
      if (options.fallback && !request.headers.has("upgrade")) {
        const response = await options.fallback(request);
        if (over()) return undefined;
        protocol.reject(response.status ?? 200, response);
      } else {
        protocol.reject();
      }
      return undefined;
    }
    if (options.origins && !options.origins.includes(request.headers.get("origin") ?? "")) {
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
    const decision = options.upgrade && await options.upgrade(routeRequest);
    if (over()) return undefined;
    if (decision && "reject" in decision) {
      protocol.reject(decision.reject.status ?? 403, decision.reject);
      return undefined;
    }
    const offered = request.subprotocols;
    const chosen = decision?.subprotocol === null
      ? undefined
      : decision?.subprotocol ?? options.subprotocols?.find((p) => offered.includes(p));
    protocol.accept({ subprotocol: chosen, headers: decision?.headers });
    if (this.#dropped(link)) return undefined;
    const written = writeQuietly(link.transport, protocol.dataToSend());
    if (written) await written;
    return {
      handler: matched.handler,
      request: routeRequest,
      events: protocol.events() as ProtocolEvent[],
      data: decision?.data,
    };
  }

  /** Whether the handshake timeout or `close()` dropped this link before its answer. */
  #dropped(link: Link): boolean {
    return this.#closing || !this.#handshakes.has(link);
  }
}
