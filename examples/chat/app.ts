/**
 * The chat application: a `Sock` server that serves its page through `fetch` and runs one room on
 * the WebSocket route `/chat?name=NAME`. The `upgrade` hook gives each connection an id and a clean
 * name (`ws.data`); every message goes to everyone through the topic `chat`, stamped with the
 * sender's id and name and the server's time.
 *
 * What the server sends, as JSON text messages:
 *
 * - `{ type: "welcome", you: { id, name }, users, time }` to a connection that has just joined;
 * - `{ type: "join" | "leave", user: { id, name }, users, time }` to the others;
 * - `{ type: "message", id, name, text, time }` to everyone, the sender included.
 *
 * `users` is everyone in the room, `[{ id, name }]` sorted by name; `time` is the server's
 * `Date.now()`. A client sends `{ "text": "..." }`, or plain text that is not such JSON.
 *
 * @module
 */

import { Sock } from "../../src/server/sock.ts";
import { page } from "./page.ts";

/** The longest name, in characters (code points); longer ones are cut. */
export const MAX_NAME = 32;
/** The longest message, in characters (code points); longer ones are cut. */
export const MAX_TEXT = 2000;

/** Someone in the room: the connection's `ws.data`. */
export interface Member {
  /** The connection's number, unique for this server's lifetime. */
  id: number;
  /** The cleaned name (not unique: two people may both be "ada"). */
  name: string;
}

/** What a chat server reports: handler errors, and (optionally) joins and leaves. */
export interface ChatOptions {
  /** Where handler errors go. */
  onError?: (error: unknown) => void;
  /** A line for each join and leave, e.g. for the console. */
  log?: (line: string) => void;
}

// Control characters, and the invisible ones that reorder or hide text (bidi overrides, zero-width
// spaces, line and paragraph separators, the byte-order mark). The zero-width joiner stays: emoji use it.
const INVISIBLE = /[\p{Cc}\u200B\u200E\u200F\u2028-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]/gu;
// The same, but newlines and tabs may stay in a message.
const INVISIBLE_IN_TEXT = /[^\P{Cc}\n\t]|[\u200B\u200E\u200F\u2028-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]/gu;

/** Cuts `text` to at most `max` code points (never inside a surrogate pair). */
function cut(text: string, max: number): string {
  return text.length <= max ? text : Array.from(text).slice(0, max).join("");
}

/**
 * A name fit to show: invisible characters removed, runs of white space made one space, trimmed,
 * at most {@linkcode MAX_NAME} characters; `guest-NNNN` when nothing is left.
 *
 * @param raw The name asked for (`null` when none was).
 * @returns The name to use.
 */
export function cleanName(raw: string | null | undefined): string {
  const name = cut((raw ?? "").replace(INVISIBLE, "").replace(/\s+/g, " ").trim(), MAX_NAME).trim();
  return name || `guest-${String(Math.floor(Math.random() * 10000)).padStart(4, "0")}`;
}

/** The text of a message a client sent: `{ "text": ... }` JSON, or the message itself. */
function textOf(message: string): string {
  let text = message;
  if (message.startsWith("{")) {
    try {
      const parsed = JSON.parse(message);
      if (parsed && typeof parsed.text === "string") text = parsed.text;
    } catch {
      // Not JSON: the message is the text.
    }
  }
  return cut(text.replace(INVISIBLE_IN_TEXT, ""), MAX_TEXT).trim();
}

/**
 * Builds the chat server (not yet listening).
 *
 * @param options Where handler errors and log lines go.
 * @returns The server.
 */
export function chatApp(options: ChatOptions = {}): Sock<Member> {
  const { onError, log } = options;
  const members = new Map<number, Member>();
  let lastId = 0;
  const users = () => [...members.values()].sort((a, b) => a.name.localeCompare(b.name) || a.id - b.id);

  const app = new Sock<Member>({
    maxMessageSize: 64 * 1024,
    deflate: true,
    fetch: (request) => {
      const { pathname } = new URL(request.url);
      if (pathname === "/chat") {
        return new Response("/chat is the chat's WebSocket: connect to ws://HOST/chat?name=NAME\n", {
          status: 426,
          headers: { Upgrade: "websocket" },
        });
      }
      if (pathname !== "/") return new Response("not found\n", { status: 404 });
      return new Response(page, {
        headers: {
          "Content-Type": "text/html; charset=utf-8",
          // The page loads nothing from elsewhere; its one script and style are inline.
          "Content-Security-Policy":
            "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'",
          "Cache-Control": "no-store",
        },
      });
    },
    // Every request to /chat is accepted; its connection gets an id and the name it asked for.
    upgrade: (request) => ({
      data: {
        id: ++lastId,
        name: cleanName(new URLSearchParams(request.query).get("name")),
      } satisfies Member,
    }),
    onError,
  });

  app.route("/chat", async (ws) => {
    const me = ws.data;
    members.set(me.id, me);
    log?.(`${me.name} joined (${members.size} online)`);
    try {
      // The welcome goes first, so the page knows its id before any message arrives; the join
      // reaches the others before this connection subscribes, so it gets no copy.
      ws.send(JSON.stringify({ type: "welcome", you: me, users: users(), time: Date.now() }));
      app.publish("chat", JSON.stringify({ type: "join", user: me, users: users(), time: Date.now() }));
      ws.subscribe("chat");
      await ws.forEach((message) => {
        if (typeof message !== "string") return;
        const text = textOf(message);
        if (!text) return;
        app.publish(
          "chat",
          JSON.stringify({ type: "message", id: me.id, name: me.name, text, time: Date.now() }),
        );
      });
    } finally {
      members.delete(me.id);
      ws.unsubscribe("chat");
      app.publish("chat", JSON.stringify({ type: "leave", user: me, users: users(), time: Date.now() }));
      log?.(`${me.name} left (${members.size} online)`);
    }
  });
  return app;
}
