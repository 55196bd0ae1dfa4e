/**
 * A streaming raw DEFLATE decoder (RFC 1951) with a bounded window and a hard
 * limit on output, for permessage-deflate.
 *
 * @module
 */

import { concat } from "../bytes.ts";
import { CloseCode } from "../close.ts";
import { ProtocolError } from "../errors.ts";
import { checkOption } from "../options.ts";
import {
  CODE_LENGTH_ORDER,
  DIST_BASE,
  DIST_EXTRA,
  END_OF_BLOCK,
  FIXED_DIST_LENGTHS,
  FIXED_LITLEN_LENGTHS,
  LENGTH_BASE,
  LENGTH_EXTRA,
} from "./tables.ts";

const enum Mode {
  /** Between blocks: a block header comes next. */
  Header,
  /** Inside a stored block. */
  Stored,
  /** Inside a Huffman-coded block. */
  Codes,
  /** Past the block marked final: the rest of the input is ignored. */
  Done,
}

/** Root bits of the literal/length and distance lookup tables; longer codes go through a subtable. */
const LIT_ROOT = 10;
const DIST_ROOT = 8;
/** Table sizes: the root plus, at most, one full subtable per symbol with a code longer than the root. */
const LIT_TABLE_SIZE = (1 << LIT_ROOT) + 288 * (1 << (15 - LIT_ROOT));
const DIST_TABLE_SIZE = (1 << DIST_ROOT) + 32 * (1 << (15 - DIST_ROOT));

/**
 * Lookup tables for one Huffman code, indexed by the next bits of input
 * (least significant first). An entry holds what decoding needs at once:
 * bits 0–3 the code's length; bits 4–7 the extra bits that follow; bits 8–9
 * the kind ({@linkcode LITERAL}, {@linkcode MATCH}, {@linkcode END}); bits
 * 10 and up the value (the literal byte, or the base length or distance).
 * An entry of length 0 links to a subtable for the bits past the root, with
 * its offset as the value and its bits as the extra bits; 0 marks bits no code
 * starts with.
 */
interface Table {
  entries: Int32Array;
  root: number;
}

const LITERAL = 0 << 8, MATCH = 1 << 8, END = 2 << 8, INVALID = 3 << 8;

/** What each literal/length symbol decodes to, as entries without a length. */
const LITLEN_INFO = new Int32Array(288).map((_, symbol) =>
  symbol < 256
    ? (symbol << 10) | LITERAL
    : symbol === END_OF_BLOCK
    ? END
    : symbol < 286
    ? (LENGTH_BASE[symbol - 257]! << 10) | (LENGTH_EXTRA[symbol - 257]! << 4) | MATCH
    : INVALID
);

/** What each distance symbol decodes to. */
const DIST_INFO = new Int32Array(32).map((_, symbol) =>
  symbol < 30 ? (DIST_BASE[symbol]! << 10) | (DIST_EXTRA[symbol]! << 4) | MATCH : INVALID
);

/** Code length symbols decode to themselves. */
const CODE_LENGTH_INFO = new Int32Array(19).map((_, symbol) => (symbol << 10) | LITERAL);

const lengthCounts = new Uint16Array(16);
const nextCode = new Uint16Array(16);

/**
 * Builds the lookup table of the canonical Huffman code with the given code
 * lengths (RFC 1951 §3.2.2).
 */
