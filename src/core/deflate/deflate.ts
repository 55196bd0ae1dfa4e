/**
 * A streaming raw DEFLATE compressor (RFC 1951) for permessage-deflate: LZ77
 * with hash chains and lazy matching as in zlib, and for each block whichever
 * of a stored, a fixed-Huffman or a dynamic-Huffman block is smallest.
 *
 * @module
 */

import {
  CODE_LENGTH_ORDER,
  DIST_BASE,
  DIST_EXTRA,
  DIST_SYMBOLS,
  END_OF_BLOCK,
  FIXED_DIST_LENGTHS,
  FIXED_LITLEN_LENGTHS,
  LENGTH_BASE,
  LENGTH_EXTRA,
  LITLEN_SYMBOLS,
  MAX_CODE_BITS,
} from "./tables.ts";
import { checkOption } from "../options.ts";

/**
 * Options of a {@linkcode Deflater}.
 *
 * @category Extensions
 */
export interface DeflaterOptions {
  /**
   * log2 of the LZ77 window, 8–15 (default 15). Back-references never reach
   * further than 2^windowBits bytes, also across write() calls.
   */
  windowBits?: number;
  /**
   * 1–9 (default 8): memory for the hash table (2^(memLevel+7) heads) and the
   * symbol buffer (2^(memLevel+6) symbols per block), as in zlib.
   */
  memLevel?: number;
  /**
   * 0–9 (default 6): 0 = stored only; 1–9 trade speed for ratio as zlib's
   * levels do (max chain, lazy, nice, good).
   */
  level?: number;
}

const MIN_MATCH = 3;
/**
 * The hash chains link positions whose next 4 bytes hash alike, as zlib-ng's and Chromium's zlib
 * do, so a 3-byte match is found only through a hash collision: those are rarely worth their cost
 * anyway (see {@linkcode TOO_FAR}), and a chain of 3-byte prefixes is long and mostly useless on
 * text with few distinct bytes. Against 3 bytes, measured on Deno over 4 MiB with zlib's level 6: English-like
 * text 1.4× faster and 1.7% smaller, JSON 1% smaller, random text over 4 letters 30% fewer
 * candidates per byte and 2% smaller (same time: the chains now span the whole window).
 */
const HASH_BYTES = 4;
const MAX_MATCH = 258;
/** Bytes ahead of the current position needed to find a match there and, lazily, one byte later (zlib's). */
const MIN_LOOKAHEAD = MAX_MATCH + MIN_MATCH + 1;
/** A 3-byte match further back than this costs more than three literals. */
const TOO_FAR = 4096;
/**
 * Sliding the window costs a pass over the hash heads, so a small window slides
 * by as many bytes as there are heads, up to this many.
 */
const MAX_SLIDE = 1 << 15;
/** Positions are kept in Uint16Arrays, so the window buffer holds at most 2^16 bytes. */
const MAX_BUFFER = 1 << 16;
const MAX_STORED = 65535;
const EMPTY = new Uint8Array(0);
/** Used literal/length and distance symbols: 286 and 287, 30 and 31 never occur. */
const LITLEN_CODES = 286;
const DIST_CODES = 30;
const CODE_LENGTH_CODES = 19;
const MAX_CODE_LENGTH_BITS = 7;
/** Extra bits of the code length repeat codes 16, 17 and 18. */
const REPEAT_EXTRA = [2, 3, 7];
/** Block types, already shifted past BFINAL (always 0 here). */
const STORED = 0, FIXED = 1 << 1, DYNAMIC = 2 << 1;

/**
 * zlib's table of how eagerly each level searches. Levels 1–3 match greedily,
 * and there `lazy` is zlib's max_insert_length: the positions inside a longer
 * match are not indexed.
 */
interface Effort {
  /** At or above this previous match length, search only a quarter of the chain. */
  good: number;
  /** Don't look for a better match one byte later if the current one is this long. */
  lazy: number;
  /** Stop searching once a match is this long. */
  nice: number;
  /** Candidates to try per position. */
  chain: number;
}

const EFFORT: readonly Effort[] = [
  { good: 0, lazy: 0, nice: 0, chain: 0 },
  { good: 4, lazy: 4, nice: 8, chain: 4 },
  { good: 4, lazy: 5, nice: 16, chain: 8 },
  { good: 4, lazy: 6, nice: 32, chain: 32 },
  { good: 4, lazy: 4, nice: 16, chain: 16 },
  { good: 8, lazy: 16, nice: 32, chain: 32 },
  // zlib has good 8, chain 128. Every candidate already shares 4 bytes (HASH_BYTES), so a
  // 6-byte match is good enough to search only a quarter of the chain one byte later, and 64
  // candidates find nearly what 128 do. On random text over 4 letters (the worst input found:
  // every position has a 6–8 byte match somewhere in the window, and searching longer finds
  // barely better) 11.5 candidates per byte instead of 28 (38 with 3-byte hashing): with the
  // 4-byte hash, 2.45× faster than before on Deno (267 → 109 ms/MiB), English-like text 2.1×,
  // JSON 1.2×; every input of bench/deflate.ts still compresses at least as well as before.
  { good: 6, lazy: 16, nice: 128, chain: 64 },
  { good: 8, lazy: 32, nice: 128, chain: 256 },
  { good: 32, lazy: 128, nice: 258, chain: 1024 },
  { good: 32, lazy: 258, nice: 258, chain: 4096 },
];

