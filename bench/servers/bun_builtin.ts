/**
 * Bun's built-in WebSocket server (`Bun.serve` with `websocket`) as an echo
 * server, for comparison with examples/echo_server.ts: every message comes back
 * with its type, on any path.
 *
 *   bun bench/servers/bun_builtin.ts --port 9001 [--host 127.0.0.1]
 *
 * Prints `listening on ws://HOST:PORT` once ready.
 *
 * @module
 */

/** The parts of Bun's API used here, declared locally instead of depending on bun-types. */
interface BunServerWebSocket {
  send(data: string | Uint8Array): number;
}

interface BunApi {
  serve(options: {
    hostname: string;
    port: number;
    fetch(request: Request, server: { upgrade(request: Request): boolean }): Response | undefined;
    websocket: {
      maxPayloadLength: number;
      message(ws: BunServerWebSocket, message: string | Uint8Array): void;
    };
  }): { hostname: string; port: number };
}

const Bun = (globalThis as unknown as { Bun: BunApi }).Bun;
const args = (globalThis as unknown as { process: { argv: string[] } }).process.argv.slice(2);
const option = (name: string, fallback: string) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 && at + 1 < args.length ? args[at + 1] : fallback;
};

const host = option("host", "127.0.0.1");
const server = Bun.serve({
  hostname: host,
  port: Number(option("port", "9001")),
  fetch(request, server) {
    if (server.upgrade(request)) return undefined;
    return new Response("websocket only", { status: 426 });
  },
  websocket: {
    // As examples/echo_server.ts allows.
    maxPayloadLength: 64 * 1024 * 1024,
    message(ws, message) {
      ws.send(message);
    },
  },
});
console.log(`listening on ws://${host}:${server.port}`);
