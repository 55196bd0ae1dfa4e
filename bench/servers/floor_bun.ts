/**
 * FLOOR, NOT A SERVER: the least a WebSocket echo can cost on Bun's TCP API
 * (`Bun.listen`), for bench/servers.ts to measure sock and the built-ins
 * against what the runtime allows. It is not a conformant WebSocket server and
 * must never be used as one: no limits (a frame's length is trusted, up to
 * 4 GiB), no validation (no UTF-8 check, RSV bits, masking, opcodes or
 * fragment order unchecked), no close handshake beyond echoing the close frame.
 *
 * The opening handshake takes the request head (up to `\r\n\r\n`) on any path
 * and answers with the `Sec-WebSocket-Accept` of its `Sec-WebSocket-Key`
 * (`Bun.CryptoHasher`). Each data callback's complete frames are unmasked into
 * one buffer and echoed (opcode and FIN bit kept, so text comes back as text)
 * in one `socket.write`; a frame cut off at the end waits for the rest in a
 * buffer the connection keeps for the next; what the socket does not take
 * waits for `drain`. A ping gets a pong; a close frame is echoed and the socket
 * ended. In broadcast mode every data frame goes to every upgraded connection,
 * sender included: each callback's frames built once, written to each.
 *
 *   bun bench/servers/floor_bun.ts --port 9001 [--host 127.0.0.1] [--mode echo|broadcast]
 *
 * Prints `listening on ws://HOST:PORT` once ready; SIGUSR2 runs a full GC (see
 * gc.ts).
 *
 * @module
 */

import { option } from "../../examples/args.ts";
import { collectOnSignal } from "./gc.ts";
import { echoFrame, frameLength } from "./floor_frames.ts";
import { Bun, type BunSocket } from "../_bun.ts";

collectOnSignal();

interface Conn {
  /** The request head so far; undefined once upgraded. */
  head: string | undefined;
  /**
   * A frame cut off at the end of a chunk: its first `have` bytes (0: none), of `need` (0: header
   * incomplete), in a buffer kept for the next one.
   */
  partial: Uint8Array;
  have: number;
  need: number;
  /** What the socket did not take yet. */
  pending: Uint8Array | undefined;
  closing: boolean;
}

const broadcast = option("mode", "echo") === "broadcast";
const host = option("host", "127.0.0.1");
const upgraded = new Set<BunSocket<Conn>>();
const latin1 = new TextDecoder("latin1");
const encoder = new TextEncoder();
const none = new Uint8Array(0);

/** Echoes go here; server frames are 4 bytes shorter than the masked client frames they echo. */
let out = new Uint8Array(1 << 16);
let words = new Int32Array(out.buffer);
let outLength = 0;
/** The echo of a close frame, once one came. */
let closeReply: Uint8Array | undefined;

/** Echoes the complete frames of `buf[i, end)` into `out`; returns where the rest (an incomplete frame) starts. */
function parse(socket: BunSocket<Conn>, buf: Uint8Array, i: number, end: number): number {
  let length: number;
  while (i < end && (length = frameLength(buf, i, end)) && i + length <= end) {
    const o = outLength;
    echoFrame(buf, i, length, out, words, o);
    const opcode = buf[i] & 15;
    i += length;
    if (opcode < 8) outLength += length - 4;
    else if (opcode === 8) {
      closeReply = out.slice(o, o + length - 4);
      return end;
    } else if (opcode === 9) {
      out[o] = 0x8a; // pong
      if (!broadcast) outLength += length - 4;
      else send(socket, out.slice(o, o + length - 4)); // ahead of this callback's broadcasts
    }
  }
  return i;
}

function send(socket: BunSocket<Conn>, bytes: Uint8Array): void {
  const conn = socket.data;
  if (conn.pending) {
    const joined = new Uint8Array(conn.pending.length + bytes.length);
    joined.set(conn.pending);
    joined.set(bytes, conn.pending.length);
    conn.pending = joined;
    return;
  }
  const written = socket.write(bytes);
  if (written < bytes.length) conn.pending = bytes.slice(Math.max(written, 0));
}

function data(socket: BunSocket<Conn>, chunk: Uint8Array): void {
  const conn = socket.data;
  if (conn.closing) return;
  if (conn.head !== undefined) {
    conn.head += latin1.decode(chunk);
    const end = conn.head.indexOf("\r\n\r\n");
    if (end < 0) return;
    const key = /\r\nsec-websocket-key:[ \t]*(\S+)/i.exec(conn.head.slice(0, end))?.[1];
    if (!key) return socket.end();
    const accept = new Bun.CryptoHasher("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
      .digest("base64");
    send(
      socket,
      encoder.encode(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
          `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
      ),
    );
    chunk = chunk.subarray(chunk.length - (conn.head.length - end - 4));
    conn.head = undefined;
    upgraded.add(socket);
  }
  let i = 0;
  outLength = 0;
  closeReply = undefined;
  if (conn.have && conn.need) {
    // The rest of a cut-off frame, then the chunk's own frames.
    i = Math.min(conn.need - conn.have, chunk.length);
    conn.partial.set(chunk.subarray(0, i), conn.have);
    conn.have += i;
    if (conn.have < conn.need) return;
    if (out.length < conn.need + chunk.length) grow(conn.need + chunk.length);
    parse(socket, conn.partial, 0, conn.need);
    conn.have = 0;
  } else if (conn.have) {
    // Less than a header was left: join it to the chunk.
    const joined = new Uint8Array(conn.have + chunk.length);
    joined.set(conn.partial.subarray(0, conn.have));
    joined.set(chunk, conn.have);
    chunk = joined;
    conn.have = 0;
  }
  if (out.length < outLength + chunk.length) grow(outLength + chunk.length);
  const rest = closeReply ? chunk.length : parse(socket, chunk, i, chunk.length);
  if (rest < chunk.length) {
    conn.need = frameLength(chunk, rest, chunk.length);
    if (conn.partial.length < (conn.need || 14)) {
      conn.partial = new Uint8Array(conn.need || 14);
    }
    conn.have = chunk.length - rest;
    conn.partial.set(chunk.subarray(rest));
  }
  if (outLength) {
    const frames = out.subarray(0, outLength);
    if (!broadcast) send(socket, frames);
    else for (const peer of upgraded) send(peer, frames);
  }
  if (closeReply) {
    conn.closing = true;
    upgraded.delete(socket);
    send(socket, closeReply);
    if (!conn.pending) socket.end();
  }
}

/** Makes `out` hold at least `size` bytes, keeping the echoes in it. */
function grow(size: number): void {
  const bigger = new Uint8Array(Math.max((size + 3) & ~3, out.length * 2)); // whole words
  bigger.set(out.subarray(0, outLength));
  out = bigger;
  words = new Int32Array(out.buffer);
}

const server = Bun.listen<Conn>({
  hostname: host,
  port: Number(option("port", "9001")),
  socket: {
    open(socket) {
      socket.data = { head: "", partial: none, have: 0, need: 0, pending: undefined, closing: false };
    },
    data,
    drain(socket) {
      const conn = socket.data;
      const bytes = conn.pending;
      if (!bytes) return;
      const written = socket.write(bytes);
      conn.pending = written < bytes.length ? bytes.subarray(Math.max(written, 0)) : undefined;
      if (!conn.pending && conn.closing) socket.end();
    },
    close(socket) {
      upgraded.delete(socket);
    },
    error() {},
  },
});
console.log(`listening on ws://${host}:${server.port}`);
