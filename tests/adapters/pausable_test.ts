// Pausable (src/adapters/pausable.ts): the pause()/resume() state a transport's read loop waits on.

import { test } from "node:test";
import { Pausable } from "../../src/adapters/pausable.ts";
import { assert, assertStrictEquals } from "../assert.ts";
import { within } from "../_helpers.ts";

/** A Pausable that shows its protected `paused`. */
class Probe extends Pausable {
  get current(): Promise<void> | undefined {
    return this.paused;
  }
}

/** Whether `promise` is still pending after the microtasks queued now and a timer turn. */
async function isPending(promise: Promise<unknown>): Promise<boolean> {
  const marker = Symbol("pending");
  const winner = await Promise.race([
    promise.then(() => "settled", () => "settled"),
    new Promise((resolve) => setTimeout(() => resolve(marker), 0)),
  ]);
  return winner === marker;
}

test("Pausable: not paused at first", () => {
  assertStrictEquals(new Probe().current, undefined);
});

test("Pausable: pause() sets a pending promise that resume() resolves, and clears it", async () => {
  const probe = new Probe();
  probe.pause();
  const paused = probe.current;
  assert(paused instanceof Promise, "pause() set no promise");
  assert(await isPending(paused), "the promise settled before resume()");
  probe.resume();
  assertStrictEquals(probe.current, undefined);
  assertStrictEquals(await within(paused, "resume() resolving the pause", 5000), undefined);
});

test("Pausable: pause() twice keeps the same promise, and one resume() ends it", async () => {
  const probe = new Probe();
  probe.pause();
  const first = probe.current;
  probe.pause();
  assertStrictEquals(probe.current, first);
  probe.resume();
  assertStrictEquals(probe.current, undefined);
  await within(first!, "the shared pause resolving", 5000);
});

test("Pausable: resume() without pause() is a no-op", () => {
  const probe = new Probe();
  probe.resume();
  assertStrictEquals(probe.current, undefined);
  probe.resume();
  assertStrictEquals(probe.current, undefined);
});

test("Pausable: after resume(), pause() gives a new pending promise", async () => {
  const probe = new Probe();
  probe.pause();
  const first = probe.current!;
  probe.resume();
  await within(first, "the first pause resolving", 5000);
  probe.pause();
  const second = probe.current;
  assert(second instanceof Promise, "the second pause() set no promise");
  assert(second !== first, "the second pause() reused the first promise");
  assert(await isPending(second), "the second promise settled before resume()");
  // A second resume() of the first pause must not end the new one.
  probe.resume();
  await within(second, "the second pause resolving", 5000);
  probe.resume();
  assertStrictEquals(probe.current, undefined);
});

test("Pausable: a waiter that awaits paused in a loop runs on after resume()", async () => {
  const probe = new Probe();
  const handed: number[] = [];
  probe.pause();
  const loop = (async () => {
    for (let chunk = 0; chunk < 3; chunk++) {
      while (probe.current) await probe.current;
      handed.push(chunk);
    }
  })();
  assert(await isPending(loop), "the loop ran while paused");
  assertStrictEquals(handed.length, 0);
  probe.resume();
  await within(loop, "the loop finishing after resume()", 5000);
  assertStrictEquals(handed.join(","), "0,1,2");
});
