/**
 * FLOOR, NOT A SERVER: the least a WebSocket echo can cost on Deno's TCP API
 * (`Deno.listen`), for bench/servers.ts to measure sock and the built-ins
 * against what the runtime allows. It is not a conformant WebSocket server and
 * must never be used as one: no limits (a frame's length is trusted, up to
 * 4 GiB), no validation (no UTF-8 check, RSV bits, masking, opcodes or
 * fragment order unchecked), no close handshake beyond echoing the close frame.
 *
 * Each connection is one read loop into a buffer of its own, reused: 1 KiB at
 * first (4 KiB cost 3 KiB more per idle connection), doubled when a read fills
 * it, up to 256 KiB, or grown to hold a larger frame. The opening
 * handshake takes the request head (up to `\r\n\r\n`) on any path and answers
 * with the `Sec-WebSocket-Accept` of its `Sec-WebSocket-Key`, hashed with
 * node:crypto's `createHash("sha1")`: about 2 µs a key here, against about
 * 60 µs for `crypto.subtle.digest` (which runs off the main thread). Each
 * read's complete frames are unmasked into one buffer and echoed (opcode and
 * FIN bit kept, so text comes back as text) in one awaited `conn.write`; an
 * incomplete frame stays at the start of the read buffer for the next read. A
 * ping gets a pong; a close frame is echoed and the connection closed. In
 * broadcast mode every data frame goes to every upgraded connection, sender
 * included: each read's frames built once, queued on each connection, which
 * writes its queue in order.
 *
 *   deno run -A [--v8-flags=--expose-gc] bench/servers/floor_deno.ts --port 9001 \
 *     [--host 127.0.0.1] [--mode echo|broadcast]
 *
 * Prints `listening on ws://HOST:PORT` once ready; SIGUSR2 runs a full GC (see
 * gc.ts).
 *
 * @module
 */

import { createHash } from "node:crypto";
import { option } from "../../examples/args.ts";
import { collectOnSignal } from "./gc.ts";
import { echoFrame, frameLength } from "./floor_frames.ts";

collectOnSignal();

interface Peer {
  conn: Deno.TcpConn;
  /** Broadcast mode: frames waiting for the write in progress, and whether one is. */
  queue: Uint8Array[];
  writing: boolean;
  /** Close once the queue is written. */
  closing: boolean;
}

const broadcast = option("mode", "echo") === "broadcast";
const host = option("host", "127.0.0.1");
const upgraded = new Set<Peer>();
const encoder = new TextEncoder();
const READ_MAX = 256 * 1024;

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

/** Broadcast mode: queues `bytes` (not to be changed after) on `peer`, in order with the rest. */
function send(peer: Peer, bytes: Uint8Array): void {
  peer.queue.push(bytes);
  if (!peer.writing) flush(peer);
}

async function flush(peer: Peer): Promise<void> {
  peer.writing = true;
  try {
    while (peer.queue.length) {
      // What queued up during the last write goes out in one.
      const queued = peer.queue;
      peer.queue = [];
      let bytes = queued[0];
      if (queued.length > 1) {
        bytes = new Uint8Array(queued.reduce((sum, b) => sum + b.length, 0));
        let at = 0;
        for (const b of queued) at += (bytes.set(b, at), b.length);
      }
      await writeAll(peer.conn, bytes);
    }
  } catch {
    upgraded.delete(peer); // reset by the peer
  }
  peer.writing = false;
  if (peer.closing) close(peer.conn);
}

function close(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Closed already.
  }
}

/** The opening handshake; the bytes read after the request head are left at the start of `buf`. */
async function upgrade(conn: Deno.TcpConn, buf: Uint8Array): Promise<{ buf: Uint8Array; have: number }> {
  let have = 0;
  let end = -1;
  while (end < 0) {
    if (have === buf.length) buf = grown(buf, have, buf.length * 2);
    const n = await conn.read(buf.subarray(have));
    if (n === null) throw new Error("closed before the request head's end");
    for (let i = Math.max(have - 3, 0); i + 3 < have + n; i++) {
      if (buf[i] === 13 && buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) {
        end = i;
        break;
      }
    }
    have += n;
  }
  const head = String.fromCharCode(...buf.subarray(0, end)); // latin1, without a TextDecoder op
  const key = /\r\nsec-websocket-key:[ \t]*(\S+)/i.exec(head)?.[1];
  if (!key) throw new Error("no Sec-WebSocket-Key");
  const accept = createHash("sha1").update(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest("base64");
  await writeAll(
    conn,
    encoder.encode(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
    ),
  );
  buf.copyWithin(0, end + 4, have);
  return { buf, have: have - end - 4 };
}

/** A buffer of `size` bytes (rounded up to whole words) starting with `buf[0, have)`. */
function grown(buf: Uint8Array, have: number, size: number): Uint8Array<ArrayBuffer> {
  const bigger = new Uint8Array((size + 3) & ~3);
  bigger.set(buf.subarray(0, have));
  return bigger;
}

async function session(peer: Peer): Promise<void> {
  const { conn } = peer;
  conn.setNoDelay(true);
  let { buf, have } = await upgrade(conn, new Uint8Array(1024));
  if (broadcast) upgraded.add(peer);
  // Echoes; server frames are 4 bytes shorter than the masked client frames they echo.
  let out = new Uint8Array(0);
  let words = new Int32Array(0);
  let filled = false;
  while (true) {
    if (out.length < have) {
      out = grown(out, 0, Math.max(have, buf.length));
      words = new Int32Array(out.buffer);
    }
    let i = 0;
    let o = 0;
    let length: number;
    let closeReply: Uint8Array | undefined;
    while ((length = frameLength(buf, i, have)) && i + length <= have) {
      echoFrame(buf, i, length, out, words, o);
      const opcode = buf[i] & 15;
      i += length;
      if (opcode < 8) o += length - 4;
      else if (opcode === 8) {
        closeReply = out.slice(o, o + length - 4);
        break;
      } else if (opcode === 9) {
        out[o] = 0x8a; // pong
        if (!broadcast) o += length - 4;
        else send(peer, out.slice(o, o + length - 4)); // ahead of this read's broadcasts
      }
    }
    if (o && !broadcast) await writeAll(conn, out.subarray(0, o));
    else if (o) {
      const frames = out.slice(0, o);
      for (const other of upgraded) send(other, frames);
    }
    if (closeReply) {
      upgraded.delete(peer);
      return broadcast ? send(peer, closeReply) : await writeAll(conn, closeReply);
    }
    // An incomplete frame moves to the start; the buffer grows to hold it, or when reads fill it.
    if (i) buf.copyWithin(0, i, have);
    have -= i;
    const need = frameLength(buf, 0, have);
    if (need > buf.length) buf = grown(buf, have, need);
    else if (filled && buf.length < READ_MAX) buf = grown(buf, have, Math.min(buf.length * 2, READ_MAX));
    const n = await conn.read(buf.subarray(have));
    if (n === null) return;
    filled = have + n === buf.length;
    have += n;
  }
}

const listener = Deno.listen({ hostname: host, port: Number(option("port", "9001")) });
console.log(`listening on ws://${host}:${listener.addr.port}`);
for await (const conn of listener) {
  const peer: Peer = { conn, queue: [], writing: false, closing: false };
  session(peer).catch(() => {}).finally(() => {
    upgraded.delete(peer);
    if (peer.writing) peer.closing = true;
    else close(conn);
  });
}
