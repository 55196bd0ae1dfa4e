/**
 * Interop tests: sock against WebSocket implementations nobody here wrote.
 *
 * - sock's server (`Sock`) against the runtime's built-in `WebSocket` client and the npm `ws` client;
 * - sock's client (`connect`) against the runtime's own server (`Deno.serve` + `Deno.upgradeWebSocket`
 *   under Deno, `Bun.serve` with `websocket` handlers under Bun) and the npm `ws` server.
 *
 * Each pair covers binary messages of every length class up to 16 MiB, multi-byte UTF-8 text,
 * fragmented messages where the foreign API can send or receive them, ping/pong, a clean close
 * started by either side, and an abnormal close (a side vanishing without a close frame).
 * Cases a runtime cannot express are not registered there, so nothing is reported as passing
 * that did not run.
 *
 * Runs under `deno test -A tests/interop/interop_test.ts` and `bun test tests/interop/interop_test.ts`.
 *
 * @module
 */

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { connect } from "../../src/client.ts";
import type { Connection } from "../../src/connection/connection.ts";
import { ConnectionClosed } from "../../src/connection/closed.ts";
import type { Message } from "../../src/connection/inbox.ts";
import { Sock, type SockOptions } from "../../src/server/sock.ts";
import type { CloseResult } from "../../src/core/protocol.ts";
import { within } from "../_helpers.ts";
import { loadWs, type WsModule, type WsSocket } from "../_ws.ts";

const RUNTIME = "Bun" in globalThis ? "Bun" : "Deno";
const HOST = "127.0.0.1";
// Bounds against hangs, not speed checks: far above what a step takes on a loaded machine.
/** The whole body of one test; a hang fails here instead of hanging the run. */
const TEST_MS = 30_000;
/** One awaited step inside a test. */
const STEP_MS = 20_000;
/** One cleanup action, and all of them together. */
const CLEANUP_MS = 5_000;
const CLEANUP_TOTAL_MS = 10_000;

const SIZES = [0, 125, 126, 65535, 65536, 16 << 20];
const TEXT = "héllo ✓ 🌍";
/** 15 bytes of UTF-8 per copy of {@linkcode TEXT}; frames of 1001 bytes end inside é, ✓ and 🌍. */
const FRAGMENT_SIZE = 1001;
const LONG_TEXT = TEXT.repeat(1000);
const FRAGMENTED_BINARY_SIZE = 70_000;
/** A fragmented binary message: parts of 1, 0, 65536 and 34463 bytes. */
const STREAM_BINARY = pattern(100_000, 7);
const STREAM_CUTS = [1, 1, 65537];
/** Text as whole-character parts, for `sendStream()`. */
const TEXT_PARTS = ["hé", "llo ✓", " 🌍"];
/** Offsets in the UTF-8 of {@linkcode TEXT} that fall inside é, ✓ and 🌍, for peers that send raw frames. */
const TEXT_CUTS = [2, 8, 13];
const PEER_REASON = "bye from the peer ✓";
const SOCK_REASON = "bye from sock ✓";

// ---- Helpers ----------------------------------------------------------------------------------------

/** One awaited step of a test, bounded by {@linkcode STEP_MS}. */
function step<T>(promise: Promise<T>, label: string): Promise<T> {
  return within(promise, label, STEP_MS);
}

/** Cleanup actions of one test, run in reverse order, each bounded. */
class Scope {
  #actions: { label: string; run: () => unknown }[] = [];

  defer(label: string, run: () => unknown): void {
    this.#actions.push({ label, run });
  }

  /** Runs every action; returns the failures instead of stopping at the first. */
  async dispose(): Promise<unknown[]> {
    const failures: unknown[] = [];
    for (const { label, run } of this.#actions.splice(0).reverse()) {
      try {
        await within(Promise.resolve().then(run), `cleanup: ${label}`, CLEANUP_MS);
      } catch (error) {
        failures.push(error);
      }
    }
    return failures;
  }
}

