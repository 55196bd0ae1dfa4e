// Hostile frames against a real Sock in a child process (so its memory and sockets can be measured):
// random bytes and mutated valid streams over real connections, cut at random TCP split points, while
// other connections keep echoing; then the limits, one attack at a time. The expected outcome of
// every stream is what the sans-IO core decides for the same bytes (tests/core/protocol_fuzz_test.ts checks the core
// itself): its close code, or, for a stream that is valid so far, a TCP close without a close frame
// once the attacker goes away (1006, RFC 6455 §7.1.5).

import { test } from "node:test";
import assert from "node:assert/strict";
import { connect } from "../../src/client.ts";
import { Deflater } from "../../src/core/deflate/deflate.ts";
import {
  buildFrame,
  eventually,
  frameHeader,
  joinBytes,
  openServer,
  randomPieces,
  Rng,
} from "../_helpers.ts";
import {
  closeCode,
  closeFrameOf,
  delivered,
  fromEnv,
  mib,
  RawPeer,
  rss,
  RUNTIME,
  serverFrames,
  sleep,
  startServer,
  tcpSockets,
} from "../_hardening.ts";

const MB = 1024 * 1024;
const OPTIONS = { maxMessageSize: 1 << 20, pingInterval: 0, closeTimeout: 1000 };
/**
 * How many hostile streams are sent: a fixed count, so what is checked does not depend on how fast
 * the machine is (about a second's worth on an idle 2-core machine). `SOCK_FUZZ_ATTACKS`, or
 * `SOCK_FUZZ_MS` (keep attacking for that long, at least), makes this a soak.
 */
const FUZZ_ATTACKS = fromEnv("SOCK_FUZZ_ATTACKS", 400);
const FUZZ_MS = fromEnv("SOCK_FUZZ_MS", 0);
/** Only so that a stuck run fails with a count rather than the runner's timeout: far above the need. */
const FUZZ_CAP_MS = Math.max(FUZZ_MS * 2, 40_000);
const ATTACKERS = 8;
const ECHOERS = 4;

// ---- Streams ----

const text = new TextEncoder();

/** One masked frame. */
function frame(rng: Rng, first: number, payload: Uint8Array | string): Uint8Array {
  return buildFrame(first, payload, rng.key());
}

function randomText(rng: Rng, n: number): string {
  const alphabet = ["a", "b", " ", "é", "✓", "🌍", "\n"];
  let out = "";
  for (let i = 0; i < n; i++) out += rng.pick(alphabet);
  return out;
}

/** A valid client stream: messages (some fragmented, with control frames between the pieces), pings, pongs, maybe a close. */
function validStream(rng: Rng): Uint8Array {
  const frames: Uint8Array[] = [];
  for (let m = 1 + rng.int(6); m > 0; m--) {
    const kind = rng.int(10);
    if (kind < 2) {
      frames.push(frame(rng, rng.chance(0.5) ? 0x89 : 0x8a, rng.bytes(rng.int(126))));
      continue;
    }
    const isText = kind < 6;
    const payload = isText ? text.encode(randomText(rng, rng.int(400))) : rng.bytes(rng.int(3000));
    const pieces = 1 + rng.int(4);
    for (let p = 0, at = 0; p < pieces; p++) {
      const end = p === pieces - 1
        ? payload.length
        : Math.min(payload.length, at + rng.int(payload.length + 1));
      const opcode = p === 0 ? (isText ? 1 : 2) : 0;
      frames.push(frame(rng, (p === pieces - 1 ? 0x80 : 0) | opcode, payload.subarray(at, end)));
      if (p < pieces - 1 && rng.chance(0.3)) frames.push(frame(rng, 0x89, "between pieces"));
      at = end;
    }
  }
  if (rng.chance(0.3)) {
    const code = rng.pick([1000, 1001, 3000, 4999]);
    frames.push(
      frame(rng, 0x88, joinBytes([new Uint8Array([code >> 8, code & 0xff]), text.encode("bye ✓")])),
    );
  }
  return joinBytes(frames);
}

/** A header claiming `length` bytes, masked, then `sent` payload bytes. */
function claim(rng: Rng, first: number, length: number, sent = 0): Uint8Array {
  return joinBytes([frameHeader(first, length, rng.key()), rng.bytes(sent)]);
}

