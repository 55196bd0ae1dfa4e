/**
 * The chat example in a real browser: headless Chromium (Debian's package)
 * opens the page our server serves, in two tabs, and chats with itself and
 * with sock's client. Chromium is driven over the DevTools protocol with
 * sock's own `connect()`. Skipped (visibly) when `/usr/bin/chromium` is missing.
 *
 * Set `SOCK_BROWSER_SCREENSHOT=/tmp/chat.png` to save a screenshot of a tab.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import process from "node:process";
import { connect } from "../../src/client.ts";
import type { Connection } from "../../src/connection/connection.ts";
import { Sock } from "../../src/server/sock.ts";
import { chatApp } from "../../examples/chat/app.ts";
import { CHROMIUM, type Chromium, launchChromium, until } from "../_chromium.ts";

/** The test body must finish by then; cleanup has the rest of the 30 s. */
const BODY_BUDGET = 22_000;

/** The chat server of examples/chat/, on a free loopback port. */
async function chatServer() {
  const errors: unknown[] = [];
  const app = chatApp((error) => errors.push(error));
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  return { app, port, errors, close: () => app.close(2000) };
}

/** An echo server with permessage-deflate; `extensions` lists what each connection agreed to. */
async function deflateEcho() {
  const app = new Sock({ deflate: true, maxMessageSize: 4 << 20 });
  const extensions: string[] = [];
  app.route("/echo", async (ws) => {
    extensions.push(ws.extensions);
    for await (const message of ws) await ws.send(message);
  });
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  return { port, extensions, close: () => app.close(2000) };
}

/** Page script: sends 1 MB of JSON as text and as bytes, and a small message, to the echo server. */
const exchangeLargeMessages = (port: number) =>
  `(async () => {
    const ws = new WebSocket("ws://127.0.0.1:${port}/echo");
    ws.binaryType = "arraybuffer";
    await new Promise((resolve, reject) => (ws.onopen = resolve, ws.onerror = () => reject(new Error("no connection"))));
    let text = "";
    for (let i = 0; text.length < 1000000; i++) text += JSON.stringify({ i, user: "user" + (i % 50), ok: i % 3 === 0 }) + "\\n";
    const bytes = new TextEncoder().encode(text);
    const echoed = [];
    for (const message of [text, bytes, text.slice(0, 3000)]) {
      const back = await new Promise((resolve) => (ws.onmessage = (event) => resolve(event.data), ws.send(message)));
      echoed.push(typeof message === "string"
        ? back === message
        : back.byteLength === bytes.length && new Uint8Array(back).every((b, i) => b === bytes[i]));
    }
    ws.close();
    return { extensions: ws.extensions, echoed };
  })()`;

/** The next chat message (not a system line) a sock client receives, before `deadline`. */
async function nextChat(ws: Connection, deadline: number): Promise<{ name: string; text: string }> {
  while (true) {
    const message = await ws.receive({ timeout: Math.max(1, deadline - Date.now()) });
    if (typeof message !== "string") throw new Error(`unexpected message: ${String(message)}`);
    const parsed = JSON.parse(message);
    if (parsed.type === "message") return { name: parsed.name, text: parsed.text };
  }
}

const STATUS = `document.getElementById("status")?.textContent ?? null`;
const LOG = `Array.from(document.querySelectorAll("#log li"), (li) => li.textContent)`;
const say = (name: string, text: string) =>
  `(() => {
    document.getElementById("name").value = ${JSON.stringify(name)};
    document.getElementById("text").value = ${JSON.stringify(text)};
    document.getElementById("form").requestSubmit();
    return document.getElementById("text").value;
  })()`;

const title = "the chat page works in headless Chromium: two tabs and sock's client talk through the server";