/** Registers a test whose body is bounded and whose cleanup always runs, also after a timeout. */
function interop(name: string, body: (scope: Scope) => Promise<void>): void {
  // Bun's default per-test limit (5 s) would stop the test before our own bound and skip the cleanup.
  test(name, { timeout: TEST_MS + CLEANUP_TOTAL_MS + 5_000 }, async () => {
    const scope = new Scope();
    let failure: unknown;
    try {
      await within(body(scope), name, TEST_MS);
    } catch (error) {
      failure = error;
    }
    const cleanupFailures = await within(scope.dispose(), `${name}: cleanup`, CLEANUP_TOTAL_MS)
      .catch((error) => [error]);
    if (failure !== undefined) throw failure;
    if (cleanupFailures.length > 0) throw new AggregateError(cleanupFailures, `${name}: cleanup failed`);
  });
}

/** A queue whose `next()` waits for the next item, or rejects once the source ended. */
class Inbox<T> {
  #items: T[] = [];
  #waiters: { resolve: (item: T) => void; reject: (error: unknown) => void }[] = [];
  #error: Error | undefined;

  push(item: T): void {
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve(item);
    else this.#items.push(item);
  }

  end(error: Error): void {
    this.#error ??= error;
    for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
  }

  next(): Promise<T> {
    if (this.#items.length > 0) return Promise.resolve(this.#items.shift()!);
    if (this.#error) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }
}

/** Deterministic bytes, different for each size and seed. */
function pattern(size: number, seed = 0): Uint8Array {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + size + seed) & 0xff;
  return bytes;
}

/** Asserts a received message is binary and equal to `expected`, naming the first differing byte. */
function assertBytes(actual: Message | undefined, expected: Uint8Array, label: string): void {
  assert.ok(actual instanceof Uint8Array, `${label}: expected binary, got ${typeof actual}`);
  assert.equal(actual.length, expected.length, `${label}: length`);
  for (let i = 0; i < expected.length; i++) {
    if (actual[i] !== expected[i]) {
      assert.fail(`${label}: byte ${i} is ${actual[i]}, expected ${expected[i]}`);
    }
  }
}

/** A plain Uint8Array view of a Buffer or ArrayBuffer. */
function bytesOf(data: ArrayBuffer | Uint8Array): Uint8Array {
  return data instanceof Uint8Array
    ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
    : new Uint8Array(data);
}

/** Splits `bytes` at the given offsets. */
function splitAt(bytes: Uint8Array, offsets: number[]): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  let start = 0;
  for (const end of [...offsets, bytes.length]) {
    pieces.push(bytes.slice(start, end));
    start = end;
  }
  return pieces;
}

/** Asserts `received` is the reason `sent`, or empty (RFC 6455 §5.5.1 only asks the echo to repeat the code). */
function assertEchoedReason(received: string, sent: string, label: string): void {
  assert.ok(received === sent || received === "", `${label}: echoed reason ${JSON.stringify(received)}`);
}

/** Asserts a foreign peer saw its connection dropped without a close frame. */
function assertPeerSawDrop(peer: Peer, theirs: PeerClose, label: string): void {
  assert.ok(peer.droppedCodes.includes(theirs.code), `${label}: close code ${theirs.code}, expected 1006`);
  if (theirs.wasClean !== undefined) assert.equal(theirs.wasClean, false, `${label}: wasClean`);
}

/** Asserts a sock connection ended abnormally (no close frame): `closed` and `receive()` both say 1006. */
async function assertDropped(ws: Connection, label: string): Promise<void> {
  const closed = await step(ws.closed, `${label}: closed`);
  assert.equal(closed.code, 1006, `${label}: code`);
  assert.equal(closed.wasClean, false, `${label}: wasClean`);
  assert.equal(closed.received, undefined, `${label}: no close frame received`);
  const error = await step(ws.receive().then(() => undefined, (e) => e), `${label}: receive()`);
  assert.ok(error instanceof ConnectionClosed, `${label}: receive() rejects with ConnectionClosed`);
  assert.equal(error.code, 1006, `${label}: ConnectionClosed.code`);
}

// ---- Foreign peers ----------------------------------------------------------------------------------

/** How a foreign peer saw the connection end. */
interface PeerClose {
  code: number;
  reason: string;
  wasClean?: boolean;
}

/** A foreign WebSocket endpoint, client or server side, through one small interface. */
interface Peer {
  /** Sends a message (server-side peers echo by themselves). */
  send(data: Message): void;
  /** The next message received (client-side peers only; server-side ones echo it). */
  next(): Promise<Message>;
  /** Starts a clean close. */
  close(code: number, reason: string): void;
  /** Resolves when the connection is closed, with what this peer saw. */
  readonly closed: Promise<PeerClose>;
  /** The codes this peer reports for a connection dropped without a close frame. */
  readonly droppedCodes: number[];
  /** Drops the TCP connection without a close frame, where the API allows. */
  terminate?: () => void;
  /** Pings and resolves at the pong, where the API allows. */
  ping?: () => Promise<void>;
  /** Sends one message as several frames, where the API allows. */
  sendPieces?: (pieces: Uint8Array[], binary: boolean) => void;
}

/** A WHATWG `WebSocket` (the runtime's client, or a `Deno.upgradeWebSocket` socket) as a {@linkcode Peer}. */
function webPeer(socket: WebSocket, echo: boolean): Peer {
  socket.binaryType = "arraybuffer";
  const inbox = new Inbox<Message>();
  socket.onmessage = (event: MessageEvent) => {
    if (echo) socket.send(event.data);
    else inbox.push(typeof event.data === "string" ? event.data : bytesOf(event.data));
  };
  const closed = new Promise<PeerClose>((resolve) => {
    socket.onclose = (event: CloseEvent) => {
      resolve({ code: event.code, reason: event.reason, wasClean: event.wasClean });
      inbox.end(new Error(`the connection closed with ${event.code}`));
    };
  });
  const terminate = (socket as WebSocket & { terminate?: () => void }).terminate;
  return {
    send: (data) => socket.send(data),
    next: () => inbox.next(),
    close: (code, reason) => socket.close(code, reason),
    closed,
    // Deno's WebSocket, client and Deno.upgradeWebSocket alike, reports code 0 (with wasClean false)
    // instead of 1006 for a connection dropped without a close frame, whatever the peer (npm ws too).
    droppedCodes: RUNTIME === "Deno" ? [1006, 0] : [1006],
    // Bun's WebSocket has a non-standard terminate(); Deno's has none.
    terminate: typeof terminate === "function" ? () => terminate.call(socket) : undefined,
  };
}

/** Whether this runtime's built-in client can drop a connection without a close frame. */
const BUILTIN_CAN_TERMINATE =
  typeof (WebSocket.prototype as { terminate?: unknown }).terminate === "function";

const WS = loadWs();
const WS_NAME = "ws" in WS ? `npm ws ${WS.version}` : "npm ws";

/** An npm `ws` socket, client or server side, as a {@linkcode Peer}. */
function wsPeer(socket: WsSocket, echo: boolean): Peer {
  const inbox = new Inbox<Message>();
  const errors: Error[] = [];
  socket.on("error", (error: Error) => errors.push(error));
  socket.on("message", (data: Uint8Array, isBinary: boolean) => {
    if (echo) socket.send(data, { binary: isBinary });
    else inbox.push(isBinary ? bytesOf(data) : new TextDecoder().decode(data));
  });
  const closed = new Promise<PeerClose>((resolve) => {
    socket.on("close", (code: number, reason: Uint8Array) => {
      resolve({ code, reason: new TextDecoder().decode(reason) });
      inbox.end(
        new Error(`the connection closed with ${code}${errors.length ? `; ${errors.join("; ")}` : ""}`),
      );
    });
  });
  return {
    send: (data) => socket.send(data),
    next: () => inbox.next(),
    close: (code, reason) => socket.close(code, reason),
    closed,
    droppedCodes: [1006],
    terminate: () => socket.terminate(),
    ping: () => {
      const pong = new Promise<void>((resolve) => socket.once("pong", () => resolve()));
      socket.ping();
      return pong;
    },
    sendPieces: (pieces, binary) => {
      pieces.forEach((piece, i) => socket.send(piece, { binary, fin: i === pieces.length - 1 }));
    },
  };
}

// ---- Sock's side --------------------------------------------------------------------------------------

/** A server-side sock connection and how its echo handler ended (`undefined` or what it threw). */
interface SockSide {
  ws: Connection;
  ended: Promise<unknown>;
}

/** A `Sock` with an echo route on a free loopback port, stopped by the scope. */
async function startSock(scope: Scope, options: SockOptions = {}) {
  const sides = new Inbox<SockSide>();
  const all: SockSide[] = [];
  const errors: unknown[] = [];
  const app = new Sock({ ...options, onError: (error) => errors.push(error) });
  app.route("/echo", async (ws) => {
    let end!: (result: unknown) => void;
    const side = { ws, ended: new Promise<unknown>((resolve) => end = resolve) };
    all.push(side);
    sides.push(side);
    try {
      for await (const message of ws) await ws.send(message);
      end(undefined);
    } catch (error) {
      end(error);
    }
  });
  const { port } = await app.listen({ hostname: HOST, port: 0 });
  scope.defer("Sock", async () => {
    for (const side of all) side.ws.terminate();
    await Promise.all(all.map((side) => side.ended));
    await app.close(0);
    assert.deepEqual(errors, [], "Sock reported no errors");
  });
  return { url: `ws://${HOST}:${port}/echo`, next: () => step(sides.next(), "Sock accepts the connection") };
}

/** `connect()`, with the connection dropped by the scope. */
async function connectSock(scope: Scope, url: string): Promise<Connection> {
  const ws = await step(connect(url), `connect(${url})`);
  scope.defer("sock client", () => ws.terminate());
  return ws;
}

// ---- Foreign clients (for sock's server) ---------------------------------------------------------------

interface ClientKind {
  name: string;
  open(scope: Scope, url: string): Promise<Peer>;
  /** Can drop the connection without a close frame. */
  canTerminate: boolean;
  /** Can send one message as several frames. */
  canFragment: boolean;
}

async function openBuiltin(scope: Scope, url: string): Promise<Peer> {
  const socket = new WebSocket(url);
  const opened = new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = () => reject(new Error(`built-in WebSocket failed to open ${url}`));
  });
  const peer = webPeer(socket, false);
  scope.defer("built-in WebSocket client", async () => {
    if (socket.readyState < WebSocket.CLOSING) socket.close();
    await peer.closed;
  });
  await step(opened, "built-in WebSocket opens");
  return peer;
}

