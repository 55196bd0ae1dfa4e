// One peer must not take the server from everyone else (issue 16): each attack runs against a Sock in a
// child process (bench/servers/attack_target.ts) from an attacker in another child process
// (bench/attack_peers.ts), while an honest client in this process echoes 32 bytes every 100 ms and
// opens a connection every second. Each test first measures the honest client with no attack, then
// asserts what it sees under the attack:
//
//   round-trip p99 < max(10 × its idle p99, 500 ms), slowest handshake < max(10 × idle, 1000 ms)
//
// (the floors hold on a loaded 2-core machine; before the fix, every attack here pushed them past a
// second), and the server's peak RSS against the documented bound (SECURITY.md): per connection
// `receiveQueueSize + 1` messages of `maxMessageSize` received, plus `maxBufferedAmount` and one message
// to send, plus a fixed 64 MiB for the runtime (read buffers, inflate windows, garbage not yet
// collected), over the RSS measured idle. Attack sizes are scaled down from the issue's;
// `deno run -A bench/attacks.ts` runs them at full size and prints before/after tables.

import { test } from "node:test";
import assert from "node:assert/strict";
import { Honest, percentile } from "../../bench/attack_peers.ts";
import type { AttackResult, Sample } from "../../bench/attack_peers.ts";
import { mib, rss, RUNTIME, sleep, spawnScript } from "../_hardening.ts";

const MiB = 1024 * 1024;
/** Under attack, the honest client's p99 may grow to this multiple of its idle p99 … */
const MULTIPLE = 10;
/** … or to this, whichever is larger: a loaded machine's scheduling, GC, not an unfair server. */
const RTT_FLOOR_MS = 500;
const HANDSHAKE_FLOOR_MS = 1000;
/** What the runtime itself may add to the documented bound under load. */
const ALLOWANCE = 64 * MiB;
/** How long the honest client is measured before the attack. */
const IDLE_MS = 2000;

/** Sock's defaults, for the bound. */
const DEFAULTS = { maxMessageSize: 16 * MiB, receiveQueueSize: 16, maxBufferedAmount: 16 * MiB };

interface Run {
  idle: { p99: number; handshakeMax: number };
  attack: { p50: number; p99: number; handshakeMax: number; samples: number; lost: number };
  rssIdle: number;
  rssPeak: number;
  stallMax: number;
  result: AttackResult;
}

/**
 * Starts the server with `options`, measures the honest client idle, runs `attack` with `params` in a
 * child process and measures again until it is done (at least 2 s, so that at least 20 round trips
 * count).
 */
async function underAttack(
  options: Record<string, unknown>,
  attack: string,
  params: Record<string, unknown>,
  timeoutMs: number,
): Promise<Run> {
  const server = spawnScript(new URL("../../bench/servers/attack_target.ts", import.meta.url), [
    "--options",
    JSON.stringify(options),
  ]);
  let attacker: ReturnType<typeof spawnScript> | undefined;
  let honest: Honest | undefined;
  let sampler: ReturnType<typeof setInterval> | undefined;
  try {
    const port = Number((await server.line(/^listening on ws:\/\/[\d.]+:(\d+)/, 20000))[1]);
    honest = await Honest.start(port);
    await sleep(IDLE_MS);
    const rssIdle = rss(server.pid);
    let rssPeak = rssIdle;
    sampler = setInterval(() => {
      try {
        rssPeak = Math.max(rssPeak, rss(server.pid));
      } catch {
        // Exited: the test fails on what the honest client saw.
      }
    }, 100);
    attacker = spawnScript(new URL("../../bench/attack_peers.ts", import.meta.url), [
      "attack",
      attack,
      "--port",
      String(port),
      "--params",
      JSON.stringify(params),
    ]);
    const start = Number((await attacker.line(/^attacking ([\d.]+)/, 20000))[1]);
    const result: AttackResult = JSON.parse((await attacker.line(/^result (.*)$/, timeoutMs))[1]);
    const end = Math.max(performance.timeOrigin + performance.now(), start + 2000);
    while (performance.timeOrigin + performance.now() < end) await sleep(100);
    // A stall is reported once it is over: wait for the report covering the attack's end.
    await sleep(500);
    clearInterval(sampler);
    honest.stop();
    const during = (samples: Sample[]) => samples.filter((s) => s.at >= start && s.at <= end);
    const before = (samples: Sample[]) => samples.filter((s) => s.at < start);
    const rtts = during(honest.rtts);
    const stalls = server.output().split("\n").map((line) => line.split(" "))
      .filter((f) => f[0] === "stall" && Number(f[1]) >= start && Number(f[1]) <= end + 500)
      .map((f) => Number(f[2]));
    const maxOf = (samples: Sample[]) => Math.max(0, ...samples.map((s) => s.ms));
    return {
      idle: {
        p99: percentile(before(honest.rtts).map((s) => s.ms), 99),
        handshakeMax: maxOf(before(honest.handshakes)),
      },
      attack: {
        p50: percentile(rtts.map((s) => s.ms), 50),
        p99: percentile(rtts.map((s) => s.ms), 99),
        handshakeMax: maxOf(during(honest.handshakes)),
        samples: rtts.length,
        lost: rtts.filter((s) => s.lost).length,
      },
      rssIdle,
      rssPeak,
      stallMax: Math.max(0, ...stalls),
      result,
    };
  } finally {
    clearInterval(sampler);
    honest?.stop();
    attacker?.kill();
    server.kill();
    await Promise.all([attacker?.exited, server.exited]);
  }
}

