import { test } from "node:test";
import { assert, assertEquals, assertRejects } from "../assert.ts";
import { Keepalive, type KeepaliveOwner } from "../../src/connection/keepalive.ts";
import { ConnectionClosed } from "../../src/connection/closed.ts";
import { connectionSettings } from "../../src/connection/options.ts";
import { ABNORMAL, pending, within } from "../_helpers.ts";

/** What a loaded 2-core machine may add to any timer, in ms. */
const MARGIN = 2000;
/** Timers and `performance.now()` may disagree by a fraction of a millisecond. */
const JITTER = 1;

const encoder = new TextEncoder();

/** The connection a keepalive belongs to, as its owner's functions must be given it. */
const CONNECTION = { name: "the connection" };
type Connection = typeof CONNECTION;

/** A pong's payload: the bytes of the ping's. */
const pongOf = (payload: string) => encoder.encode(payload);

/**
 * An owner that records the pings it is asked to send (with when, in ms since it was made) and
 * the terminations; `pinged(n)` and `terminated()` resolve once they happened.
 */
function owner(bound: number) {
  const start = performance.now();
  const pings: { payload: string; at: number }[] = [];
  const terminations: number[] = [];
  const waits: { count: number; resolve: () => void }[] = [];
  const terminated = Promise.withResolvers<void>();
  let open = true;
  const own: KeepaliveOwner<Connection> = {
    isOpen: (connection) => connection === CONNECTION && open,
    sendPing(connection, payload) {
      if (connection !== CONNECTION) throw new Error("sendPing() with another connection");
      if (encoder.encode(payload).length > 125) throw new RangeError("a ping payload is at most 125 bytes");
      pings.push({ payload, at: performance.now() - start });
      for (const wait of waits) if (wait.count === pings.length) wait.resolve();
    },
    terminate(connection) {
      if (connection !== CONNECTION) throw new Error("terminate() with another connection");
      terminations.push(performance.now() - start);
      terminated.resolve();
    },
  };
  return {
    own,
    pings,
    terminations,
    close: () => open = false,
    /** Ms since the owner was made, on the clock of `pings` and `terminations`. */
    sinceStart: () => performance.now() - start,
    pinged(count: number): Promise<void> {
      if (pings.length >= count) return Promise.resolve();
      const { promise, resolve } = Promise.withResolvers<void>();
      waits.push({ count, resolve });
      return within(promise, `ping ${count}`, bound);
    },
    terminated: () => within(terminated.promise, "terminate()", bound),
  };
}

/** A keepalive of {@linkcode CONNECTION} with these timings (ms), reporting to `own`. */
function keepaliveOf(own: ReturnType<typeof owner>["own"], pingInterval: number, pongTimeout: number) {
  return new Keepalive(CONNECTION, own, connectionSettings({ pingInterval, pongTimeout }));
}

test("Keepalive.ping() sends the ping and resolves with a round trip >= 0 when the pong with its payload arrives", async () => {
  const o = owner(MARGIN);
  const keepalive = keepaliveOf(o.own, 0, 1000);
  try {
    const rtt = keepalive.ping("abc");
    assertEquals(o.pings.map((p) => p.payload), ["abc"], "sent during the call");
    keepalive.pong(pongOf("other"));
    keepalive.pong(new Uint8Array(0));
    assert(await pending(rtt), "a pong with another payload does not answer it");
    keepalive.pong(pongOf("abc"));
    const ms = await within(rtt, "the round trip", MARGIN);
    assert(typeof ms === "number" && ms >= 0, `round trip ${ms}`);
  } finally {
    keepalive.close(ABNORMAL);
  }
});

test("Keepalive.ping() twice with the same payload: one pong resolves both", async () => {
  const o = owner(MARGIN);
  const keepalive = keepaliveOf(o.own, 0, 1000);
  try {
    const first = keepalive.ping("same");
    const second = keepalive.ping("same");
    const other = keepalive.ping("different");
    keepalive.pong(pongOf("same"));
    const [a, b] = await within(Promise.all([first, second]), "both pings", MARGIN);
    assert(a >= 0 && b >= 0);
    assert(await pending(other), "the other ping waits for its own pong");
  } finally {
    keepalive.close(ABNORMAL);
  }
});

test("Keepalive.ping() rejects with the owner's error when it refuses to send the ping", async () => {
  const o = owner(MARGIN);
  const keepalive = keepaliveOf(o.own, 0, 1000);
  try {
    await assertRejects(() => keepalive.ping("x".repeat(126)), RangeError);
    assertEquals(o.pings, []);
  } finally {
    keepalive.close(ABNORMAL);
  }
});

test("Keepalive.close() rejects every ping still waiting with ConnectionClosed, and a late pong changes nothing", async () => {
  const o = owner(MARGIN);
  const keepalive = keepaliveOf(o.own, 0, 1000);
  const first = keepalive.ping("one");
  const second = keepalive.ping("two");
  const same = keepalive.ping("two");
  keepalive.close(ABNORMAL);
  for (const ping of [first, second, same]) {
    const error = await assertRejects(() => within(ping, "the rejection", MARGIN), ConnectionClosed);
    assertEquals(error.code, 1006);
  }
  keepalive.pong(pongOf("one"));
});

