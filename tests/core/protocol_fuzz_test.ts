import { test } from "node:test";
import assert from "node:assert/strict";
import {
  type ClientEvent,
  type ClientProtocolOptions,
  ProtocolError,
  type ServerEvent,
  type ServerProtocolOptions,
} from "../../src/core/mod.ts";
import { buildFrame, joinBytes, openClient, openServer, readFrames, Rng, sent, toHex } from "../_helpers.ts";

// Randomized inputs to an open ServerProtocol and ClientProtocol. The only
// acceptable outcomes: events, or `failed` with a ProtocolError carrying 1002,
// 1007 or 1009, then `closed`, with that close frame last in the output.
// receiveData() must never throw. Seeded, so every failure reproduces.

const SEED = 0x5eed50c;
const FAILURE_CODES = [1002, 1007, 1009];

type Side = "server" | "client";
type Event = ServerEvent | ClientEvent;

/** Events in a form that does not depend on how the bytes were cut. */
type Outcome =
  | { type: "text"; data: string }
  | { type: "binary"; data: Uint8Array }
  | { type: "ping" | "pong"; data: Uint8Array }
  | { type: "close"; code: number; reason: string }
  | { type: "failed"; code: number }
  | { type: "closed"; code: number; wasClean: boolean };

const CHARACTERS = [
  "a",
  "Z",
  " ",
  "0",
  "é",
  "ß",
  "€",
  "✓",
  "中",
  "𝄞",
  "\u0000",
  "\ufffd",
  "\u{10ffff}",
  "\ufeff",
];

function randomText(rng: Rng, maxChars: number): string {
  let text = "";
  const n = rng.int(maxChars + 1);
  for (let i = 0; i < n; i++) text += rng.pick(CHARACTERS);
  return text;
}

function randomLength(rng: Rng): number {
  const r = rng.next();
  if (r < 0.7) return rng.int(30);
  if (r < 0.97) return 100 + rng.int(200);
  return 65530 + rng.int(12); // around the 16/64-bit length boundary
}

/** Cuts `bytes` into 1–4 pieces at random byte positions (possibly inside a character). */
function randomPieces(rng: Rng, bytes: Uint8Array): Uint8Array[] {
  const cuts = Array.from({ length: rng.int(4) }, () => rng.int(bytes.length + 1)).sort((a, b) => a - b);
  const bounds = [0, ...cuts, bytes.length];
  return bounds.slice(1).map((end, i) => bytes.subarray(bounds[i], end));
}

interface Stream {
  bytes: Uint8Array;
  /** Where each frame starts in `bytes`. */
  frameStarts: number[];
  /** The events it must produce, without the final `closed`. */
  expected: Outcome[];
  /** Whether it ends with a close frame. */
  closes: boolean;
}