// ---- Static tables ----

/** Length symbol − 257 for each match length − 3. */
const LENGTH_CODE = new Uint8Array(256);
/** Distance symbol for distance − 1 below 256, then for (distance − 1) >> 7 from index 256. */
const DIST_CODE = new Uint8Array(512);
{
  let length = 0;
  for (let code = 0; code < 28; code++) {
    for (let n = 0; n < 1 << LENGTH_EXTRA[code]!; n++) LENGTH_CODE[length++] = code;
  }
  // Length 258 has its own symbol, 285, shorter than 284 with all extra bits set.
  LENGTH_CODE[255] = 28;
  let dist = 0;
  for (let code = 0; code < 16; code++) {
    for (let n = 0; n < 1 << DIST_EXTRA[code]!; n++) DIST_CODE[dist++] = code;
  }
  dist >>= 7;
  for (let code = 16; code < DIST_CODES; code++) {
    for (let n = 0; n < 1 << (DIST_EXTRA[code]! - 7); n++) DIST_CODE[256 + dist++] = code;
  }
}

function distCode(distance: number): number {
  const d = distance - 1;
  return d < 256 ? DIST_CODE[d]! : DIST_CODE[256 + (d >>> 7)]!;
}

const REVERSED_BYTE = new Uint8Array(256);
for (let i = 0; i < 256; i++) {
  let r = 0;
  for (let bit = 0; bit < 8; bit++) r |= ((i >>> bit) & 1) << (7 - bit);
  REVERSED_BYTE[i] = r;
}

const lengthCount = new Uint16Array(MAX_CODE_BITS + 1);
const nextCode = new Uint16Array(MAX_CODE_BITS + 1);

/**
 * Fills `codes` with the canonical Huffman code of the given code lengths
 * (RFC 1951 §3.2.2), bit-reversed since DEFLATE sends codes from the most
 * significant bit while the bit writer fills bytes from the least.
 */
function canonicalCodes(lengths: Uint8Array, count: number, codes: Uint16Array): void {
  lengthCount.fill(0);
  for (let i = 0; i < count; i++) lengthCount[lengths[i]!]!++;
  lengthCount[0] = 0;
  let code = 0;
  for (let bits = 1; bits <= MAX_CODE_BITS; bits++) {
    code = (code + lengthCount[bits - 1]!) << 1;
    nextCode[bits] = code;
  }
  for (let i = 0; i < count; i++) {
    const length = lengths[i]!;
    if (length === 0) continue;
    const c = nextCode[length]!++;
    codes[i] = ((REVERSED_BYTE[c & 255]! << 8) | REVERSED_BYTE[c >>> 8]!) >>> (16 - length);
  }
}

const FIXED_LITLEN_CODES = new Uint16Array(LITLEN_SYMBOLS);
const FIXED_DIST_CODES = new Uint16Array(DIST_SYMBOLS);
canonicalCodes(FIXED_LITLEN_LENGTHS, LITLEN_SYMBOLS, FIXED_LITLEN_CODES);
canonicalCodes(FIXED_DIST_LENGTHS, DIST_SYMBOLS, FIXED_DIST_CODES);

// ---- Huffman code lengths ----

// Scratch for building codes; compression is synchronous, so every deflater shares it.
const sortKeys = new Int32Array(LITLEN_SYMBOLS);
const depths = new Int32Array(LITLEN_SYMBOLS);
/** Codes per length; a code may be as long as the number of symbols before limiting. */
const codesPerLength = new Int32Array(LITLEN_SYMBOLS + 1);

/**
 * Computes the code lengths of a minimum-redundancy code for `freq`, no
 * longer than `maxBits`. At least two symbols get a code, so the code is
 * complete even for blocks that use one symbol or none (zlib does the same).
 */
function buildLengths(freq: Int32Array, count: number, maxBits: number, lengths: Uint8Array): void {
  lengths.fill(0, 0, count);
  // Sort the used symbols by frequency (symbol in the low 9 bits).
  let used = 0;
  for (let symbol = 0; symbol < count; symbol++) {
    if (freq[symbol] !== 0) sortKeys[used++] = (freq[symbol]! << 9) | symbol;
  }
  for (let symbol = 0; used < 2; symbol++) {
    if (freq[symbol] === 0) sortKeys[used++] = symbol;
  }
  const keys = sortKeys.subarray(0, used).sort();
  for (let i = 0; i < used; i++) depths[i] = keys[i]! >>> 9;
  minimumRedundancy(depths, used);
  codesPerLength.fill(0);
  for (let i = 0; i < used; i++) codesPerLength[depths[i]!]!++;
  limitLengths(used, maxBits);
  // The most frequent symbols, at the end, get the shortest codes.
  let next = used;
  for (let bits = 1; bits <= maxBits; bits++) {
    for (let n = codesPerLength[bits]!; n > 0; n--) lengths[keys[--next]! & 511] = bits;
  }
}

/**
 * Moffat and Katajainen's in-place computation of minimum-redundancy code
 * lengths: `a` holds `n` ≥ 2 weights in ascending order and ends up holding
 * the code length of each.
 */
