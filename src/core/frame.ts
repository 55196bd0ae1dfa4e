/**
 * Frames (RFC 6455 §5.2): an incremental decoder that reads as many frames as
 * a chunk holds, and an encoder that batches frames into few buffers.
 *
 * @module
 */

import { CloseCode } from "./close.ts";
import { ProtocolError } from "./errors.ts";
import { mask } from "./mask.ts";

/** The zero-length buffer every decoder and encoder starts with: nothing is ever written to it. */
const NONE: Uint8Array<ArrayBuffer> = new Uint8Array(0);
/** The queue of every encoder with nothing queued (never added to: the first chunk gets an array). */
const NO_CHUNKS: Uint8Array[] = [];

/**
 * Frame opcodes (RFC 6455 §5.2). 0x3–0x7 and 0xB–0xF are reserved.
 *
 * @category Frames
 *
 * @example Testing for a control opcode
 * ```ts
 * import { Opcode } from "@sock/sock";
 * import { assert, assertEquals } from "@std/assert";
 *
 * assert(Opcode.Ping >= 0x8);
 * assertEquals(Opcode.Text, 1);
 * ```
 */
export const Opcode = {
  /** Continues a fragmented message. */
  Continuation: 0x0,
  /** First frame of a text message. */
  Text: 0x1,
  /** First frame of a binary message. */
  Binary: 0x2,
  /** Closes the connection. */
  Close: 0x8,
  /** Asks for a pong. */
  Ping: 0x9,
  /** Answers a ping, or a one-way heartbeat. */
  Pong: 0xa,
} as const;

/**
 * One of the {@linkcode Opcode} values.
 *
 * @category Frames
 */
export type Opcode = typeof Opcode[keyof typeof Opcode];

/**
 * The RSV1 bit of the first header byte (claimed by permessage-deflate).
 *
 * @category Frames
 */
export const RSV1 = 0x40;
/**
 * The RSV2 bit.
 *
 * @category Frames
 */
export const RSV2 = 0x20;
/**
 * The RSV3 bit.
 *
 * @category Frames
 */
export const RSV3 = 0x10;

/**
 * Largest payload a control frame may carry (§5.5).
 *
 * @category Frames
 */
export const MAX_CONTROL_PAYLOAD = 125;

/**
 * Receives what a {@linkcode FrameDecoder} reads, in order.
 *
 * @category Frames
 */
export interface FrameSink {
  /**
   * A frame header was read and passed the frame-level checks.
   *
   * @param fin The FIN bit.
   * @param rsv The RSV bits, still in place (`0x70` mask of the first byte).
   * @param opcode The opcode.
   * @param length The payload length.
   */
  frameStart(fin: boolean, rsv: number, opcode: number, length: number): void;
  /**
   * The next piece of the current frame's payload, still masked: the bytes
   * of the caller's chunk from `start` to `end`, valid during the call (no
   * view is made, as one costs more than the work for small frames). Unmask
   * them with `mask(chunk, key, target, offset, phase, start, end)` straight
   * into wherever they must go.
   *
   * @param chunk The chunk being decoded, as received.
   * @param start Where the piece starts in `chunk`.
   * @param end Where it ends.
   * @param key The frame's mask key, 0 for an unmasked frame.
   * @param phase How many payload bytes came before this piece, modulo 4.
   */
  framePayload(chunk: Uint8Array, start: number, end: number, key: number, phase: number): void;
  /** The current frame's payload is complete. */
  frameEnd(): void;
}

/**
 * Options for {@linkcode FrameDecoder}.
 *
 * @category Frames
 */
export interface FrameDecoderOptions {
  /** `true` to require masked frames (a server), `false` to refuse them (a client). */
  expectMasked: boolean;
  /** RSV bits that negotiated extensions may set on data frames. Default 0. */
  allowedRsv?: number;
  /**
   * Largest payload accepted in one frame; larger is refused with 1009 from the header.
   * Default 2^53 − 1, the largest length a number holds exactly.
   */
  maxFrameSize?: number;
}

const enum State {
  Header,
  Payload,
}

