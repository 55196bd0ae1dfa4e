/**
 * RESP, the Redis serialization protocol (RESP2 and RESP3), sans I/O: an
 * encoder for commands and an incremental decoder for replies, with limits on
 * everything a peer controls. A small codec for publishing through Redis
 * pub/sub, not a general Redis client.
 *
 * How replies are represented ({@linkcode RespValue}):
 *
 * | RESP type                | JavaScript value                                        |
 * | ------------------------ | ------------------------------------------------------- |
 * | simple string `+`        | `string`                                                |
 * | error `-`, bulk error `!` | {@linkcode RespError} (a value, never thrown)          |
 * | integer `:`              | `number`, or `bigint` beyond ±(2^53 − 1)                |
 * | bulk string `$`          | `Uint8Array` (a copy); `$-1` is `null`                  |
 * | array `*`                | `RespValue[]`; `*-1` is `null`                          |
 * | null `_`                 | `null`                                                  |
 * | boolean `#`              | `boolean`                                               |
 * | double `,`               | `number` (`inf`, `-inf` and `nan` included)             |
 * | big number `(`           | `bigint`                                                |
 * | verbatim string `=`      | {@linkcode RespVerbatim}                                |
 * | map `%`                  | `Map` (keys as decoded: a bulk key is a `Uint8Array`)   |
 * | set `~`                  | `Set`                                                   |
 * | attribute `\|`           | read, checked against the limits and dropped            |
 * | push `>`                 | {@linkcode RespPush}                                    |
 *
 * RESP3 streamed strings and aggregates (`$?`, `*?`), which Redis never
 * sends, are refused as protocol errors.
 *
 * @module
 */

import { utf8Length } from "../core/utf8.ts";

const CR = 13, LF = 10;
const NONE: Uint8Array<ArrayBuffer> = new Uint8Array(0);
const utf8Decoder = new TextDecoder();
const utf8Encoder = new TextEncoder();

// Type bytes.
const SIMPLE = 0x2b, // +
  ERROR = 0x2d, // -
  INTEGER = 0x3a, // :
  BULK = 0x24, // $
  ARRAY = 0x2a, // *
  NULL = 0x5f, // _
  BOOLEAN = 0x23, // #
  DOUBLE = 0x2c, // ,
  BIG_NUMBER = 0x28, // (
  BULK_ERROR = 0x21, // !
  VERBATIM = 0x3d, // =
  MAP = 0x25, // %
  SET = 0x7e, // ~
  ATTRIBUTE = 0x7c, // |
  PUSH = 0x3e; // >

/** Most digits a length may have, leading zeros included. */
const MAX_LENGTH_DIGITS = 20;
const INT64_MIN = -(2n ** 63n), INT64_MAX = 2n ** 63n - 1n;

/**
 * An error reply (`-` or RESP3 `!`), returned by {@linkcode RespDecoder} as a
 * value like any other reply: the decoder never throws it. It extends `Error`
 * so that a client can reject the command's promise with it.
 *
 * @category Redis
 *
 * @example Reading an error reply
 * ```ts
 * import { RespDecoder, RespError } from "./resp.ts";
 * import { assert, assertEquals } from "@std/assert";
 *
 * const [reply] = new RespDecoder().write(new TextEncoder().encode("-WRONGTYPE Operation against a key\r\n"));
 * assert(reply instanceof RespError);
 * assertEquals(reply.prefix, "WRONGTYPE");
 * assertEquals(reply.message, "WRONGTYPE Operation against a key");
 * assertEquals(reply.bulk, false);
 * ```
 */
export class RespError extends Error {
  /** The first word of the message, by convention the error kind (`ERR`, `WRONGTYPE`, `NOAUTH`…). */
  readonly prefix: string;
  /** `true` for a RESP3 bulk error (`!`), `false` for a simple error (`-`). */
  readonly bulk: boolean;

  /**
   * Creates an error reply.
   *
   * @param message The error text as the server sent it.
   * @param bulk Whether it came as a bulk error.
   */
  constructor(message: string, bulk = false) {
    super(message);
    this.name = "RespError";
    const space = message.indexOf(" ");
    this.prefix = space < 0 ? message : message.slice(0, space);
    this.bulk = bulk;
  }
}

