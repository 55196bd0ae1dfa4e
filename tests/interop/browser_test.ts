/**
 * The chat example (examples/chat/) in a real browser: headless Chromium (Debian's package), driven
 * over the DevTools protocol with sock's own `connect()`, opens the page the server serves and
 * joins in several tabs:
 *
 * - two tabs chat: names, your own messages set apart, HH:MM timestamps, the presence list; sock's
 *   client joins too (its name cleaned by the server); Chromium's permessage-deflate is accepted,
 *   and 1 MB messages cross a deflate echo server both ways;
 * - the server restarts on the same port: the tabs see 1001, show "reconnecting", disable Send and
 *   keep what was typed, then reconnect and chat on;
 * - SIGTERM to the demo server process (examples/chat/server.ts on the runtime under test) closes
 *   every client with 1001 and the process exits with 0;
 * - a screenshot (`<tmpdir>/sock-chat-demo.png`, or `SOCK_BROWSER_SCREENSHOT`) is a PNG, taken
 *   while the DOM shows what a person looks for: both messages, who is here, your name, the input,
 *   Send and the connection's state. Its path is printed.
 *
 * Skipped (visibly) when `/usr/bin/chromium` is missing. Everything started is ended by PID.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { connect } from "../../src/client.ts";
import type { Connection } from "../../src/connection/connection.ts";
import type { CloseResult } from "../../src/core/protocol.ts";
import { Sock } from "../../src/server/sock.ts";
import { chatApp, MAX_NAME } from "../../examples/chat/app.ts";
import {
  type Cdp,
  CHROMIUM,
  type Chromium,
  launchChromium,
  pngSize,
  screenshot,
  setViewport,
  spawn,
  until,
} from "../_chromium.ts";

/** Each test's body must finish by then (from its start); cleanup has the rest of its timeout. */
const BODY_BUDGET = 40_000;
const TEST_TIMEOUT = 55_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The chat server of examples/chat/ on `port` (a free one by default), retrying while it is taken. */
async function chatServer(port = 0, deadline = Date.now() + 10_000) {
  const errors: unknown[] = [];
  const app = chatApp({ onError: (error) => errors.push(error) });
  while (true) {
    try {
      const address = await app.listen({ hostname: "127.0.0.1", port });
      return { app, port: address.port, errors, close: () => app.close(2000) };
    } catch (error) {
      // The port of a server that just closed can be busy for a moment.
      if (Date.now() > deadline) throw error;
      await sleep(100);
    }
  }
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

// ---- The page, as a test reads and drives it ----

/** A line of the message list. */
type Line =
  | { kind: "system"; time: string; text: string }
  | { kind: "message"; mine: boolean; name: string; time: string; text: string };

/** What a tab shows. */
interface View {
  state: string | null;
  status: string | null;
  closeCode: string | null;
  me: string;
  sendDisabled: boolean | null;
  draft: string | null;
  people: { name: string; you: boolean }[];
  lines: Line[];
}

const VIEW = `(() => {
  const q = (selector) => document.querySelector(selector);
  const status = q("#status");
  return {
    state: status?.dataset.state ?? null,
    status: status?.textContent ?? null,
    closeCode: status?.dataset.closeCode ?? null,
    me: q("#me")?.textContent ?? "",
    sendDisabled: q("#send")?.disabled ?? null,
    draft: q("#text")?.value ?? null,
    people: Array.from(document.querySelectorAll("#people li"), (li) => ({
      name: li.firstChild.textContent,
      you: li.querySelector(".you") !== null,
    })),
    lines: Array.from(document.querySelectorAll("#messages li"), (li) => li.classList.contains("system")
      ? { kind: "system", time: li.querySelector("time").textContent, text: li.lastChild.textContent }
      : {
        kind: "message",
        mine: li.classList.contains("mine"),
        name: li.querySelector(".who").textContent,
        time: li.querySelector("time").textContent,
        text: li.querySelector(".text").textContent,
      }),
  };
})()`;

const view = (browser: Cdp, tab: string) => browser.evaluate(tab, VIEW) as Promise<View>;

/** Waits until `tab`'s view passes `ok`; returns that view. */
const waitView = (browser: Cdp, tab: string, what: string, ok: (v: View) => boolean, deadline: number) =>
  until(what, () => view(browser, tab), ok, deadline);

/** The chat messages (not system lines) in a view, without their times. */
const chats = (v: View) =>
  v.lines.flatMap((line) =>
    line.kind === "message" ? [{ name: line.name, text: line.text, mine: line.mine }] : []
  );
const systemLines = (v: View) => v.lines.flatMap((line) => line.kind === "system" ? [line.text] : []);
const names = (v: View) => v.people.map((p) => p.name);

/** Opens the page in a new tab, checks the name it suggests, joins as `name`, waits to be connected. */
async function joinAs(browser: Cdp, url: string, name: string, deadline: number): Promise<string> {
  const tab = await browser.open(url);
  await until(
    `the page at ${url} to load`,
    () => browser.evaluate(tab, `document.readyState === "complete" && !!document.getElementById("join")`),
    (loaded) => loaded === true,
    deadline,
  );
  const suggested = await browser.evaluate(
    tab,
    `(() => {
      const input = document.getElementById("name");
      const suggested = input.value;
      input.value = ${JSON.stringify(name)};
      document.getElementById("join").requestSubmit();
      return suggested;
    })()`,
  );
  assert.match(String(suggested), /^guest-\d{4}$/, "the page suggests a guest name");
  await waitView(browser, tab, `${name} to join`, (v) => v.state === "connected" && v.me === name, deadline);
  return tab;
}

/** Types `text` into a tab's message box and submits it; returns what is left in the box. */
const say = (browser: Cdp, tab: string, text: string) =>
  browser.evaluate(
    tab,
    `(() => {
      const box = document.getElementById("text");
      box.value = ${JSON.stringify(text)};
      document.getElementById("compose").requestSubmit();
      return box.value;
    })()`,
  ) as Promise<string>;

/** Every message a sock client receives, parsed, until it closes; `closed` is how it closed. */
function follow(ws: Connection) {
  const messages: Record<string, unknown>[] = [];
  const closed: Promise<CloseResult> = (async () => {
    try {
      for await (const message of ws) if (typeof message === "string") messages.push(JSON.parse(message));
    } catch {
      // An abnormal ending: `closed` says how.
    }
    return await ws.closed;
  })();
  return { messages, closed };
}

/** Resolves with `promise`'s value, or rejects when it takes longer than `ms`. */
async function within<T>(what: string, promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) =>
        timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), Math.max(1, ms))
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