function minimumRedundancy(a: Int32Array, n: number): void {
  // Phase 1: build the tree, each internal node's weight replaced by its parent's index.
  a[0]! += a[1]!;
  let root = 0;
  let leaf = 2;
  for (let next = 1; next < n - 1; next++) {
    if (leaf >= n || a[root]! < a[leaf]!) {
      a[next] = a[root]!;
      a[root++] = next;
    } else {
      a[next] = a[leaf++]!;
    }
    if (leaf >= n || (root < next && a[root]! < a[leaf]!)) {
      a[next]! += a[root]!;
      a[root++] = next;
    } else {
      a[next]! += a[leaf++]!;
    }
  }
  // Phase 2: depths of the internal nodes.
  a[n - 2] = 0;
  for (let next = n - 3; next >= 0; next--) a[next] = a[a[next]!]! + 1;
  // Phase 3: depths of the leaves.
  let available = 1;
  let usedNodes = 0;
  let depth = 0;
  root = n - 2;
  let next = n - 1;
  while (available > 0) {
    while (root >= 0 && a[root] === depth) {
      usedNodes++;
      root--;
    }
    while (available > usedNodes) {
      a[next--] = depth;
      available--;
    }
    available = 2 * usedNodes;
    depth++;
    usedNodes = 0;
  }
}

/**
 * Shortens the codes counted in `codesPerLength` to at most `maxBits`: the
 * longer codes are cut to `maxBits`, which over-subscribes the code, then
 * codes are lengthened one at a time until the Kraft sum is exactly 1.
 */
function limitLengths(used: number, maxBits: number): void {
  for (let bits = maxBits + 1; bits <= used; bits++) {
    codesPerLength[maxBits]! += codesPerLength[bits]!;
    codesPerLength[bits] = 0;
  }
  let total = 0;
  for (let bits = maxBits; bits > 0; bits--) total += codesPerLength[bits]! << (maxBits - bits);
  while (total !== 1 << maxBits) {
    codesPerLength[maxBits]!--;
    for (let bits = maxBits - 1; bits > 0; bits--) {
      if (codesPerLength[bits] !== 0) {
        codesPerLength[bits]!--;
        codesPerLength[bits + 1]! += 2;
        break;
      }
    }
    total--;
  }
}

// ---- Output ----

/** Output buffers larger than this are dropped after the call that needed them. */
const OUTPUT_KEEP = 64 * 1024;

/**
 * The bit writer every deflater writes through during its call: DEFLATE
 * fills bytes from the least significant bit. At most 7 bits are pending
 * between writes; the deflater keeps them between calls.
 */
const writer = {
  buf: new Uint8Array(4096),
  pos: 0,
  bits: 0,
  count: 0,
};

function ensureOutput(bytes: number): void {
  const needed = writer.pos + bytes;
  if (needed <= writer.buf.length) return;
  const grown = new Uint8Array(Math.max(needed, writer.buf.length * 2));
  grown.set(writer.buf.subarray(0, writer.pos));
  writer.buf = grown;
}

/** Writes `n` ≤ 24 bits; the caller has ensured room. */
function putBits(value: number, n: number): void {
  let bits = writer.bits | (value << writer.count);
  let count = writer.count + n;
  while (count >= 8) {
    writer.buf[writer.pos++] = bits;
    bits >>>= 8;
    count -= 8;
  }
  writer.bits = bits;
  writer.count = count;
}

function alignToByte(): void {
  if (writer.count > 0) writer.buf[writer.pos++] = writer.bits;
  writer.bits = 0;
  writer.count = 0;
}

/** Writes `source` as stored blocks of at most 65535 bytes; an empty `source` as one empty block. */
function writeStored(source: Uint8Array): void {
  let at = 0;
  do {
    const length = Math.min(source.length - at, MAX_STORED);
    ensureOutput(length + 6);
    putBits(STORED, 3);
    alignToByte();
    const buf = writer.buf;
    let pos = writer.pos;
    buf[pos++] = length;
    buf[pos++] = length >>> 8;
    buf[pos++] = ~length;
    buf[pos++] = ~length >>> 8;
    buf.set(source.subarray(at, at + length), pos);
    writer.pos = pos + length;
    at += length;
  } while (at < source.length);
}

/** Size in bits of `source` as stored blocks, from the current bit position. */
function storedBits(length: number): number {
  const blocks = Math.max(1, Math.ceil(length / MAX_STORED));
  const firstPadding = (8 - ((writer.count + 3) & 7)) & 7;
  return blocks * (3 + 32) + firstPadding + (blocks - 1) * 5 + length * 8;
}

// ---- Blocks ----

// Scratch for the block being written.
const litFreq = new Int32Array(LITLEN_CODES);
const distFreq = new Int32Array(DIST_CODES);
const codeLengthFreq = new Int32Array(CODE_LENGTH_CODES);
const litLengths = new Uint8Array(LITLEN_CODES);
const distLengths = new Uint8Array(DIST_CODES);
const codeLengthLengths = new Uint8Array(CODE_LENGTH_CODES);
const litCodes = new Uint16Array(LITLEN_CODES);
const distCodes = new Uint16Array(DIST_CODES);
const codeLengthCodes = new Uint16Array(CODE_LENGTH_CODES);
/** The literal/length then distance code lengths, as the dynamic header sends them. */
const allLengths = new Uint8Array(LITLEN_CODES + DIST_CODES);
/** The header's code length symbols, each `symbol | extra << 5`. */
const lengthSymbols = new Uint16Array(LITLEN_CODES + DIST_CODES);

