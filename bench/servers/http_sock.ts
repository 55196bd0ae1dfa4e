/**
 * sock's `Sock` server as a plain HTTP server for bench/http.ts, on Deno or
 * Bun: its `fetch` option runs the same web-standard handler as the Deno and
 * Bun built-in servers do (see http_deno.ts).
 *
 *   deno run -A bench/servers/http_sock.ts --port 9001 [--host 127.0.0.1]
 *   bun bench/servers/http_sock.ts --port 9001
 *
 * Prints `listening on http://HOST:PORT` once ready.
 *
 * @module
 */

import { Sock } from "../../mod.ts";
import { option } from "../../examples/args.ts";
import { handler } from "./http_deno.ts";

const app = new Sock({
  fetch: (request: Request) => handler(request),
  onError: (error) => console.error("handler failed:", error),
});
const host = option("host", "127.0.0.1");
const port = Number(option("port", "9001"));
await app.listen({ hostname: host, port });
console.log(`listening on http://${host}:${port}`);