/** The attacks: each makes one stream. */
const ATTACKS: Record<string, (rng: Rng) => Uint8Array> = {
  "random bytes": (rng) => rng.bytes(1 + rng.int(2000)),
  "bit flips": (rng) => {
    const stream = validStream(rng).slice();
    for (let n = 1 + rng.int(4); n > 0; n--) stream[rng.int(stream.length)] ^= 1 << rng.int(8);
    return stream;
  },
  "truncated": (rng) => {
    const stream = validStream(rng);
    return stream.subarray(0, rng.int(stream.length));
  },
  "valid": validStream,
  "huge length": (rng) =>
    claim(
      rng,
      rng.pick([0x82, 0x81, 0x02]),
      rng.pick([2 ** 62, 2 ** 63, 2 ** 53, (1 << 20) + 1, 2 ** 32]),
      64,
    ),
  "bogus opcode": (rng) =>
    frame(rng, 0x80 | rng.pick([3, 4, 5, 6, 7, 11, 12, 13, 14, 15]), rng.bytes(rng.int(20))),
  "RSV bits": (rng) => frame(rng, 0x81 | (rng.pick([1, 2, 4]) << 4), "rsv"),
  "unmasked": (rng) => joinBytes([validStream(rng), buildFrame(0x82, rng.bytes(rng.int(200)))]),
  "fragments without end": (rng) => {
    const frames = [frame(rng, 0x01, "start")];
    for (let n = rng.int(50); n > 0; n--) frames.push(frame(rng, 0x00, rng.bytes(rng.int(100))));
    return joinBytes(frames);
  },
  "many empty fragments": (rng) => {
    const frames = [frame(rng, 0x02, new Uint8Array(0))];
    for (let n = 3000 + rng.int(2000); n > 0; n--) frames.push(frame(rng, 0x00, new Uint8Array(0)));
    if (rng.chance(0.5)) frames.push(frame(rng, 0x80, new Uint8Array(0)));
    return joinBytes(frames);
  },
  "oversized control": (rng) => frame(rng, rng.pick([0x89, 0x8a, 0x88]), rng.bytes(126 + rng.int(1000))),
  "fragmented control": (rng) => frame(rng, rng.pick([0x09, 0x0a, 0x08]), "ctl"),
  "invalid UTF-8": (rng) =>
    joinBytes([
      frame(rng, 0x01, "ok"),
      frame(rng, 0x80, new Uint8Array([0xe2, 0x82, rng.pick([0x28, 0xc0])])),
    ]),
  "bad close": (rng) =>
    frame(
      rng,
      0x88,
      rng.pick([
        new Uint8Array([0x03]),
        new Uint8Array([0x03, 0xed]), // 1005
        new Uint8Array([0x03, 0xe7]), // 999
        new Uint8Array([0x13, 0x88]), // 5000
        new Uint8Array([0x03, 0xe8, 0xff]), // invalid UTF-8 reason
      ]),
    ),
  "continuation first": (rng) => frame(rng, 0x80, "orphan"),
  "spliced": (rng) => {
    const a = validStream(rng), b = validStream(rng);
    return joinBytes([a.subarray(0, rng.int(a.length + 1)), b.subarray(rng.int(b.length + 1))]);
  },
};

/**
 * What the core decides for `stream` on an open server: the close code it ends with, if it ends,
 * and whether that was the peer's own close frame with more bytes after it.
 */
async function expectedClose(stream: Uint8Array, options: object) {
  const core = await openServer(options);
  core.receiveData(stream);
  for (const event of core.events()) {
    if (event.type === "failed") return { code: event.error.code, trailing: false };
    if (event.type !== "close") continue;
    // Where did the close frame end? Feed the bytes again one at a time to find out.
    const again = await openServer(options);
    let at = 0;
    while (at < stream.length && !again.events().some((e) => e.type === "close")) {
      again.receiveData(stream.subarray(at, ++at));
    }
    return { code: event.code, trailing: at < stream.length };
  }
  return { code: undefined, trailing: false };
}

/**
 * Sends `stream` in random pieces over a fresh connection and checks the server ends it as the core
 * decided. Returns the outcome's label.
 */
