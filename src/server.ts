/**
 * The route server (flask-sock's role): paths to handlers, over any adapter.
 *
 * @module
 */

import type { HeadersInit, UpgradeRequest } from "./core/handshake.ts";
import { type ProtocolEvent, ReadyState } from "./core/protocol.ts";
import { ServerProtocol, type ServerProtocolOptions } from "./core/server_protocol.ts";
import { type PerMessageDeflateOptions, PerMessageDeflateServer } from "./core/deflate/permessage_deflate.ts";
import { detectAdapter } from "./adapters/mod.ts";
import {
  Connection,
  ConnectionClosed,
  type ConnectionOptions,
  type Message,
  type TopicHub,
} from "./connection.ts";
import type { Adapter, Endpoint, Listener, Transport } from "./transport.ts";

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
    /** The subprotocol: one the client offered, or `null` for none. Default: the `protocols` option's pick. */
    protocol?: string | null;
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
  protocols?: string[];
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

interface Route {
  pattern: RegExp;
  names: string[];
  handler: Handler;
}

/** Whether `value` holds a backslash or a control character (U+0000–U+001F, U+007F). */
function hasUnsafeCharacter(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c === 0x7f || c === 0x5c) return true;
  }
  return false;
}

/** Whether a decoded `:name` parameter is one plain segment: no `/`, `\` or control character, not `.` or `..`. */
function isSafeSegment(value: string): boolean {
  return !hasUnsafeCharacter(value) && !value.includes("/") && value !== "." && value !== "..";
}

/** Whether a decoded `*` parameter is plain segments: `/` allowed, but no `.` or `..` segment. */
function isSafeRest(value: string): boolean {
  return !hasUnsafeCharacter(value) &&
    !value.split("/").some((segment) => segment === "." || segment === "..");
}