async function openWsClient(scope: Scope, url: string): Promise<Peer> {
  const { ws } = WS as { ws: WsModule };
  const socket = new ws.WebSocket(url);
  const opened = new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("error", (error: Error) => reject(error));
  });
  const peer = wsPeer(socket, false);
  scope.defer("ws client", async () => {
    socket.terminate();
    await peer.closed;
  });
  await step(opened, "ws client opens");
  return peer;
}

// ---- Foreign servers (for sock's client) ---------------------------------------------------------------

interface ServerKind {
  name: string;
  /** Starts an echo server; `next()` gives the server side of each accepted connection. */
  start(scope: Scope): Promise<{ url: string; next(): Promise<Peer> }>;
  /** The server side can drop a connection without a close frame (Deno's cannot: see its own test). */
  canTerminate: boolean;
  /** The server side can send one message as several frames. */
  canFragment: boolean;
  /** The server side can ping. */
  canPing: boolean;
}

async function startWsServer(scope: Scope) {
  const { ws } = WS as { ws: WsModule };
  const server = new ws.WebSocketServer({ port: 0, host: HOST });
  const sides = new Inbox<Peer>();
  server.on("connection", (socket: WsSocket) => sides.push(wsPeer(socket, true)));
  server.on("error", (error: Error) => sides.end(error));
  await step(
    new Promise<void>((resolve, reject) => {
      server.once("listening", () => resolve());
      server.once("error", (error: Error) => reject(error));
    }),
    "ws server listens",
  );
  scope.defer("ws server", async () => {
    for (const client of server.clients) client.terminate();
    await new Promise<void>((resolve, reject) => server.close((error) => error ? reject(error) : resolve()));
  });
  return {
    url: `ws://${HOST}:${server.address().port}/`,
    next: () => step(sides.next(), "ws server accepts"),
  };
}

