/**
 * Deno's built-in HTTP server (`Deno.serve`) for bench/http.ts, and the
 * web-standard handler (`Request` in, `Response` out) that it, Bun's built-in
 * server (http_bun.ts) and sock (http_sock.ts) all run, so they differ only in
 * the server under the handler. bench/servers/http_node.mjs is its `node:http`
 * equivalent.
 *
 * Routes:
 *
 * - `GET /hello`: 200 `Hello, World!` (text/plain)
 * - `POST /json`: reads the body as JSON (an object), answers 200
 *   `{"ok":true,"n":<its number of keys>}` (application/json)
 * - `GET /stream`: 200 with a 1 MiB body from a `ReadableStream` of 16 chunks
 *   of 64 KiB, no Content-Length, so the server frames it (chunked)
 * - anything else: 404
 *
 *   deno run -A bench/servers/http_deno.ts --port 9001 [--host 127.0.0.1]
 *
 * Prints `listening on http://HOST:PORT` once ready. Imported (by the other
 * servers) it only exports the handler.
 *
 * @module
 */

import { option } from "../../examples/args.ts";

/** The chunks of `GET /stream`'s body, each of {@link STREAM_CHUNK_SIZE} bytes. */
export const STREAM_CHUNKS = 16;
/** 64 KiB. */
export const STREAM_CHUNK_SIZE = 64 * 1024;
/** One chunk, enqueued {@link STREAM_CHUNKS} times: the body comes from memory, as a cache's would. */
const chunk = new Uint8Array(STREAM_CHUNK_SIZE).fill(0x78);

/** The path of an absolute `http://host[:port]/path` URL, query included. */
function pathOf(url: string): string {
  const at = url.indexOf("/", url.indexOf("//") + 2);
  return at < 0 ? "/" : url.slice(at);
}

async function json(request: Request): Promise<Response> {
  const body = await request.json();
  return Response.json({ ok: true, n: Object.keys(body).length });
}

function stream(): Response {
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      controller.enqueue(chunk);
      if (++sent === STREAM_CHUNKS) controller.close();
    },
  });
  return new Response(body, { headers: { "content-type": "application/octet-stream" } });
}

/**
 * The benchmark's routes as a fetch handler.
 *
 * @param request The request.
 * @returns Its response (a promise for `POST /json`, which reads the body first).
 */
export function handler(request: Request): Response | Promise<Response> {
  const path = pathOf(request.url);
  if (path === "/hello" && request.method === "GET") return new Response("Hello, World!");
  if (path === "/json" && request.method === "POST") return json(request);
  if (path === "/stream" && request.method === "GET") return stream();
  return new Response("not found", { status: 404 });
}

if (import.meta.main) {
  const host = option("host", "127.0.0.1");
  Deno.serve({
    hostname: host,
    port: Number(option("port", "9001")),
    onListen: ({ port }) => console.log(`listening on http://${host}:${port}`),
  }, handler);
}