const HH_MM = /^\d\d:\d\d$/;

/** Chromium for one test; its `close()` ends it by PID. */
const chromium = () =>
  launchChromium({ profilePrefix: "sock-chromium-", addressTimeout: 15_000, callTimeout: 10_000 });

/** Two tabs, ada and bob, who have said hello to each other. */
async function twoTabsChatting(browser: Cdp, port: number, deadline: number) {
  const url = `http://127.0.0.1:${port}/`;
  const ada = await joinAs(browser, url, "ada", deadline);
  const bob = await joinAs(browser, url, "bob", deadline);
  assert.equal(await say(browser, ada, "hello from ada"), "", "the box empties once the message is sent");
  await waitView(browser, bob, "ada's message in bob's tab", (v) => chats(v).length === 1, deadline);
  assert.equal(await say(browser, bob, "héllo ✓ from bob"), "");
  const both = (v: View) => chats(v).length === 2 && v.people.length === 2;
  return {
    ada,
    bob,
    adaView: await waitView(browser, ada, "both messages in ada's tab", both, deadline),
    bobView: await waitView(browser, bob, "both messages in bob's tab", both, deadline),
  };
}

const tests: [string, () => Promise<void>][] = [];

// ---- Two tabs and sock's client chat ----

tests.push([
  "chat in headless Chromium: two tabs talk (names, own messages apart, times, who is here), sock's client joins",
  async () => {
    const deadline = Date.now() + BODY_BUDGET;
    const server = await chatServer();
    let browser: Chromium | undefined;
    let client: Connection | undefined;
    try {
      browser = await chromium();
      const { cdp } = browser;
      const { ada, bob, adaView, bobView } = await twoTabsChatting(cdp, server.port, deadline);

      assert.deepEqual(chats(adaView), [
        { name: "ada", text: "hello from ada", mine: true },
        { name: "bob", text: "héllo ✓ from bob", mine: false },
      ]);
      assert.deepEqual(chats(bobView), [
        { name: "ada", text: "hello from ada", mine: false },
        { name: "bob", text: "héllo ✓ from bob", mine: true },
      ]);
      for (const v of [adaView, bobView]) {
        for (const line of v.lines) assert.match(line.time, HH_MM, `every line has a time: ${line.text}`);
      }
      assert.deepEqual(systemLines(adaView), ["you joined as ada", "bob joined"]);
      assert.deepEqual(systemLines(bobView), ["you joined as bob"]);
      assert.deepEqual(adaView.people, [{ name: "ada", you: true }, { name: "bob", you: false }]);
      assert.deepEqual(bobView.people, [{ name: "ada", you: false }, { name: "bob", you: true }]);
      assert.deepEqual([adaView.status, adaView.sendDisabled], ["connected", false]);

      // sock's client joins with a name the server must clean: spaces and a control character
      // dropped, cut to 32 characters.
      const long = "zoë".repeat(20);
      client = await connect(
        `ws://127.0.0.1:${server.port}/chat?name=${encodeURIComponent(`  \u0007${long}  `)}`,
        { closeTimeout: 1000 },
      );
      const cleaned = Array.from(long).slice(0, MAX_NAME).join("");
      const welcome = JSON.parse(String(await client.receive({ timeout: 10_000 })));
      assert.equal(welcome.type, "welcome");
      assert.equal(welcome.you.name, cleaned);
      assert.deepEqual(welcome.users.map((u: { name: string }) => u.name), ["ada", "bob", cleaned]);
      assert.equal(typeof welcome.time, "number");
      for (const tab of [ada, bob]) {
        await waitView(
          cdp,
          tab,
          "the client in the presence list",
          (v) => names(v).includes(cleaned) && systemLines(v).includes(`${cleaned} joined`),
          deadline,
        );
      }
      const followed = follow(client);
      await client.send(JSON.stringify({ text: "hello from connect()" }));
      await client.send("plain text works too");
      for (const tab of [ada, bob]) {
        await waitView(cdp, tab, "the client's messages", (v) => chats(v).length === 4, deadline);
      }
      assert.deepEqual(chats(await view(cdp, ada)).slice(2), [
        { name: cleaned, text: "hello from connect()", mine: false },
        { name: cleaned, text: "plain text works too", mine: false },
      ]);
      await until(
        "the client's own messages",
        () => Promise.resolve(followed.messages.length),
        (n) => n >= 2,
        deadline,
      );
      const [first] = followed.messages;
      assert.deepEqual({ ...first, time: typeof first.time }, {
        type: "message",
        id: welcome.you.id,
        name: cleaned,
        text: "hello from connect()",
        time: "number",
      });

      // The client leaves; both tabs say so and drop it from the list.
      await client.close();
      for (const tab of [ada, bob]) {
        await waitView(
          cdp,
          tab,
          "the client to leave",
          (v) => systemLines(v).includes(`${cleaned} left`) && v.people.length === 2,
          deadline,
        );
      }

      // Chromium offers permessage-deflate: the chat server accepts it, and so does an echo server
      // that large compressible messages cross both ways (from a blank tab: the chat page's
      // Content-Security-Policy lets it connect only to its own server).
      const tabConnections = [...server.app.connections].filter((ws) =>
        ws.request?.headers.get("user-agent")?.includes("Chrome")
      );
      assert.deepEqual(tabConnections.map((ws) => ws.extensions), [
        "permessage-deflate",
        "permessage-deflate",
      ]);
      const echo = await deflateEcho();
      try {
        const blank = await cdp.open("about:blank");
        assert.deepEqual(await cdp.evaluate(blank, exchangeLargeMessages(echo.port)), {
          extensions: "permessage-deflate",
          echoed: [true, true, true],
        });
        assert.equal(echo.extensions.join(), "permessage-deflate");
      } finally {
        await echo.close();
      }
      assert.deepEqual(server.errors, []);
    } finally {
      await client?.close().catch(() => {});
      await browser?.close();
      await server.close();
    }
  },
]);

