/**
 * What the two floors (floor_bun.ts, floor_deno.ts) share: finding a masked client frame's length,
 * and writing its echo, unmasked a word at a time. Part of the floors, not of sock.
 *
 * @module
 */

/**
 * XORs `out[start, end)` with the mask at `key[k, k + 4)`, four bytes at a time where aligned.
 *
 * @param out The bytes, unmasked in place.
 * @param words `out` as 32-bit words.
 * @param start Where the payload starts.
 * @param end Where it ends.
 * @param key The buffer holding the mask key.
 * @param k Where the key starts in it.
 */
export function unmask(
  out: Uint8Array,
  words: Int32Array,
  start: number,
  end: number,
  key: Uint8Array,
  k: number,
): void {
  let p = start;
  for (; p < end && p & 3; p++) out[p] ^= key[k + ((p - start) & 3)];
  if (p + 4 <= end) {
    const s = p - start;
    const m = key[k + (s & 3)] | key[k + ((s + 1) & 3)] << 8 | key[k + ((s + 2) & 3)] << 16 |
      key[k + ((s + 3) & 3)] << 24; // little-endian
    const last = end >> 2;
    for (let w = p >> 2; w < last; w++) words[w] ^= m;
    p = last << 2;
  }
  for (; p < end; p++) out[p] ^= key[k + ((p - start) & 3)];
}

/**
 * The length of the masked frame at `buf[i, end)`, header included; 0 if its header is incomplete.
 *
 * @param buf The bytes read.
 * @param i Where the frame starts.
 * @param end Where the bytes end.
 * @returns The frame's length, or 0.
 */
export function frameLength(buf: Uint8Array, i: number, end: number): number {
  if (end - i < 2) return 0;
  const length7 = buf[i + 1] & 127;
  if (length7 < 126) return 6 + length7;
  if (length7 === 126) return end - i < 4 ? 0 : 8 + (buf[i + 2] << 8 | buf[i + 3]);
  return end - i < 10 ? 0 : 14 + buf[i + 6] * 2 ** 24 + (buf[i + 7] << 16 | buf[i + 8] << 8 | buf[i + 9]);
}

/**
 * Writes the server's echo of the masked client frame at `buf[i, i + length)` into `out` at `o`: its
 * header without the mask bit, then its payload, unmasked.
 *
 * @param buf The bytes read.
 * @param i Where the frame starts.
 * @param length Its length, header included (see `frameLength`).
 * @param out Where the echo goes.
 * @param words `out` as 32-bit words.
 * @param o Where in `out` it starts.
 */
export function echoFrame(
  buf: Uint8Array,
  i: number,
  length: number,
  out: Uint8Array,
  words: Int32Array,
  o: number,
): void {
  const length7 = buf[i + 1] & 127;
  const header = length7 < 126 ? 2 : length7 === 126 ? 4 : 10;
  const payload = i + header + 4;
  for (let h = 0; h < header; h++) out[o + h] = buf[i + h];
  out[o + 1] &= 127;
  out.set(buf.subarray(payload, i + length), o + header);
  unmask(out, words, o + header, o + length - 4, buf, payload - 4);
}
