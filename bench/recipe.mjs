/**
 * What bench/frames.ts (sock on Deno and Bun) and bench/ws_receiver.mjs (ws on
 * Node) share, so both decode identical byte streams and are timed alike.
 *
 * @module
 */

/** The workloads' sizes and seed. */
export const SEED = 0x50c4e7;
export const BIN_FRAMES = 64;
export const BIN_SIZE = 1024 * 1024;
export const TEXT_FRAMES = 100_000;
export const TEXT_SIZE = 32;
/** Bytes per chunk, as one socket read delivers them. */
export const CHUNK = 64 * 1024;

/**
 * mulberry32: a small seeded generator of uint32s.
 *
 * @param {number} seed
 * @returns {() => number}
 */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/**
 * Order-dependent sample of a message: its length and three of its bytes.
 *
 * @param {number} check
 * @param {number} length
 * @param {number} first
 * @param {number} middle
 * @param {number} last
 * @returns {number}
 */
export function sample(check, length, first, middle, last) {
  return (Math.imul(check, 31) + length + first * 3 + middle * 5 + last * 7) >>> 0;
}

/**
 * A cheap fingerprint of a whole stream (length and every 4093rd byte).
 *
 * @param {Uint8Array} stream
 * @returns {string}
 */
export function digest(stream) {
  let h = 0x811c9dc5;
  for (let i = 0; i < stream.length; i += 4093) h = Math.imul(h ^ stream[i], 16777619) >>> 0;
  return `${stream.length}:${h.toString(16)}`;
}

/**
 * Runs `once` (which resolves to the milliseconds it timed) `warmup` + `reps`
 * times and returns the median of the timed runs.
 *
 * @param {number} warmup
 * @param {number} reps
 * @param {() => number | Promise<number>} once
 * @returns {Promise<number>}
 */
export async function measure(warmup, reps, once) {
  for (let i = 0; i < warmup; i++) await once();
  const times = [];
  for (let i = 0; i < reps; i++) times.push(await once());
  const s = times.sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}