/**
 * Incremental frame decoder: feed it bytes split in any way, it calls its
 * {@linkcode FrameSink} for every header and payload piece. It checks the
 * frame-level rules of RFC 6455 §5.2–5.5 and throws {@linkcode ProtocolError}:
 * reserved opcodes, RSV bits no extension claims, masking, control frames
 * that are fragmented or over 125 bytes, a 64-bit length with its top bit set
 * (all 1002), and frames over `maxFrameSize` (1009), all before any payload
 * is read. Input chunks are never modified or retained.
 *
 * @category Frames
 *
 * @example Decoding the RFC 6455 §5.7 masked "Hello"
 * ```ts
 * import { FrameDecoder, type FrameSink, mask } from "@sock/sock";
 * import { assertEquals } from "@std/assert";
 *
 * const pieces: string[] = [];
 * const sink: FrameSink = {
 *   frameStart(fin, _rsv, opcode, length) { pieces.push(`start ${fin} ${opcode} ${length}`); },
 *   framePayload(chunk, start, end, key, phase) {
 *     const out = new Uint8Array(end - start);
 *     mask(chunk, key, out, 0, phase, start, end);
 *     pieces.push(new TextDecoder().decode(out));
 *   },
 *   frameEnd() { pieces.push("end"); },
 * };
 * const decoder = new FrameDecoder(sink, { expectMasked: true });
 * decoder.write(new Uint8Array([0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]));
 * assertEquals(pieces, ["start true 1 5", "Hello", "end"]);
 * ```
 */
export class FrameDecoder {
  #sink: FrameSink;
  #expectMasked: boolean;
  /** RSV bits allowed on data frames. */
  allowedRsv: number;
  /** Largest frame payload accepted. */
  maxFrameSize: number;
  /**
   * Largest payload piece handed to the sink in one call; a larger one comes in several. The
   * sink lowers it where a piece's cost is not bounded by its size (a compressed payload).
   */
  maxPiece: number = Infinity;
  /**
   * Set by the sink to stop `write()` after the current header or piece: the sink has done
   * what it may in one call, and the caller feeds the rest of the chunk later.
   */
  stop: boolean = false;

  #state = State.Header;
  /** Header bytes carried over from a previous chunk; made the first time a header is split. */
  #spill = NONE;
  #spillLength = 0;
  #maskKey = 0;
  #remaining = 0;
  #phase = 0;

  /**
   * Creates a decoder that reports to `sink`.
   *
   * @param sink Receives headers and payload pieces.
   * @param options Masking side, allowed RSV bits and the frame size limit.
   */
  constructor(sink: FrameSink, options: FrameDecoderOptions) {
    this.#sink = sink;
    this.#expectMasked = options.expectMasked;
    this.allowedRsv = options.allowedRsv ?? 0;
    this.maxFrameSize = options.maxFrameSize ?? Number.MAX_SAFE_INTEGER;
  }

