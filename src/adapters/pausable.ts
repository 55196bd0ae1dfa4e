/**
 * What the transports that run a read loop of their own (Deno's, the streams adapter's) share:
 * pausing it.
 *
 * @module
 */

/** `pause()` and `resume()` for a read loop, which waits on `paused` before handing a chunk on. */
export abstract class Pausable {
  #paused: PromiseWithResolvers<void> | undefined;

  /** Set while paused: it resolves at `resume()`. */
  protected get paused(): Promise<void> | undefined {
    return this.#paused?.promise;
  }

  /** Stops handing chunks to the sink until `resume()`. */
  pause(): void {
    this.#paused ??= Promise.withResolvers();
  }

  /** Hands chunks to the sink again, first the one read meanwhile. */
  resume(): void {
    const paused = this.#paused;
    this.#paused = undefined;
    paused?.resolve();
  }
}