function startDenoServer(scope: Scope) {
  const sides = new Inbox<Peer>();
  const server = Deno.serve({ hostname: HOST, port: 0, onListen() {} }, (request) => {
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("upgrade required", { status: 426 });
    }
    const { socket, response } = Deno.upgradeWebSocket(request);
    sides.push(webPeer(socket, true));
    return response;
  });
  scope.defer("Deno.serve", () => server.shutdown());
  return Promise.resolve({
    url: `ws://${HOST}:${server.addr.port}/`,
    next: () => step(sides.next(), "Deno.serve accepts"),
  });
}

// The parts of Bun.serve used here, declared locally instead of depending on bun-types.
interface BunServerSocket {
  data: { peer?: BunPeer };
  send(data: string | Uint8Array): number;
  close(code?: number, reason?: string): void;
  terminate(): void;
  ping(data?: string): number;
}

interface BunServer {
  readonly port: number;
  upgrade(request: Request, options: { data: BunServerSocket["data"] }): boolean;
  stop(closeActiveConnections?: boolean): unknown;
}

interface BunRuntime {
  serve(options: {
    hostname: string;
    port: number;
    fetch(request: Request, server: BunServer): Response | undefined;
    websocket: {
      open(ws: BunServerSocket): void;
      message(ws: BunServerSocket, message: string | Uint8Array): void;
      close(ws: BunServerSocket, code: number, reason: string): void;
      pong(ws: BunServerSocket, data: Uint8Array): void;
    };
  }): BunServer;
}

