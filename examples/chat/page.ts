/**
 * The chat's single page, served through `fetch`.
 *
 * @module
 */

/** The HTML page: a message list, a name, an input, and a WebSocket to `/chat`. */
export const page = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sock chat</title>
<style>
  body { font: 16px/1.4 system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; padding: 0 1rem; }
  #log { list-style: none; padding: 0; border: 1px solid #ccc; border-radius: 6px; height: 20rem; overflow-y: auto; }
  #log li { padding: .25rem .5rem; border-bottom: 1px solid #eee; }
  #log li.system { color: #666; font-style: italic; }
  form { display: flex; gap: .5rem; margin-top: .5rem; }
  #text { flex: 1; }
  #status { color: #666; }
</style>
</head>
<body>
<h1>sock chat</h1>
<p id="status">connecting…</p>
<ul id="log"></ul>
<form id="form">
  <input id="name" placeholder="name" size="10">
  <input id="text" placeholder="say something" autocomplete="off">
  <button>Send</button>
</form>
<script>
  const log = document.getElementById("log");
  const status = document.getElementById("status");
  const add = (text, system) => {
    const item = document.createElement("li");
    item.textContent = text;
    if (system) item.className = "system";
    log.append(item);
    log.scrollTop = log.scrollHeight;
  };
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/chat");
  ws.onopen = () => status.textContent = "connected";
  ws.onclose = (event) => status.textContent = "disconnected (" + event.code + ")";
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "system") add(message.text + " · " + message.online + " online", true);
    else add(message.name + ": " + message.text);
  };
  document.getElementById("form").onsubmit = (event) => {
    event.preventDefault();
    const text = document.getElementById("text");
    const name = document.getElementById("name").value.trim() || "anonymous";
    if (text.value && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ name, text: text.value }));
    text.value = "";
  };
</script>
</body>
</html>
`;
