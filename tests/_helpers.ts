/**
 * Shared test helpers. Each section belongs to the tests named in its
 * heading; append new sections, never remove another's.
 *
 * @module
 */

import {
  acceptToken,
  ClientProtocol,
  type ClientProtocolOptions,
  type CloseResult,
  type Protocol,
  type ProtocolEvent,
  ReadyState,
  ServerProtocol,
  type ServerProtocolOptions,
} from "../src/core/mod.ts";
import { nextTurn } from "../src/timers.ts";

// ---- Handshake helpers (http, extensions, handshake, server and client protocol tests) ----

/** The RFC 6455 §1.3 example key. */
export const RFC_KEY = "dGhlIHNhbXBsZSBub25jZQ==";
/** The accept token for {@linkcode RFC_KEY} (RFC 6455 §1.3). */
export const RFC_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
/** The RFC 6455 §5.7 mask key. */
export const RFC_MASK = [0x37, 0xfa, 0x21, 0x3d];

/** Bytes of a string, one byte per UTF-16 code unit (ISO-8859-1), as on an HTTP wire. */
export function latin1Bytes(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i) & 0xff;
  return bytes;
}

/** Joins buffers into one. */
export function joinBytes(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/** Bytes per `String.fromCharCode` call in {@linkcode latin1Text}: well under any engine's argument limit. */
const LATIN1_RUN = 8192;

/** Bytes (one buffer or several) read as ISO-8859-1 text. */
export function latin1Text(bytes: Uint8Array | readonly Uint8Array[]): string {
  if (!(bytes instanceof Uint8Array)) return bytes.map((chunk) => latin1Text(chunk)).join("");
  // Whole runs at a time: a string built byte by byte costs about 0.3 us per byte, which held an
  // in-process peer's event loop for most of a second over 2 MB. (TextDecoder's "latin1" is
  // windows-1252, which maps 0x80-0x9f elsewhere.)
  const parts: string[] = [];
  for (let at = 0; at < bytes.length; at += LATIN1_RUN) {
    parts.push(String.fromCharCode.apply(null, bytes.subarray(at, at + LATIN1_RUN) as unknown as number[]));
  }
  return parts.join("");
}

/** What to change in the default upgrade request. */
export interface UpgradeRequestOptions {
  /** Request method. Default `GET`. */
  method?: string;
  /** Request target. Default `/chat`. */
  target?: string;
  /** HTTP version. Default `HTTP/1.1`. */
  version?: string;
  /** Default headers to replace (a string) or drop (`null`), by name as written below. */
  set?: Record<string, string | null>;
  /** Headers appended after the defaults. */
  extra?: [string, string][];
}

/**
 * The RFC 6455 §1.3 opening request as text, with changes: Host, Upgrade,
 * Connection, Sec-WebSocket-Key and Sec-WebSocket-Version, then `extra`.
 */
export function upgradeRequest(options: UpgradeRequestOptions = {}): string {
  const defaults: [string, string][] = [
    ["Host", "server.example.com"],
    ["Upgrade", "websocket"],
    ["Connection", "Upgrade"],
    ["Sec-WebSocket-Key", RFC_KEY],
    ["Sec-WebSocket-Version", "13"],
  ];
  const set = options.set ?? {};
  const lines = [`${options.method ?? "GET"} ${options.target ?? "/chat"} ${options.version ?? "HTTP/1.1"}`];
  for (const [name, value] of defaults) {
    const replaced = name in set ? set[name] : value;
    if (replaced !== null) lines.push(`${name}: ${replaced}`);
  }
  for (const [name, value] of options.extra ?? []) lines.push(`${name}: ${value}`);
  return lines.join("\r\n") + "\r\n\r\n";
}

/** A valid 101 answer to the RFC 6455 §1.3 request, with extra header lines. */
export function acceptResponseText(accept: string, extra: string[] = []): string {
  return ["HTTP/1.1 101 Switching Protocols", "Upgrade: websocket", "Connection: Upgrade"]
    .concat(`Sec-WebSocket-Accept: ${accept}`, extra)
    .join("\r\n") + "\r\n\r\n";
}

/** One frame; masked with `maskKey` when given (as a client sends), payloads under 65536 bytes. */
export function frameBytes(
  first: number,
  payload: Uint8Array | string,
  maskKey?: readonly number[],
): Uint8Array {
  const data = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
  const n = data.length;
  const head = n < 126 ? [first, n] : [first, 126, n >> 8, n & 0xff];
  if (maskKey) head[1] |= 0x80;
  const out = new Uint8Array(head.length + (maskKey ? 4 : 0) + n);
  out.set(head);
  if (maskKey) out.set(maskKey, head.length);
  const at = head.length + (maskKey ? 4 : 0);
  for (let i = 0; i < n; i++) out[at + i] = data[i] ^ (maskKey ? maskKey[i & 3] : 0);
  return out;
}

/** A frame as read back by {@linkcode readFrames}. */
export interface RawFrame {
  /** The first header byte: FIN, RSV bits and opcode. */
  first: number;
  /** Whether the frame was masked. */
  masked: boolean;
  /** The payload, unmasked. */
  payload: Uint8Array;
}

/** Splits bytes into frames (payloads under 65536 bytes), unmasking them. */
export function readFrames(bytes: Uint8Array | readonly Uint8Array[]): RawFrame[] {
  const b = bytes instanceof Uint8Array ? bytes : joinBytes(bytes);
  const frames: RawFrame[] = [];
  let at = 0;
  while (at < b.length) {
    const first = b[at], masked = (b[at + 1] & 0x80) !== 0;
    let n = b[at + 1] & 0x7f;
    at += 2;
    if (n === 126) {
      n = (b[at] << 8) | b[at + 1];
      at += 2;
    } else if (n === 127) {
      throw new Error("readFrames() does not read 64-bit lengths");
    }
    const key = masked ? [...b.subarray(at, at + 4)] : [0, 0, 0, 0];
    if (masked) at += 4;
    if (at + n > b.length) throw new Error("truncated frame");
    const payload = b.slice(at, at + n).map((x, i) => x ^ key[i & 3]);
    frames.push({ first, masked, payload });
    at += n;
  }
  return frames;
}

// ---- Frame and protocol helpers (frame, protocol and fuzz tests) ----

/** Bytes from hex pairs, whitespace ignored: `hex("81 05 48 65 6c 6c 6f")`. */
export function hex(text: string): Uint8Array {
  const digits = text.replace(/\s+/g, "");
  if (digits.length % 2 !== 0 || /[^0-9a-fA-F]/.test(digits)) throw new Error(`not hex: ${text}`);
  const out = new Uint8Array(digits.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(digits.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/**
 * The RFC 7692 §7.2.3 compressed payloads of "Hello", as a frame carries them
 * (without the `00 00 ff ff` a sync flush ends with).
 */
export const RFC7692 = {
  /** §7.2.3.1: one block. */
  hello: hex("f2 48 cd c9 c9 07 00"),
  /** §7.2.3.2: the second message, using the first's window. */
  helloAgain: hex("f2 00 11 00 00"),
  /** §7.2.3.3: a stored block. */
  stored: hex("00 05 00 fa ff 48 65 6c 6c 6f 00"),
  /** §7.2.3.4: the block has BFINAL set. */
  final: hex("f3 48 cd c9 c9 07 00 00"),
  /** §7.2.3.5: two blocks. */
  twoBlocks: hex("f2 48 05 00 00 00 ff ff ca c9 c9 07 00"),
};

/** The tail of a sync flush, which permessage-deflate strips from each message. */
export const SYNC_TAIL = hex("00 00 ff ff");

/** Bytes as spaced hex pairs, for readable assertion messages. */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}

/** `length` bytes counting 0, 1, … 255, 0, … */
export function counting(length: number, start = 0): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (start + i) & 0xff;
  return out;
}

/**
 * A random source that fills every buffer with `pattern` repeated. With a
 * 4-byte pattern, every mask key a client draws is that pattern (keys come
 * from a pool filled by the source, at offsets that are multiples of 4).
 */
export function repeatingRandom(pattern: readonly number[]): (target: Uint8Array) => void {
  return (target) => {
    for (let i = 0; i < target.length; i++) target[i] = pattern[i % pattern.length];
  };
}

/** The header of one frame: the minimal 7, 16 or 64-bit length, then the mask key if given. */
export function frameHeader(first: number, length: number, maskKey?: readonly number[]): Uint8Array {
  const head = [first];
  if (length < 126) head.push(length);
  else if (length < 65536) head.push(126, length >> 8, length & 0xff);
  else {
    const high = Math.floor(length / 0x100000000);
    head.push(127, high >>> 24, (high >>> 16) & 0xff, (high >>> 8) & 0xff, high & 0xff);
    head.push(length >>> 24, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff);
  }
  if (maskKey) {
    head[1] |= 0x80;
    head.push(...maskKey);
  }
  return new Uint8Array(head);
}

/** XORs `payload` with the 4-byte `maskKey` into a new buffer (masking and unmasking are the same). */
export function maskPayload(payload: Uint8Array, maskKey: readonly number[]): Uint8Array {
  return payload.map((b, i) => b ^ maskKey[i & 3]);
}

/** One frame of any size (7, 16 or 64-bit length), masked with `maskKey` when given. */
export function buildFrame(
  first: number,
  payload: Uint8Array | string,
  maskKey?: readonly number[],
): Uint8Array {
  const data = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
  const head = frameHeader(first, data.length, maskKey);
  const out = new Uint8Array(head.length + data.length);
  out.set(head);
  out.set(maskKey ? maskPayload(data, maskKey) : data, head.length);
  return out;
}

/**
 * Masks an unmasked frame (any length encoding) with `maskKey`: sets the mask
 * bit, inserts the key after the length, XORs the payload. Trailing bytes
 * after the frame are an error.
 */
export function maskFrame(frame: Uint8Array, maskKey: readonly number[]): Uint8Array {
  if (frame[1] & 0x80) throw new Error("the frame is already masked");
  const len7 = frame[1] & 0x7f;
  const headLength = len7 === 127 ? 10 : len7 === 126 ? 4 : 2;
  const out = new Uint8Array(frame.length + 4);
  out.set(frame.subarray(0, headLength));
  out[1] |= 0x80;
  out.set(maskKey, headLength);
  out.set(maskPayload(frame.subarray(headLength), maskKey), headLength + 4);
  return out;
}

/** One way of cutting a byte stream into chunks. */
export interface Split {
  /** How it was cut, for assertion messages. */
  label: string;
  /** The chunks, in order; joined they are the stream. */
  chunks: Uint8Array[];
}

/**
 * The ways to feed `bytes`: whole, in two pieces cut at every offset (or at
 * `offsets` only, for big streams), and one byte at a time.
 */
export function splits(bytes: Uint8Array, offsets?: Iterable<number>): Split[] {
  const out: Split[] = [{ label: "whole", chunks: [bytes] }];
  const cuts = offsets ?? Array.from({ length: Math.max(0, bytes.length - 1) }, (_, i) => i + 1);
  for (const at of cuts) {
    if (at <= 0 || at >= bytes.length) continue;
    out.push({ label: `cut at ${at}`, chunks: [bytes.subarray(0, at), bytes.subarray(at)] });
  }
  if (bytes.length > 1) {
    out.push({ label: "one byte at a time", chunks: Array.from(bytes, (_, i) => bytes.subarray(i, i + 1)) });
  }
  return out;
}

/** Feeds `bytes` in pieces of `size` bytes. */
export function feedInPieces(protocol: Protocol<unknown>, bytes: Uint8Array, size: number): void {
  for (let at = 0; at < bytes.length; at += size) protocol.receiveData(bytes.subarray(at, at + size));
}

/** Feeds the chunks in order; returns the events they produced. */
export function feed<E>(protocol: Protocol<E>, chunks: readonly Uint8Array[]): (ProtocolEvent | E)[] {
  for (const chunk of chunks) protocol.receiveData(chunk);
  return protocol.events();
}

/** Everything queued for sending, as one buffer. */
export function sent(protocol: Protocol<unknown>): Uint8Array {
  return joinBytes(protocol.dataToSend());
}

/** A server after a completed handshake (RFC 6455 §1.3 request), its events and output drained. */
export function openServer(options: ServerProtocolOptions = {}): ServerProtocol {
  const server = new ServerProtocol(options);
  server.receiveData(latin1Bytes(upgradeRequest()));
  const events = server.events();
  if (events.length !== 1 || events[0].type !== "request") {
    throw new Error(`expected a request event, got ${JSON.stringify(events)}`);
  }
  server.accept();
  if (!latin1Text(server.dataToSend()).startsWith("HTTP/1.1 101 ")) throw new Error("no 101 response");
  if (server.readyState !== ReadyState.Open) throw new Error("the server is not open");
  return server;
}

/**
 * A client after a completed handshake, its events and output drained. Unless
 * `random` is given, every mask key is the RFC 6455 §5.7 key 37 fa 21 3d.
 */
export function openClient(options: Partial<ClientProtocolOptions> = {}): ClientProtocol {
  const client = new ClientProtocol({ url: "ws://server.example.com/chat", random: RFC_RANDOM, ...options });
  client.sendRequest();
  const request = latin1Text(client.dataToSend());
  const key = /\r\nSec-WebSocket-Key: ([^\r]+)\r\n/i.exec(request)?.[1];
  if (!key) throw new Error(`no key in ${request}`);
  client.receiveData(latin1Bytes(acceptResponseText(acceptToken(key))));
  const events = client.events();
  if (events.length !== 1 || events[0].type !== "accepted") {
    throw new Error(`expected an accepted event, got ${JSON.stringify(events)}`);
  }
  if (client.readyState !== ReadyState.Open) throw new Error("the client is not open");
  return client;
}

/** Fills random buffers with the RFC 6455 §5.7 mask key 37 fa 21 3d, repeated. */
export const RFC_RANDOM: (target: Uint8Array) => void = repeatingRandom(RFC_MASK);

/** The RFC 6455 §5.7 example frames; the binary payloads (unspecified there) count 0, 1, … 255, 0, … */
export const RFC_FRAMES = {
  /** A single-frame unmasked text message "Hello". */
  text: hex("81 05 48 65 6c 6c 6f"),
  /** A single-frame masked text message "Hello", key 37 fa 21 3d. */
  maskedText: hex("81 85 37 fa 21 3d 7f 9f 4d 51 58"),
  /** A fragmented unmasked text message: "Hel", then "lo". */
  fragmented: hex("01 03 48 65 6c 80 02 6c 6f"),
  /** An unmasked ping with "Hello". */
  ping: hex("89 05 48 65 6c 6c 6f"),
  /** A masked pong with "Hello", key 37 fa 21 3d. */
  maskedPong: hex("8a 85 37 fa 21 3d 7f 9f 4d 51 58"),
  /** 256 bytes of binary data in a single unmasked frame (16-bit length). */
  binary256: joinBytes([hex("82 7e 01 00"), counting(256)]),
  /** 64 KiB of binary data in a single unmasked frame (64-bit length). */
  binary64k: joinBytes([hex("82 7f 00 00 00 00 00 01 00 00"), counting(65536)]),
};

/** Rejects when `promise` takes longer than `ms`, naming `label`, so no test can hang. */
export function within<T>(promise: Promise<T>, label: string, ms = 10000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${label}: no result within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Resolves once `condition()` holds, checking after every turn of the event loop; rejects, naming
 * `label`, if it still does not after `ms`. For waiting on a state the code under test reaches in
 * its own time, instead of sleeping for a guess of that time.
 */
export async function eventually(condition: () => boolean, label: string, ms = 20000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`${label}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

// ---- permessage-deflate helpers (inflate, permessage-deflate tests) ----

/** Chatty JSON records, the traffic permessage-deflate is for; the same text for the same size and seed. */
export function jsonRecords(size: number, seed = 1): string {
  const rng = new Rng(seed);
  const next = () => rng.next();
  let text = "";
  for (let id = 0; text.length < size; id++) {
    text += JSON.stringify({ id, user: `user${Math.floor(next() * 50)}`, score: next(), tags: ["a", "b"] }) +
      "\n";
  }
  return text.slice(0, size);
}

/** mulberry32: a small, seedable PRNG, so every failure reproduces. */
export class Rng {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }
  /** A float in [0, 1). */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.int(256);
    return out;
  }
  /** A mask key. */
  key(): number[] {
    return [this.int(256), this.int(256), this.int(256), this.int(256)];
  }
}

/** Cuts `bytes` into pieces at random points (1 to `max` bytes each). */
export function randomPieces(rng: Rng, bytes: Uint8Array, max: number): Uint8Array[] {
  const pieces: Uint8Array[] = [];
  for (let at = 0; at < bytes.length;) {
    const n = 1 + rng.int(max);
    pieces.push(bytes.subarray(at, at + n));
    at += n;
  }
  return pieces;
}

// ---- Connection parts (inbox, outbox, keepalive tests) ----

/** How a connection ends when the socket is gone without a close frame (1006). */
export const ABNORMAL: CloseResult = {
  code: 1006,
  reason: "",
  wasClean: false,
  received: undefined,
  sent: undefined,
};

/** Whether `promise` is still pending after the microtasks and timers queued so far ran. */
export async function pending(promise: Promise<unknown>): Promise<boolean> {
  let settled = false;
  promise.then(() => settled = true, () => settled = true);
  await nextTurn();
  return !settled;
}
