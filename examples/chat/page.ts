/**
 * The chat's single page, served through `fetch`: one self-contained HTML document (inline style and
 * script, nothing loaded from elsewhere).
 *
 * @module
 */

/**
 * The HTML page. It asks for a name (prefilled `guest-NNNN`), joins `/chat?name=...`, shows the
 * messages with their time (your own on the right), who is in the room, and the connection's state;
 * when the connection drops it reconnects with exponential backoff (with jitter, capped), keeping
 * what you were typing, with Send disabled until it is back.
 *
 * Its elements, by id: `join` (the name form: `name`, `join-button`), `chat` (shown once joined),
 * `me` (your name), `status` (`data-state`: `connecting`, `connected`, `reconnecting` or
 * `disconnected`; `data-close-code`: the last close code), `retry`, `log` (holding the `messages`
 * list: `li.msg`, `li.msg.mine`, `li.system`), `room` (the presence list `people` and its `count`;
 * class `stale` while disconnected), `compose` (`text`, `send`).
 */
export const page = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>sock chat</title>
<style>
  :root {
    --bg: #f4f5f8; --card: #fff; --fg: #1c2230; --muted: #586171; --line: #dde1e8;
    --accent: #2452c9; --mine: #2452c9; --mine-fg: #fff; --other: #eceff4;
    --ok: #1f8a4c; --warn: #b86e00; --bad: #c33030;
  }
  @media (prefers-color-scheme: dark) {
    :root {
      --bg: #14171d; --card: #1d2129; --fg: #e6e9ef; --muted: #a3abb9; --line: #323846;
      --accent: #7aa2ff; --mine: #3a63d8; --mine-fg: #fff; --other: #2a303b;
      --ok: #4cc27f; --warn: #f0a83a; --bad: #ff7070;
    }
  }
  * { box-sizing: border-box; }
  body { margin: 0; font: 16px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; background: var(--bg); color: var(--fg); }
  .app { max-width: 60rem; margin: 0 auto; padding: 1rem; height: 100vh; height: 100dvh; min-height: 26rem; display: flex; flex-direction: column; gap: .75rem; }
  header { display: flex; flex-wrap: wrap; align-items: center; justify-content: space-between; gap: .5rem 1rem; }
  h1 { font-size: 1.4rem; margin: 0; }
  h2 { font-size: 1rem; margin: 0 0 .5rem; }
  .state { display: flex; align-items: center; gap: .5rem; }
  #status { margin: 0; padding: .2rem .7rem; border-radius: 999px; background: var(--card); border: 1px solid var(--line); font-size: .9rem; }
  #status::before { content: ""; display: inline-block; width: .6rem; height: .6rem; border-radius: 50%; margin-right: .4rem; background: var(--muted); }
  #status[data-state="connected"]::before { background: var(--ok); }
  #status[data-state="reconnecting"]::before { background: var(--warn); }
  #status[data-state="disconnected"]::before { background: var(--bad); }
  .card { background: var(--card); border: 1px solid var(--line); border-radius: .75rem; padding: 1rem; }
  #join { max-width: 26rem; display: grid; gap: .5rem; }
  #join p { margin: 0; color: var(--muted); font-size: .9rem; }
  #join .row { display: flex; gap: .5rem; }
  #join input { flex: 1; }
  #chat { flex: 1; min-height: 0; display: grid; grid-template-columns: minmax(0, 1fr) 14rem; grid-template-rows: auto minmax(0, 1fr) auto; gap: .75rem; }
  #chat[hidden], #join[hidden] { display: none; }
  .whoami { grid-column: 1 / -1; margin: 0; color: var(--muted); }
  .whoami strong { color: var(--fg); }
  #log { grid-column: 1; grid-row: 2; min-height: 8rem; overflow-y: auto; padding: 0; }
  #messages { list-style: none; margin: 0; padding: .75rem; display: flex; flex-direction: column; gap: .45rem; }
  .msg { align-self: flex-start; max-width: 80%; padding: .35rem .75rem .45rem; border-radius: 1rem 1rem 1rem .3rem; background: var(--other); }
  .msg.mine { align-self: flex-end; border-radius: 1rem 1rem .3rem 1rem; background: var(--mine); color: var(--mine-fg); }
  .meta { display: flex; gap: .6rem; justify-content: space-between; font-size: .8rem; }
  .who { font-weight: 600; }
  .meta time { opacity: .85; }
  .text { margin: 0; white-space: pre-wrap; overflow-wrap: anywhere; }
  .system { align-self: center; color: var(--muted); font-size: .85rem; text-align: center; }
  .system time { margin-right: .4rem; }
  aside { grid-column: 2; grid-row: 2 / span 2; align-self: start; }
  #people { list-style: none; margin: 0; padding: 0; display: grid; gap: .3rem; }
  #people li::before { content: ""; display: inline-block; width: .5rem; height: .5rem; border-radius: 50%; background: var(--ok); margin-right: .5rem; }
  #people .you { color: var(--muted); }
  #count { color: var(--muted); font-weight: normal; }
  aside.stale #people { opacity: .5; }
  #compose { grid-column: 1; grid-row: 3; display: flex; gap: .5rem; }
  #text { flex: 1; }
  input, button { font: inherit; padding: .5rem .75rem; border-radius: .5rem; border: 1px solid var(--line); background: var(--card); color: var(--fg); }
  button { background: var(--accent); border-color: var(--accent); color: #fff; font-weight: 600; cursor: pointer; }
  button:disabled { opacity: .45; cursor: not-allowed; }
  #retry { padding: .2rem .7rem; font-size: .85rem; background: transparent; color: var(--accent); }
  :focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
  .sr-only { position: absolute; width: 1px; height: 1px; margin: -1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
  @media (max-width: 40rem) {
    #chat { grid-template-columns: minmax(0, 1fr); grid-template-rows: auto auto minmax(0, 1fr) auto; }
    aside { grid-column: 1; grid-row: 2; padding: .5rem .75rem; }
    aside h2 { display: inline; margin-right: .5rem; }
    #people { display: inline-flex; flex-wrap: wrap; gap: .2rem .9rem; }
    #log { grid-row: 3; }
    #compose { grid-row: 4; }
  }
</style>
</head>
<body>
<div class="app">
  <header>
    <h1>sock chat</h1>
    <div class="state">
      <p id="status" role="status" data-state="idle">not connected</p>
      <button id="retry" type="button" hidden>Reconnect now</button>
    </div>
  </header>
  <noscript><p class="card">This chat needs JavaScript.</p></noscript>
  <form id="join" class="card">
    <label for="name"><strong>Your name</strong></label>
    <div class="row">
      <input id="name" name="name" maxlength="32" autocomplete="nickname" required>
      <button id="join-button">Join</button>
    </div>
    <p>Everyone who opens this page is in the same room. Open it in a second window to try.</p>
  </form>
  <main id="chat" hidden>
    <p class="whoami">You are <strong id="me"></strong></p>
    <div id="log" class="card" role="log" aria-label="Messages" tabindex="0"><ol id="messages"></ol></div>
    <aside id="room" class="card" aria-labelledby="people-title">
      <h2 id="people-title">In the room <span id="count"></span></h2>
      <ul id="people"></ul>
    </aside>
    <form id="compose">
      <label for="text" class="sr-only">Message</label>
      <input id="text" maxlength="2000" autocomplete="off" placeholder="Say something…">
      <button id="send" disabled>Send</button>
    </form>
  </main>
</div>
<script>
"use strict";
(() => {
  const byId = (id) => document.getElementById(id);
  const status = byId("status"), retry = byId("retry"), joinForm = byId("join"), nameInput = byId("name");
  const chat = byId("chat"), me = byId("me"), log = byId("log"), messages = byId("messages");
  const people = byId("people"), count = byId("count"), compose = byId("compose"), text = byId("text");
  const send = byId("send"), room = byId("room");

  // Reconnecting: the n-th wait is a random time between half and all of min(30 s, 1 s * 2^n);
  // after 10 failed tries in a row it stops, until "Reconnect now".
  const BASE = 1000, CAP = 30000, TRIES = 10;
  let ws = null, name = "", myId = null, joined = false, attempt = 0, timer = 0, ticker = 0, unread = 0;

  const guest = () => "guest-" + String(Math.floor(Math.random() * 10000)).padStart(4, "0");
  // The name is remembered per tab (sessionStorage), so a reload suggests it again.
  const remembered = (() => { try { return sessionStorage; } catch { return null; } })();
  nameInput.value = remembered?.getItem("sock-chat-name") || guest();
  nameInput.select();
  nameInput.focus();

  const element = (tag, className, content) => {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (content !== undefined) node.textContent = content;
    return node;
  };
  const pad = (n) => String(n).padStart(2, "0");
  const stamp = (time) => {
    const date = new Date(time), node = element("time", "", pad(date.getHours()) + ":" + pad(date.getMinutes()));
    node.dateTime = date.toISOString();
    node.title = date.toLocaleString();
    return node;
  };

  function setState(state, label) {
    status.dataset.state = state;
    if (status.textContent !== label) status.textContent = label;
    send.disabled = state !== "connected";
    retry.hidden = state !== "reconnecting" && state !== "disconnected";
    retry.textContent = state === "disconnected" ? "Reconnect" : "Reconnect now";
  }

  function add(item) {
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 60;
    messages.append(item);
    if (atBottom) log.scrollTop = log.scrollHeight;
    if (document.hidden) document.title = "(" + ++unread + ") sock chat";
  }
  const system = (line, time) => {
    const item = element("li", "system");
    item.append(stamp(time), line);
    add(item);
  };
  function message(m) {
    const mine = m.id === myId;
    const item = element("li", mine ? "msg mine" : "msg");
    const meta = element("div", "meta");
    meta.append(element("span", "who", m.name), stamp(m.time));
    item.append(meta, element("p", "text", m.text));
    if (mine) item.setAttribute("aria-label", "you (" + m.name + "): " + m.text);
    add(item);
  }
  function presence(users) {
    people.replaceChildren(...users.map((user) => {
      const item = element("li", "", user.name);
      if (user.id === myId) item.append(element("span", "you", " (you)"));
      return item;
    }));
    count.textContent = "(" + users.length + ")";
  }

  function describe(event) {
    const known = { 1000: "closed", 1001: "server going away", 1006: "connection lost", 1008: "refused", 1009: "message too big", 1011: "server error" };
    return (event.reason || known[event.code] || "closed") + ", code " + event.code;
  }

  function connect() {
    clearTimeout(timer);
    clearInterval(ticker);
    if (ws) return;
    setState("connecting", "connecting…");
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = ws = new WebSocket(scheme + location.host + "/chat?name=" + encodeURIComponent(name));
    socket.onmessage = (event) => {
      const m = JSON.parse(event.data);
      if (m.type === "welcome") {
        myId = m.you.id;
        me.textContent = name = m.you.name;
        attempt = 0;
        setState("connected", "connected");
        system((joined ? "reconnected as " : "you joined as ") + m.you.name, m.time);
        joined = true;
        room.classList.remove("stale");
        presence(m.users);
      } else if (m.type === "join" || m.type === "leave") {
        system(m.user.name + (m.type === "join" ? " joined" : " left"), m.time);
        presence(m.users);
      } else if (m.type === "message") {
        message(m);
      }
    };
    socket.onclose = (event) => {
      if (ws !== socket) return;
      ws = null;
      status.dataset.closeCode = String(event.code);
      if (myId !== null) system("disconnected: " + describe(event), Date.now());
      myId = null;
      room.classList.add("stale"); // the last list we had, dimmed until we are back
      later();
    };
  }

  function later() {
    if (attempt >= TRIES) return setState("disconnected", "disconnected");
    const ceiling = Math.min(CAP, BASE * 2 ** attempt++);
    const at = Date.now() + ceiling / 2 + Math.random() * ceiling / 2;
    const show = () => setState("reconnecting", "reconnecting in " + Math.max(1, Math.ceil((at - Date.now()) / 1000)) + " s…");
    show();
    ticker = setInterval(show, 250);
    timer = setTimeout(connect, at - Date.now());
  }

  const now = () => {
    attempt = 0;
    connect();
  };
  retry.onclick = now;
  addEventListener("online", () => { if (!ws && joined) now(); });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) unread = 0, document.title = "sock chat";
  });

  joinForm.onsubmit = (event) => {
    event.preventDefault();
    name = nameInput.value.trim() || guest();
    remembered?.setItem("sock-chat-name", name);
    me.textContent = name;
    joinForm.hidden = true;
    chat.hidden = false;
    text.focus();
    connect();
  };

  compose.onsubmit = (event) => {
    event.preventDefault();
    // Kept in the box until it can go: while reconnecting, Send is disabled and the text stays.
    if (!text.value.trim() || !ws || ws.readyState !== WebSocket.OPEN || send.disabled) return;
    ws.send(JSON.stringify({ text: text.value }));
    text.value = "";
    text.focus();
  };
})();
</script>
</body>
</html>
`;
