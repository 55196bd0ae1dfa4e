/**
 * Timers shared by many connections: deadlines on one timer, and the next turn of the event loop.
 *
 * @module
 */

/**
 * `setImmediate` of Bun, Node and Deno, declared here for type checks with the web's lib only, which
 * lacks it; checked for before use.
 */
declare const setImmediate: ((run: () => void) => unknown) | undefined;

/** The longest delay timers take (ms): past it, runtimes fire after 1 ms instead. */
const MAX_DELAY = 2 ** 31 - 1;

/**
 * `setTimeout` for a delay an application chose (a timeout option): one past the longest delay
 * timers take, 2^31 - 1 ms (about 24.8 days; `Infinity` included), waits that long, where
 * `setTimeout` would run it after 1 ms.
 *
 * @example An Infinity timeout does not fire at once
 * ```ts
 * import { startTimer } from "./timers.ts";
 * import { assertEquals } from "@std/assert";
 *
 * let fired = false;
 * const timer = startTimer(() => fired = true, Infinity);
 * await new Promise((resolve) => setTimeout(resolve, 20));
 * clearTimeout(timer);
 * assertEquals(fired, false);
 * ```
 *
 * @param run What to run.
 * @param ms The delay, in ms.
 * @returns The timer, for `clearTimeout()`.
 */
export function startTimer(run: () => void, ms: number): ReturnType<typeof setTimeout> {
  return setTimeout(run, Math.min(ms, MAX_DELAY));
}

/**
 * Many deadlines on one timer instead of one timer each: the timer wakes every `resolution` ms
 * while any deadline is set, so a deadline fires up to one resolution late; with none set, no timer
 * runs. Used for handshake
 * timeouts, keepalive pings and idle buffers, where thousands of connections would otherwise each
 * hold a timer.
 *
 * @example A deadline fires once, unless it is cleared first
 * ```ts
 * import { Deadlines } from "./timers.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const fired: string[] = [];
 * const deadlines = new Deadlines<string>(10, (item) => fired.push(item));
 * deadlines.set("a", 20);
 * deadlines.set("b", 20);
 * deadlines.delete("b");
 * await new Promise((resolve) => setTimeout(resolve, 100));
 * assertEquals(fired, ["a"]);
 * ```
 */
export class Deadlines<T> {
  readonly #resolution: number;
  readonly #expire: (item: T) => void;
  /** Each item and when it is due. */
  readonly #due = new Map<T, number>();
  #timer: ReturnType<typeof setInterval> | undefined;

  /**
   * Creates an empty set of deadlines.
   *
   * @param resolution How often the timer wakes while a deadline is set, in ms.
   * @param expire Called with each item once its deadline passed; the item is removed first (set
   *   it again from here to repeat). One function for every item, not a closure each.
   */
  constructor(resolution: number, expire: (item: T) => void) {
    // Timers take at most 2^31 - 1 ms; a longer delay (an Infinity timeout) would become 1 ms.
    this.#resolution = Math.min(resolution, MAX_DELAY);
    this.#expire = expire;
  }

  /** How many deadlines are set. */
  get size(): number {
    return this.#due.size;
  }

  /**
   * Sets (or moves) the deadline of `item` to `delay` ms from now.
   *
   * @param item What the deadline is for.
   * @param delay In ms.
   */
  set(item: T, delay: number): void {
    this.#due.delete(item);
    this.#due.set(item, performance.now() + delay);
    this.#timer ??= setInterval(this.#wake, this.#resolution);
  }