async function attack(port: number, stream: Uint8Array, rng: Rng, label: string): Promise<string> {
  const { code: expected, trailing } = await expectedClose(stream, OPTIONS);
  const peer = await RawPeer.upgraded(port, "/echo");
  try {
    for (const piece of randomPieces(rng, stream, 1 + rng.int(1500))) {
      if (!await peer.write(piece)) break;
      if (rng.chance(0.1)) await sleep(0);
    }
    // A stream that is valid so far leaves the server waiting for more: the attacker leaves (FIN)
    // and the server must let go. After a close frame the attacker leaves too, and the server,
    // which has been discarding what it still received, closes the connection.
    // (A close frame that comes later is still seen: everything up to the server's FIN is checked.)
    await peer.until(() => closeFrameOf(peer.received) !== undefined, expected === undefined ? 5 : 5000);
    peer.end();
    const ending = await peer.endedWithin(20000);
    const close = closeFrameOf(peer.received);
    const where = `${label} (${stream.length} bytes)`;
    assert.ok(ending, `${where}: the server ended the connection`);
    assert.ok(!serverFrames(peer.received).partial, `${where}: whole frames only`);
    if (expected === undefined) {
      assert.equal(close, undefined, `${where}: no close frame after the attacker left`);
      return "TCP close (1006)";
    }
    if (!close && trailing) {
      // The peer broke RFC 6455 §5.5.1 by sending more after its close frame. The server closes at
      // once after the close handshake, and the reset those unread bytes cause may cost the peer
      // the echo of its close frame: the TCP close alone ends it.
      return "TCP close after the peer's close";
    }
    assert.ok(close, `${where}: a close frame before the TCP close, expected ${expected}`);
    assert.equal(closeCode(close.payload), expected, where);
    return `close ${expected}`;
  } finally {
    peer.destroy();
  }
}

/** A sock client echoing random messages until `stop.done`; returns how many and the slowest round trip. */
async function echoLoop(url: string, rng: Rng, stop: { done: boolean }) {
  const ws = await connect(`${url}/echo`, { pingInterval: 0 });
  let count = 0, slowest = 0;
  do { // At least one round trip, however soon the attacks are over.
    const message = rng.chance(0.5) ? randomText(rng, rng.int(2000)) : rng.bytes(rng.int(8000));
    const start = performance.now();
    await ws.send(message);
    assert.deepEqual(await ws.receive({ timeout: 20000 }), message, "an echo came back intact");
    slowest = Math.max(slowest, performance.now() - start);
    count++;
  } while (!stop.done);
  return { ws, count, slowest };
}

