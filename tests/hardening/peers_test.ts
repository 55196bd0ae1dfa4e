// Slow and vanishing peers against a real Sock: a reader that never reads (the server's memory stays
// bounded, the connection is closed with 1008 past maxBufferedAmount, others are unaffected), a peer
// that stops answering (keepalive drops it within pingInterval + pongTimeout), and peers that vanish
// mid-handshake, mid-frame and mid-close with FIN or RST (handlers see 1006; sockets and timers are
// released: counted from outside, and the server process exits by itself after close()).

import { test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "../../src/client.ts";
import { ConnectionClosed } from "../../src/connection/closed.ts";
import { Sock } from "../../src/server/sock.ts";
import { buildFrame, eventually, latin1Bytes, upgradeRequest, within } from "../_helpers.ts";
import { closeFrameOf, mib, RawPeer, rss, RUNTIME, sleep, startServer, tcpSockets } from "../_hardening.ts";

const MB = 1024 * 1024;
const KEY = [1, 2, 3, 4];

test(`A reader that never reads (${RUNTIME}): unawaited sends are cut at maxBufferedAmount with 1008, memory stays bounded, others echo on`, async () => {
  const limit = 4 * MB;
  const server = await startServer({ maxBufferedAmount: limit, closeTimeout: 500, pingInterval: 0 });
  const echo = await connect(`${server.url}/echo`, { pingInterval: 0 });
  try {
    await server.control("gc");
    const rssBefore = rss(server.pid), socketsBefore = tcpSockets(server.pid);
    const slow = await RawPeer.upgraded(server.port, "/flood?size=16384");
    slow.pause();
    const start = performance.now();
    let peak = rssBefore, roundTrips = 0, slowest = 0;
    // The cut comes once 4 MB are queued: well within 30 s however slow the machine.
    while (performance.now() - start < 30000) {
      const sent = performance.now();
      await echo.send("still here?");
      assert.equal(await echo.receive({ timeout: 20000 }), "still here?");
      slowest = Math.max(slowest, performance.now() - sent);
      roundTrips++;
      peak = Math.max(peak, rss(server.pid));
      if ((await server.control("stats")).floodSent["1008 send buffer full"]) break;
    }
    const cut = performance.now() - start;
    // It does not read, so it cannot see the server's FIN: count the server's sockets instead.
    await eventually(() => tcpSockets(server.pid) <= socketsBefore, "the slow reader's socket closed")
      .catch(() => {}); // The assertion below says what is left.
    const dropped = performance.now() - start;
    const stats = await server.control("gc");
    console.log(
      `slow reader (${RUNTIME}): cut after ${Math.round(cut)} ms with ${JSON.stringify(stats.floodSent)}, ` +
        `socket closed after ${Math.round(dropped)} ms; ` +
        `largest bufferedAmount ${mib(stats.floodPeak)} (limit ${mib(limit)}); server RSS ${
          mib(rssBefore)
        } -> ` +
        `peak ${mib(peak)}; meanwhile ${roundTrips} echo round trips, slowest ${Math.round(slowest)} ms`,
    );
    assert.deepEqual(stats.floodSent, { "1008 send buffer full": 1 });
    assert.ok(stats.floodPeak <= limit + 16384 + 64, `bufferedAmount reached ${stats.floodPeak}`);
    assert.equal(
      tcpSockets(server.pid),
      socketsBefore,
      "the slow reader's socket was closed after closeTimeout",
    );
    assert.equal(stats.connections, 1, "only the echo connection is left");
    assert.ok(peak < rssBefore + 64 * MB, `RSS ${mib(rssBefore)} -> ${mib(peak)}`);
    assert.equal(await echo.send("after").then(() => echo.receive({ timeout: 20000 })), "after");
    slow.destroy();
  } finally {
    echo.terminate();
    await server.stop();
  }
});

test("A peer that stops answering is dropped by keepalive after pingInterval + pongTimeout, even while a send waits on it", async () => {
  const pingInterval = 250, pongTimeout = 250, highWaterMark = 65536;
  const results: { ms: number; error: unknown; peak: number; sent: number }[] = [];
  const bothEnded = Promise.withResolvers<void>();
  const record = (result: (typeof results)[number]) => {
    if (results.push(result) === 2) bothEnded.resolve();
  };
  const app = new Sock({ pingInterval, pongTimeout, sendHighWaterMark: highWaterMark });
  app.route("/silent", async (ws) => {
    const start = performance.now();
    const error = await ws.receive().then(() => undefined, (e) => e);
    record({ ms: performance.now() - start, error, peak: 0, sent: 0 });
  });
  app.route("/push", async (ws) => {
    // Awaited sends: backpressure holds the handler; the memory held stays near sendHighWaterMark.
    const start = performance.now();
    let peak = 0, sent = 0;
    const chunk = new Uint8Array(65536);
    const error = await (async () => {
      while (true) {
        await ws.send(chunk);
        sent += chunk.length;
        peak = Math.max(peak, ws.bufferedAmount);
      }
    })().catch((e) => e);
    record({ ms: performance.now() - start, error, peak, sent });
  });
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    // Both peers complete the handshake, then go silent without closing: no FIN, no pong.
    const silent = await RawPeer.upgraded(port, "/silent");
    const stuck = await RawPeer.upgraded(port, "/push");
    stuck.pause();
    // Without keepalive neither handler would ever end: the bound only has to be well past the
    // latest detection a loaded machine may take (see below).
    await within(bothEnded.promise, "both handlers ended", 20000);
    for (const { ms, error, peak, sent } of results) {
      assert.ok(error instanceof ConnectionClosed, `the handler saw ConnectionClosed, not ${error}`);
      assert.equal(error.code, 1006);
      // The first ping goes out between three quarters of an interval and one interval after the
      // open, so no peer is dropped before that plus pongTimeout (less a timer's jitter). Timers
      // only fire late on a busy machine, so the upper bound is generous: a few times the
      // configured time, plus seconds.
      assert.ok(ms >= pingInterval * 3 / 4 + pongTimeout - 20, `detected after ${ms} ms`);
      assert.ok(ms < 4 * (pingInterval + pongTimeout) + 3000, `detected after ${ms} ms`);
      if (sent > 0) assert.ok(peak <= highWaterMark + 65536 + 64, `bufferedAmount reached ${peak}`);
    }
    // The paused peer cannot see the FIN; the one still reading does.
    assert.ok(await silent.endedWithin(10000), "the socket was closed");
    console.log(
      `dead peer (${RUNTIME}): pingInterval ${pingInterval} + pongTimeout ${pongTimeout} ms -> detected after ${
        results.map((r) =>
          `${Math.round(r.ms)} ms${r.sent ? ` (a sender blocked on it, ${mib(r.sent)} sent)` : ""}`
        )
          .join(" and ")
      }`,
    );
    silent.destroy();
    stuck.destroy();
  } finally {
    await app.close();
  }
});