/** Writes the handshake's answer; a peer gone by then is no server error (its handler, if any, sees 1006). */
async function writeQuietly(transport: Transport, chunks: Uint8Array[]): Promise<void> {
  try {
    await transport.write(chunks);
  } catch {
    // Nothing to report.
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
  #options: SockOptions;
  #routes: Route[] = [];
  #listeners: Listener[] = [];
  #topics = new Map<string, Set<Connection>>();
  #hub: TopicHub = {
    subscribe: (ws, topic) => {
      let members = this.#topics.get(topic);
      if (!members) this.#topics.set(topic, members = new Set());
      members.add(ws);
      ws.topics.add(topic);
    },
    unsubscribe: (ws, topic) => {
      const members = this.#topics.get(topic);
      members?.delete(ws);
      if (members?.size === 0) this.#topics.delete(topic);
      ws.topics.delete(topic);
    },
    closed: (ws) => {
      for (const topic of ws.topics) this.#hub.unsubscribe(ws, topic);
      this.connections.delete(ws);
    },
  };
  /** Connections still in the opening handshake, with when they are dropped: `close()` drops them at once. */
  #handshaking = new Map<Transport, number>();
  /** Drops handshakes past their deadline; runs while there are any. */
  #sweeper: ReturnType<typeof setInterval> | undefined;
  #closing = false;
  /** Passes an error to `onError`: one function for every connection. */
  #reportError = (error: unknown): void => this.#options.onError?.(error);
  /** The open connections. */
  readonly connections: Set<Connection> = new Set();

  /** Creates a server with no routes. */
  constructor(options: SockOptions = {}) {
    const { deflate } = options;
    this.#options = deflate
      ? {
        ...options,
        extensions: [
          new PerMessageDeflateServer(deflate === true ? {} : deflate),
          ...options.extensions ?? [],
        ],
      }
      : options;
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
   * import { Sock } from "./server.ts";
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
    const names: string[] = [];
    const source = path.split("/").map((segment) => {
      if (segment.startsWith(":")) {
        names.push(segment.slice(1));
        return "([^/]+)";
      }
      if (segment === "*") {
        names.push("*");
        return "(.*)";
      }
      return segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    }).join("/");
    this.#routes.push({ pattern: new RegExp(`^${source}$`), names, handler });
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
    // Connection tells the core when a handler has answered (endings wait for its replies), and reads
    // the frames that came with the handshake within its per-turn bounds.
    const options = { ...adapter.protocolDefaults, ...this.#options, holdEndings: true, leaveUnread: true };
    const listener = await adapter.listen(
      { hostname: endpoint.hostname ?? "0.0.0.0", port: endpoint.port ?? 0, tls: endpoint.tls },
      (transport) => this.#serve(transport, options).catch(this.#reportError),
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
    const members = this.#topics.get(topic);
    if (!members) return 0;
    let queued = 0;
    for (const ws of members) {
      // Closing: whatever was sent would only wait for the close to reject it.
      if (ws.readyState !== ReadyState.Open) continue;
      // Never rejects unhandled, and past maxBufferedAmount it cuts the member instead of queueing.
      ws.send(message);
      if (ws.readyState === ReadyState.Open) queued++;
    }
    return queued;
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
    for (const transport of this.#handshaking.keys()) transport.close();
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    const open = [...this.connections];
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all(open.map((ws) => ws.close(1001, "server shutting down").catch(() => {}))),
      new Promise((resolve) => timer = setTimeout(resolve, timeout)),
    ]);
    clearTimeout(timer);
    for (const ws of open) ws.terminate();
  }

  async #serve(transport: Transport, options: ServerProtocolOptions): Promise<void> {
    const open = await this.#open(transport, options);
    if (!open) return;
    const { protocol, opened } = open;
    const ws = new Connection(protocol, transport, this.#options, opened.events, this.#hub);
    ws.data = opened.data;
    if (!ws.closeInfo) this.connections.add(ws);
    try {
      await opened.handler(ws, opened.request);
      await ws.close(1000);
    } catch (error) {
      // A handler stopped by its own connection closing under it is no server error.
      if (error instanceof ConnectionClosed && ws.closeInfo) return;
      this.#options.onError?.(error);
      await ws.close(1011, "internal error");
    }
  }

  /**
   * The opening handshake within its timeout; after anything but an accept,
   * the answer is written and the transport closed.
   */
  async #open(
    transport: Transport,
    options: ServerProtocolOptions,
  ): Promise<{ protocol: ServerProtocol; opened: Opened } | undefined> {
    if (this.#closing) {
      transport.close();
      return undefined;
    }
    const protocol = new ServerProtocol(options);
    this.#watch(transport);
    let opened: Opened | undefined;
    try {
      opened = await this.#handshake(protocol, transport);
    } catch (error) {
      this.#options.onError?.(error);
      try {
        if (protocol.readyState === ReadyState.Connecting) protocol.reject(500, { body: "internal error\n" });
      } catch {
        // Answered already (accept() failed after committing): the connection is just closed.
      }
    } finally {
      this.#handshaking.delete(transport);
    }
    if (opened && this.#closing) {
      // Accepted while the server was shutting down: it never reaches a handler.
      transport.close();
      return undefined;
    }
    if (!opened) {
      await writeQuietly(transport, protocol.dataToSend());
      transport.close();
      return undefined;
    }
    return { protocol, opened };
  }

  /**
   * Drops the transport if its handshake outlives `handshakeTimeout`. One timer serves every
   * handshake: it wakes eight times per timeout, so a drop comes at most an eighth of it late.
   */
  #watch(transport: Transport): void {
    const timeout = this.#options.handshakeTimeout ?? 10000;
    this.#handshaking.set(transport, performance.now() + timeout);
    this.#sweeper ??= setInterval(() => {
      if (this.#handshaking.size === 0) {
        clearInterval(this.#sweeper);
        this.#sweeper = undefined;
        return;
      }
      const now = performance.now();
      // In the order they started, so in deadline order.
      for (const [late, deadline] of this.#handshaking) {
        if (deadline > now) break;
        late.close();
        this.#handshaking.delete(late);
      }
    }, timeout / 8);
  }

  /**
   * Reads until the request head is complete, then answers it; returns what the handler needs after an
   * accept. Nothing more is read before the answer: the core keeps what came with the head (at most one
   * read) as early data, so the answer does not depend on how the runtime cut its reads.
   */
  async #handshake(protocol: ServerProtocol, transport: Transport): Promise<Opened | undefined> {
    const options = this.#options;
    // Over without an answer from here: the core failed it (and queued its own answer), or the
    // handshake timeout or close() dropped the transport while a hook ran.
    const over = () => protocol.readyState !== ReadyState.Connecting || this.#dropped(transport);
    let request: UpgradeRequest | undefined;
    while (!request) {
      const chunk = await transport.read();
      if (chunk === null) return undefined;
      protocol.receiveData(chunk);
      // The core kept no part of it (not transferred): the transport may read into it again.
      transport.release?.(chunk);
      // Every event: the request may come with a failure queued behind it (too much early data).
      for (const event of protocol.events()) {
        if (event.type !== "request") return undefined;
        request = event.request;
      }
    }
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
    const matched = this.#match(request);
    if (typeof matched === "string") {
      protocol.reject(400, { body: matched });
      return undefined;
    }
    if (!matched) {
      protocol.reject(404, { body: "no route for this path\n" });
      return undefined;
    }
    const decision = await options.upgrade?.(matched.request);
    if (over()) return undefined;
    if (decision && "reject" in decision) {
      protocol.reject(decision.reject.status ?? 403, decision.reject);
      return undefined;
    }
    const chosen = decision?.protocol === null
      ? undefined
      : decision?.protocol ?? options.protocols?.find((p) => request.protocols.includes(p));
    if (!await protocol.accept({ protocol: chosen, headers: decision?.headers })) return undefined;
    if (this.#dropped(transport)) return undefined;
    await writeQuietly(transport, protocol.dataToSend());
    return { ...matched, events: protocol.events() as ProtocolEvent[], data: decision?.data };
  }

  /** Whether the handshake timeout or `close()` dropped this transport before its answer. */
  #dropped(transport: Transport): boolean {
    return this.#closing || !this.#handshaking.has(transport);
  }

  /**
   * The first route matching the path, `undefined` for none, or why its parameters are refused (the
   * 400's body): a bad percent-encoding, or a decoded value that `route()` does not allow.
   */
  #match(upgrade: UpgradeRequest): { handler: Handler; request: RouteRequest } | string | undefined {
    for (const route of this.#routes) {
      const match = route.pattern.exec(upgrade.path);
      if (!match) continue;
      const params: Record<string, string> = {};
      for (let i = 0; i < route.names.length; i++) {
        const name = route.names[i];
        let value: string;
        try {
          value = decodeURIComponent(match[i + 1]);
        } catch {
          // decodeURIComponent's URIError: the client's mistake, not the server's.
          return "malformed percent-encoding in the path\n";
        }
        if (name === "*" ? !isSafeRest(value) : !isSafeSegment(value)) {
          return "a route parameter holds a character or segment that is not allowed\n";
        }
        params[name] = value;
      }
      return {
        handler: route.handler,
        request: { path: upgrade.path, query: upgrade.query, params, upgrade },
      };
    }
    return undefined;
  }
}