function buildTable(
  lengths: Uint8Array,
  start: number,
  count: number,
  info: Int32Array,
  table: Table,
  rootLimit: number,
): void {
  lengthCounts.fill(0);
  let maxLength = 0;
  for (let i = 0; i < count; i++) {
    const length = lengths[start + i]!;
    lengthCounts[length]!++;
    if (length > maxLength) maxLength = length;
  }
  lengthCounts[0] = 0;
  let left = 1;
  let code = 0;
  for (let length = 1; length <= 15; length++) {
    left = (left << 1) - lengthCounts[length]!;
    if (left < 0) throw corrupt("over-subscribed Huffman code");
    nextCode[length] = code;
    code = (code + lengthCounts[length]!) << 1;
  }
  const root = Math.max(1, Math.min(maxLength, rootLimit));
  const entries = table.entries;
  const rootSize = 1 << root;
  entries.fill(0, 0, rootSize);
  table.root = root;
  const subBits = maxLength - root;
  let free = rootSize;
  for (let symbol = 0; symbol < count; symbol++) {
    const length = lengths[start + symbol]!;
    if (length === 0) continue;
    const reversed = reverseBits(nextCode[length]!++, length);
    const entry = info[symbol]! | length;
    if (length <= root) {
      for (let i = reversed; i < rootSize; i += 1 << length) entries[i] = entry;
      continue;
    }
    const low = reversed & (rootSize - 1);
    let link = entries[low]!;
    if (link === 0) {
      link = (free << 10) | (subBits << 4);
      entries[low] = link;
      entries.fill(0, free, free + (1 << subBits));
      free += 1 << subBits;
    }
    const base = link >>> 10;
    for (let i = reversed >>> root; i < 1 << subBits; i += 1 << (length - root)) entries[base + i] = entry;
  }
}

function reverseBits(code: number, length: number): number {
  let reversed = 0;
  for (let i = 0; i < length; i++) {
    reversed = (reversed << 1) | (code & 1);
    code >>>= 1;
  }
  return reversed;
}

function corrupt(why: string): ProtocolError {
  return new ProtocolError(`invalid compressed data: ${why}`, CloseCode.InvalidPayloadData);
}

function fixedTable(lengths: Uint8Array, info: Int32Array, root: number): Table {
  const table = { entries: new Int32Array(1 << root), root: 0 };
  buildTable(lengths, 0, lengths.length, info, table, root);
  return table;
}

const FIXED_LIT = fixedTable(FIXED_LITLEN_LENGTHS, LITLEN_INFO, 9);
const FIXED_DIST = fixedTable(FIXED_DIST_LENGTHS, DIST_INFO, 5);

/**
 * The tables of the dynamic block being decoded, shared by every inflater:
 * decoding is synchronous, so only the inflater that built them last can be
 * using them; another one rebuilds its own from the code lengths it kept.
 */
const shared = {
  lit: { entries: new Int32Array(LIT_TABLE_SIZE), root: 0 },
  dist: { entries: new Int32Array(DIST_TABLE_SIZE), root: 0 },
  codeLengths: { entries: new Int32Array(1 << 7), root: 0 },
  owner: undefined as Inflater | undefined,
};

/** Thrown inside the decoder when the input ends mid-symbol; never escapes. */
const UNDERFLOW = Symbol("underflow");

/** The input from `at` on, kept for the next call; nothing left needs no copy. */
function rest(input: Uint8Array, at: number): Uint8Array {
  return at < input.length ? input.slice(at) : EMPTY;
}

const EMPTY: Uint8Array = new Uint8Array(0);

/** Outputs at least this big are returned in place instead of copied out. */
const HAND_OVER_MIN = 65536;

/**
 * Decodes a raw DEFLATE stream (RFC 1951) fed in pieces of any size, keeping
 * the last 2^`windowBits` bytes of output as the window for back-references,
 * across pieces and across messages until {@linkcode Inflater.reset}.
 *
 * Memory between calls: while a window is kept, a buffer of twice the
 * window (64 KiB at 15 bits) and 316 bytes of code lengths; the Huffman tables
 * are shared by every inflater. During a call, room for its output, up to its
 * limit. After `reset()` it holds nothing.
 *
 * Corrupt data throws a {@linkcode ProtocolError} with code 1007; output past
 * the limit given to `write()` throws one with code 1009 before anything
 * beyond the limit is allocated.
 *
 * @category Extensions
 *
 * @example Decoding a stream fed one byte at a time
 * ```ts
 * import { Inflater } from "@sock/sock/core";
 * import { assertEquals } from "@std/assert";
 *
 * // "Hello" as RFC 7692 §7.2.3.1 compresses it, plus the sync flush marker.
 * const compressed = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00, 0x00, 0xff, 0xff];
 * const inflater = new Inflater();
 * let text = "";
 * for (const byte of compressed) text += new TextDecoder().decode(inflater.write(new Uint8Array([byte])));
 * assertEquals(text, "Hello");
 * assertEquals(inflater.atBoundary, true);
 * ```
 */
