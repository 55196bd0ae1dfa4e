/**
 * An echo server: every message comes back with its type, on any path.
 *
 *   deno run -A examples/echo_server.ts --port 9001 [--host 127.0.0.1] [--deflate]
 *   bun examples/echo_server.ts --port 9001
 *
 * Prints `listening on ws://HOST:PORT` once ready. Limits are the core's
 * defaults except messages up to 64 MiB in up to 100,000 fragments, as
 * conformance tools send. With `--deflate` it accepts permessage-deflate
 * offers; without it, it declines them.
 *
 * @module
 */

import { Sock } from "../src/server/sock.ts";
import { flag, option } from "./args.ts";

const app = new Sock({
  maxMessageSize: 64 * 1024 * 1024,
  maxFragments: 100_000,
  deflate: flag("deflate"),
  onError: (error) => console.error("handler failed:", error),
});
// forEach passes each message on as it is read: no promise per message, unlike `for await`.
app.route("/*", (ws) => ws.forEach((message) => ws.send(message)));
const host = option("host", "127.0.0.1");
const { port } = await app.listen({ hostname: host, port: Number(option("port", "9001")) });
console.log(`listening on ws://${host}:${port}`);