/**
 * Writes one block holding the symbols `syms[0, count)`, which encode the
 * bytes `window[start, end)`; `start` < 0 means those bytes are no longer in
 * the window, so the block can't be stored. A symbol is a literal byte, or
 * `distance << 8 | (length − 3)` for a match.
 */
function writeBlock(window: Uint8Array, start: number, end: number, syms: Uint32Array, count: number): void {
  litFreq.fill(0);
  distFreq.fill(0);
  for (let i = 0; i < count; i++) {
    const sym = syms[i]!;
    if (sym < 256) {
      litFreq[sym]!++;
    } else {
      litFreq[257 + LENGTH_CODE[sym & 255]!]!++;
      distFreq[distCode(sym >>> 8)]!++;
    }
  }
  litFreq[END_OF_BLOCK] = 1;

  let extraBits = 0;
  for (let code = 0; code < 29; code++) extraBits += litFreq[257 + code]! * LENGTH_EXTRA[code]!;
  for (let code = 0; code < DIST_CODES; code++) extraBits += distFreq[code]! * DIST_EXTRA[code]!;

  buildLengths(litFreq, LITLEN_CODES, MAX_CODE_BITS, litLengths);
  buildLengths(distFreq, DIST_CODES, MAX_CODE_BITS, distLengths);
  let litCount = LITLEN_CODES;
  while (litCount > 257 && litLengths[litCount - 1] === 0) litCount--;
  let distCount = DIST_CODES;
  while (distCount > 1 && distLengths[distCount - 1] === 0) distCount--;
  const headerSymbols = encodeLengths(litCount, distCount);
  buildLengths(codeLengthFreq, CODE_LENGTH_CODES, MAX_CODE_LENGTH_BITS, codeLengthLengths);
  let codeLengthCount = CODE_LENGTH_CODES;
  while (codeLengthCount > 4 && codeLengthLengths[CODE_LENGTH_ORDER[codeLengthCount - 1]!] === 0) {
    codeLengthCount--;
  }

  let dynamicBits = 3 + 5 + 5 + 4 + 3 * codeLengthCount + extraBits;
  for (let i = 0; i < CODE_LENGTH_CODES; i++) dynamicBits += codeLengthFreq[i]! * codeLengthLengths[i]!;
  for (let i = 0; i < 3; i++) dynamicBits += codeLengthFreq[16 + i]! * REPEAT_EXTRA[i]!;
  let fixedBits = 3 + extraBits;
  for (let i = 0; i < LITLEN_CODES; i++) {
    dynamicBits += litFreq[i]! * litLengths[i]!;
    fixedBits += litFreq[i]! * FIXED_LITLEN_LENGTHS[i]!;
  }
  for (let i = 0; i < DIST_CODES; i++) {
    dynamicBits += distFreq[i]! * distLengths[i]!;
    fixedBits += distFreq[i]! * FIXED_DIST_LENGTHS[i]!;
  }

  if (start >= 0 && storedBits(end - start) <= Math.min(fixedBits, dynamicBits)) {
    writeStored(window.subarray(start, end));
    return;
  }
  ensureOutput((Math.min(fixedBits, dynamicBits) >>> 3) + 8);
  if (fixedBits <= dynamicBits) {
    putBits(FIXED, 3);
    writeSymbols(syms, count, FIXED_LITLEN_CODES, FIXED_LITLEN_LENGTHS, FIXED_DIST_CODES, FIXED_DIST_LENGTHS);
    return;
  }
  putBits(DYNAMIC, 3);
  putBits(litCount - 257, 5);
  putBits(distCount - 1, 5);
  putBits(codeLengthCount - 4, 4);
  for (let i = 0; i < codeLengthCount; i++) putBits(codeLengthLengths[CODE_LENGTH_ORDER[i]!]!, 3);
  canonicalCodes(codeLengthLengths, CODE_LENGTH_CODES, codeLengthCodes);
  for (let i = 0; i < headerSymbols; i++) {
    const symbol = lengthSymbols[i]! & 31;
    putBits(codeLengthCodes[symbol]!, codeLengthLengths[symbol]!);
    if (symbol >= 16) putBits(lengthSymbols[i]! >>> 5, REPEAT_EXTRA[symbol - 16]!);
  }
  canonicalCodes(litLengths, LITLEN_CODES, litCodes);
  canonicalCodes(distLengths, DIST_CODES, distCodes);
  writeSymbols(syms, count, litCodes, litLengths, distCodes, distLengths);
}

/**
 * Run-length encodes the literal/length and distance code lengths into
 * `lengthSymbols` with the repeat codes 16–18, counting them in
 * `codeLengthFreq`. Runs may cross from one alphabet to the other (RFC 1951
 * §3.2.7). Returns the number of symbols.
 */