export class Inflater {
  readonly #windowSize: number;
  #mode = Mode.Header;
  #final = false;
  #storedLeft = 0;
  #bits = 0;
  #bitCount = 0;
  /** Input from the last checkpoint on, kept when a call ended mid-symbol. */
  #pending: Uint8Array = EMPTY;
  /** The window followed by this call's output. */
  #out: Uint8Array = EMPTY;
  #outLength = 0;
  #lit: Table = FIXED_LIT;
  #dist: Table = FIXED_DIST;
  /** Code lengths of the current dynamic block (literal/length then distance), to rebuild its tables. */
  #lengths: Uint8Array = EMPTY;
  #litCount = 0;
  #distCount = 0;

  // The input of the current call, for the block header decoders.
  #input: Uint8Array = EMPTY;
  #at = 0;

  /**
   * Creates an inflater.
   *
   * @param windowBits log2 of the largest distance a back-reference may reach, 8–15. Default 15.
   * @throws {RangeError} For window bits out of range.
   */
  constructor(windowBits = 15) {
    this.#windowSize = 1 << checkOption("windowBits", windowBits, 15, { min: 8, max: 15, integer: true });
  }

  /**
   * Whether the input so far ends between blocks, or after the final block:
   * the point where a permessage-deflate message may end.
   */
  get atBoundary(): boolean {
    return this.#mode === Mode.Done ||
      (this.#mode === Mode.Header && this.#pending.length === 0 && this.#bitCount < 8);
  }

  /** Bytes held in buffers: the window and room for output. 0 after {@linkcode Inflater.reset}. */
  get bufferSize(): number {
    return this.#out.length + this.#pending.length + this.#lengths.length;
  }

  /**
   * Decodes the next piece of the stream. Input past the final block is ignored
   * until {@linkcode Inflater.restart}.
   *
   * @param data Compressed bytes; only read during the call.
   * @param maxOutput How many bytes this call may produce; beyond that it throws 1009.
   * @returns The bytes decoded, owned by the caller.
   * @throws {ProtocolError} 1007 for corrupt data, 1009 for output past `maxOutput`.
   */
  write(data: Uint8Array, maxOutput = Infinity): Uint8Array {
    let input = data;
    if (this.#pending.length > 0) {
      input = concat([this.#pending, data]);
      this.#pending = EMPTY;
    }
    if (this.#out.length === 0) {
      this.#out = new Uint8Array(Math.min(this.#windowSize * 2, Math.max(1024, data.length * 4)));
    }
    // The window moves to the front once less than a window of room is left: not on every call.
    if (this.#out.length - this.#outLength < this.#windowSize) this.#keepWindow();
    const start = this.#outLength;
    this.#input = input;
    this.#at = 0;
    try {
      this.#decode(start + maxOutput);
    } finally {
      this.#input = EMPTY;
    }
    const end = this.#outLength;
    if (end - start < HAND_OVER_MIN) {
      const result = this.#out.slice(start, end);
      // A buffer grown for this call shrinks back to twice the window.
      if (this.#out.length > this.#windowSize * 2) this.#keepWindow();
      return result;
    }
    // A large output (longer than any window) is handed over as it lies; the window moves to a fresh buffer.
    const result = this.#out.subarray(start, end);
    const size = this.#windowSize;
    this.#out = new Uint8Array(size * 2);
    this.#out.set(result.subarray(result.length - size));
    this.#outLength = size;
    return result;
  }

  /**
   * Starts a new stream after one that ended with its final block, keeping the
   * window (RFC 7692 §7.2.3.4: a message may end with a final block while the
   * next one still refers to it).
   */
  restart(): void {
    if (this.#mode === Mode.Done) {
      this.#mode = Mode.Header;
      this.#bits = 0;
      this.#bitCount = 0;
    }
  }

  /** Forgets the window and any partial input, and releases the buffers. */
  reset(): void {
    this.#mode = Mode.Header;
    this.#bits = 0;
    this.#bitCount = 0;
    this.#pending = EMPTY;
    this.#out = EMPTY;
    this.#outLength = 0;
    this.#lengths = EMPTY;
    if (shared.owner === this) shared.owner = undefined;
  }

  /** Keeps the last window of output at the start of the buffer, shrinking a buffer grown for a large call. */
  #keepWindow(): void {
    const size = this.#windowSize;
    const length = this.#outLength;
    if (length <= size) return;
    if (this.#out.length > size * 2) {
      const out = new Uint8Array(size * 2);
      out.set(this.#out.subarray(length - size, length));
      this.#out = out;
    } else {
      this.#out.copyWithin(0, length - size, length);
    }
    this.#outLength = size;
  }

  /** Makes room for `needed` more bytes of output, within `limit`. */
  #grow(needed: number, limit: number): Uint8Array {
    const wanted = this.#outLength + needed;
    if (wanted > limit) {
      throw new ProtocolError("inflated message exceeds the size limit", CloseCode.MessageTooBig);
    }
    // Deflate rarely shrinks data more than 4 times... except when it does: then double.
    const estimate = wanted + (this.#input.length - this.#at) * 4;
    const out = new Uint8Array(Math.min(Math.max(this.#out.length * 2, estimate), limit));
    out.set(this.#out.subarray(0, this.#outLength));
    this.#out = out;
    return out;
  }

  #decode(limit: number): void {
    while (true) {
      if (this.#mode === Mode.Header) {
        if (!this.#header()) return;
      } else if (this.#mode === Mode.Codes) {
        if (!this.#codes(limit)) return;
      } else if (this.#mode === Mode.Stored) {
        if (!this.#stored(limit)) return;
      } else {
        return; // Input after the final block waits for restart().
      }
    }
  }

  // ---- Bit reading for block headers (the hot loop has its own copy) -------

  /** Ensures `n` ≤ 25 bits are buffered, or throws {@linkcode UNDERFLOW}. */
  #need(n: number): void {
    const input = this.#input;
    while (this.#bitCount < n) {
      if (this.#at >= input.length) throw UNDERFLOW;
      this.#bits |= input[this.#at++]! << this.#bitCount;
      this.#bitCount += 8;
    }
  }

  #take(n: number): number {
    this.#need(n);
    const value = this.#bits & ((1 << n) - 1);
    this.#bits >>>= n;
    this.#bitCount -= n;
    return value;
  }

  /** Decodes one symbol; a code that is not complete in the input so far throws {@linkcode UNDERFLOW}. */
  #symbol(table: Table): number {
    const input = this.#input;
    while (this.#bitCount < 15 && this.#at < input.length) {
      this.#bits |= input[this.#at++]! << this.#bitCount;
      this.#bitCount += 8;
    }
    // Only code-length codes come here: at most 7 bits, all in the root table.
    const entry = table.entries[this.#bits & ((1 << table.root) - 1)]!;
    const length = entry & 15;
    if (entry === 0 || length > this.#bitCount) {
      if (this.#bitCount >= 15) throw corrupt("invalid Huffman code");
      throw UNDERFLOW;
    }
    this.#bits >>>= length;
    this.#bitCount -= length;
    return entry >>> 10;
  }

  /** Reads a block header and, for a dynamic block, its code; `false` when the input ran out first. */
  #header(): boolean {
    const at = this.#at, bits = this.#bits, bitCount = this.#bitCount;
    try {
      const header = this.#take(3);
      this.#final = (header & 1) === 1;
      const type = header >>> 1;
      if (type === 0) {
        this.#take(this.#bitCount & 7);
        const length = this.#take(16);
        const check = this.#take(16);
        if (length !== (~check & 0xffff)) throw corrupt("stored block length check failed");
        this.#storedLeft = length;
        this.#mode = Mode.Stored;
      } else if (type === 1) {
        this.#lit = FIXED_LIT;
        this.#dist = FIXED_DIST;
        this.#mode = Mode.Codes;
      } else if (type === 2) {
        this.#readCode();
        this.#mode = Mode.Codes;
      } else {
        throw corrupt("reserved block type");
      }
      return true;
    } catch (error) {
      if (error !== UNDERFLOW) throw error;
      // Start the header again once more input arrives.
      this.#pending = rest(this.#input, at);
      this.#bits = bits;
      this.#bitCount = bitCount;
      return false;
    }
  }

  /** Reads a dynamic block's code lengths (RFC 1951 §3.2.7) and builds its tables. */
  #readCode(): void {
    const litCount = this.#take(5) + 257;
    const distCount = this.#take(5) + 1;
    const codeLengthCount = this.#take(4) + 4;
    if (litCount > 286 || distCount > 30) throw corrupt("too many length or distance codes");
    if (this.#lengths.length === 0) this.#lengths = new Uint8Array(286 + 30);
    const lengths = this.#lengths;
    lengths.fill(0, 0, 19);
    for (let i = 0; i < codeLengthCount; i++) lengths[CODE_LENGTH_ORDER[i]!] = this.#take(3);
    // Decoding is synchronous and a header is decoded whole or started again, so nobody else uses this table meanwhile.
    buildTable(lengths, 0, 19, CODE_LENGTH_INFO, shared.codeLengths, 7);
    const total = litCount + distCount;
    for (let i = 0; i < total;) {
      const symbol = this.#symbol(shared.codeLengths);
      if (symbol < 16) {
        lengths[i++] = symbol;
        continue;
      }
      let repeat: number, value = 0;
      if (symbol === 16) {
        if (i === 0) throw corrupt("repeat with no previous length");
        value = lengths[i - 1]!;
        repeat = 3 + this.#take(2);
      } else if (symbol === 17) {
        repeat = 3 + this.#take(3);
      } else {
        repeat = 11 + this.#take(7);
      }
      if (i + repeat > total) throw corrupt("code lengths overflow");
      lengths.fill(value, i, i + repeat);
      i += repeat;
    }
    if (lengths[END_OF_BLOCK] === 0) throw corrupt("no end-of-block code");
    this.#litCount = litCount;
    this.#distCount = distCount;
    this.#buildShared();
  }

  #buildShared(): void {
    // The tables change now: an inflater paused in its own block must rebuild them, even if
    // building these fails halfway.
    shared.owner = undefined;
    buildTable(this.#lengths, 0, this.#litCount, LITLEN_INFO, shared.lit, LIT_ROOT);
    buildTable(this.#lengths, this.#litCount, this.#distCount, DIST_INFO, shared.dist, DIST_ROOT);
    shared.owner = this;
    this.#lit = shared.lit;
    this.#dist = shared.dist;
  }

  /** Copies a stored block's bytes; `false` when the input ran out first. */
  #stored(limit: number): boolean {
    const input = this.#input;
    // The header left whole bytes in the bit buffer; they come first.
    const available = Math.min(this.#storedLeft, (this.#bitCount >>> 3) + input.length - this.#at);
    let out = this.#out;
    if (this.#outLength + available > Math.min(out.length, limit)) out = this.#grow(available, limit);
    const left = this.#storedLeft - available;
    let n = available;
    for (; n > 0 && this.#bitCount >= 8; n--) {
      out[this.#outLength++] = this.#bits & 0xff;
      this.#bits >>>= 8;
      this.#bitCount -= 8;
    }
    out.set(input.subarray(this.#at, this.#at + n), this.#outLength);
    this.#outLength += n;
    this.#at += n;
    this.#storedLeft = left;
    if (left > 0) return false;
    this.#mode = this.#final ? Mode.Done : Mode.Header;
    return true;
  }

  /** Decodes a Huffman-coded block; `false` when the input ran out first. */
  #codes(limit: number): boolean {
    if (this.#lit === shared.lit && shared.owner !== this) this.#buildShared();
    const input = this.#input;
    const end = input.length;
    const window = this.#windowSize;
    const lit = this.#lit.entries, litRoot = this.#lit.root, litMask = (1 << litRoot) - 1;
    const dist = this.#dist.entries, distRoot = this.#dist.root, distMask = (1 << distRoot) - 1;
    let out = this.#out;
    let room = Math.min(out.length, limit);
    let pos = this.#outLength;
    let at = this.#at;
    let bits = this.#bits;
    let count = this.#bitCount;
    // Where the last whole symbol ended: the point to resume from when the input runs out.
    let checkAt: number, checkBits: number, checkCount: number;
    while (true) {
      checkAt = at;
      checkBits = bits;
      checkCount = count;
      while (count <= 23 && at < end) {
        bits |= input[at++]! << count;
        count += 8;
      }
      let entry = lit[bits & litMask]!;
      if ((entry & 15) === 0 && entry !== 0) {
        entry = lit[(entry >>> 10) + ((bits >> litRoot) & ((1 << ((entry >>> 4) & 15)) - 1))]!;
      }
      if (entry === 0) {
        if (count >= 15) throw corrupt("invalid literal/length code");
        break;
      }
      const codeLength = entry & 15;
      if (codeLength > count) break;
      bits >>= codeLength;
      count -= codeLength;
      const kind = entry & 0x300;
      if (kind === LITERAL) {
        if (pos >= room) {
          this.#outLength = pos;
          this.#at = at;
          out = this.#grow(1, limit);
          room = Math.min(out.length, limit);
        }
        out[pos++] = entry >>> 10;
        // Literals come in runs: take the next one too while its code is already buffered.
        entry = lit[bits & litMask]!;
        if ((entry & 0x30f) > 0 && (entry & 0x300) === LITERAL && (entry & 15) <= count && pos < room) {
          bits >>= entry & 15;
          count -= entry & 15;
          out[pos++] = entry >>> 10;
        }
        continue;
      }
      if (kind !== MATCH) {
        if (kind === INVALID) throw corrupt("invalid length symbol");
        this.#mode = this.#final ? Mode.Done : Mode.Header;
        this.#outLength = pos;
        this.#at = at;
        this.#bits = bits;
        this.#bitCount = count;
        return true;
      }
      const lengthExtra = (entry >>> 4) & 15;
      if (lengthExtra > count) break;
      const length = (entry >>> 10) + (bits & ((1 << lengthExtra) - 1));
      bits >>= lengthExtra;
      count -= lengthExtra;
      while (count <= 23 && at < end) {
        bits |= input[at++]! << count;
        count += 8;
      }
      entry = dist[bits & distMask]!;
      if ((entry & 15) === 0 && entry !== 0) {
        entry = dist[(entry >>> 10) + ((bits >> distRoot) & ((1 << ((entry >>> 4) & 15)) - 1))]!;
      }
      if (entry === 0) {
        if (count >= 15) throw corrupt("invalid distance code");
        break;
      }
      const distLength = entry & 15;
      if (distLength > count) break;
      bits >>= distLength;
      count -= distLength;
      if ((entry & 0x300) === INVALID) throw corrupt("invalid distance symbol");
      const distExtra = (entry >>> 4) & 15;
      if (distExtra > count) {
        while (count <= 23 && at < end) {
          bits |= input[at++]! << count;
          count += 8;
        }
        if (distExtra > count) break;
      }
      const distance = (entry >>> 10) + (bits & ((1 << distExtra) - 1));
      bits >>= distExtra;
      count -= distExtra;
      if (distance > pos || distance > window) throw corrupt("distance too far back");
      if (pos + length > room) {
        this.#outLength = pos;
        this.#at = at;
        out = this.#grow(length, limit);
        room = Math.min(out.length, limit);
      }
      let from = pos - distance;
      if (length < 16) {
        for (const stop = pos + length; pos < stop;) out[pos++] = out[from++]!;
      } else if (distance >= length) {
        out.copyWithin(pos, from, from + length);
        pos += length;
      } else if (distance === 1) {
        out.fill(out[from]!, pos, pos + length);
        pos += length;
      } else {
        // Overlapping: the bytes repeat every `distance`, so each copy can take all that is already there.
        for (const stop = pos + length; pos < stop;) {
          const n = Math.min(pos - from, stop - pos);
          out.copyWithin(pos, from, from + n);
          pos += n;
        }
      }
    }
    // The input ran out mid-symbol: resume from the last whole symbol once more arrives.
    this.#outLength = pos;
    this.#pending = rest(input, checkAt);
    this.#bits = checkBits;
    this.#bitCount = checkCount;
    return false;
  }
}