/**
 * A RESP3 verbatim string (`=`): text with a three-letter format (`txt` or `mkd`).
 *
 * @category Redis
 *
 * @example Reading a verbatim string
 * ```ts
 * import { RespDecoder, RespVerbatim, respText } from "./resp.ts";
 * import { assert, assertEquals } from "@std/assert";
 *
 * const [reply] = new RespDecoder().write(new TextEncoder().encode("=15\r\ntxt:Some string\r\n"));
 * assert(reply instanceof RespVerbatim);
 * assertEquals(reply.format, "txt");
 * assertEquals(respText(reply), "Some string");
 * ```
 */
export class RespVerbatim {
  /** The format, e.g. `txt` or `mkd`. */
  readonly format: string;
  /** The text, decoded as UTF-8. */
  readonly text: string;

  /**
   * Creates a verbatim string.
   *
   * @param format The three-letter format.
   * @param text The text.
   */
  constructor(format: string, text: string) {
    this.format = format;
    this.text = text;
  }
}

/**
 * A RESP3 push (`>`): out-of-band data such as a pub/sub message, kept apart
 * from command replies. RESP2 servers send pub/sub messages as plain arrays.
 *
 * @category Redis
 *
 * @example Reading a pub/sub message
 * ```ts
 * import { RespDecoder, RespPush, respText } from "./resp.ts";
 * import { assert, assertEquals } from "@std/assert";
 *
 * const bytes = new TextEncoder().encode(">3\r\n$7\r\nmessage\r\n$4\r\nroom\r\n$2\r\nhi\r\n");
 * const [reply] = new RespDecoder().write(bytes);
 * assert(reply instanceof RespPush);
 * assertEquals(reply.data.map(respText), ["message", "room", "hi"]);
 * ```
 */
export class RespPush {
  /** The pushed elements. */
  readonly data: RespValue[];

  /**
   * Creates a push.
   *
   * @param data The pushed elements.
   */
  constructor(data: RespValue[]) {
    this.data = data;
  }
}

/**
 * A decoded reply; see the module documentation for the mapping of every RESP type.
 *
 * @category Redis
 */
export type RespValue =
  | string
  | number
  | bigint
  | boolean
  | null
  | Uint8Array
  | RespError
  | RespVerbatim
  | RespPush
  | RespValue[]
  | Map<RespValue, RespValue>
  | Set<RespValue>;

/**
 * Malformed input or an exceeded limit in what a Redis server sent. The
 * connection cannot be resynchronized after it: close it. The message never
 * quotes the peer's bytes.
 *
 * @category Redis
 *
 * @example Refusing an unknown type byte
 * ```ts
 * import { RespDecoder, RespProtocolError } from "./resp.ts";
 * import { assertThrows } from "@std/assert";
 *
 * assertThrows(() => new RespDecoder().write(new TextEncoder().encode("?\r\n")), RespProtocolError);
 * ```
 */
export class RespProtocolError extends Error {
  /**
   * Creates a protocol error.
   *
   * @param message What went wrong.
   */
  constructor(message: string) {
    super(message);
    this.name = "RespProtocolError";
  }
}

/**
 * Limits for {@linkcode RespDecoder}, each checked while the bytes arrive.
 *
 * @category Redis
 */
export interface RespDecoderOptions {
  /** Longest bulk string, bulk error or verbatim string in bytes. Default 64 MiB (Redis allows 512 MiB). */
  maxBulkLength?: number;
  /** Most elements an array, set or push may declare, and most entries a map or attribute may. Default 1,048,576. */
  maxAggregateLength?: number;
  /** Most aggregates open inside one another. Default 32. */
  maxDepth?: number;
  /** Longest line of a simple string, error, integer, double, big number, boolean or null, CRLF excluded. Default 65,536. */
  maxLineLength?: number;
}

const enum State {
  /** Expecting a type byte. */
  Type,
  /** Reading a line-typed value up to its CR. */
  Line,
  /** The line ended with a CR that ended a chunk: expecting its LF. */
  LineLF,
  /** Reading the decimal length of a bulk or aggregate. */
  Length,
  /** Expecting the LF after a length. */
  LengthLF,
  /** Reading bulk bytes. */
  Bulk,
  /** Expecting the CR after the bulk bytes. */
  BulkCR,
  /** Expecting the LF after the bulk bytes. */
  BulkLF,
}

/** An aggregate being read. */
interface Frame {
  type: number;
  /** Elements still to come (two per map or attribute entry). */
  remaining: number;
  items: RespValue[];
}