test(`Fuzz over real sockets (${RUNTIME}): every hostile stream ends as the core decides, others keep echoing, memory returns`, async () => {
  const server = await startServer(OPTIONS);
  try {
    const rng = new Rng(0x50c4e7);
    const names = Object.keys(ATTACKS);
    // Warm up (JIT, buffers, pools) so the baseline is not the cold start.
    for (const name of names) await attack(server.port, ATTACKS[name](rng), rng, name);
    const before = await server.control("gc");
    assert.equal(before.connections, 0);
    const rssBefore = rss(server.pid), socketsBefore = tcpSockets(server.pid);

    const stop = { done: false };
    const echoers = Array.from({ length: ECHOERS }, (_, i) => echoLoop(server.url, new Rng(i + 1), stop));
    const outcomes: Record<string, number> = {};
    const byAttack: Record<string, number> = {};
    let bytes = 0, peak = rssBefore;
    const start = performance.now();
    const soakUntil = start + FUZZ_MS, cap = start + FUZZ_CAP_MS;
    const workers = Array.from({ length: ATTACKERS }, async (_, w) => {
      const local = new Rng(0xf00d + w);
      // Each worker its share of the count (the same streams on every run), or more in a soak.
      const share = Math.ceil(FUZZ_ATTACKS / ATTACKERS);
      for (let n = 0; (n < share || performance.now() < soakUntil) && performance.now() < cap; n++) {
        const name = local.pick(names);
        const stream = ATTACKS[name](local);
        bytes += stream.length;
        const outcome = await attack(server.port, stream, local, name);
        outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
        byAttack[name] = (byAttack[name] ?? 0) + 1;
        peak = Math.max(peak, rss(server.pid));
      }
    });
    await Promise.all(workers);
    const fuzzMs = performance.now() - start;
    stop.done = true;
    const echoes = await Promise.all(echoers);
    const during = await server.control("stats");
    assert.equal(during.connections, ECHOERS, "only the echoing connections are left");
    for (const { ws } of echoes) assert.equal((await ws.close(1000)).code, 1000);
    // Sockets the server just closed may take a moment to leave its table (the assertion below
    // says what is left).
    await eventually(() => tcpSockets(server.pid) <= socketsBefore, "sockets released").catch(() => {});
    const after = await server.control("gc");
    const rssAfter = rss(server.pid), socketsAfter = tcpSockets(server.pid);

    const total = Object.values(outcomes).reduce((a, b) => a + b, 0);
    console.log(
      `fuzz (${RUNTIME}): ${total} hostile connections, ${mib(bytes)} in ${Math.round(fuzzMs)} ms; outcomes ${
        JSON.stringify(outcomes)
      }`,
    );
    console.log(`fuzz (${RUNTIME}): per attack ${JSON.stringify(byAttack)}`);
    console.log(
      `fuzz (${RUNTIME}): ${ECHOERS} echo connections meanwhile: ${
        echoes.map((e) => e.count).join("+")
      } round trips, slowest ${Math.round(Math.max(...echoes.map((e) => e.slowest)))} ms`,
    );
    console.log(
      `fuzz (${RUNTIME}): server JS heap ${mib(before.heap)} before, ${mib(after.heap)} after; RSS ${
        mib(rssBefore)
      } before, peak ${mib(peak)}, ${
        mib(rssAfter)
      } after; TCP sockets ${socketsBefore} before, ${socketsAfter} after`,
    );
    assert.ok(
      total >= Math.ceil(FUZZ_ATTACKS / ATTACKERS) * ATTACKERS,
      `only ${total} hostile connections ran within ${FUZZ_CAP_MS} ms`,
    );
    assert.ok(echoes.every((e) => e.count > 0), "every echo connection kept working");
    assert.equal(after.connections, 0, "every connection was released");
    assert.equal(after.errors, 0, "no handler error");
    assert.ok(
      socketsAfter <= socketsBefore,
      `no socket leaked: ${socketsBefore} before, ${socketsAfter} after`,
    );
    // The heap returns to its baseline; RSS stays bounded but need not shrink (V8 keeps the heap
    // it grew to, the allocator the pages it was given).
    assert.ok(after.heap < before.heap + 8 * MB, `heap ${mib(before.heap)} → ${mib(after.heap)}`);
    assert.ok(peak < rssBefore + 256 * MB, `RSS ${mib(rssBefore)} → peak ${mib(peak)}`);
  } finally {
    await server.stop();
  }
});

/** Sends `bytes` on a fresh connection, in 64 KiB writes; resolves with the server's close code and timing. */
async function hit(port: number, bytes: Uint8Array, extensions?: string) {
  const extra: [string, string][] = extensions ? [["Sec-WebSocket-Extensions", extensions]] : [];
  const peer = await RawPeer.upgraded(port, "/echo", extra);
  const start = performance.now();
  try {
    const writes = (async () => {
      for (let at = 0; at < bytes.length; at += 65536) {
        if (!await peer.write(bytes.subarray(at, at + 65536))) break;
      }
    })();
    await peer.until(() => closeFrameOf(peer.received) !== undefined, 20000);
    const ms = performance.now() - start;
    await writes;
    peer.end();
    const ending = await peer.endedWithin(20000);
    const close = closeFrameOf(peer.received);
    return { code: close ? closeCode(close.payload) : undefined, ms, ending };
  } finally {
    peer.destroy();
  }
}

/** `count` masked empty frames with the first byte `first`, one buffer. */
function emptyFrames(count: number, first: number): Uint8Array {
  const one = new Uint8Array([first, 0x80, 0x12, 0x34, 0x56, 0x78]);
  const out = new Uint8Array(count * one.length);
  for (let i = 0; i < count; i++) out.set(one, i * one.length);
  return out;
}