/** The documented bound for `connections` connections under `options`, over the idle RSS. */
function bound(options: Record<string, number | boolean>, connections: number): number {
  const { maxMessageSize, receiveQueueSize, maxBufferedAmount } = { ...DEFAULTS, ...options };
  return connections * ((receiveQueueSize + 2) * maxMessageSize + maxBufferedAmount) + ALLOWANCE;
}

/** Prints the figures and asserts the honest client's round trips and the server's memory. */
function check(name: string, run: Run, rssBound: number): void {
  const { idle, attack } = run;
  console.log(
    `fairness (${RUNTIME}) ${name}: honest idle p99 ${idle.p99.toFixed(1)} ms; under attack p50 ${
      attack.p50.toFixed(1)
    } ms, p99 ${attack.p99.toFixed(1)} ms over ${attack.samples} round trips (${attack.lost} unanswered), ` +
      `slowest handshake ${attack.handshakeMax.toFixed(1)} ms; server RSS ${mib(run.rssIdle)} -> peak ${
        mib(run.rssPeak)
      } (bound ${mib(run.rssIdle + rssBound)}); event loop held up to ${run.stallMax.toFixed(0)} ms; attack ${
        (run.result.ms / 1000).toFixed(1)
      } s: ${JSON.stringify({ ...run.result, ms: undefined })}`,
  );
  const rttLimit = Math.max(MULTIPLE * idle.p99, RTT_FLOOR_MS);
  assert.ok(attack.samples >= 10, `only ${attack.samples} round trips during the attack`);
  assert.ok(
    attack.p99 < rttLimit,
    `honest round-trip p99 ${attack.p99.toFixed(0)} ms under attack; limit ${rttLimit.toFixed(0)} ms`,
  );
  const handshakeLimit = Math.max(MULTIPLE * idle.handshakeMax, HANDSHAKE_FLOOR_MS);
  assert.ok(
    attack.handshakeMax < handshakeLimit,
    `slowest honest handshake ${attack.handshakeMax.toFixed(0)} ms under attack; limit ${
      handshakeLimit.toFixed(0)
    } ms`,
  );
  assert.ok(
    run.rssPeak - run.rssIdle <= rssBound,
    `server RSS grew by ${mib(run.rssPeak - run.rssIdle)}; bound ${mib(rssBound)}`,
  );
}

// Every test bounds its attack in count and time; the runner's timeout is a guard against hangs only.
const LIMIT = { timeout: 60_000 };

test(
  `fairness (${RUNTIME}): a deflate bomb to a slow handler holds receiveQueueSize + 1 inflated messages per connection, no more`,
  LIMIT,
  async () => {
    // 8 connections each send, in one write, 200 messages of 1 KiB that inflate to just under 1 MiB
    // (200 KiB for 200 MiB) to a handler that takes 1 s per message: each may hold 2 received
    // messages (1 MiB each), whatever the size of the runtime's reads.
    const options = { deflate: true, maxMessageSize: MiB, receiveQueueSize: 1, maxBufferedAmount: MiB };
    const run = await underAttack(
      options,
      "deflate-queue",
      { connections: 8, messages: 200, size: MiB - 1024, holdMs: 4000, path: "/slow" },
      30000,
    );
    check("deflate bomb, slow handler", run, bound(options, 8));
  },
);