/**
 * Incremental RESP2/RESP3 reply decoder: feed it bytes split in any way, it
 * returns the replies each chunk completes and keeps the partial one. It
 * never recurses (nesting lives in an explicit stack bounded by `maxDepth`),
 * checks declared lengths against the limits as their digits arrive and
 * allocates bulk buffers only as their bytes arrive (at most twice what has
 * arrived, or 16 KiB). Malformed input or an exceeded limit throws
 * {@linkcode RespProtocolError}, after which every `write()` throws again.
 *
 * Attributes (`|`) are read, limited like maps, and dropped: the value they
 * annotate is returned as if they were absent.
 *
 * @category Redis
 *
 * @example Decoding replies split across chunks
 * ```ts
 * import { RespDecoder } from "./resp.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const decoder = new RespDecoder();
 * const bytes = new TextEncoder().encode("+OK\r\n:42\r\n*2\r\n$3\r\nfoo\r\n_\r\n");
 * assertEquals(decoder.write(bytes.subarray(0, 12)), ["OK", 42]);
 * assertEquals(decoder.pending, true);
 * assertEquals(decoder.write(bytes.subarray(12)), [[new TextEncoder().encode("foo"), null]]);
 * assertEquals(decoder.pending, false);
 * ```
 */
export class RespDecoder {
  #maxBulkLength: number;
  #maxAggregateLength: number;
  #maxDepth: number;
  #maxLineLength: number;

  #state = State.Type;
  /** The type byte of the value being read. */
  #type = 0;
  #failed = false;
  /** Line bytes carried over from an earlier chunk. */
  #spill = NONE;
  #spillLength = 0;
  /** The length being read, its digit count and whether it started with `-`. */
  #number = 0;
  #digits = 0;
  #negative = false;
  /** The bulk being read: bytes so far (capacity grows as they arrive), how many, how many declared. */
  #bulk = NONE;
  #have = 0;
  #need = 0;
  #stack: Frame[] = [];
  /** The replies completed by the current `write()`. */
  #out: RespValue[] = [];

  /**
   * Creates a decoder.
   *
   * @param options Limits on what the server may send.
   */
  constructor(options: RespDecoderOptions = {}) {
    this.#maxBulkLength = limit(options.maxBulkLength, 64 * 1024 * 1024, "maxBulkLength");
    this.#maxAggregateLength = limit(options.maxAggregateLength, 1024 * 1024, "maxAggregateLength");
    this.#maxDepth = limit(options.maxDepth, 32, "maxDepth");
    this.#maxLineLength = limit(options.maxLineLength, 64 * 1024, "maxLineLength");
  }

  /** Whether part of a reply has been read and the rest is awaited. */
  get pending(): boolean {
    return this.#state !== State.Type || this.#stack.length > 0;
  }

  /**
   * Adds bytes and returns the replies they complete.
   *
   * @param chunk The next bytes received; not modified, not kept after the call.
   * @returns The replies completed, in order; empty while one is incomplete.
   * @throws {RespProtocolError} On malformed input or an exceeded limit, then on every later call.
   */
  write(chunk: Uint8Array): RespValue[] {
    if (this.#failed) throw new RespProtocolError("RESP decoder already failed");
    const out: RespValue[] = [];
    this.#out = out;
    try {
      this.#run(chunk);
    } catch (error) {
      this.#failed = true;
      this.#stack = [];
      this.#spill = this.#bulk = NONE;
      throw error;
    } finally {
      this.#out = [];
    }
    return out;
  }

  #run(chunk: Uint8Array): void {
    const n = chunk.length;
    let i = 0;
    while (i < n) {
      switch (this.#state) {
        case State.Type:
          this.#typeByte(chunk[i++]!);
          break;
        case State.Line:
          i = this.#readLine(chunk, i);
          break;
        case State.LineLF:
          if (chunk[i++] !== LF) throw new RespProtocolError("CR without LF");
          this.#state = State.Type;
          this.#spillLine();
          break;
        case State.Length:
          i = this.#readLength(chunk, i);
          break;
        case State.LengthLF:
          if (chunk[i++] !== LF) throw new RespProtocolError("CR without LF");
          this.#header();
          break;
        case State.Bulk:
          i = this.#readBulk(chunk, i);
          break;
        case State.BulkCR:
          if (chunk[i++] !== CR) throw new RespProtocolError("bulk string longer than declared");
          this.#state = State.BulkLF;
          break;
        case State.BulkLF:
          if (chunk[i++] !== LF) throw new RespProtocolError("CR without LF");
          this.#bulkDone();
          break;
      }
    }
  }