test(`Clients resetting their connections as the server accepts them do not stop it from accepting (${RUNTIME})`, async () => {
  const server = await startServer({});
  try {
    // Deno's accept() fails with ENOTCONN for a connection reset before it was accepted; that
    // once ended the accept loop, and with it the server.
    const request = latin1Bytes(upgradeRequest({ target: "/echo" }));
    for (let round = 0; round < 5; round++) {
      await Promise.all(Array.from({ length: 20 }, async (_, i) => {
        const peer = await RawPeer.open(server.port);
        if (i % 2) await peer.write(request.subarray(0, 40 * (round + 1)));
        peer.reset();
      }));
    }
    await sleep(50);
    const peer = await RawPeer.upgraded(server.port, "/echo");
    peer.destroy();
    assert.equal((await server.control("stats")).errors, 0);
  } finally {
    await server.stop();
  }
});

test(`Peers vanishing mid-handshake, mid-frame and mid-close, by FIN or RST (${RUNTIME}): handlers see 1006, nothing leaks, the server exits by itself`, async () => {
  const server = await startServer({});
  try {
    await server.control("gc");
    const socketsBefore = tcpSockets(server.pid);
    const request = latin1Bytes(upgradeRequest({ target: "/echo" }));
    const leave = (peer: RawPeer, how: "fin" | "rst") => how === "fin" ? peer.destroy() : peer.reset();
    const scenarios: Record<string, (how: "fin" | "rst") => Promise<void>> = {
      "mid-handshake": async (how) => {
        const peer = await RawPeer.open(server.port);
        await peer.write(request.subarray(0, 40));
        leave(peer, how);
      },
      "right after the request": async (how) => {
        const peer = await RawPeer.open(server.port);
        await peer.write(request);
        leave(peer, how);
      },
      "mid-frame": async (how) => {
        const peer = await RawPeer.upgraded(server.port, "/echo");
        await peer.write(buildFrame(0x82, new Uint8Array(1000), KEY).subarray(0, 300));
        await sleep(5);
        leave(peer, how);
      },
      "mid-message": async (how) => {
        const peer = await RawPeer.upgraded(server.port, "/echo");
        await peer.write(buildFrame(0x01, "first piece", KEY));
        await sleep(5);
        leave(peer, how);
      },
      "after its own close frame": async (how) => {
        const peer = await RawPeer.upgraded(server.port, "/echo");
        await peer.write(buildFrame(0x88, new Uint8Array([0x03, 0xe8]), KEY));
        leave(peer, how);
      },
      "instead of answering the server's close": async (how) => {
        const peer = await RawPeer.upgraded(server.port, "/closer");
        await peer.until(() => closeFrameOf(peer.received) !== undefined, 5000);
        leave(peer, how);
      },
    };
    for (const how of ["fin", "rst"] as const) {
      await Promise.all(Object.values(scenarios).map((scenario) => scenario(how)));
    }
    // One more, still half-way through its handshake when the server shuts down.
    const lingering = await RawPeer.open(server.port);
    await lingering.write(request.subarray(0, 40));

    // Wait for the server to get there in its own time (the assertions below say what is left).
    for (
      const deadline = performance.now() + 20000;
      (await server.control("stats")).connections > 0 && performance.now() < deadline;
    ) await sleep(20);
    await eventually(() => tcpSockets(server.pid) <= socketsBefore + 1, "sockets released").catch(() => {});
    const stats = await server.control("gc");
    const socketsAfter = tcpSockets(server.pid);
    console.log(
      `vanishing peers (${RUNTIME}): handlers ended ${
        JSON.stringify(stats.outcomes)
      }; TCP sockets ${socketsBefore} ` +
        `before, ${socketsAfter} after (one handshake still pending)`,
    );
    assert.equal(stats.connections, 0, "every connection was released");
    assert.equal(socketsAfter, socketsBefore + 1, "only the pending handshake holds a socket");
    assert.equal(stats.errors, 0);
    // mid-frame and mid-message, by FIN and RST: 1006. A peer gone right after its request may be
    // gone before the server answers (no handler) or after (1006).
    const outcomes = { ...stats.outcomes };
    assert.ok(outcomes["ConnectionClosed 1006"] >= 4, JSON.stringify(outcomes));
    assert.ok(outcomes["ConnectionClosed 1006"] <= 6, JSON.stringify(outcomes));
    assert.equal(outcomes["1000"], 2, "a close frame that arrived ends its handler normally");
    assert.equal(outcomes["1006"], 2, "a close() the peer never answered ends as 1006");

    // Shut down: the pending handshake is dropped, and nothing else (no timer, no socket) keeps the
    // process alive.
    const start = performance.now();
    await server.control("close 2000").catch(() => undefined);
    const code = await Promise.race([server.exited, sleep(20000).then(() => "still running")]);
    const ms = performance.now() - start;
    console.log(
      `vanishing peers (${RUNTIME}): after close() the server exited by itself in ${Math.round(ms)} ms`,
    );
    assert.equal(code, 0, "the server exited by itself");
    assert.ok(await lingering.endedWithin(10000), "the pending handshake was dropped");
    lingering.destroy();
  } finally {
    await server.stop();
  }
});

