/**
 * Runs the frame benchmarks on every runtime and prints one comparison table:
 * bench/frames.ts (sock) on Deno and on Bun, bench/ws_receiver.mjs (ws with
 * native bufferutil) on Node. Each round runs the three in a rotated order, so
 * no runtime always goes first or last; each cell is the median over rounds of
 * each run's median, with the spread over rounds ((max - min) / 2 / median).
 *
 * Usage: deno run --allow-run --allow-read --allow-env bench/run.ts [rounds] [--base DIR]
 *
 * `--base DIR` runs DIR's bench/frames.ts too (a checkout of an earlier commit, e.g. a
 * `git worktree`), on both runtimes in the same rounds, and adds "now / base" columns: a change's
 * before and after in one run.
 *
 * Deno and Bun come from tools/dev/node_modules/.bin when installed there (else
 * PATH); Node comes from PATH.
 *
 * @module
 */

import { localBin } from "../tools/bin.ts";

const root = decodeURIComponent(new URL("../", import.meta.url).pathname);

interface Report {
  impl: string;
  runtime: string;
  bufferutil?: boolean;
  digests: Record<string, string>;
  results: Record<string, number>;
}

interface Contender {
  label: string;
  command: string;
  args: string[];
  reports: Report[];
}

const baseAt = Deno.args.indexOf("--base");
const base = baseAt >= 0 ? Deno.args[baseAt + 1] : undefined;
if (baseAt >= 0 && !base) throw new Error("--base needs a directory");
const positional = Deno.args.filter((_, i) => baseAt < 0 || (i !== baseAt && i !== baseAt + 1));
const rounds = Number(positional[0] ?? 5);
if (!Number.isInteger(rounds) || rounds < 1) {
  throw new Error(`rounds must be a positive integer, not ${positional[0]}`);
}

const contenders: Contender[] = [
  {
    label: "sock Deno",
    command: localBin("deno"),
    args: ["run", "bench/frames.ts"],
    reports: [],
  },
  { label: "sock Bun", command: localBin("bun"), args: ["bench/frames.ts"], reports: [] },
  { label: "ws Node", command: "node", args: ["bench/ws_receiver.mjs"], reports: [] },
];
const [deno, bun, node] = contenders;
const bases: Contender[] = base
  ? [
    { label: "base Deno", command: localBin("deno"), args: ["run", `${base}/bench/frames.ts`], reports: [] },
    { label: "base Bun", command: localBin("bun"), args: [`${base}/bench/frames.ts`], reports: [] },
  ]
  : [];
contenders.push(...bases);

