/**
 * Shared test helpers. Each section belongs to the tests named in its
 * heading; append new sections, never remove another's.
 *
 * @module
 */

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

/** Bytes (one buffer or several) read as ISO-8859-1 text. */
export function latin1Text(bytes: Uint8Array | readonly Uint8Array[]): string {
  const joined = bytes instanceof Uint8Array ? bytes : joinBytes(bytes);
  let text = "";
  for (const b of joined) text += String.fromCharCode(b);
  return text;
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
