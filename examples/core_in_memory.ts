/**
 * The protocol core, driven by hand: a client and a server talk through
 * plain byte arrays, with no socket anywhere. Runs unchanged on Deno and Bun:
 *
 *   deno run examples/core_in_memory.ts
 *   bun examples/core_in_memory.ts
 *
 * @module
 */

import { ClientProtocol, type ProtocolEvent, ServerProtocol } from "../mod.ts";

const server = new ServerProtocol();
const client = new ClientProtocol({ url: "ws://localhost/chat", subprotocols: ["chat.v1"] });

const hex = (bytes: Uint8Array) =>
  Array.from(bytes.subarray(0, 24), (b) => b.toString(16).padStart(2, "0")).join(" ") +
  (bytes.length > 24 ? ` … (${bytes.length} bytes)` : "");

/** Moves every queued byte from one side to the other, as a socket would. */
function pipe(from: ClientProtocol | ServerProtocol, to: ClientProtocol | ServerProtocol, label: string) {
  for (const chunk of from.dataToSend()) {
    const text = new TextDecoder().decode(chunk);
    console.log(
      `${label} ${/^(GET|HTTP)/.test(text) ? text.trimEnd().replaceAll("\r\n", "\n    ") : hex(chunk)}`,
    );
    to.receiveData(chunk);
  }
}

function show(side: string, events: ProtocolEvent[] | { type: string }[]) {
  for (const event of events) {
    console.log(
      `  ${side} event:`,
      JSON.stringify(event, (_, v) => v instanceof Uint8Array ? hex(v) : v),
    );
  }
}

// Opening handshake.
client.sendRequest();
pipe(client, server, "client →");
const [request] = server.events();
if (request.type !== "request") throw new Error(`expected a request, got ${request.type}`);
console.log(
  `  server sees ${request.request.method} ${request.request.target}, offered ${request.request.subprotocols}`,
);
server.accept({ subprotocol: "chat.v1" });
pipe(server, client, "server →");
show("client", client.events());

// Messages both ways; the client masks, the server does not.
client.send("Hello, sock!");
client.send(new Uint8Array([1, 2, 3]));
client.ping("are you there?");
pipe(client, server, "client →");
const received = server.events();
show("server", received);
for (const event of received) {
  if (event.type === "text") server.send(event.data.toUpperCase());
}
pipe(server, client, "server →"); // the echo and the pong the core queued by itself
show("client", client.events());

// A protocol violation: an unmasked frame from a "client" gets 1002 and the connection ends.
const victim = new ServerProtocol();
victim.receiveData(new TextEncoder().encode(
  "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
));
victim.events();
victim.accept();
victim.dataToSend();
victim.receiveData(new Uint8Array([0x81, 0x02, 0x68, 0x69]));
show(
  "strict server",
  victim.events().map((e) => e.type === "failed" ? { type: e.type, code: e.error.code } : e),
);
console.log("  strict server sends", hex(victim.dataToSend()[0]));

// Closing handshake, started by the client.
client.close(1000, "bye");
pipe(client, server, "client →");
show("server", server.events());
pipe(server, client, "server →");
show("client", client.events());
console.log(`states: client ${client.readyState}, server ${server.readyState} (3 = CLOSED)`);
