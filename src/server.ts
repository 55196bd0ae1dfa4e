/**
 * The route server (flask-sock's role): paths to handlers, over any adapter.
 *
 * @module
 */

import type { UpgradeRequest } from "./core/handshake.ts";
import type { ProtocolEvent } from "./core/protocol.ts";
import { ServerProtocol, type ServerProtocolOptions } from "./core/server_protocol.ts";
import { detectAdapter } from "./adapters/mod.ts";
import { Connection, type ConnectionOptions } from "./connection.ts";
import type { Adapter, Endpoint, Listener, Transport } from "./transport.ts";

/** What a handler learns about the request that opened its connection. */
export interface RouteRequest {
  /** The path, e.g. `/rooms/lobby`. */
  path: string;
  /** The query string without `?`. */
  query: string;
  /** Route parameters, e.g. `{ room: "lobby" }` for `/rooms/:room`. */
  params: Record<string, string>;
  /** The full parsed request. */
  upgrade: UpgradeRequest;
}

/** Handles one connection; returning closes it with 1000, throwing with 1011. */
export type Handler = (ws: Connection, request: RouteRequest) => unknown;

/** Options of a {@linkcode Sock} server. */
export interface SockOptions extends ServerProtocolOptions, ConnectionOptions {
  /** The runtime adapter; detected by default. */
  adapter?: Adapter;
  /** How long a client may take to send its request head, in ms. Default 10000. */
  handshakeTimeout?: number;
  /** Called with errors thrown by handlers. */
  onError?: (error: unknown) => void;
}

interface Route {
  pattern: RegExp;
  names: string[];
  handler: Handler;
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

  /** Creates a server with no routes. */
  constructor(options: SockOptions = {}) {
    this.#options = options;
  }

  /**
   * Adds a route. `:name` segments match one path segment and reach the handler as `params.name`;
   * a last segment `*` matches the rest of the path (`params["*"]`). The first matching route wins.
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
    const listener = await adapter.listen(
      { hostname: endpoint.hostname ?? "0.0.0.0", port: endpoint.port ?? 0, tls: endpoint.tls },
      (transport) => this.#serve(transport).catch((error) => this.#options.onError?.(error)),
    );
    this.#listeners.push(listener);
    return listener.address;
  }

  /** Stops listening. */
  close(): void {
    for (const listener of this.#listeners.splice(0)) listener.close();
  }

  async #serve(transport: Transport): Promise<void> {
    const protocol = new ServerProtocol(this.#options);
    const timer = setTimeout(() => transport.close(), this.#options.handshakeTimeout ?? 10000);
    let events: ProtocolEvent[] | undefined;
    try {
      events = await this.#handshake(protocol, transport);
    } finally {
      clearTimeout(timer);
    }
    if (!events) {
      await transport.write(protocol.dataToSend()).catch(() => {});
      transport.close();
      return;
    }
    const { handler, request } = this.#match(protocol.request!)!;
    const ws = new Connection(protocol, transport, this.#options, events);
    try {
      await handler(ws, request);
      await ws.close(1000);
    } catch (error) {
      this.#options.onError?.(error);
      await ws.close(1011, "internal error");
    }
  }

  /** Reads until the request is answered; returns the events after an accept, `undefined` otherwise. */
  async #handshake(protocol: ServerProtocol, transport: Transport): Promise<ProtocolEvent[] | undefined> {
    while (true) {
      const chunk = await transport.read();
      if (chunk === null) return undefined;
      protocol.receiveData(chunk);
      const events = protocol.events();
      const first = events[0];
      if (!first) continue;
      if (first.type !== "request") return undefined;
      const { request } = first;
      if (request.error) {
        protocol.reject();
        return undefined;
      }
      if (!this.#match(request)) {
        protocol.reject(404, { body: "no route for this path\n" });
        return undefined;
      }
      if (!await protocol.accept()) return undefined;
      await transport.write(protocol.dataToSend());
      return protocol.events() as ProtocolEvent[];
    }
  }

  #match(upgrade: UpgradeRequest): { handler: Handler; request: RouteRequest } | undefined {
    for (const route of this.#routes) {
      const match = route.pattern.exec(upgrade.path);
      if (!match) continue;
      const params: Record<string, string> = {};
      route.names.forEach((name, i) => params[name] = decodeURIComponent(match[i + 1]));
      return {
        handler: route.handler,
        request: { path: upgrade.path, query: upgrade.query, params, upgrade },
      };
    }
    return undefined;
  }
}