interface BunPeer extends Peer {
  onClose(code: number, reason: string): void;
  onPong(): void;
}

function bunPeer(socket: BunServerSocket): BunPeer {
  let closedWith!: (close: PeerClose) => void;
  const pongs: (() => void)[] = [];
  return {
    send: (data) => void socket.send(data),
    next: () => Promise.reject(new Error("Bun.serve peers echo instead")),
    close: (code, reason) => socket.close(code, reason),
    closed: new Promise((resolve) => closedWith = resolve),
    droppedCodes: [1006],
    terminate: () => socket.terminate(),
    ping: () => {
      const pong = new Promise<void>((resolve) => pongs.push(resolve));
      socket.ping();
      return pong;
    },
    onClose: (code, reason) => closedWith({ code, reason }),
    onPong: () => pongs.shift()?.(),
  };
}

function startBunServer(scope: Scope) {
  const bun = (globalThis as unknown as { Bun: BunRuntime }).Bun;
  const sides = new Inbox<Peer>();
  const server = bun.serve({
    hostname: HOST,
    port: 0,
    fetch: (request, server) =>
      server.upgrade(request, { data: {} }) ? undefined : new Response("upgrade required", { status: 426 }),
    websocket: {
      open(ws) {
        ws.data.peer = bunPeer(ws);
        sides.push(ws.data.peer);
      },
      message: (ws, message) => void ws.send(message),
      close: (ws, code, reason) => ws.data.peer?.onClose(code, reason),
      pong: (ws) => ws.data.peer?.onPong(),
    },
  });
  scope.defer("Bun.serve", () => server.stop(true));
  return Promise.resolve({
    url: `ws://${HOST}:${server.port}/`,
    next: () => step(sides.next(), "Bun.serve accepts"),
  });
}

// ---- The matrix -------------------------------------------------------------------------------------

const clientKinds: ClientKind[] = [{
  name: `${RUNTIME} built-in WebSocket client`,
  open: openBuiltin,
  canTerminate: BUILTIN_CAN_TERMINATE,
  canFragment: false,
}];
const serverKinds: ServerKind[] = [
  RUNTIME === "Deno"
    ? { name: "Deno.serve", start: startDenoServer, canTerminate: false, canFragment: false, canPing: false }
    : { name: "Bun.serve", start: startBunServer, canTerminate: true, canFragment: false, canPing: true },
];

if ("ws" in WS) {
  clientKinds.push({ name: `${WS_NAME} client`, open: openWsClient, canTerminate: true, canFragment: true });
  serverKinds.push({
    name: `${WS_NAME} server`,
    start: startWsServer,
    canTerminate: true,
    canFragment: true,
    canPing: true,
  });

  test(`${WS_NAME} loads from tools/dev as the npm package, not a runtime's stand-in`, () => {
    // Whatever version tools/dev's lock file installs (`npm ci`), not one written here too.
    const lock = JSON.parse(
      readFileSync(new URL("../../tools/dev/package-lock.json", import.meta.url), "utf8"),
    );
    assert.equal(WS.version, lock.packages["node_modules/ws"].version, "the version the lock file installs");
    assert.match(WS.path.replaceAll("\\", "/"), /tools\/dev\/node_modules\/ws\/index\.js$/);
    assert.equal(typeof (WS.ws as unknown as Record<string, unknown>).PerMessageDeflate, "function");
  });
} else {
  test.skip(`sock ⇄ npm ws: skipped, npm ws cannot be loaded under ${RUNTIME}: ${WS.error}`, () => {});
}