// ---- The server restarts on the same port ----

tests.push([
  "chat in headless Chromium: the server restarts on its port; tabs see 1001, keep the draft, reconnect",
  async () => {
    const deadline = Date.now() + BODY_BUDGET;
    let server = await chatServer();
    const { port } = server;
    let browser: Chromium | undefined;
    try {
      browser = await chromium();
      const { cdp } = browser;
      const { ada, bob } = await twoTabsChatting(cdp, port, deadline);

      // The server goes away: each tab shows why, and that it is reconnecting, with Send disabled.
      await server.close();
      for (const tab of [ada, bob]) {
        const v = await waitView(
          cdp,
          tab,
          "the tab to notice the server went away",
          (v) => v.closeCode === "1001" && v.state !== "connected",
          deadline,
        );
        assert.ok(v.state === "reconnecting" || v.state === "connecting", `state: ${v.state}`);
        assert.equal(v.sendDisabled, true, "Send is disabled while disconnected");
        assert.ok(
          systemLines(v).includes("disconnected: server shutting down, code 1001"),
          JSON.stringify(systemLines(v)),
        );
      }
      const reconnecting = await waitView(
        cdp,
        ada,
        "the reconnecting countdown",
        (v) => v.state === "reconnecting",
        deadline,
      );
      assert.match(reconnecting.status ?? "", /^reconnecting in \d+ s…$/);

      // What ada types meanwhile stays in the box: submitting does nothing while Send is disabled.
      const draft = "typed while the server was away";
      assert.equal(await say(cdp, ada, draft), draft);
      assert.equal((await view(cdp, ada)).sendDisabled, true);

      // A new server on the same port: both tabs come back by themselves and chat on.
      server = await chatServer(port, deadline);
      for (const tab of [ada, bob]) {
        await waitView(
          cdp,
          tab,
          "the tab to reconnect",
          (v) => v.state === "connected" && !v.sendDisabled && v.people.length === 2,
          deadline,
        );
      }
      const adaBack = await view(cdp, ada);
      assert.equal(adaBack.draft, draft, "the draft survived the reconnect");
      assert.ok(systemLines(adaBack).some((line) => line === "reconnected as ada"));
      assert.deepEqual(adaBack.people.map((p) => [p.name, p.you]), [["ada", true], ["bob", false]]);

      await cdp.evaluate(ada, `document.getElementById("compose").requestSubmit()`);
      const bobSees = await waitView(
        cdp,
        bob,
        "ada's draft in bob's tab",
        (v) => chats(v).length === 3,
        deadline,
      );
      assert.deepEqual(chats(bobSees), [
        { name: "ada", text: "hello from ada", mine: false },
        { name: "bob", text: "héllo ✓ from bob", mine: true },
        { name: "ada", text: draft, mine: false },
      ]);
      assert.equal(await say(cdp, bob, "welcome back"), "");
      const adaSees = await waitView(cdp, ada, "bob's answer", (v) => chats(v).length === 4, deadline);
      assert.deepEqual(chats(adaSees).slice(2), [
        { name: "ada", text: draft, mine: true },
        { name: "bob", text: "welcome back", mine: false },
      ]);
      assert.equal(adaSees.draft, "");
      assert.deepEqual(server.errors, []);
    } finally {
      await browser?.close();
      await server.close();
    }
  },
]);