function encodeLengths(litCount: number, distCount: number): number {
  const total = litCount + distCount;
  allLengths.set(litLengths.subarray(0, litCount));
  allLengths.set(distLengths.subarray(0, distCount), litCount);
  codeLengthFreq.fill(0);
  let n = 0;
  const emit = (symbol: number, extra: number) => {
    lengthSymbols[n++] = symbol | (extra << 5);
    codeLengthFreq[symbol]!++;
  };
  for (let i = 0; i < total;) {
    const length = allLengths[i]!;
    let run = 1;
    while (i + run < total && allLengths[i + run] === length) run++;
    i += run;
    if (length === 0) {
      for (; run >= 11; run -= Math.min(run, 138)) emit(18, Math.min(run, 138) - 11);
      if (run >= 3) {
        emit(17, run - 3);
        run = 0;
      }
    } else {
      emit(length, 0);
      run--;
      for (; run >= 3; run -= Math.min(run, 6)) emit(16, Math.min(run, 6) - 3);
    }
    for (; run > 0; run--) emit(length, 0);
  }
  return n;
}

/** Writes a block's symbols and its end-of-block code; the caller has ensured room. */
function writeSymbols(
  syms: Uint32Array,
  count: number,
  litCodes: Uint16Array,
  litLengths: Uint8Array,
  distCodes: Uint16Array,
  distLengths: Uint8Array,
): void {
  const buf = writer.buf;
  let pos = writer.pos;
  let bits = writer.bits;
  let bitCount = writer.count;
  for (let i = 0; i < count; i++) {
    const sym = syms[i]!;
    if (sym < 256) {
      bits |= litCodes[sym]! << bitCount;
      bitCount += litLengths[sym]!;
    } else {
      // Length code and its extra bits: at most 15 + 5 bits.
      const lc = sym & 255;
      const code = LENGTH_CODE[lc]!;
      const symbol = 257 + code;
      bits |= (litCodes[symbol]! | ((lc + MIN_MATCH - LENGTH_BASE[code]!) << litLengths[symbol]!)) <<
        bitCount;
      bitCount += litLengths[symbol]! + LENGTH_EXTRA[code]!;
      while (bitCount >= 8) {
        buf[pos++] = bits;
        bits >>>= 8;
        bitCount -= 8;
      }
      // Distance code (at most 15 bits), then its extra bits (at most 13).
      const distance = sym >>> 8;
      const dcode = distCode(distance);
      bits |= distCodes[dcode]! << bitCount;
      bitCount += distLengths[dcode]!;
      while (bitCount >= 8) {
        buf[pos++] = bits;
        bits >>>= 8;
        bitCount -= 8;
      }
      bits |= (distance - DIST_BASE[dcode]!) << bitCount;
      bitCount += DIST_EXTRA[dcode]!;
    }
    while (bitCount >= 8) {
      buf[pos++] = bits;
      bits >>>= 8;
      bitCount -= 8;
    }
  }
  writer.pos = pos;
  writer.bits = bits;
  writer.count = bitCount;
  putBits(litCodes[END_OF_BLOCK]!, litLengths[END_OF_BLOCK]!);
}

// ---- Matching ----

/**
 * Where the match found by the last {@linkcode longestMatch} starts: its second return value, in a
 * module variable so that no object is made per call (compression is synchronous). A speed trick
 * whose gain was not measured (it came with the engine, commit 7eb0ffe).
 */
let matchFound = 0;

/**
 * zlib's longest_match: follows the hash chain from `candidate` for a match
 * at `at` longer than `bestLength`, within `maxDistance` and `lookahead`.
 * Returns the best length, and its start in `matchFound` if longer than `bestLength`.
 */
function longestMatch(
  window: Uint8Array,
  prev: Uint16Array,
  at: number,
  candidate: number,
  bestLength: number,
  lookahead: number,
  maxDistance: number,
  effort: Effort,
): number {
  const maxLength = lookahead < MAX_MATCH ? lookahead : MAX_MATCH;
  if (bestLength >= maxLength) return bestLength;
  const windowMask = prev.length - 1;
  let chain = bestLength >= effort.good ? effort.chain >> 2 : effort.chain;
  const nice = effort.nice < maxLength ? effort.nice : maxLength;
  const limit = at > maxDistance ? at - maxDistance : 0;
  const scanEnd = at + maxLength;
  const first = window[at];
  const second = window[at + 1];
  // A candidate is only worth comparing if it matches where the best match so far ends.
  let end1 = window[at + bestLength - 1];
  let end = window[at + bestLength];
  do {
    const match = candidate;
    if (
      window[match + bestLength] !== end || window[match + bestLength - 1] !== end1 ||
      window[match] !== first || window[match + 1] !== second
    ) continue;
    let scan = at + 2;
    let m = match + 2;
    while (scan < scanEnd && window[scan] === window[m]) {
      scan++;
      m++;
    }
    const length = scan - at;
    if (length > bestLength) {
      matchFound = match;
      bestLength = length;
      // nice ≤ maxLength, so a match reaching the end of the lookahead stops here.
      if (length >= nice) break;
      end1 = window[at + bestLength - 1];
      end = window[at + bestLength];
    }
  } while ((candidate = prev[candidate & windowMask]!) > limit && --chain !== 0);
  return bestLength;
}

const HASH_MULTIPLIER = 0x9e3779b1 | 0;

/**
 * Indexes the positions `from` to `to` (inclusive; none if `to` < `from`), each with
 * {@linkcode HASH_BYTES} bytes in the window: the positions a match covers. The 4 bytes
 * hashed roll along, one load per position instead of hashAt's four: this is most of the
 * work on highly repetitive input, where it makes deflate 1.6× faster (Deno).
 */