/** A valid stream of frames as the peer of `side` sends them (masked towards a server). */
function validStream(rng: Rng, side: Side): Stream {
  const frames: Uint8Array[] = [];
  const expected: Outcome[] = [];
  const frame = (first: number, payload: Uint8Array) => {
    frames.push(buildFrame(first, payload, side === "server" ? [...rng.bytes(4)] : undefined));
  };
  const control = () => {
    const type = rng.chance(0.5) ? "ping" : "pong";
    const data = rng.bytes(rng.chance(0.9) ? rng.int(20) : 125);
    frame(type === "ping" ? 0x89 : 0x8a, data);
    expected.push({ type, data });
  };
  const items = 1 + rng.int(6);
  for (let i = 0; i < items; i++) {
    const r = rng.next();
    if (r < 0.2) {
      control();
      continue;
    }
    const isText = rng.chance(0.55);
    const payload = isText
      ? new TextEncoder().encode(randomText(rng, randomLength(rng) / 3))
      : rng.bytes(randomLength(rng));
    const pieces = r < 0.55 ? [payload] : randomPieces(rng, payload);
    for (const [j, piece] of pieces.entries()) {
      const opcode = j === 0 ? (isText ? 0x1 : 0x2) : 0x0;
      frame((j === pieces.length - 1 ? 0x80 : 0) | opcode, piece);
      if (j < pieces.length - 1 && rng.chance(0.3)) control();
    }
    expected.push(
      isText
        ? { type: "text", data: new TextDecoder("utf-8", { ignoreBOM: true }).decode(payload) }
        : { type: "binary", data: payload },
    );
  }
  const closes = rng.chance(0.15);
  if (closes) {
    const code = rng.pick([1000, 1001, 1003, 1008, 1011, 3000, 4999]);
    let reason = randomText(rng, 30);
    while (new TextEncoder().encode(reason).length > 123) reason = reason.slice(0, -2);
    const empty = rng.chance(0.2);
    const payload = empty
      ? new Uint8Array(0)
      : joinBytes([new Uint8Array([code >> 8, code & 0xff]), new TextEncoder().encode(reason)]);
    frame(0x88, payload);
    expected.push(empty ? { type: "close", code: 1005, reason: "" } : { type: "close", code, reason });
  }
  const frameStarts: number[] = [];
  let at = 0;
  for (const f of frames) {
    frameStarts.push(at);
    at += f.length;
  }
  return { bytes: joinBytes(frames), frameStarts, expected, closes };
}

/** One random change to a stream: bit flips, truncation, inserted, deleted, replaced or duplicated bytes. */
function mutate(rng: Rng, stream: Stream): Uint8Array {
  const bytes = stream.bytes.slice();
  const n = bytes.length;
  switch (rng.int(7)) {
    case 0: { // flip 1–3 bits anywhere
      const flips = 1 + rng.int(3);
      for (let i = 0; i < flips; i++) bytes[rng.int(n)] ^= 1 << rng.int(8);
      return bytes;
    }
    case 1: { // flip a bit in a frame's first two bytes (FIN, RSV, opcode, MASK, length)
      const start = rng.pick(stream.frameStarts) + rng.int(2);
      bytes[start] ^= 1 << rng.int(8);
      return bytes;
    }
    case 2: // truncate
      return bytes.subarray(0, rng.int(n));
    case 3: { // insert 1–8 random bytes
      const at = rng.int(n + 1);
      return joinBytes([bytes.subarray(0, at), rng.bytes(1 + rng.int(8)), bytes.subarray(at)]);
    }
    case 4: { // delete a range
      const at = rng.int(n), length = 1 + rng.int(8);
      return joinBytes([bytes.subarray(0, at), bytes.subarray(at + length)]);
    }
    case 5: { // overwrite a frame's first byte with any value
      bytes[rng.pick(stream.frameStarts)] = rng.int(256);
      return bytes;
    }
    default: { // duplicate a range
      const at = rng.int(n), length = 1 + rng.int(16);
      return joinBytes([
        bytes.subarray(0, at + length),
        bytes.subarray(at, at + length),
        bytes.subarray(at + length),
      ]);
    }
  }
}

