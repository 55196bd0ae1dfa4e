/**
 * sock's `Sock` server for bench/servers.ts, on Deno or Bun. In echo mode
 * (the default) it is examples/echo_server.ts: every message comes back with
 * its type, on any path, with the same limits. In broadcast mode every message
 * received goes to every open connection, sender included, through
 * `Sock.publish` on one topic all connections subscribe to. In fanout mode
 * (bench/fanout.ts) it goes to every other one (`except` the sender), and with
 * `--redis URL` to those of the other processes too, through a `RedisBackplane`.
 *
 *   deno run -A [--v8-flags=--expose-gc] bench/servers/sock.ts --port 9001 \
 *     [--host 127.0.0.1] [--mode echo|broadcast|fanout] [--redis redis://127.0.0.1:6379]
 *   bun bench/servers/sock.ts --port 9001 [--mode broadcast] [--hooks on]
 *
 * Prints `listening on ws://HOST:PORT` once ready; SIGUSR2 runs a full GC (see
 * gc.ts).
 *
 * @module
 */

import { Sock } from "../../src/server/sock.ts";
import { RedisBackplane } from "../../src/redis/backplane.ts";
import { option } from "../../examples/args.ts";
import { collectOnSignal } from "./gc.ts";

collectOnSignal();

const mode = option("mode", "echo");
const redis = option("redis", "");
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
  backplane: redis
    ? new RedisBackplane({ url: redis, onError: (error) => console.error("redis:", error) })
    : undefined,
  ...hooks,
});
app.route("/*", (ws) => {
  if (mode === "echo") return ws.forEach((message) => ws.send(message));
  ws.subscribe("all");
  const except = mode === "fanout" ? ws : undefined;
  return ws.forEach((message) => {
    app.publish("all", message, { except });
  });
});
const host = option("host", "127.0.0.1");
const { port } = await app.listen({ hostname: host, port: Number(option("port", "9001")) });
console.log(`listening on ws://${host}:${port}`);
