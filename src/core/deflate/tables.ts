/**
 * The fixed tables of DEFLATE (RFC 1951 §3.2.5–§3.2.7), shared by the
 * encoder and the decoder.
 *
 * @module
 */

/** Base match length of each length symbol 257–285, indexed by symbol − 257. */
// deno-fmt-ignore
export const LENGTH_BASE: Uint16Array = new Uint16Array([
  3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195,
  227, 258,
]);

/** Extra bits of each length symbol 257–285, indexed by symbol − 257. */
// deno-fmt-ignore
export const LENGTH_EXTRA: Uint8Array = new Uint8Array([
  0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
]);

/** Base distance of each distance symbol 0–29. */
// deno-fmt-ignore
export const DIST_BASE: Uint16Array = new Uint16Array([
  1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073,
  4097, 6145, 8193, 12289, 16385, 24577,
]);

/** Extra bits of each distance symbol 0–29. */
// deno-fmt-ignore
export const DIST_EXTRA: Uint8Array = new Uint8Array([
  0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13,
]);

/** The order in which code length code lengths are sent (RFC 1951 §3.2.7). */
// deno-fmt-ignore
export const CODE_LENGTH_ORDER: Uint8Array = new Uint8Array([
  16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
]);

/** Symbols of the literal/length alphabet: 256 literals, end of block, 29 lengths (286, 287 unused). */
export const LITLEN_SYMBOLS = 288;

/** Symbols of the distance alphabet (30, 31 unused). */
export const DIST_SYMBOLS = 32;

/** The end-of-block symbol. */
export const END_OF_BLOCK = 256;

/** The longest Huffman code DEFLATE allows for literals, lengths and distances. */
export const MAX_CODE_BITS = 15;

/** Code lengths of the fixed literal/length code (RFC 1951 §3.2.6). */
export const FIXED_LITLEN_LENGTHS: Uint8Array = (() => {
  const lengths = new Uint8Array(LITLEN_SYMBOLS);
  lengths.fill(8, 0, 144);
  lengths.fill(9, 144, 256);
  lengths.fill(7, 256, 280);
  lengths.fill(8, 280, 288);
  return lengths;
})();

/** Code lengths of the fixed distance code: 5 bits for every symbol. */
export const FIXED_DIST_LENGTHS: Uint8Array = new Uint8Array(DIST_SYMBOLS).fill(5);