  /**
   * Clears the deadline of `item`, if set.
   *
   * @param item What the deadline was for.
   */
  delete(item: T): void {
    // The last one cleared stops the timer now, not at its next wake: a timer left running would
    // keep the process alive for up to a resolution (5 s for keepalive) after everything closed.
    if (this.#due.delete(item) && this.#due.size === 0) this.#stop();
  }

  /** The items with a deadline set. */
  items(): IterableIterator<T> {
    return this.#due.keys();
  }

  /** Whether `item` has a deadline set. */
  has(item: T): boolean {
    return this.#due.has(item);
  }

  #wake = (): void => {
    const now = performance.now();
    for (const [item, due] of this.#due) {
      if (due > now) continue;
      this.#due.delete(item);
      this.#expire(item);
    }
    if (this.#due.size === 0) this.#stop();
  };

  #stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

/**
 * Resolves on the next turn of the event loop, after pending I/O callbacks. A timer, not
 * `setImmediate`: on Deno an immediate ran before other sockets' reads, and under 3 million
 * 1-byte frames an honest client's round trips had a p99 of 1,416 ms against 38 ms with a timer
 * (on Bun both stay under 20 ms).
 *
 * @example Other timers' callbacks run first
 * ```ts
 * import { nextTurn } from "./timers.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const order: string[] = [];
 * setTimeout(() => order.push("timer"), 0);
 * await nextTurn();
 * order.push("after");
 * assertEquals(order, ["timer", "after"]);
 * ```
 */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/**
 * The waits of {@linkcode settledWithin}, on one set of deadlines per time bound (a program uses a
 * few: its options' timeouts), not a timer each: a timer is an object of about 1 KiB on Deno (Node's
 * `Timeout`), and every close handshake there waits once for its echo's write. A Deno server under
 * bench (e) for 4 s (1 s of warm-up) made 24,026 `setTimeout` and 1,059 `setInterval` calls before
 * (18,412 handshakes in its last 3 s), and 3,429 `setInterval` calls and no `setTimeout` after
 * (22,791); its CPU per handshake went 130 -> 123 µs (medians of 4 alternating runs).
 */
const waits = new Map<number, Deadlines<(settled: boolean) => void>>();

/**
 * Waits for `promise` to settle, or for about `ms` to pass (up to an eighth more), whichever comes
 * first; never rejects (a rejection counts as settled), and leaves no timer behind.
 *
 * @example A close handshake bounded by a timeout
 * ```ts
 * import { settledWithin } from "./timers.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const never = new Promise<void>(() => {});
 * assertEquals(await settledWithin(never, 10), false);
 * assertEquals(await settledWithin(Promise.reject(new Error("gone")), 10), true);
 * ```
 *
 * @param promise What to wait for.
 * @param ms How long at most, in ms.
 * @returns Whether `promise` settled in time.
 */
export function settledWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let deadlines = waits.get(ms);
  if (!deadlines) waits.set(ms, deadlines = new Deadlines(ms / 8, (resolve) => resolve(false)));
  const outcome = Promise.withResolvers<boolean>();
  deadlines.set(outcome.resolve, ms);
  const settled = () => {
    deadlines.delete(outcome.resolve);
    outcome.resolve(true);
  };
  promise.then(settled, settled);
  return outcome.promise;
}

/**
 * Runs a callback for each item added during a turn of the event loop, once the turn's microtasks
 * have run: one immediate for every item, not a timer each (the fan-out p50 of Deno went from 9.9
 * to 7.4 ms). Unlike {@linkcode nextTurn} it need not let other sockets' reads go first: it is for
 * finishing what this turn started (writes). An item is added at most once per turn by its caller.
 *
 * @example Batching work of one turn
 * ```ts
 * import { TurnEnd } from "./timers.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const ran: string[] = [];
 * const turnEnd = new TurnEnd<string>((item) => ran.push(item));
 * turnEnd.add("a");
 * turnEnd.add("b");
 * assertEquals(ran, []);
 * await new Promise((resolve) => setTimeout(resolve, 0));
 * assertEquals(ran, ["a", "b"]);
 * ```
 */
export class TurnEnd<T> {
  #items: T[] = [];
  readonly #run: (item: T) => void;

  /** @param run Called with each item at the end of the turn it was added in. */
  constructor(run: (item: T) => void) {
    this.#run = run;
  }

  /**
   * Runs `run(item)` at the end of this turn.
   *
   * @param item The item.
   */
  add(item: T): void {
    if (this.#items.push(item) > 1) return;
    if (typeof setImmediate === "function") setImmediate(this.#runAll);
    else setTimeout(this.#runAll, 0);
  }

  #runAll = (): void => {
    const items = this.#items;
    this.#items = [];
    for (const item of items) this.#run(item);
  };
}