function insertRange(
  window: Uint8Array,
  head: Uint16Array,
  prev: Uint16Array,
  shift: number,
  from: number,
  to: number,
): void {
  if (to < from) return;
  const windowMask = prev.length - 1;
  let bytes = (window[from]! << 8) | (window[from + 1]! << 16) | (window[from + 2]! << 24);
  for (let at = from; at <= to; at++) {
    bytes = (bytes >>> 8) | (window[at + 3]! << 24);
    const h = Math.imul(bytes, HASH_MULTIPLIER) >>> shift;
    prev[at & windowMask] = head[h]!;
    head[h] = at;
  }
}

/** Hash of the {@linkcode HASH_BYTES} (4) bytes at `at`, `32 − shift` bits. */
function hashAt(window: Uint8Array, at: number, shift: number): number {
  const bytes = window[at]! | (window[at + 1]! << 8) | (window[at + 2]! << 16) | (window[at + 3]! << 24);
  return Math.imul(bytes, HASH_MULTIPLIER) >>> shift;
}

/** The large buffers of a deflater at level 1–9. */
interface Buffers {
  /** History, then the lookahead. */
  window: Uint8Array;
  /** Hash chains: the previous position with the same hash, indexed by position mod W. */
  prev: Uint16Array;
  /** Hash heads: the latest position with each hash; 0 means none. */
  head: Uint16Array;
  /** The symbols of the current block. */
  syms: Uint32Array;
}

/**
 * One idle set of buffers per window size and memory level, its hash heads
 * cleared, so that a deflater reset after every message (no context
 * takeover) allocates nothing.
 */
const spareBuffers = new Map<number, Buffers>();

/**
 * Compresses a stream of bytes into raw DEFLATE (RFC 1951), each `write()`
 * continuing the same stream, for permessage-deflate (RFC 7692).
 *
 * Memory: nothing large until the first `write()` at level 1–9; from then
 * until {@linkcode Deflater.reset}, with W = 2^windowBits:
 * - the window buffer, min(S + W + 262, 65536) bytes, where the window slides by
 *   S = max(W, min(2^(memLevel+7), 32768)) bytes at a time (64 KiB with the defaults);
 * - the hash chains, 2·W bytes (64 KiB at windowBits 15);
 * - the hash heads, 2^(memLevel+8) bytes (64 KiB at memLevel 8);
 * - the symbol buffer, 2^(memLevel+8) bytes (64 KiB at memLevel 8).
 *
 * That is 256 KiB with the defaults, 163 KiB at windowBits 10, 2.3 KiB at
 * windowBits 8 and memLevel 1; level 0 holds nothing. `reset()` hands the
 * buffers to a module-wide spare set (one per windowBits and memLevel) that
 * the next deflater to start takes instead of allocating. The Huffman scratch
 * (a few KiB) and the output buffer are shared by every deflater; the output
 * buffer is dropped after a call whose output exceeded 64 KiB.
 *
 * Back-references reach at most W − 1 bytes back (W − 262 at windowBits 15,
 * as in zlib), so any decoder with a window of W bytes can decode the stream.
 *
 * @category Extensions
 *
 * @example Compressing two messages with context takeover
 * ```ts
 * import { Deflater } from "@sock/sock/core";
 * import { assertEquals } from "@std/assert";
 *
 * const deflater = new Deflater({ windowBits: 10 });
 * const text = new TextEncoder().encode('{"type":"chat","text":"hello"}');
 * const first = deflater.write(text, true);
 * // Every message ends with a sync flush, which RFC 7692 strips off.
 * assertEquals([...first.subarray(-4)], [0x00, 0x00, 0xff, 0xff]);
 * // The second message refers back to the first, so it is much smaller.
 * const second = deflater.write(text, true);
 * assertEquals(second.length < first.length / 2, true);
 * ```
 */
export class Deflater {
  readonly #level: number;
  readonly #effort: Effort;
  readonly #windowBits: number;
  readonly #memLevel: number;
  /** Where spare buffers for these options are kept: windowBits and memLevel. */
  readonly #spareKey: number;
  /** Right shift that turns a 32-bit hash into a head index. */
  readonly #hashShift: number;
  /** How far the window slides; a multiple of W, so positions keep their slots in the hash chains. */
  readonly #slide: number;
  readonly #bufferSize: number;
  /** The largest distance used: see the class comment. */
  readonly #maxDistance: number;

  /** Taken on the first write() at level 1–9, given back by reset(). */
  #buffers: Buffers | undefined;
  /** Whether the window has slid since the buffers were taken, so the hash heads hold any positions. */
  #slid = false;
  /** The position in the window being matched; the bytes before it are history or pending symbols. */
  #strstart = 0;
  /** Bytes in the window from `#strstart` on, not yet matched. */
  #lookahead = 0;
  /** Where the bytes of the current block start; negative once they have slid out of the window. */
  #blockStart = 0;
  #symCount = 0;
  /** Lazy matching: whether the byte before `#strstart` still awaits a literal or a match. */
  #matchAvailable = false;
  #matchLength = MIN_MATCH - 1;
  #matchStart = 0;

  /** Bits written but not yet a whole byte: fewer than 8. */
  #bits = 0;
  #bitCount = 0;

