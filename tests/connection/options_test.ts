import { test } from "node:test";
import { assertEquals, assertStrictEquals, assertThrows } from "../assert.ts";
import { connectionSettings } from "../../src/connection/options.ts";
import { Sock } from "../../src/server/sock.ts";

test("connectionSettings() fills in every default", () => {
  assertEquals(connectionSettings({}), {
    closeTimeout: 5000,
    pingInterval: 20000,
    pongTimeout: 20000,
    receiveQueueSize: 16,
    idleTimeout: 0,
    messageTimeout: 120000,
    sendHighWaterMark: 1048576,
    maxBufferedAmount: 16 * 1024 * 1024,
  });
});

test("connectionSettings() keeps the values given, Infinity included where there is no upper bound", () => {
  const settings = connectionSettings({ pingInterval: 0, receiveQueueSize: 1, maxBufferedAmount: Infinity });
  assertEquals([settings.pingInterval, settings.receiveQueueSize, settings.maxBufferedAmount], [
    0,
    1,
    Infinity,
  ]);
});

test("connectionSettings() refuses a value out of range with a RangeError naming the option", () => {
  for (
    const [options, name] of [
      [{ closeTimeout: -1 }, "closeTimeout"],
      [{ receiveQueueSize: 0 }, "receiveQueueSize"],
      [{ receiveQueueSize: 1.5 }, "receiveQueueSize"],
      [{ pongTimeout: NaN }, "pongTimeout"],
      [{ sendHighWaterMark: "1" as unknown as number }, "sendHighWaterMark"],
    ] as const
  ) {
    assertThrows(() => connectionSettings({ ...options }), RangeError, name);
  }
});

test("connectionSettings() checks an options object once: the same object gives the same settings", () => {
  const options = { idleTimeout: 1000 };
  assertStrictEquals(connectionSettings(options), connectionSettings(options));
});

test("new Sock() refuses bad connection options and subprotocols at once, not at the first connection", () => {
  assertThrows(() => new Sock({ receiveQueueSize: 0 }), RangeError, "receiveQueueSize");
  assertThrows(() => new Sock({ handshakeTimeout: 0 }), RangeError, "handshakeTimeout");
  assertThrows(() => new Sock({ subprotocols: ["two words"] }), TypeError);
});