/** The server's `messageTimeout` here, and the deadline the test allows for it: five times that. */
const MESSAGE_TIMEOUT_MS = 2000;
const UNFINISHED_DEADLINE_MS = 5 * MESSAGE_TIMEOUT_MS;

test(
  `fairness (${RUNTIME}): an unfinished compressed message held open with pongs between fragments is ended in time`,
  LIMIT,
  async () => {
    // 4 connections each send a first fragment inflating to 4 MiB - 64 KiB (4 KiB sent), then an empty
    // continuation and a pong every 100 ms, never the last fragment. The server must not keep that
    // message, and the inflated bytes it holds, for as long as the peer keeps sending.
    const options = {
      deflate: true,
      maxMessageSize: 4 * MiB,
      receiveQueueSize: 4,
      maxBufferedAmount: MiB,
      pingInterval: 1000,
      pongTimeout: 1000,
      closeTimeout: 1000,
      messageTimeout: MESSAGE_TIMEOUT_MS,
    };
    const run = await underAttack(
      options,
      "unfinished",
      { connections: 4, size: 4 * MiB - 65536, everyMs: 100, holdMs: UNFINISHED_DEADLINE_MS + 5000 },
      30000,
    );
    check("unfinished compressed message", run, bound(options, 4));
    const kept = run.result.kept as (number | null)[];
    for (const ms of kept) {
      assert.ok(
        ms !== null && ms <= UNFINISHED_DEADLINE_MS,
        `an unfinished message kept ${
          ms === null ? "until the attacker left" : `${ms} ms`
        }; deadline ${UNFINISHED_DEADLINE_MS} ms (codes ${JSON.stringify(run.result.codes)})`,
      );
    }
  },
);

test(
  `fairness (${RUNTIME}): 64 KiB that inflate to 64 MiB (echo server with deflate) do not hold the event loop`,
  LIMIT,
  async () => {
    // examples/echo_server.ts --deflate's settings; two bombs, each sent once the previous one's echo
    // came back.
    const options = { deflate: true, maxMessageSize: 64 * MiB, maxFragments: 100_000 };
    const run = await underAttack(options, "bomb", { count: 2, size: 64 * MiB - 1024 }, 40000);
    check("64 MiB deflate bombs", run, bound(options, 1));
    assert.equal(run.result.echoed, 2, "both bombs were echoed");
  },
);

test(
  `fairness (${RUNTIME}): eight 16 KiB deflate bombs in one write (Sock({ deflate: true })) do not hold the event loop`,
  LIMIT,
  async () => {
    const options = { deflate: true };
    const run = await underAttack(
      options,
      "bomb",
      { count: 8, size: 16 * MiB - 1024, together: true },
      40000,
    );
    check("16 MiB deflate bombs in one write", run, bound(options, 1));
    assert.equal(run.result.echoed, 8, "every bomb was echoed");
  },
);

test(
  `fairness (${RUNTIME}): 3 million 1-byte frames to a forEach echo leave others their turn`,
  LIMIT,
  async () => {
    const options = {};
    const run = await underAttack(options, "tiny", { frames: 3_000_000, timeoutMs: 40000 }, 45000);
    check("3M 1-byte frames", run, bound(options, 1));
  },
);

test(
  `fairness (${RUNTIME}): 2.4 million frames of 1-byte fragments with a ping after each leave others their turn`,
  LIMIT,
  async () => {
    const options = {};
    // 300 messages of 4,000 fragments each, the most a message may have by default being 4,096.
    const run = await underAttack(options, "fragments", { frames: 2_400_000, timeoutMs: 40000 }, 45000);
    check("2.4M fragments and pings", run, bound(options, 1));
    assert.equal(run.result.echoed, 300, "every fragmented message was echoed");
  },
);

test(
  `fairness (${RUNTIME}): 20,000 publishes to a member cut for not reading do not freeze the server`,
  LIMIT,
  async () => {
    // The member stops reading; two 9 MiB publishes pass maxBufferedAmount (16 MiB) and cut it with
    // 1008; 20,000 small publishes follow during its close timeout (5 s), which the member outlives.
    const options = {};
    const run = await underAttack(options, "publish", { count: 20_000, holdMs: 7000 }, 40000);
    check("publish storm to a closing member", run, bound(options, 2));
    assert.equal(run.result.synced, 2, "the publisher got through");
  },
);