  /**
   * Creates a deflater; it allocates nothing large until its first write.
   *
   * @param options Window size, memory level and compression level.
   * @throws {RangeError} For options out of range.
   */
  constructor(options: DeflaterOptions = {}) {
    this.#windowBits = checkOption("windowBits", options.windowBits, 15, { min: 8, max: 15, integer: true });
    this.#memLevel = checkOption("memLevel", options.memLevel, 8, { min: 1, max: 9, integer: true });
    this.#level = checkOption("level", options.level, 6, { min: 0, max: 9, integer: true });
    this.#spareKey = (this.#windowBits << 4) | this.#memLevel;
    this.#hashShift = 32 - (this.#memLevel + 7);
    this.#effort = EFFORT[this.#level]!;
    const size = 1 << this.#windowBits;
    this.#slide = Math.max(size, Math.min(1 << (this.#memLevel + 7), MAX_SLIDE));
    this.#bufferSize = Math.min(this.#slide + size + MIN_LOOKAHEAD, MAX_BUFFER);
    // A position's chain slot is reused W positions later, so reach at most W − 1 back; and at
    // windowBits 15 the buffer is too small for a whole window behind the lookahead.
    this.#maxDistance = Math.min(size - 1, this.#bufferSize - this.#slide - MIN_LOOKAHEAD);
  }

  /**
   * Compresses `data` as the continuation of the stream. With `flush` true, ends with a
   * sync flush: all input so far becomes decodable and the output ends with an empty stored
   * block (the bytes 00 00 ff ff) on a byte boundary. With `flush` false it may keep input
   * buffered and return fewer (even zero) bytes. Never sets BFINAL.
   * `data` is only valid during the call (copy what you keep). Returns bytes the caller owns.
   *
   * @param data The next bytes of the stream.
   * @param flush Whether to make everything so far decodable, as the end of a message must be.
   * @returns The compressed bytes produced by this call.
   */
  write(data: Uint8Array, flush: boolean): Uint8Array<ArrayBuffer> {
    writer.pos = 0;
    writer.bits = this.#bits;
    writer.count = this.#bitCount;
    if (this.#level === 0) {
      if (data.length > 0) writeStored(data);
    } else {
      this.#compress(this.#buffers ?? this.#takeBuffers(), data, flush);
    }
    if (flush) writeStored(EMPTY);
    this.#bits = writer.bits;
    this.#bitCount = writer.count;
    const result = writer.buf.slice(0, writer.pos);
    if (writer.buf.length > OUTPUT_KEEP) writer.buf = new Uint8Array(4096);
    return result;
  }