// ---- Sock's server against foreign clients ----------------------------------------------------------

for (const kind of clientKinds) {
  const name = `Sock server ⇄ ${kind.name}`;

  /** A Sock, a connected foreign client and the server side of its connection. */
  const open = async (scope: Scope, options?: SockOptions) => {
    const sock = await startSock(scope, options);
    const peer = await kind.open(scope, sock.url);
    return { peer, side: await sock.next() };
  };

  interop(`${name}: binary messages of ${SIZES.join(", ")} bytes round-trip byte for byte`, async (scope) => {
    const { peer } = await open(scope);
    for (const size of SIZES) {
      peer.send(pattern(size));
      assertBytes(await step(peer.next(), `echo of ${size} bytes`), pattern(size), `${size} bytes`);
    }
  });

  interop(`${name}: multi-byte UTF-8 text round-trips`, async (scope) => {
    const { peer } = await open(scope);
    peer.send(TEXT);
    assert.equal(await step(peer.next(), "text echo"), TEXT);
  });

  interop(`${name}: messages Sock fragments (fragmentSize ${FRAGMENT_SIZE}) arrive whole`, async (scope) => {
    const { peer } = await open(scope, { fragmentSize: FRAGMENT_SIZE });
    peer.send(pattern(FRAGMENTED_BINARY_SIZE));
    assertBytes(await step(peer.next(), "binary echo"), pattern(FRAGMENTED_BINARY_SIZE), "binary");
    peer.send(LONG_TEXT);
    assert.equal(await step(peer.next(), "text echo"), LONG_TEXT);
  });

  interop(`${name}: messages Sock sends with sendStream() arrive whole`, async (scope) => {
    const { peer, side } = await open(scope);
    await step(side.ws.sendStream(splitAt(STREAM_BINARY, STREAM_CUTS)), "sendStream(binary parts)");
    assertBytes(await step(peer.next(), "binary"), STREAM_BINARY, "binary");
    await step(side.ws.sendStream(TEXT_PARTS), "sendStream(text parts)");
    assert.equal(await step(peer.next(), "text"), TEXT_PARTS.join(""));
  });

  if (kind.canFragment) {
    interop(`${name}: a fragmented message from the client arrives whole`, async (scope) => {
      const { peer } = await open(scope);
      peer.sendPieces!(splitAt(STREAM_BINARY, STREAM_CUTS), true);
      assertBytes(await step(peer.next(), "binary echo"), STREAM_BINARY, "binary");
      peer.sendPieces!(splitAt(new TextEncoder().encode(TEXT), TEXT_CUTS), false);
      assert.equal(await step(peer.next(), "text echo"), TEXT);
    });
  }

  interop(`${name}: Connection.ping() resolves at the client's pong`, async (scope) => {
    const { peer, side } = await open(scope);
    const rtt = await step(side.ws.ping(), "Sock's ping");
    assert.ok(rtt >= 0 && rtt < STEP_MS, `rtt ${rtt}`);
    if (peer.ping) await step(peer.ping(), "the client's ping is answered");
    peer.send("still open");
    assert.equal(await step(peer.next(), "echo after the pings"), "still open");
  });

  interop(`${name}: clean close started by the client, code and reason seen by both`, async (scope) => {
    const { peer, side } = await open(scope);
    peer.close(1000, PEER_REASON);
    const ours = await step(side.ws.closed, "Sock's closed");
    assert.equal(ours.code, 1000);
    assert.equal(ours.reason, PEER_REASON);
    assert.equal(ours.wasClean, true);
    assert.deepEqual(ours.received, { code: 1000, reason: PEER_REASON });
    assert.equal(
      await step(side.ended, "the handler's for-await"),
      undefined,
      "for-await ends without throwing",
    );
    const theirs = await step(peer.closed, "the client's close event");
    assert.equal(theirs.code, 1000);
    assertEchoedReason(theirs.reason, PEER_REASON, "client");
    if (theirs.wasClean !== undefined) assert.equal(theirs.wasClean, true);
  });

  interop(`${name}: clean close started by Sock, code and reason seen by both`, async (scope) => {
    const { peer, side } = await open(scope);
    const ours: CloseResult = await step(side.ws.close(4002, SOCK_REASON), "Sock's close()");
    assert.deepEqual(ours.sent, { code: 4002, reason: SOCK_REASON });
    assert.equal(ours.code, 4002);
    assertEchoedReason(ours.reason, SOCK_REASON, "Sock");
    assert.equal(ours.wasClean, true);
    const theirs = await step(peer.closed, "the client's close event");
    assert.equal(theirs.code, 4002);
    assert.equal(theirs.reason, SOCK_REASON);
    if (theirs.wasClean !== undefined) assert.equal(theirs.wasClean, true);
  });

  if (kind.canTerminate) {
    interop(
      `${name}: the client vanishing without a close frame is 1006 in Sock's handler`,
      async (scope) => {
        const { peer, side } = await open(scope);
        peer.send("hi");
        assert.equal(await step(peer.next(), "echo"), "hi");
        peer.terminate!();
        const error = await step(side.ended, "the handler's for-await");
        assert.ok(error instanceof ConnectionClosed, `the handler's receive() rejects with ConnectionClosed`);
        assert.equal(error.code, 1006);
        await assertDropped(side.ws, "Sock");
      },
    );
  }

  interop(`${name}: Sock vanishing without a close frame is 1006 for the client`, async (scope) => {
    const { peer, side } = await open(scope);
    side.ws.terminate();
    const theirs = await step(peer.closed, "the client's close event");
    assertPeerSawDrop(peer, theirs, "client");
    await assertDropped(side.ws, "Sock");
  });
}

