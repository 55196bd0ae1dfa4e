/**
 * Bun's built-in HTTP server (`Bun.serve`, on uWebSockets) for bench/http.ts,
 * running the same fetch handler as Deno's and sock's (see http_deno.ts), with
 * Bun's defaults otherwise.
 *
 *   bun bench/servers/http_bun.ts --port 9001 [--host 127.0.0.1]
 *
 * Prints `listening on http://HOST:PORT` once ready.
 *
 * @module
 */

import { option } from "../../examples/args.ts";
import { handler } from "./http_deno.ts";

/** The part of Bun's API used here, declared locally instead of depending on bun-types. */
interface BunApi {
  serve(options: {
    hostname: string;
    port: number;
    fetch(request: Request): Response | Promise<Response>;
  }): { port: number };
}

const Bun = (globalThis as unknown as { Bun: BunApi }).Bun;
const host = option("host", "127.0.0.1");
const server = Bun.serve({ hostname: host, port: Number(option("port", "9001")), fetch: handler });
console.log(`listening on http://${host}:${server.port}`);
