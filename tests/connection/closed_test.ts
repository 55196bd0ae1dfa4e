// ConnectionClosed, ended(), quiet() and ignore (src/connection/closed.ts): how the end of a
// connection reaches the application.

import { test } from "node:test";
import { ConnectionClosed, ended, ignore, quiet } from "../../src/connection/closed.ts";
import type { CloseResult } from "../../src/core/protocol.ts";
import { assert, assertEquals, assertInstanceOf, assertRejects, assertStrictEquals } from "../assert.ts";
import { within } from "../_helpers.ts";

/** A close result: clean 1000 unless told otherwise. */
function result(changes: Partial<CloseResult> = {}): CloseResult {
  return { code: 1000, reason: "", wasClean: true, received: undefined, sent: undefined, ...changes };
}

/** Waits `turns` timer turns, past the microtasks after which runtimes report unhandled rejections. */
async function timerTurns(turns: number): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((resolve) => setTimeout(resolve, 10));
}

/**
 * Runs `body`, then waits a few timer turns: long enough for the runtime to report any rejection
 * left unhandled. Deno's and Bun's test runners both fail the running test on such a report, before
 * any `unhandledRejection` or `unhandledrejection` listener could see it (neither kind of listener
 * is told inside `deno test` or `bun test`), so the runner itself is the check.
 */
async function thenSettle(body: () => void | Promise<void>): Promise<void> {
  await body();
  await timerTurns(3);
}

test("ConnectionClosed: name, message and fields come from the close result", () => {
  const received = { code: 4001, reason: "kicked" };
  const sent = { code: 4001, reason: "kicked" };
  const error = new ConnectionClosed(result({ code: 4001, reason: "kicked", received, sent }));
  assertInstanceOf(error, Error);
  assertInstanceOf(error, ConnectionClosed);
  assertStrictEquals(error.name, "ConnectionClosed");
  assertStrictEquals(error.message, "connection closed: 4001 kicked");
  assertStrictEquals(error.code, 4001);
  assertStrictEquals(error.reason, "kicked");
  assertStrictEquals(error.received, received);
  assertStrictEquals(error.sent, sent);
  assert(String(error).startsWith("ConnectionClosed: connection closed: 4001 kicked"), String(error));
});

test("ConnectionClosed: without a reason the message is the code alone; no frames leave both undefined", () => {
  const error = new ConnectionClosed(result({ code: 1006, wasClean: false }));
  assertStrictEquals(error.message, "connection closed: 1006");
  assertStrictEquals(error.code, 1006);
  assertStrictEquals(error.reason, "");
  assertStrictEquals(error.received, undefined);
  assertStrictEquals(error.sent, undefined);
});

test("ended: a clean close with 1000, 1001 or 1005 resolves undefined", async () => {
  for (const code of [1000, 1001, 1005]) {
    const value = await within(ended(result({ code, reason: "bye" })), `code ${code}`);
    assertStrictEquals(value, undefined, `code ${code}`);
  }
});

test("ended: any other code rejects with ConnectionClosed, even when clean", async () => {
  const codes = [1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 3000, 4000, 4999];
  for (const code of codes) {
    const received = { code, reason: "why" };
    const error = await within(
      assertRejects(() => ended(result({ code, reason: "why", received })), ConnectionClosed),
      `code ${code}`,
    );
    assertStrictEquals(error.code, code);
    assertStrictEquals(error.reason, "why");
    assertStrictEquals(error.received, received);
    assertStrictEquals(error.message, `connection closed: ${code} why`);
  }
});

test("ended: a normal code without a clean close rejects with ConnectionClosed", async () => {
  for (const code of [1000, 1001, 1005]) {
    const sent = { code: 1000, reason: "" };
    const error = await within(
      assertRejects(() => ended(result({ code, wasClean: false, sent })), ConnectionClosed),
      `code ${code}`,
    );
    assertStrictEquals(error.code, code);
    assertStrictEquals(error.sent, sent);
    assertStrictEquals(error.received, undefined);
  }
});

test("ended: an abnormal closure (1006, not clean) rejects with ConnectionClosed 1006", async () => {
  const error = await within(
    assertRejects(() => ended(result({ code: 1006, wasClean: false })), ConnectionClosed),
    "1006",
  );
  assertStrictEquals(error.code, 1006);
  assertStrictEquals(error.message, "connection closed: 1006");
});

test("ended: each call gives a new promise and, when rejecting, a new error", async () => {
  const closed = result({ code: 1011, reason: "oops" });
  const first = ended(closed);
  const second = ended(closed);
  assert(first !== second);
  const [a, b] = await within(
    Promise.all([first.catch((e: unknown) => e), second.catch((e: unknown) => e)]),
    "both rejections",
  );
  assertInstanceOf(a, ConnectionClosed);
  assertInstanceOf(b, ConnectionClosed);
  assert(a !== b);
  assertEquals([a.code, a.reason], [b.code, b.reason]);
});

test("quiet: returns the same promise, and an unawaited rejection is not reported as unhandled", async () => {
  const error = new Error("quiet rejection");
  let marked: Promise<never> | undefined;
  await thenSettle(() => {
    const promise = Promise.reject(error);
    marked = quiet(promise);
    assertStrictEquals(marked, promise);
  });
  // A caller that awaits it still gets the rejection.
  const awaited = await within(assertRejects(() => marked!), "awaiting the quiet promise");
  assertStrictEquals(awaited, error);
});

test("quiet: a rejection that comes later is not reported either", async () => {
  const error = new Error("later");
  const pending = Promise.withResolvers<void>();
  await thenSettle(async () => {
    quiet(pending.promise);
    await timerTurns(1);
    pending.reject(error);
  });
  assertStrictEquals(await within(assertRejects(() => pending.promise), "awaiting"), error);
});

test("quiet: ended()'s rejection, quieted, is not reported as unhandled", async () => {
  let quieted: Promise<undefined> | undefined;
  await thenSettle(() => {
    quieted = quiet(ended(result({ code: 1011, reason: "oops" })));
  });
  const error = await within(assertRejects(() => quieted!, ConnectionClosed), "awaiting");
  assertStrictEquals(error.code, 1011);
});

test("quiet: a fulfilled promise still fulfils with its value", async () => {
  const value = { answer: 42 };
  const promise = Promise.resolve(value);
  assertStrictEquals(quiet(promise), promise);
  assertStrictEquals(await within(quiet(promise), "value"), value);
});

test("ignore: accepts anything, returns undefined and throws nothing", () => {
  assertStrictEquals(ignore(), undefined);
  const handler: (reason: unknown) => void = ignore;
  assertStrictEquals(handler(new Error("x")), undefined);
});