// ---- Sock's client against foreign servers ----------------------------------------------------------

for (const kind of serverKinds) {
  const name = `sock client ⇄ ${kind.name}`;

  /** A foreign echo server, sock's client connected to it and the server side of the connection. */
  const open = async (scope: Scope) => {
    const server = await kind.start(scope);
    const ws = await connectSock(scope, server.url);
    return { ws, peer: await server.next(), server };
  };

  interop(`${name}: binary messages of ${SIZES.join(", ")} bytes round-trip byte for byte`, async (scope) => {
    const { ws } = await open(scope);
    for (const size of SIZES) {
      await step(ws.send(pattern(size)), `send ${size} bytes`);
      assertBytes(await step(ws.receive(), `echo of ${size} bytes`), pattern(size), `${size} bytes`);
    }
  });

  interop(`${name}: multi-byte UTF-8 text round-trips`, async (scope) => {
    const { ws } = await open(scope);
    await step(ws.send(TEXT), "send");
    assert.equal(await step(ws.receive(), "text echo"), TEXT);
  });

  interop(`${name}: messages sock's client sends with sendStream() arrive whole`, async (scope) => {
    const { ws } = await open(scope);
    await step(ws.sendStream(splitAt(STREAM_BINARY, STREAM_CUTS)), "sendStream(binary parts)");
    assertBytes(await step(ws.receive(), "binary echo"), STREAM_BINARY, "binary");
    await step(ws.sendStream(TEXT_PARTS), "sendStream(text parts)");
    assert.equal(await step(ws.receive(), "text echo"), TEXT_PARTS.join(""));
  });

  if (kind.canFragment) {
    interop(`${name}: a fragmented message from the server arrives whole`, async (scope) => {
      const { ws, peer } = await open(scope);
      peer.sendPieces!(splitAt(STREAM_BINARY, STREAM_CUTS), true);
      assertBytes(await step(ws.receive(), "binary"), STREAM_BINARY, "binary");
      peer.sendPieces!(splitAt(new TextEncoder().encode(TEXT), TEXT_CUTS), false);
      assert.equal(await step(ws.receive(), "text"), TEXT);
    });
  }

  interop(`${name}: Connection.ping() resolves at the server's pong`, async (scope) => {
    const { ws, peer } = await open(scope);
    const rtt = await step(ws.ping(), "sock's ping");
    assert.ok(rtt >= 0 && rtt < STEP_MS, `rtt ${rtt}`);
    if (kind.canPing) await step(peer.ping!(), "the server's ping is answered");
    await step(ws.send("still open"), "send");
    assert.equal(await step(ws.receive(), "echo after the pings"), "still open");
  });

  interop(`${name}: clean close started by the server, code and reason seen by both`, async (scope) => {
    const { ws, peer } = await open(scope);
    peer.close(1000, PEER_REASON);
    assert.equal(
      await step(ws.receive(), "receive()"),
      undefined,
      "receive() is undefined after a normal close",
    );
    const ours = await step(ws.closed, "sock's closed");
    assert.equal(ours.code, 1000);
    assert.equal(ours.reason, PEER_REASON);
    assert.equal(ours.wasClean, true);
    assert.deepEqual(ours.received, { code: 1000, reason: PEER_REASON });
    const theirs = await step(peer.closed, "the server's close event");
    assert.equal(theirs.code, 1000);
    assertEchoedReason(theirs.reason, PEER_REASON, "server");
  });

  interop(`${name}: clean close started by sock's client, code and reason seen by both`, async (scope) => {
    const { ws, peer } = await open(scope);
    const ours = await step(ws.close(4002, SOCK_REASON), "sock's close()");
    assert.deepEqual(ours.sent, { code: 4002, reason: SOCK_REASON });
    assert.equal(ours.code, 4002);
    assertEchoedReason(ours.reason, SOCK_REASON, "sock");
    assert.equal(ours.wasClean, true);
    const theirs = await step(peer.closed, "the server's close event");
    assert.equal(theirs.code, 4002);
    assert.equal(theirs.reason, SOCK_REASON);
  });

  if (kind.canTerminate) {
    interop(
      `${name}: the server vanishing without a close frame is 1006 for sock's client`,
      async (scope) => {
        const { ws, peer } = await open(scope);
        await step(ws.send("hi"), "send");
        assert.equal(await step(ws.receive(), "echo"), "hi");
        peer.terminate!();
        await assertDropped(ws, "sock client");
      },
    );
  }

  interop(`${name}: sock's client vanishing without a close frame is 1006 for the server`, async (scope) => {
    const { ws, peer } = await open(scope);
    await step(ws.send("hi"), "send");
    assert.equal(await step(ws.receive(), "echo"), "hi");
    ws.terminate();
    const theirs = await step(peer.closed, "the server's close event");
    assertPeerSawDrop(peer, theirs, "server");
    await assertDropped(ws, "sock client");
  });
}

