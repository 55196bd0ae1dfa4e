/**
 * permessage-deflate engine benchmark: sock's own DEFLATE (src/core/deflate/)
 * against `node:zlib`'s raw deflate on the same runtime, side by side in one
 * run, on a JSON corpus the bench generates (chat-like records: repeated keys,
 * numbers, short strings).
 *
 * Two workloads, for window bits 15 and 10:
 * - stream: the whole corpus (4 MiB) compressed and decompressed in one call;
 * - messages: the corpus as 2 KiB messages, each compressed and decompressed
 *   on its own (no context takeover), as a chatty server does.
 *
 * Prints MB/s of input for compression and of output for decompression,
 * and the compression ratio (input / output). Each cell is the median of 5
 * rounds, sock and zlib alternating within each round.
 *
 * Then the compressor alone on 16 MiB of each of five inputs, one call each
 * at windowBits 15, level 6 (sock's default and zlib's): random text over 4
 * letters (the worst case found: short matches everywhere), random bytes,
 * English-like text, JSON and highly repetitive text. Prints ms per MiB and the
 * ratio, sock beside zlib, each the median of 3 runs, after checking that
 * sock's output inflates back with zlib and with sock's Inflater. Last, one
 * JSON line with every figure.
 *
 * Usage: deno run bench/deflate.ts [seconds-per-cell-per-round]   or   bun bench/deflate.ts
 *
 * @module
 */

import zlib from "node:zlib";
import { Deflater, Inflater } from "../src/core/mod.ts";

const CORPUS_BYTES = 4 << 20;
const MESSAGE_BYTES = 2048;
const ROUNDS = 5;
const seconds = Number((globalThis as { Deno?: { args: string[] } }).Deno?.args[0] ?? 0.4);

