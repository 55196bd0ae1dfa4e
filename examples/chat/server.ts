/**
 * A chat server: serves its own page through `fetch`, and
 * broadcasts every message to everyone through a topic. Same code on both
 * runtimes:
 *
 *   deno run --allow-net examples/chat/server.ts [--port 8000] [--host 127.0.0.1]
 *   bun examples/chat/server.ts [--port 8000] [--host 127.0.0.1]
 *
 * Then open http://127.0.0.1:8000/ in two browser windows.
 *
 * @module
 */

import { option } from "../args.ts";
import { chatApp } from "./app.ts";

const app = chatApp((error) => console.error("handler failed:", error));
const host = option("host", "127.0.0.1");
const { port } = await app.listen({ hostname: host, port: Number(option("port", "8000")) });
console.log(`chat on http://${host}:${port}/ (WebSocket at ws://${host}:${port}/chat)`);