  /** A line that was gathered in the spill buffer is complete: read it, and let a large buffer go. */
  #spillLine(): void {
    this.#line(this.#spill.subarray(0, this.#spillLength));
    this.#spillLength = 0;
    if (this.#spill.length > 1024) this.#spill = NONE;
  }

  #typeByte(type: number): void {
    this.#type = type;
    switch (type) {
      case SIMPLE:
      case ERROR:
      case INTEGER:
      case NULL:
      case BOOLEAN:
      case DOUBLE:
      case BIG_NUMBER:
        this.#state = State.Line;
        return;
      case BULK:
      case BULK_ERROR:
      case VERBATIM:
      case ARRAY:
      case MAP:
      case SET:
      case ATTRIBUTE:
      case PUSH:
        this.#number = this.#digits = 0;
        this.#negative = false;
        this.#state = State.Length;
        return;
      default:
        throw new RespProtocolError(`unknown RESP type byte 0x${type.toString(16)}`);
    }
  }

  /** Reads a line-typed value from `i`; returns where reading stopped. */
  #readLine(chunk: Uint8Array, i: number): number {
    const n = chunk.length;
    const cr = chunk.indexOf(CR, i);
    const end = cr < 0 ? n : cr;
    const lf = chunk.indexOf(LF, i);
    if (lf >= 0 && lf < end) throw new RespProtocolError("LF without CR");
    if (this.#spillLength + end - i > this.#maxLineLength) {
      throw new RespProtocolError("RESP line longer than maxLineLength");
    }
    if (cr < 0 || cr + 1 === n) {
      // The line, or its LF, is in a later chunk.
      this.#append(chunk, i, end);
      if (cr >= 0) this.#state = State.LineLF;
      return n;
    }
    if (chunk[cr + 1] !== LF) throw new RespProtocolError("CR without LF");
    this.#state = State.Type;
    if (this.#spillLength === 0) {
      this.#line(chunk.subarray(i, cr));
    } else {
      this.#append(chunk, i, cr);
      this.#spillLine();
    }
    return cr + 2;
  }

  /** Keeps `chunk` from `start` to `end` after the line bytes so far. */
  #append(chunk: Uint8Array, start: number, end: number): void {
    const needed = this.#spillLength + end - start;
    if (needed > this.#spill.length) {
      const grown = new Uint8Array(
        Math.min(this.#maxLineLength, Math.max(needed, this.#spill.length * 2, 64)),
      );
      grown.set(this.#spill.subarray(0, this.#spillLength));
      this.#spill = grown;
    }
    this.#spill.set(chunk.subarray(start, end), this.#spillLength);
    this.#spillLength = needed;
  }

  /** Turns a complete line (CRLF excluded) into a value. */
  #line(bytes: Uint8Array): void {
    switch (this.#type) {
      case SIMPLE:
        return this.#emit(utf8Decoder.decode(bytes));
      case ERROR:
        return this.#emit(new RespError(utf8Decoder.decode(bytes), false));
      case INTEGER:
        return this.#emit(parseInteger(utf8Decoder.decode(bytes)));
      case DOUBLE:
        return this.#emit(parseDouble(utf8Decoder.decode(bytes)));
      case BIG_NUMBER: {
        const text = utf8Decoder.decode(bytes);
        if (!/^[+-]?[0-9]+$/.test(text)) throw new RespProtocolError("malformed RESP big number");
        return this.#emit(BigInt(text));
      }
      case BOOLEAN:
        if (bytes.length === 1 && (bytes[0] === 0x74 || bytes[0] === 0x66)) {
          return this.#emit(bytes[0] === 0x74);
        }
        throw new RespProtocolError("malformed RESP boolean");
      default: // NULL
        if (bytes.length !== 0) throw new RespProtocolError("malformed RESP null");
        return this.#emit(null);
    }
  }

  /** Reads the digits of a length from `i`, checking the limit at every digit; returns where reading stopped. */
  #readLength(chunk: Uint8Array, i: number): number {
    const n = chunk.length;
    const type = this.#type;
    const max = type === BULK || type === BULK_ERROR || type === VERBATIM
      ? this.#maxBulkLength
      : this.#maxAggregateLength;
    for (; i < n; i++) {
      const c = chunk[i]!;
      if (c >= 0x30 && c <= 0x39) {
        this.#number = this.#number * 10 + c - 0x30;
        if (++this.#digits > MAX_LENGTH_DIGITS) throw new RespProtocolError("malformed RESP length");
        if (this.#negative ? this.#number > 1 : this.#number > max) {
          throw new RespProtocolError(
            this.#negative
              ? "malformed RESP length"
              : max === this.#maxBulkLength
              ? "RESP bulk string longer than maxBulkLength"
              : "RESP aggregate longer than maxAggregateLength",
          );
        }
      } else if (c === CR) {
        if (this.#digits === 0 || (this.#negative && this.#number !== 1)) {
          throw new RespProtocolError("malformed RESP length");
        }
        this.#state = State.LengthLF;
        return i + 1;
      } else if (c === 0x2d && this.#digits === 0 && !this.#negative && (type === BULK || type === ARRAY)) {
        this.#negative = true;
      } else {
        throw new RespProtocolError(c === LF ? "LF without CR" : "malformed RESP length");
      }
    }
    return n;
  }

  /** Acts on a complete length. */
  #header(): void {
    const type = this.#type, length = this.#number;
    this.#state = State.Type;
    if (this.#negative) return this.#emit(null);
    if (type === BULK || type === BULK_ERROR || type === VERBATIM) {
      this.#need = length;
      this.#have = 0;
      this.#bulk = NONE;
      this.#state = length === 0 ? State.BulkCR : State.Bulk;
      return;
    }
    if (length === 0) {
      if (type !== ATTRIBUTE) this.#emit(aggregate(type, []));
      return;
    }
    if (this.#stack.length >= this.#maxDepth) {
      throw new RespProtocolError("RESP nesting deeper than maxDepth");
    }
    this.#stack.push({
      type,
      remaining: type === MAP || type === ATTRIBUTE ? length * 2 : length,
      items: [],
    });
  }

  /** Reads bulk bytes from `i`; returns where reading stopped. */
  #readBulk(chunk: Uint8Array, i: number): number {
    const need = this.#need, have = this.#have;
    const take = Math.min(need - have, chunk.length - i);
    if (have === 0 && take === need) {
      // The whole bulk is in this chunk: one copy of exactly its size (a copy, even of a Node Buffer).
      this.#bulk = new Uint8Array(chunk.subarray(i, i + take));
    } else {
      const needed = have + take;
      if (needed > this.#bulk.length) {
        const grown = new Uint8Array(Math.min(need, Math.max(needed, this.#bulk.length * 2, 16384)));
        grown.set(this.#bulk.subarray(0, have));
        this.#bulk = grown;
      }
      this.#bulk.set(chunk.subarray(i, i + take), have);
    }
    this.#have = have + take;
    if (this.#have === need) this.#state = State.BulkCR;
    return i + take;
  }

  /** Turns a complete bulk into a value. */
  #bulkDone(): void {
    const bytes = this.#bulk;
    this.#bulk = NONE;
    this.#state = State.Type;
    if (this.#type === BULK) return this.#emit(bytes);
    if (this.#type === BULK_ERROR) return this.#emit(new RespError(utf8Decoder.decode(bytes), true));
    // VERBATIM: a three-byte format, a colon, the text.
    if (bytes.length < 4 || bytes[3] !== 0x3a) throw new RespProtocolError("malformed RESP verbatim string");
    this.#emit(
      new RespVerbatim(utf8Decoder.decode(bytes.subarray(0, 3)), utf8Decoder.decode(bytes.subarray(4))),
    );
  }

  /** Hands a complete value to the aggregate being read, closing aggregates it completes, or returns it. */
  #emit(value: RespValue): void {
    const stack = this.#stack;
    for (;;) {
      const top = stack[stack.length - 1];
      if (top === undefined) {
        this.#out.push(value);
        return;
      }
      top.items.push(value);
      if (--top.remaining > 0) return;
      stack.pop();
      if (top.type === ATTRIBUTE) return; // Dropped: the next value is the one it annotated.
      value = aggregate(top.type, top.items);
    }
  }
}

/** Builds the value of a complete aggregate. */
function aggregate(type: number, items: RespValue[]): RespValue {
  switch (type) {
    case MAP: {
      const map = new Map<RespValue, RespValue>();
      for (let i = 0; i < items.length; i += 2) map.set(items[i]!, items[i + 1]!);
      return map;
    }
    case SET:
      return new Set(items);
    case PUSH:
      return new RespPush(items);
    default: // ARRAY
      return items;
  }
}

function parseInteger(text: string): number | bigint {
  if (!/^[+-]?[0-9]{1,19}$/.test(text)) throw new RespProtocolError("malformed RESP integer");
  const value = Number(text);
  if (Number.isSafeInteger(value)) return value;
  const big = BigInt(text);
  if (big < INT64_MIN || big > INT64_MAX) throw new RespProtocolError("RESP integer out of 64-bit range");
  return big;
}

function parseDouble(text: string): number {
  if (/^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/.test(text)) return Number(text);
  const lower = text.toLowerCase();
  if (lower === "inf" || lower === "+inf") return Infinity;
  if (lower === "-inf") return -Infinity;
  if (lower === "nan" || lower === "-nan" || lower === "+nan") return NaN;
  throw new RespProtocolError("malformed RESP double");
}

function limit(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!(value >= 0)) throw new RangeError(`${name} must be a non-negative number`);
  return Math.min(Math.floor(value), Number.MAX_SAFE_INTEGER);
}

/**
 * Encodes a command as a RESP array of bulk strings, the form every Redis
 * version accepts. Strings are encoded as UTF-8; byte arrays are copied as
 * they are, so any binary value can be sent.
 *
 * @category Redis
 *
 * @example Encoding PUBLISH
 * ```ts
 * import { encodeCommand } from "./resp.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const bytes = encodeCommand(["PUBLISH", "room", new Uint8Array([0, 255])]);
 * const head = "*3\r\n$7\r\nPUBLISH\r\n$4\r\nroom\r\n$2\r\n";
 * assertEquals(new TextDecoder().decode(bytes.subarray(0, head.length)), head);
 * assertEquals([...bytes.subarray(head.length)], [0, 255, 13, 10]);
 * ```
 *
 * @param args The command name and its arguments.
 * @returns The encoded command, one new buffer.
 */
export function encodeCommand(args: readonly (string | Uint8Array)[]): Uint8Array<ArrayBuffer> {
  // Sized first, then written into one buffer: no intermediate buffer per string.
  const sizes: number[] = [];
  const header = `*${args.length}\r\n`;
  let total = header.length;
  for (const arg of args) {
    const size = typeof arg === "string" ? utf8Length(arg) : arg.length;
    sizes.push(size);
    total += 1 + decimalLength(size) + 2 + size + 2;
  }
  const out = new Uint8Array(total);
  let at = writeAscii(out, 0, header);
  for (let k = 0; k < args.length; k++) {
    const arg = args[k]!, size = sizes[k]!;
    at = writeAscii(out, at, `$${size}\r\n`);
    if (typeof arg !== "string") out.set(arg, at);
    else if (size === arg.length && size <= 1024) writeAscii(out, at, arg);
    else utf8Encoder.encodeInto(arg, out.subarray(at, at + size));
    at += size;
    out[at++] = CR;
    out[at++] = LF;
  }
  return out;
}

function decimalLength(value: number): number {
  let digits = 1;
  while (value >= 10) {
    value = Math.floor(value / 10);
    digits++;
  }
  return digits;
}

function writeAscii(out: Uint8Array, at: number, text: string): number {
  for (let i = 0; i < text.length; i++) out[at++] = text.charCodeAt(i);
  return at;
}

/**
 * The text of a string-like reply: a bulk string decoded as UTF-8 (invalid
 * sequences become U+FFFD), a simple string as is, a verbatim string's text.
 *
 * @category Redis
 *
 * @example Decoding a bulk string
 * ```ts
 * import { RespDecoder, respText } from "./resp.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const [reply] = new RespDecoder().write(new TextEncoder().encode("$6\r\nhällo\r\n"));
 * assertEquals(respText(reply!), "hällo");
 * assertEquals(respText(null), null);
 * ```
 *
 * @param value A reply.
 * @returns Its text, or `null` for a null reply.
 * @throws {TypeError} For a reply that is not string-like or null.
 */
export function respText(value: RespValue): string | null {
  if (value === null) return null;
  if (typeof value === "string") return value;
  if (value instanceof Uint8Array) return utf8Decoder.decode(value);
  if (value instanceof RespVerbatim) return value.text;
  throw new TypeError("respText() needs a string, bulk string, verbatim string or null reply");
}
