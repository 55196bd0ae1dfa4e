import { test } from "node:test";
import { assert, assertEquals } from "./assert.ts";
import { Deadlines, nextTurn, settledWithin, TurnEnd } from "../src/timers.ts";
import { within } from "./_helpers.ts";
import { sleep, spawnScript } from "./_hardening.ts";

/** How often the deadlines under test wake, in ms. */
const RESOLUTION = 10;
/** What a loaded 2-core machine may add to any timer, in ms. */
const MARGIN = 2000;
/** Timers and `performance.now()` may disagree by a fraction of a millisecond. */
const JITTER = 1;

/** When each item expired, in ms after `start`, in order. */
interface Fired<T> {
  item: T;
  at: number;
}

/**
 * Deadlines that record when each item expires, and resolve `expired(item, n)` once `item`
 * expired `n` times. `again` decides whether (and in how long) an item is set again from the
 * expire callback.
 */
function recording<T>(again?: (item: T, times: number) => number | undefined) {
  const start = performance.now();
  const fired: Fired<T>[] = [];
  const waits: { item: T; times: number; resolve: () => void }[] = [];
  const deadlines: Deadlines<T> = new Deadlines<T>(RESOLUTION, (item) => {
    fired.push({ item, at: performance.now() - start });
    const times = fired.filter((f) => f.item === item).length;
    for (const wait of waits) if (wait.item === item && wait.times === times) wait.resolve();
    const delay = again?.(item, times);
    if (delay !== undefined) deadlines.set(item, delay);
  });
  const expired = (item: T, times = 1): Promise<void> => {
    if (fired.filter((f) => f.item === item).length >= times) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    waits.push({ item, times, resolve });
    return within(promise, `${item} expired ${times} time(s)`, 10000 + MARGIN);
  };
  return { deadlines, fired, expired, start };
}

/** Counts the intervals started and not cleared while `body` runs (the global timer functions, wrapped). */
async function countingIntervals(body: (active: () => number) => Promise<void>): Promise<void> {
  const { setInterval: realSet, clearInterval: realClear } = globalThis;
  const active = new Set<unknown>();
  globalThis.setInterval = ((...args: Parameters<typeof realSet>) => {
    const id = realSet(...args);
    active.add(id);
    return id;
  }) as typeof realSet;
  globalThis.clearInterval = ((id: Parameters<typeof realClear>[0]) => {
    active.delete(id);
    realClear(id);
  }) as typeof realClear;
  try {
    await body(() => active.size);
  } finally {
    globalThis.setInterval = realSet;
    globalThis.clearInterval = realClear;
    for (const id of active) realClear(id as Parameters<typeof realClear>[0]);
  }
}

test("Deadlines fires each item once, no earlier than its delay and within delay + resolution + margin", async () => {
  const { deadlines, fired, expired } = recording<string>();
  deadlines.set("a", 30);
  deadlines.set("b", 60);
  assertEquals(deadlines.size, 2);
  // A third, later deadline: once it fired, any second firing of the first two would have happened.
  deadlines.set("last", 150);
  await expired("last");
  assertEquals(fired.map((f) => f.item), ["a", "b", "last"]);
  for (const { item, at } of fired) {
    const delay = item === "a" ? 30 : item === "b" ? 60 : 150;
    assert(at >= delay - JITTER, `${item} fired after ${at} ms, before its delay of ${delay} ms`);
    assert(at <= delay + RESOLUTION + MARGIN, `${item} fired after ${at} ms, delay ${delay} ms`);
  }
  assertEquals(deadlines.size, 0);
});

test("Deadlines.set() of an item already set moves its deadline, later or earlier, and it fires once", async () => {
  const { deadlines, fired, expired } = recording<string>();
  deadlines.set("later", 20);
  deadlines.set("later", 200);
  deadlines.set("earlier", 60000);
  deadlines.set("earlier", 20);
  assertEquals(deadlines.size, 2);
  await expired("earlier");
  const earlier = fired.find((f) => f.item === "earlier")!;
  assert(earlier.at <= 20 + RESOLUTION + MARGIN, `moved earlier, yet fired after ${earlier.at} ms`);
  await expired("later");
  const later = fired.find((f) => f.item === "later")!;
  assert(later.at >= 200 - JITTER, `moved to 200 ms, yet fired after ${later.at} ms`);
  assertEquals(fired.map((f) => f.item), ["earlier", "later"]);
  assertEquals(deadlines.size, 0);
});

test("Deadlines.delete() cancels a deadline: the item never fires", async () => {
  const { deadlines, fired, expired } = recording<string>();
  deadlines.set("cancelled", 20);
  deadlines.set("kept", 100);
  deadlines.delete("cancelled");
  deadlines.delete("never set"); // Harmless.
  assertEquals(deadlines.size, 1);
  assert(!deadlines.has("cancelled"));
  await expired("kept");
  assertEquals(fired.map((f) => f.item), ["kept"]);
});

