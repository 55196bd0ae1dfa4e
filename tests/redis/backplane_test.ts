// RedisBackplane against a real redis-server, started here as a child process (one per test, on a
// free port, without persistence) and killed by its PID when the test ends. Skipped visibly when
// /usr/bin/redis-server is missing; the sharded test also when it is older than Redis 7.

import { test } from "node:test";
import assert from "node:assert/strict";
import { connect, type Message, Sock } from "../../mod.ts";
import { RedisBackplane, type RedisBackplaneOptions } from "../../src/redis/backplane.ts";
import {
  freePort,
  REDIS_MAJOR,
  redisTest,
  signalRedis,
  sleep,
  startRedis,
  stopRedis,
  waitFor,
} from "../_redis.ts";

interface Delivery {
  topic: string;
  message: Message;
}

/** A started backplane and what it was handed. */
async function backplane(
  port: number,
  options: RedisBackplaneOptions = {},
): Promise<{ plane: RedisBackplane; got: Delivery[] }> {
  const plane = new RedisBackplane({ url: `redis://127.0.0.1:${port}`, ...options });
  const got: Delivery[] = [];
  await plane.start((topic, message) => got.push({ topic, message }));
  assert.equal(plane.connected, true, "both connections are ready once start() resolved");
  return { plane, got };
}

/**
 * Waits until `to`'s subscriptions so far are in effect: subscribes it to a fresh topic (commands
 * run in order on its subscriber connection) and publishes there from `from` until one arrives.
 */
async function synced(from: RedisBackplane, to: RedisBackplane, got: Delivery[]): Promise<void> {
  const topic = `sync-${crypto.randomUUID()}`;
  to.subscribe(topic);
  const deadline = Date.now() + 10000;
  while (!got.some((delivery) => delivery.topic === topic)) {
    if (Date.now() > deadline) throw new Error("subscriptions did not take effect within 10 s");
    from.publish(topic, "sync");
    await sleep(20);
  }
  to.unsubscribe(topic); // No more for the topic reach `got` from now on.
  // Drop the sync messages.
  for (let k = got.length - 1; k >= 0; k--) if (got[k]!.topic === topic) got.splice(k, 1);
}

redisTest(
  "RedisBackplane: the other process gets each message once, same type, in order; never its own",
  async () => {
    const redis = await startRedis(await freePort());
    const a = await backplane(redis.port);
    const b = await backplane(redis.port);
    try {
      a.plane.subscribe("t");
      b.plane.subscribe("t");
      await synced(a.plane, b.plane, b.got);
      await synced(b.plane, a.plane, a.got);

      const bytes = new Uint8Array([0, 1, 2, 0xfe, 0xff, 0x80, 0x00]);
      const sent: Message[] = ["héllo ✓ 😀", bytes, "", new Uint8Array(0), "\u0000\u0001"];
      for (let k = 0; k < 1000; k++) {
        sent.push(
          k % 3 === 0 ? new Uint8Array([k & 0xff, k >> 8]) : `message ${k}`,
        );
      }
      const deliveredBefore = b.plane.stats.delivered;
      for (const message of sent) a.plane.publish("t", message);

      // Markers instead of waiting a while: a duplicate would reach b before a's marker (one publisher
      // connection, in order), and an echo to a before b's marker (published after b got them all).
      a.plane.publish("t", "end of a");
      await waitFor(() => b.got.some((delivery) => delivery.message === "end of a"), "a's marker at b");
      b.plane.publish("t", "end of b");
      await waitFor(() => a.got.some((delivery) => delivery.message === "end of b"), "b's marker at a");
      assert.equal(b.got.pop()!.message, "end of a");
      assert.equal(a.got.pop()!.message, "end of b");
      assert.equal(b.got.length, sent.length, "each message once");
      for (let k = 0; k < sent.length; k++) {
        const { topic, message } = b.got[k]!;
        const expected = sent[k]!;
        assert.equal(topic, "t");
        if (typeof expected === "string") assert.equal(message, expected, `message ${k}, in order, as text`);
        else {
          assert.ok(message instanceof Uint8Array, `message ${k} stays binary`);
          assert.deepEqual([...message], [...expected], `message ${k}, in order, same bytes`);
        }
      }
      assert.equal(a.got.length, 0, "the publisher never gets its own messages");
      await waitFor(() => a.plane.stats.published >= sent.length + 2, "acknowledgements");
      assert.equal(b.plane.stats.delivered - deliveredBefore, sent.length + 1); // With a's marker.
      assert.equal(a.plane.stats.lost, 0);
      assert.equal(a.plane.stats.reconnects, 0);
    } finally {
      await a.plane.close();
      await b.plane.close();
      await stopRedis(redis);
    }
  },
);

