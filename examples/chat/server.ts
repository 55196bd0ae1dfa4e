/**
 * A chat server: serves its own page through `fetch`, and broadcasts every message to everyone
 * through a topic. Same code on both runtimes:
 *
 *   deno run --allow-net examples/chat/server.ts [--port 8000] [--host 127.0.0.1]
 *   bun examples/chat/server.ts [--port 8000] [--host 127.0.0.1]
 *
 * Then open http://127.0.0.1:8000/ in two browser windows. `--port 0` takes a free port (the
 * address is printed). SIGINT (Ctrl+C) or SIGTERM closes every connection with 1001 ("going away"),
 * so the pages show it and start reconnecting, and exits with 0; a second signal exits at once.
 *
 * @module
 */

import process from "node:process";
import { option } from "../args.ts";
import { chatApp } from "./app.ts";

const app = chatApp({
  onError: (error) => console.error("handler failed:", error),
  log: (line) => console.log(line),
});
const host = option("host", "127.0.0.1");
const { port } = await app.listen({ hostname: host, port: Number(option("port", "8000")) });
console.log(`chat on http://${host}:${port}/ (WebSocket at ws://${host}:${port}/chat)`);

let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) {
    console.log(`${signal} again: exiting now`);
    process.exit(1);
  }
  stopping = true;
  console.log(`${signal}: closing ${app.connections.size} connection(s) with 1001…`);
  await app.close(2000);
  console.log("bye");
  process.exit(0);
}
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  try {
    if ("Deno" in globalThis) Deno.addSignalListener(signal, () => stop(signal));
    else process.on(signal, () => stop(signal));
  } catch {
    // Windows has no SIGTERM listeners on Deno: Ctrl+C (SIGINT) still stops the server cleanly.
  }
}