  /**
   * Decodes a chunk of the byte stream, up to its end or until the sink sets `stop`.
   *
   * @param chunk The next bytes received; not modified, not kept.
   * @returns How many bytes of `chunk` were read: all of them unless the sink set `stop`, in
   *   which case the rest must be written again, from there, before anything newer.
   * @throws {ProtocolError} At the first frame that breaks a rule; the decoder must not be used after that.
   */
  write(chunk: Uint8Array): number {
    const n = chunk.length;
    let pos = 0;
    this.stop = false;
    while (pos < n && !this.stop) {
      if (this.#state === State.Header) {
        let header = chunk, at = pos;
        if (this.#spillLength > 0 || n - pos < 2) {
          // Gather a header split across chunks into the spill buffer.
          const took = this.#fillSpill(chunk, pos);
          pos += took;
          if (this.#spillLength < 2) return n;
          const need = headerSize(this.#spill);
          if (this.#spillLength < need) {
            const more = this.#fillSpill(chunk, pos, need);
            pos += more;
            if (this.#spillLength < need) return n;
          }
          this.#spillLength = 0;
          header = this.#spill;
          at = 0;
        } else {
          const need = headerSize(chunk, pos);
          if (n - pos < need) {
            if (this.#spill.length === 0) this.#spill = new Uint8Array(14);
            this.#spill.set(chunk.subarray(pos, n));
            this.#spillLength = n - pos;
            return n;
          }
          pos += need;
        }
        this.#readHeader(header, at);
        if (this.#remaining === 0) {
          this.#sink.frameEnd();
          continue;
        }
        this.#state = State.Payload;
        // Re-test the loop: a header that ends the chunk waits for its payload
        // instead of reporting an empty piece.
        continue;
      }
      // Payload.
      const take = Math.min(this.#remaining, n - pos, this.maxPiece);
      this.#remaining -= take;
      this.#sink.framePayload(chunk, pos, pos + take, this.#maskKey, this.#phase);
      pos += take;
      this.#phase = (this.#phase + take) & 3;
      if (this.#remaining === 0) {
        this.#state = State.Header;
        this.#sink.frameEnd();
      }
    }
    return pos;
  }

  /** Copies bytes into the spill until it holds `limit` bytes (the 2 that tell the header's size by default). */
  #fillSpill(chunk: Uint8Array, pos: number, limit = 2): number {
    const take = Math.min(limit - this.#spillLength, chunk.length - pos);
    if (take <= 0) return 0;
    if (this.#spill.length === 0) this.#spill = new Uint8Array(14);
    this.#spill.set(chunk.subarray(pos, pos + take), this.#spillLength);
    this.#spillLength += take;
    return take;
  }

  #readHeader(b: Uint8Array, at: number): void {
    const b0 = b[at]!, b1 = b[at + 1]!;
    const fin = (b0 & 0x80) !== 0;
    const rsv = b0 & 0x70;
    const opcode = b0 & 0x0f;
    const masked = (b1 & 0x80) !== 0;
    let length = b1 & 0x7f;
    let p = at + 2;
    if (length === 126) {
      length = (b[p]! << 8) | b[p + 1]!;
      p += 2;
    } else if (length === 127) {
      const high = ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
      const low = ((b[p + 4]! << 24) | (b[p + 5]! << 16) | (b[p + 6]! << 8) | b[p + 7]!) >>> 0;
      if (high & 0x80000000) {
        throw new ProtocolError("64-bit payload length has its top bit set", CloseCode.ProtocolError);
      }
      length = high * 0x100000000 + low;
      p += 8;
    }
    if (opcode >= 0x8) {
      if (opcode > 0xa) {
        throw new ProtocolError(`reserved opcode 0x${opcode.toString(16)}`, CloseCode.ProtocolError);
      }
      if (!fin) throw new ProtocolError("fragmented control frame", CloseCode.ProtocolError);
      if (length > MAX_CONTROL_PAYLOAD) {
        throw new ProtocolError(`control frame payload of ${length} bytes`, CloseCode.ProtocolError);
      }
      if (rsv !== 0) throw new ProtocolError("RSV bits set on a control frame", CloseCode.ProtocolError);
    } else {
      if (opcode > 0x2) {
        throw new ProtocolError(`reserved opcode 0x${opcode.toString(16)}`, CloseCode.ProtocolError);
      }
      if ((rsv & ~this.allowedRsv) !== 0) {
        throw new ProtocolError("RSV bits set without a negotiated extension", CloseCode.ProtocolError);
      }
    }
    if (masked !== this.#expectMasked) {
      throw new ProtocolError(
        masked ? "masked frame from a server" : "unmasked frame from a client",
        CloseCode.ProtocolError,
      );
    }
    if (length > this.maxFrameSize) {
      throw new ProtocolError(
        `frame of ${length} bytes exceeds the limit of ${this.maxFrameSize}`,
        CloseCode.MessageTooBig,
      );
    }
    this.#maskKey = masked ? ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0 : 0;
    this.#phase = 0;
    this.#remaining = length;
    this.#sink.frameStart(fin, rsv, opcode, length);
  }
}

/** The size of the header that starts at `b[at]`, read from its first two bytes. */
function headerSize(b: Uint8Array, at = 0): number {
  const b1 = b[at + 1]!;
  const len = b1 & 0x7f;
  return 2 + (len === 126 ? 2 : len === 127 ? 8 : 0) + (b1 & 0x80 ? 4 : 0);
}

/**
 * Payloads at least this big are queued by reference instead of copied (when not masked). Smaller
 * ones are copied into the staging buffer, which is reused, so a burst of them is one buffer. The
 * writer joins buffers below it into one write (`Outbox`): one size policy for both.
 */
export const LARGE_PAYLOAD = 262144;
/**
 * A staging buffer grows to at least this size. The first one is as large as its first frame,
 * so a connection that sends only the odd ping or close frame holds a few bytes.
 */
const MIN_STAGING = 1024;
/** A staging buffer above this size is dropped when a burst uses under an eighth of it. */
const KEEP_STAGING = 65536;

/**
 * Encodes frames into an outgoing queue. Small frames are packed together
 * into one buffer, so a burst of messages costs one write; an unmasked
 * payload of 256 KiB or more is queued by reference after its header, without a copy. Masking
 * (a client's job) writes masked bytes into the queue and never touches the
 * caller's buffer.
 *
 * @category Frames
 *
 * @example Encoding the RFC 6455 §5.7 unmasked "Hello"
 * ```ts
 * import { FrameEncoder, Opcode } from "@sock/sock";
 * import { assertEquals } from "@std/assert";
 *
 * const encoder = new FrameEncoder();
 * encoder.frame(Opcode.Text, new TextEncoder().encode("Hello"), true, 0);
 * assertEquals(encoder.take(), [new Uint8Array([0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f])]);
 * ```
 */
export class FrameEncoder {
  #keys: { next(): number } | undefined;
  /** Grown on first use, so an idle connection holds no staging buffer until it sends. */
  #staging = NONE;
  /** The buffer `take(true)` handed out last; it becomes the staging buffer at the next. */
  #spare = NONE;
  /**
   * Speed trick: the last view `take(true)` made of each buffer, handed out again for the same
   * length, as a view costs (commit 0b3fab6: views were 4–9% of Bun's profile of bench (h), fan-out;
   * the gain in throughput was not measured).
   */
  #stagingView: Uint8Array | undefined;
  #spareView: Uint8Array | undefined;
  #used = 0;
  /** `NO_CHUNKS` while nothing is queued: an idle connection holds no array of its own. */
  #chunks: Uint8Array[] = NO_CHUNKS;
  #queued = 0;

  /**
   * Creates an encoder with an empty queue.
   *
   * @param keys Hands out a fresh mask key per frame, such as `MaskKeys` (a client); omit it to send unmasked frames (a server).
   */
  constructor(keys?: { next(): number }) {
    this.#keys = keys;
  }

  /** Bytes queued and not yet taken. */
  get pending(): number {
    return this.#queued + this.#used;
  }

  /**
   * Lets go of the staging buffers, which a past burst may have left large, so a connection
   * gone quiet holds none; frames sent later make new ones. Call it only when every buffer
   * taken has been written.
   */
  shrink(): void {
    this.#spare = NONE;
    this.#spareView = undefined;
    if (this.#used > 0) return;
    this.#staging = NONE;
    this.#stagingView = undefined;
  }

  /**
   * Queues one frame.
   *
   * @param opcode The frame's opcode.
   * @param payload The payload; not modified.
   * @param fin The FIN bit.
   * @param rsv RSV bits already in place (`0x40` for RSV1).
   */
  frame(
    opcode: number,
    payload: Uint8Array,
    fin: boolean,
    rsv: number,
  ): void {
    const length = payload.length;
    const keys = this.#keys;
    const key = keys ? keys.next() : 0;
    const masked = keys !== undefined;
    const headerLength = 2 + (length < 126 ? 0 : length < 65536 ? 2 : 8) + (masked ? 4 : 0);
    const large = length >= LARGE_PAYLOAD;
    if (large && !masked) {
      // Header into the staging buffer, payload by reference.
      const at = this.#reserve(headerLength);
      this.#writeHeader(this.#staging, at, opcode, fin, rsv, length, masked, key);
      this.#flushStaging();
      this.#queue(payload);
      this.#queued += length;
      return;
    }
    if (large) {
      const out = new Uint8Array(headerLength + length);
      const at = this.#writeHeader(out, 0, opcode, fin, rsv, length, masked, key);
      mask(payload, key, out, at, 0, 0, length);
      this.#flushStaging();
      this.#queue(out);
      this.#queued += out.length;
      return;
    }
    const at = this.#reserve(headerLength + length);
    const payloadAt = this.#writeHeader(this.#staging, at, opcode, fin, rsv, length, masked, key);
    // Unmasked (a server's frames), a plain copy: set() rather than mask()'s byte loop, even for
    // small payloads (an in-memory echo of 32-byte messages: 217 -> 202 ns a message on Bun,
    // 262 -> 219 on Deno).
    if (masked) mask(payload, key, this.#staging, payloadAt, 0, 0, length);
    else this.#staging.set(payload, payloadAt);
  }

  /**
   * Queues raw bytes, such as an HTTP response, in order with the frames.
   *
   * @param bytes The bytes to send.
   * @param handOver `true` when the caller never touches `bytes` again: they are
   *   queued by reference instead of copied.
   */
  raw(bytes: Uint8Array, handOver = false): void {
    if (!handOver) {
      const at = this.#reserve(bytes.length);
      this.#staging.set(bytes, at);
      return;
    }
    this.#flushStaging();
    this.#queue(bytes);
    this.#queued += bytes.length;
  }

  /**
   * Takes everything queued, in order, as few buffers as possible.
   *
   * @param reuse `true` when the buffers taken the time before are no longer
   *   needed: the packed small frames then come as a view of a buffer the
   *   encoder fills again after the next call, instead of as a copy.
   * @returns The buffers to write, in order; empty when nothing is queued.
   */
  take(reuse = false): Uint8Array[] {
    if (reuse && this.#used > 0) {
      let view = this.#stagingView;
      if (view?.length !== this.#used) view = this.#staging.subarray(0, this.#used);
      this.#queue(view);
      this.#queued += this.#used;
      this.#used = 0;
      // Frames queued from now on go to the other buffer, free since the previous call, unless a
      // burst left it much larger than the traffic now needs.
      const spare = this.#spare, spareView = this.#spareView;
      this.#spare = this.#staging;
      this.#spareView = view;
      this.#staging = spare.length > KEEP_STAGING && spare.length > this.#queued * 8 ? NONE : spare;
      this.#stagingView = this.#staging === spare ? spareView : undefined;
    }
    this.#flushStaging();
    const chunks = this.#chunks;
    if (chunks === NO_CHUNKS) return [];
    this.#chunks = NO_CHUNKS;
    this.#queued = 0;
    return chunks;
  }

  #queue(chunk: Uint8Array): void {
    if (this.#chunks === NO_CHUNKS) this.#chunks = [chunk];
    else this.#chunks.push(chunk);
  }

  #flushStaging(): void {
    if (this.#used === 0) return;
    this.#queue(this.#staging.slice(0, this.#used));
    this.#queued += this.#used;
    this.#used = 0;
  }

  /** Makes room for `size` bytes in the staging buffer; returns where they start. */
  #reserve(size: number): number {
    const at = this.#used;
    if (at + size > this.#staging.length) {
      const length = this.#staging.length;
      const grown = new Uint8Array(length === 0 ? size : Math.max(length * 2, at + size, MIN_STAGING));
      if (at > 0) grown.set(this.#staging.subarray(0, at));
      this.#staging = grown;
      this.#stagingView = undefined;
    }
    this.#used = at + size;
    return at;
  }

  #writeHeader(
    b: Uint8Array,
    at: number,
    opcode: number,
    fin: boolean,
    rsv: number,
    length: number,
    masked: boolean,
    key: number,
  ): number {
    b[at++] = (fin ? 0x80 : 0) | rsv | opcode;
    const maskBit = masked ? 0x80 : 0;
    if (length < 126) {
      b[at++] = maskBit | length;
    } else if (length < 65536) {
      b[at++] = maskBit | 126;
      b[at++] = length >>> 8;
      b[at++] = length & 0xff;
    } else {
      b[at++] = maskBit | 127;
      const high = Math.floor(length / 0x100000000);
      b[at++] = high >>> 24;
      b[at++] = (high >>> 16) & 0xff;
      b[at++] = (high >>> 8) & 0xff;
      b[at++] = high & 0xff;
      b[at++] = length >>> 24;
      b[at++] = (length >>> 16) & 0xff;
      b[at++] = (length >>> 8) & 0xff;
      b[at++] = length & 0xff;
    }
    if (masked) {
      b[at++] = key >>> 24;
      b[at++] = (key >>> 16) & 0xff;
      b[at++] = (key >>> 8) & 0xff;
      b[at++] = key & 0xff;
    }
    return at;
  }
}
