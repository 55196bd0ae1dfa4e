/**
 * Bun's built-in WebSocket server (`Bun.serve` with `websocket`) as an echo
 * server, for comparison with bench/servers/sock.ts: every message comes back
 * with its type, on any path. In broadcast mode every message received goes to
 * every open connection, sender included, through `server.publish` on one
 * topic all connections subscribe to.
 *
 *   bun bench/servers/bun_builtin.ts --port 9001 [--host 127.0.0.1] [--mode echo|broadcast]
 *
 * Prints `listening on ws://HOST:PORT` once ready; SIGUSR2 runs a full GC (see
 * gc.ts).
 *
 * @module
 */

import { option } from "../../examples/args.ts";
import { collectOnSignal } from "./gc.ts";

collectOnSignal();

/** The parts of Bun's API used here, declared locally instead of depending on bun-types. */
interface BunServerWebSocket {
  send(data: string | Uint8Array): number;
  subscribe(topic: string): void;
}

interface BunServer {
  port: number;
  upgrade(request: Request): boolean;
  publish(topic: string, data: string | Uint8Array): number;
}

interface BunApi {
  serve(options: {
    hostname: string;
    port: number;
    fetch(request: Request, server: BunServer): Response | undefined;
    websocket: {
      maxPayloadLength: number;
      open(ws: BunServerWebSocket): void;
      message(ws: BunServerWebSocket, message: string | Uint8Array): void;
    };
  }): BunServer;
}

const Bun = (globalThis as unknown as { Bun: BunApi }).Bun;
const broadcast = option("mode", "echo") === "broadcast";
const host = option("host", "127.0.0.1");
const server = Bun.serve({
  hostname: host,
  port: Number(option("port", "9001")),
  fetch(request, server) {
    if (server.upgrade(request)) return undefined;
    return new Response("websocket only", { status: 426 });
  },
  websocket: {
    // As bench/servers/sock.ts allows.
    maxPayloadLength: 64 * 1024 * 1024,
    open(ws) {
      if (broadcast) ws.subscribe("all");
    },
    message(ws, message) {
      if (broadcast) server.publish("all", message);
      else ws.send(message);
    },
  },
});
console.log(`listening on ws://${host}:${server.port}`);