redisTest("RedisBackplane: only subscribed topics are delivered; unsubscribe stops them", async () => {
  const redis = await startRedis(await freePort());
  const a = await backplane(redis.port, { channelPrefix: "app1:" });
  const b = await backplane(redis.port, { channelPrefix: "app1:" });
  const other = await backplane(redis.port, { channelPrefix: "app2:" });
  try {
    b.plane.subscribe("yes");
    other.plane.subscribe("yes");
    await synced(a.plane, b.plane, b.got);
    a.plane.publish("yes", "1");
    a.plane.publish("no", "2");
    // A marker: anything wrongly delivered for "no" would arrive before it (one publisher, in order).
    a.plane.publish("yes", "end");
    await waitFor(() => b.got.length >= 2, "the subscribed topic and the marker");
    assert.deepEqual(b.got, [{ topic: "yes", message: "1" }, { topic: "yes", message: "end" }]);
    assert.deepEqual(other.got, [], "another prefix is another application");

    b.plane.unsubscribe("yes");
    b.plane.subscribe("no");
    await synced(a.plane, b.plane, b.got);
    b.got.length = 0;
    a.plane.publish("yes", "3");
    a.plane.publish("no", "4");
    a.plane.publish("no", "end");
    await waitFor(() => b.got.length >= 2, "the newly subscribed topic and the marker");
    assert.deepEqual(b.got, [{ topic: "no", message: "4" }, { topic: "no", message: "end" }]);
  } finally {
    await a.plane.close();
    await b.plane.close();
    await other.plane.close();
    await stopRedis(redis);
  }
});

redisTest(
  "RedisBackplane in Sock: a client subscribed on server b gets a.publish()",
  async () => {
    const redis = await startRedis(await freePort());
    const url = `redis://127.0.0.1:${redis.port}`;
    const a = new Sock({ backplane: new RedisBackplane({ url }) });
    const b = new Sock({ backplane: new RedisBackplane({ url }) });
    b.route("/news", async (ws) => {
      ws.subscribe("news");
      await ws.send("subscribed");
      await ws.closed;
    });
    try {
      await a.listen({ hostname: "127.0.0.1", port: 0 });
      const { port } = await b.listen({ hostname: "127.0.0.1", port: 0 });
      const ws = await connect(`ws://127.0.0.1:${port}/news`);
      assert.equal(await ws.receive({ timeout: 5000 }), "subscribed");
      // b subscribes in Redis asynchronously: publish until the first arrives, then one more.
      let first: unknown;
      const receiving = ws.receive({ timeout: 10000 }).then((message) => first = message);
      while (first === undefined) {
        assert.equal(a.publish("news", "warm-up"), 0, "no member on a's own process");
        await Promise.race([receiving, sleep(50)]);
      }
      assert.equal(first, "warm-up");
      a.publish("news", new Uint8Array([1, 2, 3]));
      let next = await ws.receive({ timeout: 5000 });
      while (next === "warm-up") next = await ws.receive({ timeout: 5000 });
      assert.ok(next instanceof Uint8Array);
      assert.deepEqual([...next], [1, 2, 3]);
      await ws.close(1000);
    } finally {
      await a.close(); // Closes its backplane too.
      await b.close();
      await stopRedis(redis);
    }
  },
);