test("Deadlines runs its one timer only while a deadline is set: the last delete(), or the last expiry, stops it", async () => {
  await countingIntervals(async (active) => {
    const { deadlines, expired } = recording<string>();
    assertEquals(active(), 0, "no timer before the first deadline");
    deadlines.set("a", 60000);
    deadlines.set("b", 60000);
    deadlines.set("a", 60000);
    assertEquals(active(), 1, "one timer for every deadline");
    deadlines.delete("a");
    assertEquals(active(), 1, "a deadline is still set");
    deadlines.delete("b");
    assertEquals(active(), 0, "the last delete() stops the timer");
    assertEquals(deadlines.size, 0);
    deadlines.delete("b");
    assertEquals(active(), 0, "deleting what is not set changes nothing");
    deadlines.set("c", 10);
    assertEquals(active(), 1, "a new deadline starts it again");
    await expired("c");
    assertEquals(deadlines.size, 0);
    assertEquals(active(), 0, "the last expiry stops the timer");
  });
});

test("Deadlines repeats an item whose expire callback sets it again, each time after its delay", async () => {
  const { deadlines, fired, expired } = recording<string>((_, times) => times < 3 ? 40 : undefined);
  deadlines.set("tick", 40);
  await expired("tick", 3);
  assertEquals(fired.map((f) => f.item), ["tick", "tick", "tick"]);
  for (let i = 1; i < fired.length; i++) {
    const gap = fired[i].at - fired[i - 1].at;
    assert(gap >= 40 - JITTER, `repeated after ${gap} ms, its delay is 40 ms`);
  }
  assertEquals(deadlines.size, 0, "not set again after the third");
});

test("Deadlines.items() lists the items with a deadline set, and has() tells one", () => {
  const { deadlines } = recording<object>();
  const [a, b, c] = [{ name: "a" }, { name: "b" }, { name: "c" }];
  deadlines.set(a, 60000);
  deadlines.set(b, 60000);
  deadlines.set(c, 60000);
  deadlines.delete(b);
  assertEquals([...deadlines.items()], [a, c]);
  assert(deadlines.has(a) && !deadlines.has(b) && deadlines.has(c));
  deadlines.delete(a);
  deadlines.delete(c);
  assertEquals([...deadlines.items()], []);
});

test("nextTurn() resolves after a setTimeout(0) queued before it", async () => {
  const order: string[] = [];
  setTimeout(() => order.push("timer"), 0);
  queueMicrotask(() => order.push("microtask"));
  await nextTurn();
  order.push("next turn");
  assertEquals(order, ["microtask", "timer", "next turn"]);
});

test("settledWithin() says true for a promise that settles in time, rejected too, and false after the time", async () => {
  assertEquals(await settledWithin(Promise.resolve(1), 60000), true);
  assertEquals(await settledWithin(Promise.reject(new Error("x")), 60000), true);
  const started = performance.now();
  assertEquals(await within(settledWithin(new Promise(() => {}), 20), "settledWithin(never, 20)"), false);
  assert(performance.now() - started >= 19, "gave up before its time");
});

test("settledWithin() and Deadlines with an Infinity timeout wait without a timer past 2^31 - 1 ms (which would fire after 1 ms)", async () => {
  const delays: number[] = [];
  const original = globalThis.setInterval;
  globalThis.setInterval = ((run: () => void, delay?: number) => {
    delays.push(delay ?? 0);
    return original(run, delay);
  }) as typeof setInterval;
  try {
    let lateSettled = false;
    const late = new Promise<string>((resolve) => setTimeout(resolve, 30, "late"));
    void late.then(() => lateSettled = true);
    assertEquals(await settledWithin(late, Infinity), true);
    assert(lateSettled, "settled before its promise did");
  } finally {
    globalThis.setInterval = original;
  }
  assert(delays.length > 0, "no deadline timer was started");
  for (const delay of delays) assert(delay <= 2 ** 31 - 1, `a timer of ${delay} ms`);
});

test("TurnEnd runs each item added in a turn once, in order, after the turn's microtasks, in one batch", async () => {
  const ran: string[] = [];
  const second = Promise.withResolvers<void>();
  const turnEnd = new TurnEnd<string>((item) => {
    ran.push(item);
    if (item === "b") turnEnd.add("added while running"); // The next batch.
    if (item === "added while running") second.resolve();
  });
  turnEnd.add("a");
  await Promise.resolve();
  turnEnd.add("b");
  queueMicrotask(() => ran.push("microtask"));
  assertEquals(ran, []);
  await within(second.promise, "the batch added while the first ran");
  assertEquals(ran, ["microtask", "a", "b", "added while running"]);
});

for (
  const [what, args] of [["a Deadlines entry set and cleared", ["--deadline"]], [
    "a server and a client closed cleanly (keepalive, handshake and idle deadlines)",
    [],
  ]] as const
) {
  test(`nothing keeps the process alive after ${what}`, async () => {
    // The keepalive deadlines wake every 5 s, the one here every 10 minutes: a timer left running
    // until its next wake would hold the process far past the 60 s allowed.
    const child = spawnScript("fixtures/exit_after_close.ts", [...args]);
    try {
      await child.line(/^closed$/, 60000);
      const code = await Promise.race([child.exited, sleep(60000).then(() => "still running")]);
      assertEquals(code, 0);
    } finally {
      child.kill();
    }
  });
}