if (RUNTIME === "Deno") {
  // A Deno.serve WebSocket cannot be dropped from JavaScript without a close frame (aborting the
  // server sends one), so the server runs in a child process that is killed.
  interop("sock client ⇄ Deno.serve: the server process dying is 1006 for sock's client", async (scope) => {
    const script = [
      `const options = { hostname: "${HOST}", port: 0, onListen: ({ port }) => console.log("port " + port) };`,
      "Deno.serve(options, (request) => {",
      "  const { socket, response } = Deno.upgradeWebSocket(request);",
      "  socket.onmessage = (event) => socket.send(event.data);",
      "  return response;",
      "});",
    ].join("\n");
    const child = new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-config", script],
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    scope.defer("Deno.serve child process", async () => {
      await reader.cancel().catch(() => {});
      try {
        child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
      await child.status;
    });
    let out = "";
    while (!out.includes("\n")) {
      const { value, done } = await step(reader.read(), "the child's port");
      if (done) throw new Error(`the child exited before listening: ${JSON.stringify(out)}`);
      out += value;
    }
    // console.log styles a bare number when FORCE_COLOR is set, as tools/test.ts does; a string it leaves alone.
    const port = /port (\d+)/.exec(out)?.[1];
    if (!port) throw new Error(`the child printed no port: ${JSON.stringify(out)}`);
    const ws = await connectSock(scope, `ws://${HOST}:${port}/`);
    await step(ws.send("hi"), "send");
    assert.equal(await step(ws.receive(), "echo"), "hi");
    child.kill("SIGKILL");
    await assertDropped(ws, "sock client");
  });
}
