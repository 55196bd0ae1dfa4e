/**
 * Deno's built-in WebSocket server (`Deno.serve` + `Deno.upgradeWebSocket`) as
 * an echo server, for comparison with bench/servers/sock.ts: every message
 * comes back with its type, on any path. In broadcast mode every message
 * received goes to every open connection, sender included, in a loop over them.
 *
 *   deno run -A [--v8-flags=--expose-gc] bench/servers/deno_builtin.ts --port 9001 \
 *     [--host 127.0.0.1] [--mode echo|broadcast]
 *
 * Prints `listening on ws://HOST:PORT` once ready; SIGUSR2 runs a full GC (see
 * gc.ts).
 *
 * @module
 */

import { option } from "../../examples/args.ts";
import { collectOnSignal } from "./gc.ts";

collectOnSignal();

const broadcast = option("mode", "echo") === "broadcast";
const open = new Set<WebSocket>();
const host = option("host", "127.0.0.1");
Deno.serve({
  hostname: host,
  port: Number(option("port", "9001")),
  onListen: ({ port }) => console.log(`listening on ws://${host}:${port}`),
}, (request) => {
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return new Response("websocket only", { status: 426 });
  }
  const { socket, response } = Deno.upgradeWebSocket(request);
  socket.binaryType = "arraybuffer";
  if (broadcast) {
    socket.onopen = () => open.add(socket);
    socket.onclose = () => open.delete(socket);
    socket.onmessage = (event) => {
      for (const peer of open) peer.send(event.data);
    };
  } else {
    socket.onmessage = (event) => socket.send(event.data);
  }
  socket.onerror = () => {};
  return response;
});
