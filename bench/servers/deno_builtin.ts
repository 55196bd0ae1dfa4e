/**
 * Deno's built-in WebSocket server (`Deno.serve` + `Deno.upgradeWebSocket`) as
 * an echo server, for comparison with examples/echo_server.ts: every message
 * comes back with its type, on any path.
 *
 *   deno run -A bench/servers/deno_builtin.ts --port 9001 [--host 127.0.0.1]
 *
 * Prints `listening on ws://HOST:PORT` once ready.
 *
 * @module
 */

const option = (name: string, fallback: string) => {
  const at = Deno.args.indexOf(`--${name}`);
  return at >= 0 && at + 1 < Deno.args.length ? Deno.args[at + 1] : fallback;
};

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
  socket.onmessage = (event) => socket.send(event.data);
  socket.onerror = () => {};
  return response;
});