if (!existsSync(CHROMIUM)) {
  test.skip(`${title} (chromium not installed)`, () => {});
} else {
  test(title, { timeout: 30_000 }, async () => {
    const deadline = Date.now() + BODY_BUDGET;
    const server = await chatServer();
    let chromium: Chromium | undefined;
    let client: Connection | undefined;
    try {
      chromium = await launchChromium({
        profilePrefix: "sock-chromium-",
        addressTimeout: 10_000,
        callTimeout: 5000,
      });
      const browser = chromium.cdp;
      const pageUrl = `http://127.0.0.1:${server.port}/`;
      const tabs = [await browser.open(pageUrl), await browser.open(pageUrl)];
      for (const [i, tab] of tabs.entries()) {
        await until(
          `tab ${i + 1} to connect`,
          () => browser.evaluate(tab, STATUS),
          (s) => s === "connected",
          deadline,
        );
      }
      const logHas = (tab: string, line: string, what: string) =>
        until(what, () => browser.evaluate(tab, LOG) as Promise<string[]>, (l) => l.includes(line), deadline);

      client = await connect(`ws://127.0.0.1:${server.port}/chat`, { closeTimeout: 1000 });

      // Tab 1 types and submits; tab 2, tab 1 itself and the sock client see it.
      assert.equal(await browser.evaluate(tabs[0], say("alice", "hello from tab 1")), "");
      await logHas(tabs[1], "alice: hello from tab 1", "tab 1's message in tab 2");
      await logHas(tabs[0], "alice: hello from tab 1", "tab 1's message in tab 1");
      assert.deepEqual(await nextChat(client, deadline), { name: "alice", text: "hello from tab 1" });

      // Tab 2 answers.
      await browser.evaluate(tabs[1], say("bob", "héllo ✓ from tab 2"));
      await logHas(tabs[0], "bob: héllo ✓ from tab 2", "tab 2's message in tab 1");
      assert.deepEqual(await nextChat(client, deadline), { name: "bob", text: "héllo ✓ from tab 2" });

      // sock's client speaks; both tabs show it.
      await client.send(JSON.stringify({ name: "sock", text: "hello from connect()" }));
      await logHas(tabs[0], "sock: hello from connect()", "the sock client's message in tab 1");
      await logHas(tabs[1], "sock: hello from connect()", "the sock client's message in tab 2");
      assert.deepEqual(await nextChat(client, deadline), { name: "sock", text: "hello from connect()" });

      const log = await browser.evaluate(tabs[1], LOG) as string[];
      assert.deepEqual(log.filter((line) => !line.includes(" online")), [
        "alice: hello from tab 1",
        "bob: héllo ✓ from tab 2",
        "sock: hello from connect()",
      ]);
      assert.ok(
        log.some((line) => line.endsWith("3 online")),
        `the sock client joined tab 2's room: ${JSON.stringify(log)}`,
      );

      // Chromium offers permessage-deflate: the chat server accepts it, and so does an echo server
      // that large compressible messages cross both ways.
      const tabConnections = [...server.app.connections].filter((ws) =>
        ws.request?.headers.get("user-agent")?.includes("Chrome")
      );
      assert.deepEqual(tabConnections.map((ws) => ws.extensions), [
        "permessage-deflate",
        "permessage-deflate",
      ]);
      const echo = await deflateEcho();
      try {
        assert.deepEqual(await browser.evaluate(tabs[0], exchangeLargeMessages(echo.port)), {
          extensions: "permessage-deflate",
          echoed: [true, true, true],
        });
        assert.equal(echo.extensions.join(), "permessage-deflate");
      } finally {
        await echo.close();
      }

      const screenshot = process.env.SOCK_BROWSER_SCREENSHOT;
      if (screenshot) {
        const { data } = await browser.call<{ data: string }>(
          "Page.captureScreenshot",
          { format: "png" },
          tabs[1],
        );
        const binary = atob(data);
        await writeFile(screenshot, Uint8Array.from(binary, (c) => c.charCodeAt(0)));
      }
      assert.deepEqual(server.errors, []);
    } finally {
      await client?.close().catch(() => {});
      await chromium?.close();
      await server.close();
    }
  });
}