/** Cuts a stream into chunks: byte by byte, small or large pieces, or a few cuts. */
function randomChunks(rng: Rng, bytes: Uint8Array): Uint8Array[] {
  const mode = rng.int(4);
  if (mode === 3) return randomPieces(rng, bytes);
  const chunks: Uint8Array[] = [];
  const max = mode === 0 && bytes.length < 4096 ? 1 : mode === 1 ? 8 : 300;
  for (let at = 0; at < bytes.length;) {
    const size = 1 + rng.int(max);
    chunks.push(bytes.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

type Options = ServerProtocolOptions & Partial<ClientProtocolOptions>;

function randomOptions(rng: Rng): Options {
  const options: Options = {};
  if (rng.chance(0.3)) options.maxMessageSize = rng.pick([16, 200, 70000]);
  if (rng.chance(0.2)) options.maxFrameSize = rng.pick([8, 100]);
  if (rng.chance(0.2)) options.maxFragments = rng.pick([1, 2, 3]);
  if (rng.chance(0.4)) options.streamMessages = true;
  if (rng.chance(0.2)) options.autoPong = false;
  return options;
}

interface Run {
  events: Event[];
  output: Uint8Array;
}

/** Opens a protocol, feeds the chunks then EOF; receiveData() and receiveEof() must not throw. */
async function run(side: Side, options: Options, chunks: readonly Uint8Array[], where: string): Promise<Run> {
  const protocol = side === "server" ? await openServer(options) : await openClient(options);
  for (const [i, chunk] of chunks.entries()) {
    try {
      protocol.receiveData(chunk);
    } catch (error) {
      assert.fail(`${where}: receiveData() threw at chunk ${i}: ${error}`);
    }
  }
  const output = sent(protocol);
  try {
    protocol.receiveEof();
  } catch (error) {
    assert.fail(`${where}: receiveEof() threw: ${error}`);
  }
  assert.equal(sent(protocol).length, 0, `${where}: EOF queued bytes`);
  return { events: protocol.events() as Event[], output };
}

/** Asserts the outcome is one of the acceptable ones; returns it without cut-dependent detail. */
function check(side: Side, options: Options, { events, output }: Run, where: string): Outcome[] {
  const outcome: Outcome[] = [];
  const pings: Uint8Array[] = [];
  let pending: Uint8Array[] | string[] | undefined;
  const maxMessageSize = options.maxMessageSize ?? 16 * 1024 * 1024;
  for (const [i, event] of events.entries()) {
    const at = `${where}, event ${i} (${event.type})`;
    const isLast = i === events.length - 1;
    switch (event.type) {
      case "text":
      case "binary": {
        if (!options.streamMessages) assert.ok(event.final, at);
        pending ??= [];
        (pending as unknown[]).push(event.data);
        if (event.final) {
          const data = event.type === "text"
            ? { type: "text" as const, data: (pending as string[]).join("") }
            : { type: "binary" as const, data: joinBytes(pending as Uint8Array[]) };
          const size = typeof data.data === "string"
            ? new TextEncoder().encode(data.data).length
            : data.data.length;
          assert.ok(size <= maxMessageSize, `${at}: message of ${size} bytes over the limit`);
          outcome.push(data);
          pending = undefined;
        }
        break;
      }
      case "ping":
      case "pong":
        assert.ok(event.data.length <= 125, at);
        if (event.type === "ping") pings.push(event.data);
        outcome.push({ type: event.type, data: event.data });
        break;
      case "close":
        outcome.push({ type: "close", code: event.code, reason: event.reason });
        assert.equal(events[i + 1]?.type, "closed", `${at}: closed follows close`);
        break;
      case "failed":
        assert.ok(event.error instanceof ProtocolError, `${at}: ${event.error}`);
        assert.ok(FAILURE_CODES.includes(event.error.code), `${at}: code ${event.error.code}`);
        assert.equal(events[i + 1]?.type, "closed", `${at}: closed follows failed`);
        outcome.push({ type: "failed", code: event.error.code });
        break;
      case "closed":
        assert.ok(isLast, `${at}: closed is the last event`);
        outcome.push({ type: "closed", code: event.code, wasClean: event.wasClean });
        break;
      default:
        assert.fail(`${at}: unexpected event`);
    }
  }
  const closed = outcome.at(-1);
  assert.ok(closed?.type === "closed", `${where}: the connection ends with closed`);
  const before = outcome.at(-2);
  const frames = readFrames(output);
  for (const frame of frames) assert.equal(frame.masked, side === "client", `${where}: masking of output`);
  const closeFrames = frames.filter((f) => f.first === 0x88);
  if (before?.type === "failed") {
    assert.equal(closed.code, before.code, where);
    assert.equal(closed.wasClean, false, where);
    assert.ok(!outcome.some((e) => e.type === "close"), `${where}: failed is not a peer's close`);
  } else if (before?.type === "close") {
    assert.equal(closed.code, before.code, where);
    assert.equal(closed.wasClean, true, where);
  } else {
    assert.deepEqual(closed, { type: "closed", code: 1006, wasClean: false }, where);
  }
  // Output: the pongs owed, then one close frame carrying the code, or nothing more.
  assert.ok(closeFrames.length <= 1, `${where}: ${closeFrames.length} close frames`);
  const last = frames.at(-1);
  if (before?.type === "failed" || before?.type === "close") {
    assert.ok(
      last && last.first === 0x88,
      `${where}: output ends with a close frame: ${toHex(output.subarray(-16))}`,
    );
    const code = last.payload.length === 0 ? 1005 : (last.payload[0] << 8) | last.payload[1];
    assert.equal(code, before.code, `${where}: close frame code`);
  } else {
    assert.equal(closeFrames.length, 0, where);
  }
  const pongs = frames.filter((f) => f.first === 0x8a).map((f) => f.payload);
  assert.equal(pongs.length + closeFrames.length, frames.length, `${where}: only pongs and a close are sent`);
  assert.deepEqual(pongs, options.autoPong === false ? [] : pings, `${where}: pongs answer pings`);
  return outcome;
}

async function fuzz(side: Side, seed: number, iterations: number): Promise<Record<string, number>> {
  const rng = new Rng(seed);
  const seen: Record<string, number> = {};
  for (let iteration = 0; iteration < iterations; iteration++) {
    const stream = validStream(rng, side);
    const kind = rng.next();
    const options = randomOptions(rng);
    let bytes: Uint8Array;
    if (kind < 0.1) {
      bytes = stream.bytes;
      options.maxMessageSize = options.maxFrameSize = options.maxFragments = undefined;
    } else if (kind < 0.2) bytes = rng.bytes(rng.int(200));
    else bytes = mutate(rng, stream);
    const where = `${side} seed ${seed} iteration ${iteration} options ${JSON.stringify(options)}`;
    const chunks = randomChunks(rng, bytes);
    const cut = check(side, options, await run(side, options, chunks, where), `${where} (cut)`);
    const whole = check(side, options, await run(side, options, [bytes], where), `${where} (whole)`);
    // How the bytes are cut changes nothing but the pieces of streamed messages.
    assert.deepEqual(cut, whole, `${where}: the outcome depends on the cuts`);
    if (kind < 0.1) {
      const end = stream.closes ? [] : [{ type: "closed", code: 1006, wasClean: false }];
      const expected = [...stream.expected, ...end];
      if (stream.closes) {
        const close = stream.expected.at(-1) as { code: number };
        expected.push({ type: "closed", code: close.code, wasClean: true });
      }
      assert.deepEqual(cut, expected, `${where}: a valid stream gives its messages`);
    }
    const end = cut.at(-2);
    const key = end?.type === "failed" ? `failed ${end.code}` : end?.type === "close" ? "close" : "eof";
    seen[key] = (seen[key] ?? 0) + 1;
  }
  return seen;
}

for (const side of ["server", "client"] as const) {
  test(`${side === "server" ? "ServerProtocol" : "ClientProtocol"} survives mutated and random streams: events, or failed with 1002/1007/1009 then closed`, async () => {
    const seen = await fuzz(side, SEED + (side === "server" ? 0 : 1), 2000);
    // The fuzzer reaches every outcome, so it is testing something.
    for (const key of ["eof", "close", "failed 1002", "failed 1007", "failed 1009"]) {
      assert.ok((seen[key] ?? 0) > 0, `no ${key} outcome in ${JSON.stringify(seen)}`);
    }
  });
}

test("Random garbage never makes receiveData() throw, on either side, at any cut", async () => {
  const rng = new Rng(SEED + 2);
  for (let iteration = 0; iteration < 400; iteration++) {
    const side: Side = iteration % 2 ? "client" : "server";
    const bytes = rng.bytes(1 + rng.int(64));
    const where = `${side} garbage seed ${SEED + 2} iteration ${iteration}`;
    const options = randomOptions(rng);
    check(side, options, await run(side, options, randomChunks(rng, bytes), where), where);
  }
});