async function runOnce(contender: Contender): Promise<Report> {
  const started = performance.now();
  const output = await new Deno.Command(contender.command, {
    args: contender.args,
    cwd: root,
    env: { NO_COLOR: "1", FORCE_COLOR: "0" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  const stderr = new TextDecoder().decode(output.stderr);
  const json = stdout.split("\n").find((line) => line.startsWith("BENCH_JSON "));
  if (!output.success || !json) {
    console.error(stdout + stderr);
    throw new Error(`${contender.label} (${contender.command} ${contender.args.join(" ")}) failed`);
  }
  const report: Report = JSON.parse(json.slice("BENCH_JSON ".length));
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  console.log(`  ${contender.label.padEnd(10)} ${report.impl} on ${report.runtime}, ${seconds} s`);
  return report;
}

const started = performance.now();
for (let round = 0; round < rounds; round++) {
  console.log(`round ${round + 1}/${rounds}`);
  for (let i = 0; i < contenders.length; i++) {
    const contender = contenders[(i + round) % contenders.length];
    contender.reports.push(await runOnce(contender));
  }
}

// The three must have decoded the very same bytes.
const reference = JSON.stringify(deno.reports[0].digests);
for (const contender of contenders) {
  for (const report of contender.reports) {
    if (JSON.stringify(report.digests) !== reference) {
      throw new Error(`${contender.label} decoded different streams: ${JSON.stringify(report.digests)}`);
    }
  }
}
if (!node.reports.every((r) => r.bufferutil)) console.log("WARNING: ws ran without native bufferutil");

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

interface Cell {
  value: number;
  spread: number;
}

function cell(contender: Contender, key: string | undefined): Cell | undefined {
  if (!key) return undefined;
  const values = contender.reports.map((r) => r.results[key]).filter((v) => typeof v === "number");
  if (values.length === 0) return undefined;
  const value = median(values);
  return { value, spread: (Math.max(...values) - Math.min(...values)) / 2 / value };
}

interface Row {
  label: string;
  unit: string;
  sock: string;
  ws?: string;
}

const rows: Row[] = [
  {
    label: "decode 1 MiB binary, 64 KiB chunks",
    unit: "MB/s",
    sock: "decode_bin_64k_mbps",
    ws: "decode_bin_64k_mbps",
  },
  {
    label: "decode 1 MiB binary, whole-frame chunks",
    unit: "MB/s",
    sock: "decode_bin_frame_mbps",
    ws: "decode_bin_frame_mbps",
  },
  {
    label: "  same, chunks transferred (sock unmasks in place, as ws does)",
    unit: "MB/s",
    sock: "decode_bin_frame_transfer_mbps",
    ws: "decode_bin_frame_mbps",
  },
  {
    label: "decode 32 B text, 64 KiB chunks",
    unit: "msg/s",
    sock: "decode_text32_msgs",
    ws: "decode_text32_msgs",
  },
  {
    label: "  same, ws handler also calls toString()",
    unit: "msg/s",
    sock: "decode_text32_msgs",
    ws: "decode_text32_string_msgs",
  },
  { label: "encode 32 B text (server)", unit: "msg/s", sock: "encode_text32_msgs" },
  { label: "encode 1 MiB binary (server, by reference)", unit: "MB/s", sock: "encode_bin_mbps" },
  {
    label: "mask 1 MiB into another buffer (ws: bufferutil)",
    unit: "MB/s",
    sock: "mask_copy_mbps",
    ws: "mask_copy_mbps",
  },
  {
    label: "mask 1 MiB in place (ws: bufferutil)",
    unit: "MB/s",
    sock: "mask_inplace_mbps",
    ws: "mask_inplace_mbps",
  },
];

const number = (v: number) => Math.round(v).toLocaleString("en-US");
const show = (c: Cell | undefined) => c ? `${number(c.value)} ±${Math.round(c.spread * 100)}%` : "—";
const ratio = (a: Cell | undefined, b: Cell | undefined) =>
  a && b ? `${(a.value / b.value).toFixed(2)}×` : "—";

const header = [
  "workload",
  "unit",
  `sock ${deno.reports[0].runtime}`,
  `sock ${bun.reports[0].runtime}`,
  `${node.reports[0].impl} ${node.reports[0].runtime}`,
  "Deno/ws",
  "Bun/ws",
  ...bases.length ? ["base Deno", "base Bun", "Deno now/base", "Bun now/base"] : [],
];
const table = rows.map((row) => {
  const d = cell(deno, row.sock), b = cell(bun, row.sock), w = cell(node, row.ws);
  const cells = [row.label, row.unit, show(d), show(b), show(w), ratio(d, w), ratio(b, w)];
  if (bases.length === 0) return cells;
  const bd = cell(bases[0], row.sock), bb = cell(bases[1], row.sock);
  return [...cells, show(bd), show(bb), ratio(d, bd), ratio(b, bb)];
});
const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => r[i].length)));
const format = (cells: string[]) =>
  "| " + cells.map((c, i) => i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i])).join(" | ") + " |";

console.log(
  `\n${rounds} rounds in ${((performance.now() - started) / 1000).toFixed(0)} s; ` +
    "median over rounds ± half the spread; ratios are sock / ws (above 1 means sock is faster)\n",
);
console.log(format(header));
console.log("|" + widths.map((w, i) => "-" + "-".repeat(w) + (i < 2 ? "-" : ":")).join("|") + "|");
for (const row of table) console.log(format(row));