test(`A handler that stops consuming stops reading (${RUNTIME}): the peer's bytes wait on its side, and none is lost`, async () => {
  const app = new Sock({ receiveQueueSize: 4, maxMessageSize: MB });
  let consume!: () => void;
  const consuming = new Promise<void>((resolve) => consume = resolve);
  const received: number[] = [];
  app.route("/", async (ws) => {
    await consuming;
    await ws.forEach((message) => {
      received.push((message as Uint8Array)[0] | ((message as Uint8Array)[1] << 8));
    });
  });
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  const ws = await connect(`ws://127.0.0.1:${port}/`, { maxBufferedAmount: Infinity });
  try {
    const count = 2000, size = 16 * 1024; // 32 MB: more than loopback buffers hold
    for (let i = 0; i < count; i++) {
      const message = new Uint8Array(size);
      message[0] = i & 0xff;
      message[1] = i >> 8;
      ws.send(message);
    }
    // Wait until the sending side stops draining (unchanged over five checks 100 ms apart): then
    // whatever is still waiting is what the server did not read, however slowly this machine runs.
    let waiting = ws.bufferedAmount;
    for (let unchanged = 0, checks = 0; unchanged < 5 && checks < 300; checks++) {
      await sleep(100);
      unchanged = ws.bufferedAmount === waiting ? unchanged + 1 : 0;
      waiting = ws.bufferedAmount;
    }
    console.log(
      `stopped consumer (${RUNTIME}): ${mib(waiting)} still on the sending side once it stopped draining`,
    );
    assert.ok(waiting > 8 * MB, `the server kept reading: only ${mib(waiting)} left unsent`);
    consume();
    await ws.drain();
    await eventually(() => received.length === count, "every message reached the handler", 30000)
      .catch(() => {}); // The assertion below says how many did.
    assert.equal(received.length, count);
    assert.ok(received.every((n, i) => n === i), "in order, none lost");
  } finally {
    await ws.close();
    await app.close();
  }
});
