/**
 * A chat server: serves its own page over the plain-HTTP fallback, and
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

import { Sock } from "../../src/server.ts";
import { page } from "./page.ts";

const args: string[] = "Deno" in globalThis
  ? Deno.args
  : (globalThis as unknown as { process: { argv: string[] } }).process.argv.slice(2);
const option = (name: string, fallback: string) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 && at + 1 < args.length ? args[at + 1] : fallback;
};

const app = new Sock({
  maxMessageSize: 64 * 1024,
  fallback: (request) =>
    request.path === "/"
      ? { headers: { "Content-Type": "text/html; charset=utf-8" }, body: page }
      : { status: 404, body: "not found\n" },
  onError: (error) => console.error("handler failed:", error),
});

const system = (text: string) => JSON.stringify({ type: "system", text, online: app.connections.size });

app.route("/chat", async (ws) => {
  ws.subscribe("chat");
  app.publish("chat", system("someone joined"));
  try {
    for await (const message of ws) {
      if (typeof message !== "string") continue;
      let parsed: { name?: unknown; text?: unknown };
      try {
        parsed = JSON.parse(message);
      } catch {
        continue;
      }
      const name = String(parsed.name ?? "anonymous").slice(0, 32);
      const text = String(parsed.text ?? "").slice(0, 2000);
      if (text) app.publish("chat", JSON.stringify({ type: "message", name, text }));
    }
  } finally {
    ws.unsubscribe("chat");
    app.publish("chat", system("someone left"));
  }
});

const host = option("host", "127.0.0.1");
const { port } = await app.listen({ hostname: host, port: Number(option("port", "8000")) });
console.log(`chat on http://${host}:${port}/ (WebSocket at ws://${host}:${port}/chat)`);