test("Keepalive sends a ping every interval: the first within three quarters to one interval, each pong answered", async () => {
  const interval = 200;
  const o = owner(6 * interval + MARGIN);
  const keepalive = keepaliveOf(o.own, interval, 60000);
  const created = o.sinceStart();
  try {
    for (let n = 1; n <= 3; n++) {
      await o.pinged(n);
      const ping = o.pings[n - 1];
      assertEquals(ping.payload, o.pings[0].payload, "one payload for every keepalive ping");
      keepalive.pong(pongOf(ping.payload));
    }
    const [first, second, third] = o.pings.map((p) => p.at - created);
    assert(first >= interval * 3 / 4 - JITTER, `first ping after ${first} ms`);
    assert(first <= interval + MARGIN, `first ping after ${first} ms`);
    for (const [a, b] of [[first, second], [second, third]]) {
      assert(b - a >= interval * 3 / 4 - JITTER, `pings ${b - a} ms apart, interval ${interval} ms`);
      assert(b - a <= interval + interval / 4 + MARGIN, `pings ${b - a} ms apart, interval ${interval} ms`);
    }
    assertEquals(o.terminations, [], "every pong came");
  } finally {
    keepalive.close(ABNORMAL);
  }
});

test("Keepalive sends no pings while the owner is not open, and none after close()", async () => {
  const interval = 120;
  const o = owner(MARGIN);
  const keepalive = keepaliveOf(o.own, interval, 60000);
  // A second keepalive on the same schedule pings as the clock to wait on.
  const clock = owner(8 * interval + MARGIN);
  const ticking = keepaliveOf(clock.own, interval, 60000);
  try {
    o.close();
    await clock.pinged(1);
    ticking.pong(pongOf(clock.pings[0].payload));
    await clock.pinged(2);
    assertEquals(o.pings, [], "not open: no ping");
    keepalive.close(ABNORMAL);
    o.own.isOpen = () => true;
    ticking.pong(pongOf(clock.pings[1].payload));
    await clock.pinged(3);
    assertEquals(o.pings, [], "closed: no ping");
  } finally {
    keepalive.close(ABNORMAL);
    ticking.close(ABNORMAL);
  }
});

test("Keepalive without an answer to its ping calls terminate() once the pong timeout passed", async () => {
  const interval = 200;
  const pongTimeout = 300;
  const o = owner(interval + pongTimeout + MARGIN);
  const keepalive = keepaliveOf(o.own, interval, pongTimeout);
  try {
    await o.terminated();
    assert(o.pings.length >= 1);
    const waited = o.terminations[0] - o.pings[0].at;
    assert(
      waited >= pongTimeout - JITTER,
      `terminated ${waited} ms after the ping, pong timeout ${pongTimeout} ms`,
    );
    assert(waited <= pongTimeout + MARGIN, `terminated ${waited} ms after the ping`);
    assertEquals(o.pings.length, 1, "one keepalive ping at a time");
    assertEquals(o.terminations.length, 1);
  } finally {
    keepalive.close(ABNORMAL);
  }
});

test("Keepalive does not terminate a peer that was heard from after the ping, though its pong never came", async () => {
  const interval = 200;
  const pongTimeout = 300;
  const o = owner(2 * (interval + pongTimeout) + MARGIN);
  const keepalive = keepaliveOf(o.own, interval, pongTimeout);
  try {
    await o.pinged(1);
    // Bytes arrive after the ping went out (a large frame, say): a sign of life.
    keepalive.heard();
    // No pong: the pong timeout passes, and the next tick pings again, rather than terminating.
    await o.pinged(2);
    assertEquals(o.terminations, [], "heard from: not terminated");
    const gap = o.pings[1].at - o.pings[0].at;
    assert(gap >= pongTimeout - JITTER, `the next ping ${gap} ms later, before the pong timeout`);
    // Silent this time: terminated.
    await o.terminated();
    assert(o.terminations[0] - o.pings[1].at >= pongTimeout - JITTER);
  } finally {
    keepalive.close(ABNORMAL);
  }
});

test("Keepalive.close() before the pong timeout passed never calls terminate()", async () => {
  const interval = 150;
  const pongTimeout = 200;
  const o = owner(MARGIN + 10 * interval);
  const keepalive = keepaliveOf(o.own, interval, pongTimeout);
  // Another keepalive with the same timeouts, left to time out: the clock to wait on.
  const clock = owner(MARGIN + 10 * interval);
  const ticking = keepaliveOf(clock.own, interval, pongTimeout);
  try {
    await o.pinged(1);
    keepalive.close(ABNORMAL);
    await clock.terminated();
    const ticked = clock.pings[0].at;
    assert(clock.terminations[0] - ticked >= pongTimeout - JITTER);
    assertEquals(o.terminations, []);
  } finally {
    keepalive.close(ABNORMAL);
    ticking.close(ABNORMAL);
  }
});