test(`Limits hold under attack (${RUNTIME}): message, frame and fragment limits, 2^62-byte claims, inflation bombs`, async () => {
  const strict = await startServer({ ...OPTIONS, maxFrameSize: 256 << 10, deflate: true });
  // Limits high enough not to stop anything here: what do huge claims and endless fragments cost then?
  const loose = await startServer({ pingInterval: 0, maxMessageSize: 2 ** 63, maxFragments: 1e9 });
  try {
    const rng = new Rng(62);
    const million = joinBytes([emptyFrames(1, 0x02), emptyFrames(1_000_000, 0x00)]);
    const zeros = new Uint8Array(64 << 20);
    const bomb = new Deflater().write(zeros, true);
    const cases: [string, Uint8Array, number, string?][] = [
      ["a frame claiming 2^62 bytes", claim(rng, 0x82, 2 ** 62, 16), 1009],
      ["a frame claiming 2^63 bytes (top bit set)", claim(rng, 0x82, 2 ** 63, 16), 1002],
      ["a frame 1 byte over maxMessageSize, header only", claim(rng, 0x82, (1 << 20) + 1), 1009],
      ["a 300 KiB frame over maxFrameSize (256 KiB)", claim(rng, 0x82, 300 << 10, 1024), 1009],
      [
        "17 fragments of 64 KiB (over 1 MiB)",
        joinBytes([
          frame(rng, 0x02, new Uint8Array(65536)),
          ...Array.from({ length: 16 }, () => frame(rng, 0x00, new Uint8Array(65536))),
        ]),
        1009,
      ],
      ["a million 0-byte fragments (over maxFragments 4096)", million, 1009],
      [
        `a deflate bomb: 64 MiB of zeros in ${(bomb.length / 1024).toFixed(0)} KiB`,
        joinBytes([
          frame(rng, 0xc2, bomb.subarray(0, bomb.length - 4)),
        ]),
        1009,
        "permessage-deflate",
      ],
    ];
    await strict.control("gc");
    for (const [label, bytes, expected, extensions] of cases) {
      const before = await strict.control("gc");
      const rssBefore = rss(strict.pid);
      const result = await hit(strict.port, bytes, extensions);
      const rssPeak = rss(strict.pid);
      const after = await strict.control("gc");
      console.log(
        `limits (${RUNTIME}): ${label} -> close ${result.code} after ${result.ms.toFixed(1)} ms; server RSS ${
          mib(rssBefore)
        } -> ${mib(rssPeak)}, heap ${mib(before.heap)} -> ${mib(after.heap)}`,
      );
      assert.equal(result.code, expected, label);
      assert.ok(result.ending, `${label}: the server closed the connection`);
      // Each attack stops at a limit of at most 1 MiB (maxMessageSize); what it claims or would
      // inflate to is 64 MiB and more. The margin leaves room for garbage a busy machine has not
      // collected yet.
      assert.ok(rssPeak < rssBefore + 32 * MB, `${label}: RSS ${mib(rssBefore)} -> ${mib(rssPeak)}`);
    }

    // Without a size limit, a 2^62-byte claim costs about what really arrives: buffers grow with the data.
    await loose.control("gc");
    const rssBefore = rss(loose.pid);
    const peer = await RawPeer.upgraded(loose.port, "/echo");
    await peer.write(claim(rng, 0x82, 2 ** 62, 4 << 20));
    // Measure once the server has read all 4 MiB, however long that takes here.
    let rssPeak = rss(loose.pid);
    await eventually(() => {
      rssPeak = Math.max(rssPeak, rss(loose.pid));
      return delivered(peer.localPort, loose.port);
    }, "the server read the 4 MiB");
    rssPeak = Math.max(rssPeak, rss(loose.pid));
    peer.end();
    assert.ok(await peer.endedWithin(20000), "the server let go after the attacker left");
    assert.equal(closeFrameOf(peer.received), undefined);
    peer.destroy();
    console.log(
      `limits (${RUNTIME}): no size limit, a 2^62-byte claim with 4 MiB sent -> server RSS ${
        mib(rssBefore)
      } -> ${mib(rssPeak)}`,
    );
    assert.ok(rssPeak < rssBefore + 48 * MB, `RSS ${mib(rssBefore)} -> ${mib(rssPeak)}`);

    // Without a fragment limit, a million empty fragments make one empty message, holding nothing.
    const start = performance.now();
    const many = await RawPeer.upgraded(loose.port, "/echo");
    for (let at = 0; at < million.length; at += 65536) await many.write(million.subarray(at, at + 65536));
    await many.write(emptyFrames(1, 0x80));
    const echoed = await many.until(() => serverFrames(many.received).frames.length > 0, 40000);
    const ms = performance.now() - start;
    const [echo] = serverFrames(many.received).frames;
    many.destroy();
    console.log(
      `limits (${RUNTIME}): no fragment limit, a million 0-byte fragments -> one empty message echoed after ${
        ms.toFixed(0)
      } ms`,
    );
    assert.ok(echoed && echo.opcode === 2 && echo.payload.length === 0, "the empty message came back");
    const stats = await loose.control("gc");
    assert.equal(stats.errors, 0);
  } finally {
    await strict.stop();
    await loose.stop();
  }
});