/** Chat-like JSON records, deterministic. */
function corpus(size: number): Uint8Array {
  let state = 42;
  const random = () => (state = (state * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const words = [
    "hello",
    "world",
    "ok",
    "ping",
    "the",
    "sock",
    "deflate",
    "message",
    "room",
    "typing",
    "seen",
  ];
  let text = "";
  for (let id = 0; text.length < size; id++) {
    const says = Array.from(
      { length: 1 + Math.floor(random() * 8) },
      () => words[Math.floor(random() * words.length)],
    );
    text += JSON.stringify({
      type: "message",
      id,
      room: `room-${Math.floor(random() * 20)}`,
      user: { name: `user${Math.floor(random() * 500)}`, online: random() > 0.3 },
      text: says.join(" "),
      at: 1_700_000_000_000 + id * 137,
      score: Math.round(random() * 10000) / 100,
    }) + "\n";
  }
  return new TextEncoder().encode(text.slice(0, size));
}

/** Runs `work` (which handles `bytes` bytes) repeatedly for about `seconds`; returns MB/s. */
function rate(bytes: number, work: () => void): number {
  work(); // Warm up.
  let runs = 0;
  const start = performance.now();
  let elapsed = 0;
  do {
    work();
    runs++;
    elapsed = performance.now() - start;
  } while (elapsed < seconds * 1000);
  return (bytes * runs) / 1e6 / (elapsed / 1000);
}

/** The median of each figure over rounds. */
function median(cells: Cell[]): Cell {
  const mid = (values: number[]) => values.sort((a, b) => a - b)[values.length >> 1];
  return {
    compressMBps: mid(cells.map((c) => c.compressMBps)),
    decompressMBps: mid(cells.map((c) => c.decompressMBps)),
    ratio: mid(cells.map((c) => c.ratio)),
  };
}

const data = corpus(CORPUS_BYTES);
const messages: Uint8Array[] = [];
for (let at = 0; at < data.length; at += MESSAGE_BYTES) messages.push(data.subarray(at, at + MESSAGE_BYTES));

interface Cell {
  compressMBps: number;
  decompressMBps: number;
  ratio: number;
}

function sockStream(windowBits: number): Cell {
  const compress = () => new Deflater({ windowBits }).write(data, true);
  const compressed = compress();
  const check = new Inflater(windowBits).write(compressed);
  if (check.length !== data.length) throw new Error("sock round trip failed");
  return {
    compressMBps: rate(data.length, compress),
    decompressMBps: rate(data.length, () => new Inflater(windowBits).write(compressed)),
    ratio: data.length / compressed.length,
  };
}

function zlibStream(windowBits: number): Cell {
  const options = { windowBits, level: 6, memLevel: 8 };
  const compress = () => zlib.deflateRawSync(data, options);
  const compressed = compress();
  return {
    compressMBps: rate(data.length, compress),
    decompressMBps: rate(data.length, () => zlib.inflateRawSync(compressed, { windowBits })),
    ratio: data.length / compressed.length,
  };
}

function sockMessages(windowBits: number): Cell {
  const deflater = new Deflater({ windowBits });
  const inflater = new Inflater(windowBits);
  const compressAll = () =>
    messages.map((message) => {
      const out = deflater.write(message, true);
      deflater.reset();
      return out;
    });
  const compressed = compressAll();
  const size = compressed.reduce((n, c) => n + c.length - 4, 0); // Less the 4 bytes permessage-deflate strips.
  return {
    compressMBps: rate(data.length, compressAll),
    decompressMBps: rate(data.length, () => {
      for (const message of compressed) {
        inflater.write(message);
        inflater.reset();
      }
    }),
    ratio: data.length / size,
  };
}

function zlibMessages(windowBits: number): Cell {
  const options = { windowBits, level: 6, memLevel: 8, finishFlush: zlib.constants.Z_SYNC_FLUSH };
  const compressAll = () =>
    messages.map((message) =>
      zlib.deflateRawSync(message, { ...options, flush: zlib.constants.Z_SYNC_FLUSH })
    );
  const compressed = compressAll();
  const size = compressed.reduce((n, c) => n + c.length - 4, 0);
  return {
    compressMBps: rate(data.length, compressAll),
    decompressMBps: rate(data.length, () => {
      for (const message of compressed) zlib.inflateRawSync(message, options);
    }),
    ratio: data.length / size,
  };
}

const runtime = "Bun" in globalThis
  ? `Bun ${(globalThis as unknown as { Bun: { version: string } }).Bun.version}`
  : `Deno ${Deno.version.deno}`;
console.log(
  `permessage-deflate engine on ${runtime}: ${
    CORPUS_BYTES >> 20
  } MiB JSON corpus, medians of ${ROUNDS} rounds of ${seconds} s per cell`,
);
console.log(
  `${"workload".padEnd(22)} ${"impl".padEnd(6)} ${"compress MB/s".padStart(14)} ${
    "inflate MB/s".padStart(13)
  } ${"ratio".padStart(7)}`,
);
const results: Record<string, Cell> = {};
for (const windowBits of [15, 10]) {
  for (
    const [workload, sock, reference] of [
      ["stream", sockStream, zlibStream],
      [`${MESSAGE_BYTES} B messages`, sockMessages, zlibMessages],
    ] as const
  ) {
    const label = `${workload}, ${windowBits} bits`;
    const rounds: Record<"sock" | "zlib", Cell[]> = { sock: [], zlib: [] };
    for (let round = 0; round < ROUNDS; round++) {
      // Alternating which goes first, so neither always runs on a warmer or more fragmented heap.
      if (round % 2 === 0) rounds.sock.push(sock(windowBits));
      rounds.zlib.push(reference(windowBits));
      if (round % 2 === 1) rounds.sock.push(sock(windowBits));
    }
    const cells = { sock: median(rounds.sock), zlib: median(rounds.zlib) };
    for (const [impl, cell] of Object.entries(cells)) {
      results[`${label}, ${impl}`] = cell;
      console.log(
        `${label.padEnd(22)} ${impl.padEnd(6)} ${cell.compressMBps.toFixed(1).padStart(14)} ${
          cell.decompressMBps.toFixed(1).padStart(13)
        } ${cell.ratio.toFixed(2).padStart(7)}`,
      );
    }
    const { sock: s, zlib: z } = cells;
    console.log(
      `${"".padEnd(22)} ${"sock/zlib".padEnd(6)} ${
        (s.compressMBps / z.compressMBps).toFixed(2).padStart(13)
      }× ${(s.decompressMBps / z.decompressMBps).toFixed(2).padStart(12)}× ${
        ((s.ratio / z.ratio) * 100).toFixed(1).padStart(6)
      }%`,
    );
  }
}

const INPUT_BYTES = 16 << 20;
const INPUT_RUNS = 3;

/** Deterministic inputs for the compressor, each `size` bytes. */
function inputs(size: number): [string, Uint8Array][] {
  let state = 7;
  const random = () => (state = (Math.imul(state, 1103515245) + 12345) & 0x7fffffff) / 0x80000000;
  const fill = (pick: () => number) => {
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size; i++) bytes[i] = pick();
    return bytes;
  };
  const letters = new TextEncoder().encode("acgt");
  const fourLetters = fill(() => letters[(random() * 4) | 0]);
  const randomBytes = fill(() => (random() * 256) | 0);
  // Words drawn with a skewed frequency, as in prose, with a sentence end now and then.
  const words = ("the of and to a in is it you that he was for on are with as I his they be at one have " +
    "this from or had by hot word but what some we can out other were all there when up use your how said " +
    "an each she which do their time if will way about many then them write would like so these her long " +
    "make thing see him two has look more day could go come did number sound no most people my over know " +
    "water than call first who may down side been now find").split(" ");
  const prose: string[] = [];
  for (let length = 0; length < size;) {
    const word = words[Math.floor(words.length * random() ** 2.5)] + (random() < 0.08 ? ". " : " ");
    prose.push(word);
    length += word.length;
  }
  const sentence = new TextEncoder().encode("All work and no play makes Jack a dull boy. ");
  return [
    ["random text, 4 letters", fourLetters],
    ["random bytes", randomBytes],
    ["English-like text", new TextEncoder().encode(prose.join("").slice(0, size))],
    ["JSON", corpus(size)],
    ["repetitive text", fill(() => 0).map((_, i) => sentence[i % sentence.length])],
  ];
}

/** Median milliseconds of `work` over {@linkcode INPUT_RUNS} runs, and its last result. */
function timed<T>(work: () => T): { ms: number; result: T } {
  let result = work(); // Warm up.
  const times: number[] = [];
  for (let run = 0; run < INPUT_RUNS; run++) {
    const start = performance.now();
    result = work();
    times.push(performance.now() - start);
  }
  return { ms: times.sort((a, b) => a - b)[INPUT_RUNS >> 1], result };
}

const mib = INPUT_BYTES / (1 << 20);
console.log(
  `\ncompressor alone, ${mib} MiB per input, windowBits 15, level 6, medians of ${INPUT_RUNS} runs`,
);
console.log(
  `${"input".padEnd(24)} ${"sock ms/MiB".padStart(12)} ${"zlib ms/MiB".padStart(12)} ${
    "sock/zlib".padStart(10)
  } ${"sock ratio".padStart(11)} ${"zlib ratio".padStart(11)}`,
);
const inputResults: Record<
  string,
  { sockMsPerMiB: number; zlibMsPerMiB: number; sockRatio: number; zlibRatio: number }
> = {};
for (const [name, input] of inputs(INPUT_BYTES)) {
  const sock = timed(() => new Deflater().write(input, true));
  const reference = timed(() => zlib.deflateRawSync(input, { windowBits: 15, level: 6, memLevel: 8 }));
  const viaZlib = zlib.inflateRawSync(sock.result, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  const viaSock = new Inflater(15).write(sock.result);
  if (Buffer.compare(viaZlib, input) !== 0 || Buffer.compare(Buffer.from(viaSock), input) !== 0) {
    throw new Error(`${name}: sock's output does not inflate back`);
  }
  const cell = {
    sockMsPerMiB: sock.ms / mib,
    zlibMsPerMiB: reference.ms / mib,
    sockRatio: input.length / sock.result.length,
    zlibRatio: input.length / reference.result.length,
  };
  inputResults[name] = cell;
  console.log(
    `${name.padEnd(24)} ${cell.sockMsPerMiB.toFixed(1).padStart(12)} ${
      cell.zlibMsPerMiB.toFixed(1).padStart(12)
    } ${(cell.sockMsPerMiB / cell.zlibMsPerMiB).toFixed(2).padStart(9)}× ${
      cell.sockRatio.toFixed(3).padStart(11)
    } ${cell.zlibRatio.toFixed(3).padStart(11)}`,
  );
}
console.log(`BENCH_JSON ${JSON.stringify({ runtime, results, inputs: inputResults })}`);
