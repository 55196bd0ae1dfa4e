/**
 * ws (with bufferutil's native masking) on Node as an echo server, for
 * comparison with bench/servers/sock.ts: every message comes back with its
 * type, on any path. In broadcast mode every message received goes to every
 * open connection, sender included, in a loop over `wss.clients`.
 *
 *   node [--expose-gc] bench/servers/ws_node.mjs --port 9001 [--host 127.0.0.1] [--mode echo|broadcast]
 *
 * ws and bufferutil come from tools/dev/node_modules; it refuses to start
 * without bufferutil. Prints `listening on ws://HOST:PORT` once ready; with
 * `node --expose-gc`, SIGUSR2 runs a full GC.
 *
 * @module
 */

import { createRequire } from "node:module";
import process from "node:process";

const require = createRequire(new URL("../../tools/dev/package.json", import.meta.url));
const { WebSocketServer } = require("ws");
// ws loads bufferutil by itself when it is installed; make its absence an error, not a slowdown.
require("bufferutil");
if (process.env.WS_NO_BUFFER_UTIL) throw new Error("WS_NO_BUFFER_UTIL is set: ws would skip bufferutil");

if (globalThis.gc) process.on("SIGUSR2", () => globalThis.gc());

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 && at + 1 < args.length ? args[at + 1] : fallback;
};

const broadcast = option("mode", "echo") === "broadcast";
const host = option("host", "127.0.0.1");
const wss = new WebSocketServer({
  host,
  port: Number(option("port", "9001")),
  // As bench/servers/sock.ts allows; ws's server default is already no compression.
  maxPayload: 64 * 1024 * 1024,
  perMessageDeflate: false,
});
wss.on("connection", (ws) => {
  ws.on("error", () => {});
  ws.on(
    "message",
    broadcast
      ? (data, isBinary) => {
        for (const peer of wss.clients) peer.send(data, { binary: isBinary });
      }
      : (data, isBinary) => ws.send(data, { binary: isBinary }),
  );
});
wss.on("listening", () => console.log(`listening on ws://${host}:${wss.address().port}`));