  /**
   * Forgets the history (used for "no context takeover"): the next write() never refers to
   * earlier data. Releases large buffers so an idle Deflater holds little memory: they become
   * the spare set the next deflater to start takes. Input not yet flushed is dropped, so call
   * it between messages.
   */
  reset(): void {
    const buffers = this.#buffers;
    if (buffers !== undefined) {
      this.#buffers = undefined;
      if (!spareBuffers.has(this.#spareKey)) {
        this.#clearHeads(buffers);
        spareBuffers.set(this.#spareKey, buffers);
      }
    }
    this.#slid = false;
    this.#strstart = 0;
    this.#lookahead = 0;
    this.#blockStart = 0;
    this.#symCount = 0;
    this.#matchAvailable = false;
    this.#matchLength = MIN_MATCH - 1;
    this.#matchStart = 0;
    this.#bits = 0;
    this.#bitCount = 0;
  }

  #takeBuffers(): Buffers {
    let buffers = spareBuffers.get(this.#spareKey);
    if (buffers === undefined) {
      buffers = {
        window: new Uint8Array(this.#bufferSize),
        prev: new Uint16Array(1 << this.#windowBits),
        head: new Uint16Array(1 << (this.#memLevel + 7)),
        syms: new Uint32Array(1 << (this.#memLevel + 6)),
      };
    } else {
      spareBuffers.delete(this.#spareKey);
    }
    return this.#buffers = buffers;
  }

  /**
   * Empties the hash heads; the chains and the window need no clearing, as only positions
   * reached from the heads are read. After a short stream, re-hashing its bytes finds the
   * few heads it set faster than clearing them all.
   */
  #clearHeads({ window, head }: Buffers): void {
    const end = this.#strstart + this.#lookahead;
    if (this.#slid || end > head.length >>> 4) {
      head.fill(0);
      return;
    }
    for (let at = 0; at + HASH_BYTES <= end; at++) head[hashAt(window, at, this.#hashShift)] = 0;
  }

  /**
   * zlib's deflate_slow, or deflate_fast at levels 1–3. Lazy matching: the match at each
   * position is compared with the one found at the previous position, and the previous one
   * is used only if it is at least as long. Greedy matching takes each match as it comes.
   */
  #compress(buffers: Buffers, input: Uint8Array, flush: boolean): void {
    const { window, prev, head, syms } = buffers;
    const windowMask = prev.length - 1;
    const hashShift = this.#hashShift;
    const maxDistance = this.#maxDistance;
    const slide = this.#slide;
    const effort = this.#effort;
    const lazy = effort.lazy;
    const greedy = this.#level <= 3;
    const symLimit = syms.length - 1;
    let strstart = this.#strstart;
    let lookahead = this.#lookahead;
    let blockStart = this.#blockStart;
    let symCount = this.#symCount;
    let matchAvailable = this.#matchAvailable;
    let matchLength = this.#matchLength;
    let matchStart = this.#matchStart;
    let inputAt = 0;

    while (true) {
      if (lookahead < MIN_LOOKAHEAD) {
        // A stream flushed long after its last input may need more than one slide to make room.
        while (lookahead < MIN_LOOKAHEAD && inputAt < input.length) {
          if (strstart >= slide + maxDistance) {
            const end = strstart - (matchAvailable ? 1 : 0);
            // A block of mostly literals may be best stored: write it while its bytes are still here.
            if (blockStart >= 0 && blockStart < slide && end - blockStart < 2 * symCount) {
              writeBlock(window, blockStart, end, syms, symCount);
              symCount = 0;
              blockStart = end;
            }
            slideWindow(window, head, prev, slide, strstart + lookahead);
            this.#slid = true;
            strstart -= slide;
            blockStart -= slide;
            matchStart -= slide;
          }
          const n = Math.min(input.length - inputAt, window.length - strstart - lookahead);
          window.set(input.subarray(inputAt, inputAt + n), strstart + lookahead);
          inputAt += n;
          lookahead += n;
        }
        if (lookahead < MIN_LOOKAHEAD && !flush) break;
        if (lookahead === 0) break;
      }

      let candidate = 0;
      if (lookahead >= HASH_BYTES) {
        const h = hashAt(window, strstart, hashShift);
        candidate = head[h]!;
        prev[strstart & windowMask] = candidate;
        head[h] = strstart;
      }
      const inReach = candidate !== 0 && strstart - candidate <= maxDistance;

      if (greedy) {
        const length = inReach
          ? longestMatch(window, prev, strstart, candidate, MIN_MATCH - 1, lookahead, maxDistance, effort)
          : 0;
        if (length >= MIN_MATCH) {
          syms[symCount++] = ((strstart - matchFound) << 8) | (length - MIN_MATCH);
          lookahead -= length;
          const end = strstart + length;
          // At these levels, indexing every position of a long match costs more than it finds.
          // Each position indexed, up to end − 1, needs HASH_BYTES bytes: end − 1 + HASH_BYTES ≤ end + lookahead.
          if (length <= lazy && lookahead >= HASH_BYTES - 1) {
            insertRange(window, head, prev, hashShift, strstart + 1, end - 1);
          }
          strstart = end;
        } else {
          syms[symCount++] = window[strstart++]!;
          lookahead--;
        }
      } else {
        const prevLength = matchLength;
        const prevMatch = matchStart;
        matchLength = MIN_MATCH - 1;
        if (inReach && prevLength < lazy) {
          const length = longestMatch(
            window,
            prev,
            strstart,
            candidate,
            prevLength,
            lookahead,
            maxDistance,
            effort,
          );
          // A 3-byte match far back costs more than three literals.
          if (length > prevLength && (length > MIN_MATCH || strstart - matchFound <= TOO_FAR)) {
            matchLength = length;
            matchStart = matchFound;
          }
        }
        if (prevLength >= MIN_MATCH && matchLength <= prevLength) {
          // The match at the previous position wins: emit it, and index the positions it covers.
          const maxInsert = strstart + lookahead - HASH_BYTES;
          syms[symCount++] = ((strstart - 1 - prevMatch) << 8) | (prevLength - MIN_MATCH);
          lookahead -= prevLength - 1;
          const last = strstart + prevLength - 2;
          insertRange(window, head, prev, hashShift, strstart + 1, last < maxInsert ? last : maxInsert);
          strstart += prevLength - 1;
          matchAvailable = false;
          matchLength = MIN_MATCH - 1;
        } else {
          if (matchAvailable) syms[symCount++] = window[strstart - 1]!;
          matchAvailable = true;
          strstart++;
          lookahead--;
        }
      }

      if (symCount === symLimit) {
        // A byte still awaiting lazy evaluation belongs to the next block.
        const end = strstart - (matchAvailable ? 1 : 0);
        writeBlock(window, blockStart, end, syms, symCount);
        symCount = 0;
        blockStart = end;
      }
    }

    if (flush) {
      if (matchAvailable) syms[symCount++] = window[strstart - 1]!;
      matchAvailable = false;
      if (symCount > 0) writeBlock(window, blockStart, strstart, syms, symCount);
      symCount = 0;
      blockStart = strstart;
    }
    this.#strstart = strstart;
    this.#lookahead = lookahead;
    this.#blockStart = blockStart;
    this.#symCount = symCount;
    this.#matchAvailable = matchAvailable;
    this.#matchLength = matchLength;
    this.#matchStart = matchStart;
  }
}

/**
 * Moves the window `slide` bytes back, and the positions in the hash heads
 * and chains with it; positions that fall off become 0, the end of a chain.
 */
function slideWindow(
  window: Uint8Array,
  head: Uint16Array,
  prev: Uint16Array,
  slide: number,
  end: number,
): void {
  window.copyWithin(0, slide, end);
  for (let i = 0; i < head.length; i++) {
    const position = head[i]!;
    head[i] = position >= slide ? position - slide : 0;
  }
  for (let i = 0; i < prev.length; i++) {
    const position = prev[i]!;
    prev[i] = position >= slide ? position - slide : 0;
  }
}
