/**
 * sock's `Sock` server for bench/servers.ts, on Deno or Bun. In echo mode
 * (the default) it is examples/echo_server.ts: every message comes back with
 * its type, on any path, with the same limits. In broadcast mode every message
 * received goes to every open connection, sender included, through
 * `Sock.publish` on one topic all connections subscribe to.
 *
 *   deno run -A [--v8-flags=--expose-gc] bench/servers/sock.ts --port 9001 \
 *     [--host 127.0.0.1] [--mode echo|broadcast]
 *   bun bench/servers/sock.ts --port 9001 [--mode broadcast] [--hooks on]
 *
 * Prints `listening on ws://HOST:PORT` once ready; SIGUSR2 runs a full GC (see
 * gc.ts).
 *
 * @module
 */

import { Sock } from "../../src/server/sock.ts";
import { option } from "../../examples/args.ts";
import { collectOnSignal } from "./gc.ts";

collectOnSignal();

const broadcast = option("mode", "echo") === "broadcast";
// `--hooks on`: every lifecycle hook and a logger, each doing a little work (bench/servers.ts --hooks on).
let heard = 0;
const hooks = option("hooks", "off") === "on"
  ? {
    onOpen: () => void heard++,
    onClose: (_ws: unknown, report: { duration: number }) => void (heard += report.duration > 0 ? 1 : 0),
    onReject: () => void heard++,
    logger: { log: (entry: { event: string }) => void (heard += entry.event.length) },
  }
  : {};
const app = new Sock({
  maxMessageSize: 64 * 1024 * 1024,
  maxFragments: 100_000,
  onError: (error) => console.error("handler failed:", error),
  ...hooks,
});
app.route("/*", (ws) => {
  if (!broadcast) return ws.forEach((message) => ws.send(message));
  ws.subscribe("all");
  return ws.forEach((message) => {
    app.publish("all", message);
  });
});
const host = option("host", "127.0.0.1");
const { port } = await app.listen({ hostname: host, port: Number(option("port", "9001")) });
console.log(`listening on ws://${host}:${port}`);
