/**
 * Reads a push-only transport as a pull stream, for tests that drive a raw connection by hand.
 *
 * @module
 */

import type { Transport } from "../src/transport.ts";

/** A transport's chunks, one `read()` at a time. */
export interface Pull {
  /** The next chunk, or `null` at the end of the stream. */
  read(): Promise<Uint8Array | null>;
}

/**
 * Starts `transport` with a sink that queues what arrives (keeping every chunk, so the transport
 * never reads into one again) and hands it out through `read()`.
 */
export function pull(transport: Transport): Pull {
  const queue: (Uint8Array | null)[] = [];
  let waiter: ((chunk: Uint8Array | null) => void) | undefined;
  const put = (chunk: Uint8Array | null) => {
    if (waiter) {
      const resolve = waiter;
      waiter = undefined;
      resolve(chunk);
    } else queue.push(chunk);
  };
  transport.start({
    data: (chunk) => (put(chunk), true),
    end: () => put(null),
  });
  let ended = false;
  return {
    read() {
      if (ended) return Promise.resolve(null);
      const next = queue.length > 0
        ? Promise.resolve(queue.shift()!)
        : new Promise<Uint8Array | null>((resolve) => waiter = resolve);
      return next.then((chunk) => {
        if (chunk === null) ended = true;
        return chunk;
      });
    },
  };
}