redisTest("RedisBackplane: Redis restarted mid-stream: queued while down, delivery resumes", async () => {
  const port = await freePort();
  let redis = await startRedis(port);
  const errors: unknown[] = [];
  const a = await backplane(port, { onError: (error) => errors.push(error) });
  const b = await backplane(port);
  try {
    b.plane.subscribe("t");
    await synced(a.plane, b.plane, b.got);
    for (let k = 0; k < 10; k++) a.plane.publish("t", `before ${k}`);
    await waitFor(() => b.got.length === 10, "the messages before the outage");

    await stopRedis(redis);
    await waitFor(() => !a.plane.connected && !b.plane.connected, "both backplanes to see the outage");
    for (let k = 0; k < 50; k++) a.plane.publish("t", `during ${k}`);
    assert.equal(a.plane.queued, 50, "publishes wait while the publisher is down");
    await sleep(300); // A few failed attempts: backoff.

    redis = await startRedis(port);
    await waitFor(() => a.plane.connected && b.plane.connected, "both to reconnect", 15000);
    // Delivery resumes: the first message published after b resubscribed gets through.
    const deadline = Date.now() + 15000;
    let k = 0;
    while (!b.got.some((delivery) => String(delivery.message).startsWith("after"))) {
      assert.ok(Date.now() < deadline, "delivery resumed within 15 s of the restart");
      a.plane.publish("t", `after ${k++}`);
      await sleep(50);
    }
    // A marker behind them: one publisher connection delivers in order, so a duplicate or a late
    // probe would arrive before it.
    a.plane.publish("t", "end");
    await waitFor(() => b.got.some((delivery) => delivery.message === "end"), "the end marker");
    assert.equal(b.got.pop()!.message, "end");
    const texts = b.got.map((delivery) => String(delivery.message));
    const during = texts.filter((text) => text.startsWith("during"));
    const after = texts.filter((text) => text.startsWith("after"));
    assert.equal(new Set(texts).size, texts.length, "no duplicates");
    assert.deepEqual(texts, [...texts].sort((x, y) => order(x) - order(y)), "order kept");
    assert.ok(a.plane.stats.reconnects >= 1 && b.plane.stats.reconnects >= 1);
    assert.equal(a.plane.queued, 0, "the queue was flushed");
    assert.ok(errors.length > 0, "onError heard of the outage");
    console.log(
      `restart: ${during.length}/50 publishes queued during the outage delivered (those not went out ` +
        `before b had resubscribed), ${after.length}/${k} probes delivered; ` +
        `a.stats ${JSON.stringify(a.plane.stats)}, b.stats ${JSON.stringify(b.plane.stats)}`,
    );
  } finally {
    await a.plane.close();
    await b.plane.close();
    await stopRedis(redis);
  }
});

/** Sort key of the restart test's messages: phase, then number. */
function order(text: string): number {
  const [phase, n] = text.split(" ");
  return ({ before: 0, during: 1, after: 2 }[phase as "before"] ?? 3) * 1e6 + Number(n);
}

redisTest(
  "RedisBackplane: sharded pub/sub (SSUBSCRIBE/SPUBLISH) on a standalone Redis 7",
  async () => {
    const redis = await startRedis(await freePort());
    const a = await backplane(redis.port, { sharded: true });
    const b = await backplane(redis.port, { sharded: true });
    const unsharded = await backplane(redis.port);
    try {
      a.plane.subscribe("s");
      b.plane.subscribe("s");
      unsharded.plane.subscribe("s");
      b.plane.subscribe("u");
      await synced(a.plane, b.plane, b.got);
      a.plane.publish("s", "text");
      a.plane.publish("s", new Uint8Array([9, 8, 7]));
      for (let k = 0; k < 100; k++) a.plane.publish(`u`, `${k}`);
      a.plane.publish("u", "end"); // A duplicate would arrive before this marker.
      await waitFor(() => b.got.some((delivery) => delivery.message === "end"), "the sharded messages");
      assert.equal(b.got.pop()!.message, "end");
      assert.equal(b.got.length, 102);
      assert.deepEqual(b.got[0], { topic: "s", message: "text" });
      assert.ok(b.got[1]!.message instanceof Uint8Array);
      assert.deepEqual([...b.got[1]!.message], [9, 8, 7]);
      assert.deepEqual(
        b.got.slice(2).map((delivery) => delivery.message),
        [...Array(100).keys()].map(String),
      );
      assert.equal(a.got.length, 0, "never its own");
      assert.equal(unsharded.got.length, 0, "sharded channels are apart from the others");
      await waitFor(() => a.plane.stats.published >= 104, "acknowledgements");
      assert.equal(a.plane.stats.lost, 0);
    } finally {
      await a.plane.close();
      await b.plane.close();
      await unsharded.plane.close();
      await stopRedis(redis);
    }
  },
  REDIS_MAJOR < 7 ? `redis-server ${REDIS_MAJOR} is older than 7` : undefined,
);

test("RedisBackplane: refuses URLs that are not redis:// or rediss://", () => {
  assert.throws(() => new RedisBackplane({ url: "http://127.0.0.1:6379" }), TypeError);
  assert.throws(() => new RedisBackplane({ url: "redis://127.0.0.1:6379/x" }), TypeError);
  assert.throws(() => new RedisBackplane({ url: "not a url" }), TypeError);
  assert.throws(() => new RedisBackplane({ url: "redis://:%zz@127.0.0.1:6379" }), TypeError);
  assert.throws(() => new RedisBackplane({ maxQueued: -1 }), TypeError);
  new RedisBackplane({ url: "rediss://user:p%40ss@[::1]:6380/3" }).close();
});

