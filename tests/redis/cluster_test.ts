// Scale-out with the real thing: examples/cluster.ts with three workers on one port (reusePort) and
// the Redis backplane, a redis-server started here, and hundreds of clients spread over the
// workers by the kernel. A publish from any worker reaches every member on every worker exactly
// once, in order per publisher, text as text and bytes as bytes, with and without
// permessage-deflate, never back to its sender. Then faults: Redis killed and restarted mid-stream,
// a worker killed, a member that never reads.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import process from "node:process";
import { connect } from "../../src/client.ts";
import type { Connection } from "../../src/connection/connection.ts";
import type { Message } from "../../src/connection/inbox.ts";
import { RedisBackplane } from "../../src/redis/backplane.ts";
import { type Child, processAlive, RawPeer, rss, RUNTIME, spawnScript } from "../_hardening.ts";
import { within } from "../_helpers.ts";
import { freePort, type RedisChild, redisTest, sleep, startRedis, stopRedis, waitFor } from "../_redis.ts";

const ROOM = "lobby";
/** Generous bounds for a loaded 2-core machine; the tests wait on events, these only stop a hang. */
const LONG = 60000;

interface Cluster {
  primary: Child;
  port: number;
  workers: number[];
  stop(): Promise<void>;
}

/** examples/cluster.ts with `workers` workers on a free port and Redis at `redisPort`. */
async function startCluster(workers: number, redisPort: number): Promise<Cluster> {
  const port = await freePort();
  const primary = spawnScript("../examples/cluster.ts", [
    "--workers",
    String(workers),
    "--port",
    String(port),
    "--redis",
    `redis://127.0.0.1:${redisPort}`,
  ]);
  const stop = async () => {
    primary.kill();
    await primary.exited;
    for (const match of primary.output().matchAll(/^worker (\d+) listening on /gm)) {
      const pid = Number(match[1]);
      if (processAlive(pid)) process.kill(pid, "SIGKILL");
    }
  };
  try {
    await primary.line(
      new RegExp(`^listening on ws://127\\.0\\.0\\.1:${port} with ${workers} workers$`),
      LONG,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  const pids = [...primary.output().matchAll(/^worker (\d+) listening on /gm)].map((m) => Number(m[1]));
  return { primary, port, workers: pids, stop };
}

/** A room member: its connection, its worker, and everything the room sent it. */
interface Member {
  ws: Connection;
  worker: number;
  got: Message[];
  /** Resolves once `got` holds the count last given to {@linkcode expect}. */
  reached: Promise<void>;
  /** How many messages it should hold. */
  want: number;
  expect(count: number): void;
}

async function join(port: number, deflate: boolean): Promise<Member> {
  const ws = await connect(`ws://127.0.0.1:${port}/rooms/${ROOM}`, {
    deflate,
    pingInterval: 0,
    timeout: LONG,
  });
  await ws.send("pid");
  const worker = Number(await ws.receive({ timeout: LONG }));
  const got: Message[] = [];
  let reached = Promise.withResolvers<void>();
  const member: Member = {
    ws,
    worker,
    got,
    reached: reached.promise,
    want: Infinity,
    expect(count) {
      member.want = count;
      reached = Promise.withResolvers<void>();
      member.reached = reached.promise;
      if (got.length >= count) reached.resolve();
    },
  };
  void ws.forEach((message) => {
    got.push(message);
    if (got.length >= member.want) reached.resolve();
  }).catch(() => {});
  return member;
}

/** `count` members, joined a few at a time; every third with permessage-deflate. */
async function joinMany(port: number, count: number): Promise<Member[]> {
  const members: Member[] = [];
  for (let i = 0; i < count; i += 10) {
    const batch = [];
    for (let k = i; k < Math.min(count, i + 10); k++) batch.push(join(port, k % 3 === 2));
    members.push(...await Promise.all(batch));
  }
  return members;
}

/** Waits until every worker of the cluster has subscribed to the room in Redis. */
async function allSubscribed(redisPort: number, workers: number): Promise<void> {
  const probe = new RedisBackplane({ url: `redis://127.0.0.1:${redisPort}` });
  await probe.start(() => {});
  try {
    let processes = 0;
    for (const deadline = Date.now() + LONG; processes !== workers; await sleep(20)) {
      if (Date.now() > deadline) throw new Error(`${processes} of ${workers} workers subscribed`);
      processes = await probe.processes(ROOM);
    }
  } finally {
    await probe.close();
  }
}

/** Waits until every member in `members` holds its expected count. */
async function allReached(members: Member[], what: string): Promise<void> {
  const reached = await within(Promise.all(members.map((m) => m.reached)), what, LONG).then(
    () => true,
    () => false,
  );
  if (!reached) {
    const short = members.filter((m) => m.got.length < m.want);
    const detail = short.slice(0, 5).map((m) => `${m.got.length}/${m.want} on ${m.worker}`).join(", ");
    throw new Error(`${what}: ${short.length} of ${members.length} members short (${detail})`);
  }
}

/** One member on each worker, picking deflate and plain ones alike. */
function onePerWorker(members: Member[], workers: number[]): Member[] {
  return workers.map((pid) => {
    const found = members.find((m) => m.worker === pid);
    assert.ok(found, `some member landed on worker ${pid}`);
    return found;
  });
}

const text = (publisher: number, k: number) => `p${publisher} ${k}`;

redisTest(
  `three workers, one port, Redis: 300 members get every publish exactly once, in order, text and bytes, deflate or not, never their own (${RUNTIME})`,
  async () => {
    const redis = await startRedis(await freePort());
    const cluster = await startCluster(3, redis.port);
    let members: Member[] = [];
    try {
      members = await joinMany(cluster.port, 300);
      const perWorker = cluster.workers.map((pid) => members.filter((m) => m.worker === pid).length);
      console.log(`cluster (${RUNTIME}): 300 members over workers ${JSON.stringify(perWorker)}`);
      assert.ok(perWorker.every((n) => n > 0), `every worker has members: ${perWorker}`);
      const deflated = members.filter((m) => m.ws.extensions.includes("permessage-deflate")).length;
      assert.equal(deflated, 100, "every third member agreed permessage-deflate");
      await allSubscribed(redis.port, 3);

      const publishers = onePerWorker(members, cluster.workers);
      const N = 20;
      for (const member of members) {
        const isPublisher = publishers.includes(member);
        member.expect((isPublisher ? 2 : 3) * 2 * N);
      }
      // Each publisher: N texts, then N binaries [publisher, k]; all three at once.
      await Promise.all(publishers.map(async (publisher, p) => {
        for (let k = 0; k < N; k++) await publisher.ws.send(text(p, k));
        for (let k = 0; k < N; k++) await publisher.ws.send(new Uint8Array([p, k]));
      }));
      await allReached(members, "300 members");

      for (const member of members) {
        const mine = publishers.indexOf(member);
        for (let p = 0; p < publishers.length; p++) {
          const from = member.got.filter((m) =>
            typeof m === "string" ? m.startsWith(`p${p} `) : m instanceof Uint8Array && m[0] === p
          );
          if (p === mine) {
            assert.equal(from.length, 0, "a publisher never gets its own message back (except)");
            continue;
          }
          const texts = from.filter((m) => typeof m === "string");
          const bytes = from.filter((m) => m instanceof Uint8Array).map((m) => (m as Uint8Array)[1]);
          assert.deepEqual(texts, [...Array(N).keys()].map((k) => text(p, k)), "texts once each, in order");
          assert.deepEqual(bytes, [...Array(N).keys()], "bytes once each, in order, as bytes");
          // Per publisher, every text came before every binary, as sent.
          assert.equal(typeof from[N - 1], "string");
          assert.ok(from[N] instanceof Uint8Array);
        }
      }
      // Nothing more came: a duplicate would have arrived by the time a marker sent after it did.
      for (const member of members) member.expect(member.got.length + 1);
      await publishers[0]!.ws.send("end");
      await allReached(members.filter((m) => m !== publishers[0]), "the end marker");
      for (const member of members) {
        if (member === publishers[0]) continue;
        assert.equal(member.got.at(-1), "end");
        const mine = publishers.indexOf(member);
        assert.equal(member.got.length, (mine >= 0 ? 2 : 3) * 2 * N + 1, "no duplicate");
      }
    } finally {
      for (const member of members) member.ws.terminate();
      await cluster.stop();
      await stopRedis(redis);
    }
  },
  undefined,
  180000,
);

/** Reads a process's peak resident set (VmHWM), in bytes. */
function peakRss(pid: number): number {
  const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
  if (kb === undefined) throw new Error(`no VmHWM for ${pid}`);
  return Number(kb) * 1024;
}

redisTest(
  `faults: Redis killed and restarted mid-stream, a worker killed, a member that never reads (${RUNTIME})`,
  async () => {
    const redisPort = await freePort();
    // Redis cuts a subscriber that falls 32 MiB behind by default; the flood below is 48 MiB.
    const redisOptions = ["--client-output-buffer-limit", "pubsub 256mb 256mb 0"];
    let redis: RedisChild = await startRedis(redisPort, redisOptions);
    const cluster = await startCluster(3, redisPort);
    let members: Member[] = [];
    const slow: RawPeer[] = [];
    try {
      // At least two members on every worker (the kernel spreads them; more joins if needed).
      members = await joinMany(cluster.port, 30);
      for (
        let i = 0;
        i < 300 && cluster.workers.some((pid) => members.filter((m) => m.worker === pid).length < 2);
        i++
      ) {
        members.push(await join(cluster.port, false));
      }
      await allSubscribed(redisPort, 3);
      const [publisher] = onePerWorker(members, cluster.workers);
      const local = members.filter((m) => m.worker === publisher!.worker && m !== publisher);
      const remote = members.filter((m) => m.worker !== publisher!.worker);
      const seqOf = (m: Message) => typeof m === "string" && m.startsWith("seq ") ? Number(m.slice(4)) : -1;
      const last = (m: Member) => m.got.length ? seqOf(m.got.at(-1)!) : -1;

      // ---- Redis killed and restarted while one member publishes a numbered stream ----
      let sent = 0;
      let streaming = true;
      const stream = (async () => {
        while (streaming) {
          await publisher!.ws.send(`seq ${sent++}`);
          await sleep(2);
        }
      })();
      await waitFor(
        () => remote.every((m) => last(m) >= 20),
        "the stream to reach every remote member",
        LONG,
      );
      await stopRedis(redis);
      const atStop = sent;
      // Local delivery goes on without Redis.
      await waitFor(
        () => local.every((m) => last(m) >= atStop + 50),
        "local delivery while Redis is down",
        LONG,
      );
      redis = await startRedis(redisPort, redisOptions);
      const atRestart = sent;
      // Cross-process delivery resumes (the workers reconnect and subscribe again).
      await waitFor(
        () => remote.every((m) => last(m) >= atRestart),
        "remote delivery after the restart",
        LONG,
      );
      // Every worker has subscribed again by now: nothing published from here on may be lost.
      const resumed = sent;
      streaming = false;
      await stream;
      const total = sent;
      await waitFor(
        () => [...local, ...remote].every((m) => last(m) === total - 1),
        "the stream's end",
        LONG,
      );
      for (const member of local) {
        assert.deepEqual(member.got.map(seqOf), [...Array(total).keys()], "local members lose nothing");
      }
      let lost = 0;
      for (const member of remote) {
        const seqs = member.got.map(seqOf);
        for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i]! > seqs[i - 1]!, "in order, no duplicate");
        lost += total - seqs.length;
        const after = seqs.filter((seq) => seq >= resumed);
        assert.deepEqual(
          after,
          [...Array(total - resumed).keys()].map((k) => resumed + k),
          "none lost after",
        );
      }
      console.log(
        `faults (${RUNTIME}): Redis down during publishes ${atStop}..${atRestart} of ${total}; ` +
          `${remote.length} remote members lost ${lost} deliveries in all (${
            (lost / remote.length).toFixed(1)
          } each), ` +
          `${local.length} local members none`,
      );

      // ---- A worker killed: its members see 1006, the others go on ----
      const victim = cluster.workers.find((pid) => pid !== publisher!.worker)!;
      const doomed = members.filter((m) => m.worker === victim);
      const survivors = members.filter((m) => m.worker !== victim);
      process.kill(victim, "SIGKILL");
      const codes = await within(
        Promise.all(doomed.map((m) => m.ws.closed.then((info) => info.code))),
        "the killed worker's members' closes",
        LONG,
      );
      assert.deepEqual(codes, doomed.map(() => 1006), "the killed worker's members got 1006");
      assert.ok(processAlive(cluster.primary.pid), "the primary goes on");
      assert.ok(
        cluster.workers.every((pid) => pid === victim || processAlive(pid)),
        "so do the other workers",
      );
      for (const member of survivors) member.expect(member.got.length + (member === publisher ? 0 : 1));
      await publisher!.ws.send("after the kill");
      await allReached(survivors.filter((m) => m !== publisher), "a publish after the kill");
      for (const member of survivors) {
        if (member !== publisher) assert.equal(member.got.at(-1), "after the kill");
      }

      // ---- A member that never reads, on a worker the flood reaches through Redis ----
      const others = cluster.workers.filter((pid) => pid !== victim && pid !== publisher!.worker);
      // Join raw peers until one lands on the other surviving worker (the kernel picks).
      let reader: RawPeer | undefined;
      for (let i = 0; i < 200 && !reader; i++) {
        const peer = await RawPeer.upgraded(cluster.port, `/rooms/${ROOM}`);
        await peer.write(maskedText("pid"));
        let pid = 0;
        await peer.until((text) => {
          const frame = /\r\n\r\n\x81([\s\S])(\d*)$/.exec(text);
          if (frame && frame[2]!.length === frame[1]!.charCodeAt(0)) pid = Number(frame[2]);
          return pid !== 0;
        }, LONG);
        if (pid === others[0]) reader = peer;
        else peer.destroy();
      }
      if (reader) slow.push(reader);
      assert.ok(reader, "a raw member landed on the third worker");
      reader.pause();
      const before = rss(others[0]!);
      const peakBefore = peakRss(others[0]!);
      const received = reader.received.length;
      // 128 MiB through Redis, 1 MiB at a time: eight times the 16 MiB maxBufferedAmount.
      const chunk = new Uint8Array(1 << 20);
      const count = 128;
      // The members that read are paced (at most 4 MiB in flight to each): this process reads for
      // them all, and a member falling 16 MiB behind would be cut as the never-reading one is.
      // Two readers on each surviving worker are enough to show the others unaffected.
      const readers = [publisher!.worker, others[0]!].flatMap((pid) =>
        survivors.filter((m) => m.worker === pid && m !== publisher).slice(0, 2)
      );
      for (const member of survivors) {
        if (member !== publisher && !readers.includes(member)) member.ws.terminate();
      }
      const base = readers.map((m) => m.got.length);
      for (const member of readers) member.expect(member.got.length + count);
      for (let k = 0; k < count; k++) {
        await waitFor(() => readers.every((m, i) => m.got.length >= base[i]! + k - 4), "the readers", LONG);
        chunk[0] = k;
        await publisher!.ws.send(chunk);
      }
      await allReached(readers, "the flood");
      for (const member of readers) {
        const tail = member.got.slice(-count);
        assert.deepEqual(
          tail.map((m) => (m as Uint8Array)[0]),
          [...Array(count).keys()],
          "others got it all",
        );
      }
      const peak = peakRss(others[0]!) - peakBefore;
      reader.resume();
      const ending = await reader.endedWithin(LONG);
      const got = reader.received.length - received;
      // Resident memory once it is over: a worker that kept the flood for the member would have grown
      // by all of it. Collectors leave garbage for a while whether or not the member reads (40 to
      // 68 MiB here on both runtimes, and peaks near the flood's size on Bun), hence the margin.
      const growth = rss(others[0]!) - before;
      const mb = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
      console.log(
        `faults (${RUNTIME}): a member that never read was cut after ${mb(got)} MiB of ${count} MiB; its ` +
          `worker's resident memory grew ${mb(growth)} MiB (peak ${mb(peak)} MiB)`,
      );
      assert.ok(ending, "the server closed the member that never read");
      assert.ok(got < count * 2 ** 20 / 4, `it was cut early in the flood (${got} bytes)`);
      assert.ok(growth < count * 2 ** 20 * 0.75, `its worker did not keep the flood (${growth} bytes)`);
    } finally {
      for (const member of members) member.ws.terminate();
      for (const peer of slow) peer.destroy();
      await cluster.stop();
      await stopRedis(redis);
    }
  },
  undefined,
  240000,
);

/** A masked client text frame (mask 0: the payload goes as is). */
function maskedText(text: string): Uint8Array {
  const payload = new TextEncoder().encode(text);
  return new Uint8Array([0x81, 0x80 | payload.length, 0, 0, 0, 0, ...payload]);
}
