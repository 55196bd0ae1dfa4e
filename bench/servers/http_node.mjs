/**
 * Node's built-in HTTP server (`node:http`) for bench/http.ts, with handlers
 * equivalent to the web-standard one the other servers run (http_deno.ts):
 *
 * - `GET /hello`: 200 `Hello, World!` (text/plain;charset=UTF-8)
 * - `POST /json`: reads the body as JSON (an object), answers 200
 *   `{"ok":true,"n":<its number of keys>}` (application/json)
 * - `GET /stream`: 200 with a 1 MiB body written as 16 chunks of 64 KiB
 *   (`res.write`, waiting for `drain` when asked to), no Content-Length, so
 *   Node frames it (chunked)
 * - anything else: 404
 *
 * Node's defaults otherwise (keep-alive timeout included).
 *
 *   node bench/servers/http_node.mjs --port 9001 [--host 127.0.0.1]
 *
 * Prints `listening on http://HOST:PORT` once ready.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { createServer } from "node:http";
import process from "node:process";

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 && at + 1 < args.length ? args[at + 1] : fallback;
};

const STREAM_CHUNKS = 16;
const chunk = Buffer.alloc(64 * 1024, 0x78);
const hello = Buffer.from("Hello, World!");

const server = createServer((req, res) => {
  if (req.url === "/hello" && req.method === "GET") {
    res.writeHead(200, { "content-type": "text/plain;charset=UTF-8", "content-length": hello.length });
    res.end(hello);
  } else if (req.url === "/json" && req.method === "POST") {
    const parts = [];
    req.on("data", (part) => parts.push(part));
    req.on("end", () => {
      const body = JSON.stringify({
        ok: true,
        n: Object.keys(JSON.parse(Buffer.concat(parts).toString())).length,
      });
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
      res.end(body);
    });
  } else if (req.url === "/stream" && req.method === "GET") {
    res.writeHead(200, { "content-type": "application/octet-stream" });
    let sent = 0;
    const pump = () => {
      while (sent < STREAM_CHUNKS) {
        sent++;
        if (!res.write(chunk) && sent < STREAM_CHUNKS) return void res.once("drain", pump);
      }
      res.end();
    };
    pump();
  } else {
    res.writeHead(404, { "content-type": "text/plain;charset=UTF-8" });
    res.end("not found");
  }
});
const host = option("host", "127.0.0.1");
server.listen(Number(option("port", "9001")), host, () => {
  console.log(`listening on http://${host}:${server.address().port}`);
});