// ---- SIGTERM to the demo server process ----

const runtime = "Deno" in globalThis ? "deno" : "bun";

tests.push([
  `chat demo server (examples/chat/server.ts on ${runtime}): SIGTERM closes clients with 1001, exits 0`,
  async () => {
    const deadline = Date.now() + BODY_BUDGET;
    const script = fileURLToPath(new URL("../../examples/chat/server.ts", import.meta.url));
    const child = "Deno" in globalThis
      ? spawn(Deno.execPath(), ["run", "--allow-net", script, "--port", "0"])
      : spawn(process.execPath, [script, "--port", "0"]);
    const output = { stdout: "", stderr: "" };
    const drained = Promise.all((["stdout", "stderr"] as const).map(async (name) => {
      const decoder = new TextDecoder();
      for await (const chunk of child[name]!) output[name] += decoder.decode(chunk, { stream: true });
    })).catch(() => {});
    let exitCode: number | undefined;
    child.exited.then((code) => exitCode = code, () => {});
    let browser: Chromium | undefined;
    let client: Connection | undefined;
    try {
      const [, port] = await until(
        "the demo server to print its address",
        () => {
          if (exitCode !== undefined) throw new Error(`the server exited with ${exitCode}: ${output.stderr}`);
          return Promise.resolve(/chat on http:\/\/127\.0\.0\.1:(\d+)\//.exec(output.stdout));
        },
        (match) => match !== null,
        deadline,
      ) as RegExpExecArray;

      browser = await chromium();
      const { cdp } = browser;
      const tab = await joinAs(cdp, `http://127.0.0.1:${port}/`, "ada", deadline);
      client = await connect(`ws://127.0.0.1:${port}/chat?name=sock`, { closeTimeout: 1000 });
      const followed = follow(client);
      await waitView(cdp, tab, "both in the room", (v) => v.people.length === 2, deadline);

      child.kill("SIGTERM");
      const closed = await within("the client to be closed", followed.closed, deadline - Date.now());
      assert.equal(closed.code, 1001);
      await waitView(cdp, tab, "the tab to see 1001", (v) => v.closeCode === "1001", deadline);
      const code = await within("the server to exit", child.exited, deadline - Date.now());
      await within("its output", drained, 5000);
      assert.equal(code, 0, `exit code; stderr: ${output.stderr}`);
      assert.match(output.stdout, /SIGTERM: closing 2 connection\(s\) with 1001/);
      assert.doesNotMatch(output.stderr, /error|failed/i);
      assert.equal((await view(cdp, tab)).sendDisabled, true);
    } finally {
      child.kill("SIGKILL");
      await client?.close().catch(() => {});
      await browser?.close();
    }
  },
]);

// ---- A screenshot, checked ----

/** Where each element a person looks for is, and whether it is on screen, at the screenshot. */
const ON_SCREEN = `(() => {
  const onScreen = (node) => {
    if (!node || !node.checkVisibility({ opacityProperty: true, visibilityProperty: true })) return false;
    const r = node.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight && r.right <= innerWidth;
  };
  const q = (selector) => document.querySelector(selector);
  const log = q("#log").getBoundingClientRect();
  return {
    viewport: [innerWidth * devicePixelRatio, innerHeight * devicePixelRatio],
    messages: Array.from(document.querySelectorAll("#messages li.msg"), (li) => {
      const r = li.getBoundingClientRect();
      return {
        text: li.querySelector(".text").textContent,
        time: li.querySelector("time").textContent,
        mine: li.classList.contains("mine"),
        visible: onScreen(li) && r.top >= log.top && r.bottom <= log.bottom,
        side: r.left - log.left < log.right - r.right ? "left" : "right",
      };
    }),
    log: onScreen(q("#log")),
    people: onScreen(q("#people")) && Array.from(q("#people").children).every(onScreen),
    peopleText: q("#people").innerText,
    me: onScreen(q("#me")) && q("#me").textContent,
    input: onScreen(q("#text")),
    send: onScreen(q("#send")) && q("#send").textContent,
    status: onScreen(q("#status")) && q("#status").textContent,
  };
})()`;

tests.push([
  "chat in headless Chromium: a screenshot of two people chatting shows what a person looks for",
  async () => {
    const deadline = Date.now() + BODY_BUDGET;
    const server = await chatServer();
    const path = process.env.SOCK_BROWSER_SCREENSHOT || join(tmpdir(), "sock-chat-demo.png");
    let browser: Chromium | undefined;
    try {
      browser = await chromium();
      const { cdp } = browser;
      const { ada } = await twoTabsChatting(cdp, server.port, deadline);
      await setViewport(cdp, ada, 1000, 700);
      await cdp.call("Page.bringToFront", {}, ada);
      const bytes = await screenshot(cdp, ada, path);
      const seen = await cdp.evaluate(ada, ON_SCREEN) as {
        viewport: [number, number];
        messages: { text: string; time: string; mine: boolean; visible: boolean; side: string }[];
        [element: string]: unknown;
      };
      console.log(`screenshot: ${path} (${bytes.length} bytes)`);

      const size = pngSize(bytes);
      assert.ok(size.width > 0 && size.height > 0, `PNG size ${size.width}×${size.height}`);
      assert.deepEqual([size.width, size.height], seen.viewport, "the PNG is the viewport");
      assert.deepEqual(seen.messages.map(({ time, ...rest }) => ({ ...rest, time: HH_MM.test(time) })), [
        { text: "hello from ada", mine: true, visible: true, side: "right", time: true },
        { text: "héllo ✓ from bob", mine: false, visible: true, side: "left", time: true },
      ]);
      const { log, people, peopleText, me, input, send, status } = seen;
      assert.deepEqual({ log, people, peopleText, me, input, send, status }, {
        log: true,
        people: true,
        peopleText: "ada (you)\nbob",
        me: "ada",
        input: true,
        send: "Send",
        status: "connected",
      });
      assert.deepEqual(server.errors, []);
    } finally {
      await browser?.close();
      await server.close();
    }
  },
]);

for (const [title, body] of tests) {
  if (existsSync(CHROMIUM)) test(title, { timeout: TEST_TIMEOUT }, body);
  else test.skip(`${title} (chromium not installed)`, () => {});
}
