/**
 * The chat application: a `Sock` server that serves its page through `fetch`
 * and broadcasts every message through a topic.
 *
 * @module
 */

import { Sock } from "../../src/server/sock.ts";
import { page } from "./page.ts";

/**
 * Builds the chat server (not yet listening).
 *
 * @param onError Where handler errors go.
 * @returns The server.
 */
export function chatApp(onError: (error: unknown) => void): Sock {
  const app = new Sock({
    maxMessageSize: 64 * 1024,
    deflate: true,
    fetch: (request) =>
      new URL(request.url).pathname === "/"
        ? new Response(page, { headers: { "Content-Type": "text/html; charset=utf-8" } })
        : new Response("not found\n", { status: 404 }),
    onError,
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
  return app;
}