test("RedisBackplane: start() resolves when Redis is unreachable, keeps the newest maxQueued publishes", async () => {
  const port = await freePort();
  const errors: unknown[] = [];
  const plane = new RedisBackplane({
    url: `redis://127.0.0.1:${port}`,
    maxQueued: 3,
    onError: (e) => errors.push(e),
  });
  try {
    await plane.start(() => {});
    assert.equal(plane.connected, false);
    assert.ok(errors.length >= 1, "the failed attempt was reported");
    for (let k = 0; k < 5; k++) plane.publish("t", `${k}`);
    assert.equal(plane.queued, 3);
    assert.equal(plane.stats.lost, 2);
  } finally {
    await plane.close();
  }
});

redisTest(
  "RedisBackplane: processes() counts the processes with members of a topic, as Redis does",
  async () => {
    const redis = await startRedis(await freePort());
    const a = await backplane(redis.port);
    const b = await backplane(redis.port);
    const sharded = await backplane(redis.port, { sharded: true });
    try {
      assert.equal(await a.plane.processes("t"), 0);
      a.plane.subscribe("t");
      b.plane.subscribe("t");
      // Subscriptions take effect in Redis a round trip later.
      let count = 0;
      for (const deadline = Date.now() + 10000; count !== 2 && Date.now() < deadline; await sleep(10)) {
        count = await a.plane.processes("t");
      }
      assert.equal(count, 2);
      // Replies to publishes and to PUBSUB come back in order on one connection: interleave them.
      const counts = await Promise.all([0, 1, 2].map((k) => {
        a.plane.publish("t", `${k}`);
        return b.plane.processes("t");
      }));
      assert.deepEqual(counts, [2, 2, 2]);
      await waitFor(() => b.got.length === 3 && a.plane.stats.published === 3, "the publishes");
      assert.equal(a.plane.stats.lost, 0);
      b.plane.unsubscribe("t");
      for (const deadline = Date.now() + 10000; count !== 1 && Date.now() < deadline; await sleep(10)) {
        count = await a.plane.processes("t");
      }
      assert.equal(count, 1);
      if (REDIS_MAJOR >= 7) {
        sharded.plane.subscribe("t");
        count = 0;
        for (const deadline = Date.now() + 10000; count !== 1 && Date.now() < deadline; await sleep(10)) {
          count = await sharded.plane.processes("t");
        }
        assert.equal(count, 1, "sharded subscriptions are counted apart");
      }
    } finally {
      await a.plane.close();
      await b.plane.close();
      await sharded.plane.close();
      await stopRedis(redis);
    }
    await assert.rejects(a.plane.processes("t"), /not connected/);
  },
);

redisTest(
  "RedisBackplane: a Redis that stops answering (SIGSTOP) is found by PING, left and rejoined",
  async () => {
    const redis = await startRedis(await freePort());
    // Long enough that a loaded machine does not delay a PING's answer by two intervals.
    const pingInterval = 500;
    const errors: string[] = [];
    const a = await backplane(redis.port, { pingInterval, onError: (e) => errors.push(String(e)) });
    const b = await backplane(redis.port, { pingInterval });
    let stopped = false;
    try {
      a.plane.subscribe("t");
      await synced(b.plane, a.plane, a.got);
      // Idle connections are pinged and answer: nothing is reported over several intervals.
      await sleep(pingInterval * 5);
      assert.deepEqual(errors, []);
      assert.equal(a.plane.stats.reconnects, 0);
      signalRedis(redis, "SIGSTOP");
      stopped = true;
      // The TCP connections stay open, but silent: each is dropped after two intervals (a's
      // subscriber is watched here).
      await waitFor(
        () => errors.some((e) => /subscriber connection went silent/.test(e)),
        "the silent subscriber to be noticed",
        pingInterval * 4 + 10000,
      );
      signalRedis(redis, "SIGCONT");
      stopped = false;
      await waitFor(() => a.plane.connected && b.plane.connected, "reconnection", 20000);
      assert.ok(a.plane.stats.reconnects >= 1, `${JSON.stringify(a.plane.stats)} ${errors}`);
      a.got.length = 0;
      await synced(b.plane, a.plane, a.got); // Resubscribed: deliveries flow again.
      b.plane.publish("t", "after");
      await waitFor(() => a.got.some((d) => d.message === "after"), "a delivery after the stop");
    } finally {
      if (stopped) signalRedis(redis, "SIGCONT");
      await a.plane.close();
      await b.plane.close();
      await stopRedis(redis);
    }
  },
);
