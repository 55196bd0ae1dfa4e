/**
 * Masking (RFC 6455 §5.3): XOR with a 4-byte key, 32 bits at a time.
 *
 * @module
 */

/**
 * Fills a buffer with random bytes. The default is `crypto.getRandomValues`;
 * tests inject a deterministic source.
 *
 * @category Frames
 */
export type RandomSource = (target: Uint8Array<ArrayBuffer>) => void;

/**
 * The platform CSPRNG.
 *
 * @category Frames
 */
export const cryptoRandom: RandomSource = (target) => {
  crypto.getRandomValues(target);
};

const POOL_SIZE = 4096;

/**
 * Hands out 4-byte mask keys drawn from a pooled random source, so the
 * CSPRNG is called once per 1024 frames instead of once per frame.
 *
 * @category Frames
 *
 * @example Drawing mask keys
 * ```ts
 * import { MaskKeys } from "@sock/sock";
 * import { assertEquals } from "@std/assert";
 *
 * const keys = new MaskKeys((target) => target.fill(7));
 * assertEquals(keys.next(), 0x07070707);
 * ```
 */
export class MaskKeys {
  #random: RandomSource;
  #pool = new Uint8Array(POOL_SIZE);
  #offset = POOL_SIZE;

  /**
   * Creates a key source.
   *
   * @param random Where the key bytes come from; defaults to `crypto.getRandomValues`.
   */
  constructor(random: RandomSource = cryptoRandom) {
    this.#random = random;
  }

  /**
   * Returns the next key as a big-endian 32-bit number: key byte 0 is the top byte.
   *
   * @returns The key.
   */
  next(): number {
    if (this.#offset === POOL_SIZE) {
      this.#random(this.#pool);
      this.#offset = 0;
    }
    const p = this.#pool, i = this.#offset;
    this.#offset = i + 4;
    return ((p[i]! << 24) | (p[i + 1]! << 16) | (p[i + 2]! << 8) | p[i + 3]!) >>> 0;
  }
}

/** Below this many bytes, mask() works byte by byte. */
const SMALL = 128;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * Copies `source` (or its bytes from `start` to `end`) into `target` at
 * `offset`, XOR-ed with the mask `key`. `phase` is how many payload bytes
 * were masked before `source[start]`, so a payload split over several reads
 * unmasks piece by piece. `target` may be `source` itself (with `offset`
 * equal to `start`) for an in-place unmask; otherwise the two must not
 * overlap, and `source` is not modified.
 *
 * @category Frames
 *
 * @param source The bytes to mask or unmask.
 * @param key The mask key, big-endian (key byte 0 is the top byte).
 * @param target Where the result goes.
 * @param offset Where in `target` the result starts.
 * @param phase The position in the payload of `source[start]`, modulo 4 is what counts.
 * @param start Where in `source` the bytes start. Default 0.
 * @param end Where in `source` they end. Default `source.length`.
 *
 * @example Unmasking the RFC 6455 §5.7 "Hello"
 * ```ts
 * import { mask } from "@sock/sock";
 * import { assertEquals } from "@std/assert";
 *
 * const masked = new Uint8Array([0x7f, 0x9f, 0x4d, 0x51, 0x58]);
 * const out = new Uint8Array(5);
 * mask(masked, 0x37fa213d, out, 0, 0);
 * assertEquals(new TextDecoder().decode(out), "Hello");
 * ```
 */
export function mask(
  source: Uint8Array,
  key: number,
  target: Uint8Array,
  offset: number,
  phase: number,
  start = 0,
  end: number = source.length,
): void {
  const n = end - start;
  const shift = (phase & 3) * 8;
  if (shift !== 0) key = ((key << shift) | (key >>> (32 - shift))) >>> 0;
  const k0 = key >>> 24, k1 = (key >>> 16) & 0xff, k2 = (key >>> 8) & 0xff, k3 = key & 0xff;
  if (n < SMALL) {
    // Small: copy and XOR (with 0 when unmasked) in one byte loop, no typed-array view to create.
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      target[offset + i] = source[start + i]! ^ k0;
      target[offset + i + 1] = source[start + i + 1]! ^ k1;
      target[offset + i + 2] = source[start + i + 2]! ^ k2;
      target[offset + i + 3] = source[start + i + 3]! ^ k3;
    }
    for (; i < n; i++) {
      const j = i & 3;
      target[offset + i] = source[start + i]! ^ (j === 0 ? k0 : j === 1 ? k1 : k2);
    }
    return;
  }
  if (target !== source || offset !== start) {
    target.set(start === 0 && end === source.length ? source : source.subarray(start, end), offset);
  }
  if (key === 0 || n === 0) return;
  let i = 0;
  const at = target.byteOffset + offset;
  if (n >= 32) {
    // Byte-wise head until the target is 4-byte aligned, then whole words.
    const head = (4 - (at & 3)) & 3;
    for (; i < head; i++) target[offset + i]! ^= (key >>> (24 - 8 * (i & 3))) & 0xff;
    const wordKeyBE = head === 0 ? key : ((key << (head * 8)) | (key >>> (32 - head * 8))) >>> 0;
    const wordKey = LITTLE_ENDIAN
      ? (((wordKeyBE & 0xff) << 24) | ((wordKeyBE & 0xff00) << 8) |
        ((wordKeyBE >>> 8) & 0xff00) | (wordKeyBE >>> 24)) | 0
      : wordKeyBE | 0;
    const words = (n - head) >>> 2;
    const view = new Int32Array(target.buffer, at + head, words);
    let w = 0;
    // Unrolled: JavaScriptCore runs this about half again as fast; V8 is unaffected.
    for (; w + 8 <= words; w += 8) {
      view[w]! ^= wordKey;
      view[w + 1]! ^= wordKey;
      view[w + 2]! ^= wordKey;
      view[w + 3]! ^= wordKey;
      view[w + 4]! ^= wordKey;
      view[w + 5]! ^= wordKey;
      view[w + 6]! ^= wordKey;
      view[w + 7]! ^= wordKey;
    }
    for (; w < words; w++) view[w]! ^= wordKey;
    i = head + words * 4;
  }
  for (; i < n; i++) {
    const j = i & 3;
    target[offset + i]! ^= j === 0 ? k0 : j === 1 ? k1 : j === 2 ? k2 : k3;
  }
}
