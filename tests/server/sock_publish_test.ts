// Sock.publish() to members that do not read or are closing, against a server in its own process
// (tests/fixtures/publish_server.ts) while an honest client makes round trips and handshakes: they
// stay short. Sends to a closing connection used to make one rejection each, settling all at once
// when the close timed out; Deno's rejection tracking is quadratic in their number, so 20,000
// publishes froze the server for seconds (and an ordinary non-reading member, cut at
// maxBufferedAmount, did the same with the sends that had waited on its write). Now publish() skips
// members that are not open, and a closing connection's sends share one outcome.

import { test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "../../src/client.ts";
import type { PublishStats } from "../fixtures/publish_server.ts";
import { RawPeer, RUNTIME, type ServerChild, sleep, startServer } from "../_hardening.ts";

/** `tests/fixtures/publish_server.ts` in a child process, with a control connection. */
function startPublishServer(options: Record<string, unknown>): Promise<PublishServer> {
  return startServer<PublishStats>(options, {
    script: new URL("../fixtures/publish_server.ts", import.meta.url),
    controlTimeout: 60000,
  });
}

type PublishServer = ServerChild<PublishStats>;

/** The `q` quantile of `values` (0.99 for p99, 1 for the largest). */
function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
}

/**
 * An honest client's view of the server: an echo round trip every 5 ms, a new handshake every
 * 100 ms. `take()` hands out what was measured since the previous call.
 */
function probe(server: PublishServer) {
  let stopped = false, rtts: number[] = [], handshakes: number[] = [];
  const echoing = (async () => {
    const ws = await connect(`${server.url}/echo`, { pingInterval: 0, timeout: 10000 });
    while (!stopped) {
      const start = performance.now();
      await ws.send("ping");
      assert.equal(await ws.receive({ timeout: 60000 }), "ping");
      rtts.push(performance.now() - start);
      await sleep(5);
    }
    ws.terminate();
  })();
  const shaking = (async () => {
    while (!stopped) {
      const start = performance.now();
      (await connect(`${server.url}/echo`, { pingInterval: 0, timeout: 60000 })).terminate();
      handshakes.push(performance.now() - start);
      await sleep(100);
    }
  })();
  return {
    take() {
      const taken = { rtts, handshakes };
      rtts = [];
      handshakes = [];
      return taken;
    },
    async stop() {
      stopped = true;
      await Promise.all([echoing, shaking]);
    },
  };
}

/**
 * Measures the honest client while `attack` runs and until the room member's handler has ended
 * (plus half a second, for what its ending sets off), and asserts that its slowest round trip
 * and handshake stay within max(10 × the idle p99, 750 ms). Returns the server's stats at the end.
 */
async function honestClientStaysServed(
  name: string,
  options: Record<string, unknown>,
  attack: (server: PublishServer, member: RawPeer) => Promise<void>,
): Promise<PublishStats> {
  const server = await startPublishServer(options);
  const member = await RawPeer.upgraded(server.port, "/room");
  member.pause();
  const honest = probe(server);
  try {
    await sleep(1000);
    const idle = honest.take();
    await server.control("stats");
    const start = performance.now();
    await attack(server, member);
    let stats = await server.control("stats");
    let stall = stats.stall;
    while (Object.keys(stats.outcomes).length === 0 && performance.now() - start < 30000) {
      await sleep(250);
      stats = await server.control("stats");
      stall = Math.max(stall, stats.stall);
    }
    await sleep(500);
    stats = await server.control("stats");
    stall = Math.max(stall, stats.stall);
    const load = honest.take();
    const bound = Math.max(10 * quantile(idle.rtts, 0.99), 750);
    const slowest = quantile(load.rtts, 1), slowestHandshake = quantile(load.handshakes, 1);
    console.log(
      `${name} (${RUNTIME}): member ended ${JSON.stringify(stats.outcomes)} after ${
        Math.round(performance.now() - start)
      } ms; honest round trips idle p99 ${quantile(idle.rtts, 0.99).toFixed(1)} ms, under attack p99 ${
        quantile(load.rtts, 0.99).toFixed(1)
      } ms, slowest ${slowest.toFixed(1)} ms (${load.rtts.length}); slowest handshake ${
        slowestHandshake.toFixed(1)
      } ms; server event loop held at most ${stall.toFixed(1)} ms; bound ${bound.toFixed(0)} ms`,
    );
    assert.ok(Object.keys(stats.outcomes).length > 0, "the member's handler ended");
    assert.ok(
      slowest < bound,
      `an honest round trip took ${slowest.toFixed(0)} ms (bound ${bound.toFixed(0)} ms)`,
    );
    assert.ok(
      slowestHandshake < bound,
      `an honest handshake took ${slowestHandshake.toFixed(0)} ms (bound ${bound.toFixed(0)} ms)`,
    );
    assert.equal(stats.errors, 0);
    return stats;
  } finally {
    await honest.stop();
    member.destroy();
    await server.stop();
  }
}

test(`publish() to a member cut for not reading (1008), then 20,000 small publishes during its close: others stay served (${RUNTIME})`, async () => {
  let published = -1;
  await honestClientStaysServed("cut member", { closeTimeout: 2000, pingInterval: 0 }, async (server) => {
    // Two 9 MiB messages pass maxBufferedAmount (16 MiB): the next publish cuts the member.
    await server.control("publish 2 9437184");
    published = (await server.control("publish 20000 16")).published;
  });
  assert.equal(published, 0, "the cut member is not counted");
});

test(`publish() to a member whose close is pending skips it, and 30,000 publishes leave others served (${RUNTIME})`, async () => {
  let published = -1;
  await honestClientStaysServed("closing member", { closeTimeout: 2000, pingInterval: 0 }, async (server) => {
    // The member does not read, so it never answers our close frame: closing for closeTimeout.
    await server.control("close");
    published = (await server.control("publish 30000 16")).published;
  });
  assert.equal(published, 0, "a closing member is not counted");
});

test(`publish() to a member that stops reading, until it is cut at maxBufferedAmount: others stay served (${RUNTIME})`, async () => {
  const stats = await honestClientStaysServed(
    "non-reading member",
    { closeTimeout: 2000, pingInterval: 0 },
    // 40 MiB in 1 KiB messages, a hundred per turn: past 1 MiB (sendHighWaterMark) each send
    // waits on the socket's write, which the member never lets finish.
    async (server) => void await server.control("spread 40000 1024"),
  );
  assert.equal(stats.published, 0, "the cut member is no longer counted");
});
