/**
 * The server the fairness attacks (bench/attacks.ts, tests/hardening/fairness_test.ts)
 * run against, on Deno or Bun. It imports `Sock` from the tree at `--root`
 * (default: this one): `src/server/sock.ts`, or `src/server.ts` in a tree from
 * before 0.2.0, so the same fixture measures an older checkout; it uses only
 * APIs every version has (`new Sock({...})`,
 * `app.route`, `ws.forEach`, `for await`, `ws.send`, `ws.subscribe`,
 * `app.publish`).
 *
 *   deno run -A bench/servers/attack_target.ts [--root DIR] [--options JSON]
 *   bun bench/servers/attack_target.ts [--root DIR] [--options JSON]
 *
 * `--options` is JSON for `new Sock(...)`. Prints `listening on ws://HOST:PORT`,
 * then every 250 ms `stall AT MS`: the largest delay of a 10 ms interval timer
 * past its due time during the 250 ms that ended at AT (epoch ms), i.e. how long
 * the event loop was held. Routes:
 * - `/echo`: echoes every message (`forEach`, as examples/echo_server.ts).
 * - `/slow`: takes 1 s per message (`for await`), answers nothing.
 * - `/drain`: consumes every message at once, answers nothing.
 * - `/room`: joins the topic `room`, reads and ignores what it is sent.
 * - `/publish`: publishes every binary message to `room`; a text message is
 *   answered `synced` once everything before it was published.
 *
 * @module
 */

import { existsSync } from "node:fs";

type ServerModule = typeof import("../../src/server/sock.ts");

const args: string[] = "Deno" in globalThis
  ? Deno.args
  : (globalThis as unknown as { process: { argv: string[] } }).process.argv.slice(2);
const option = (name: string, fallback: string) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 && at + 1 < args.length ? args[at + 1] : fallback;
};

const root = new URL(
  option("root", decodeURIComponent(new URL("../../", import.meta.url).pathname)) + "/",
  "file:///",
);
const serverModule = ["src/server/sock.ts", "src/server.ts"].map((path) => new URL(path, root))
  .find((url) => existsSync(url)) ?? new URL("src/server/sock.ts", root);
const { Sock }: ServerModule = await import(serverModule.href);

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let last = performance.now(), stall = 0;
setInterval(() => {
  const t = performance.now();
  stall = Math.max(stall, t - last - 10);
  last = t;
}, 10);
setInterval(() => {
  console.log(`stall ${now().toFixed(1)} ${Math.max(0, stall).toFixed(1)}`);
  stall = 0;
}, 250);

const app = new Sock({
  ...JSON.parse(option("options", "{}")),
  onError: () => {},
});
app.route("/echo", (ws) => ws.forEach((message) => ws.send(message)));
app.route("/slow", async (ws) => {
  for await (const _ of ws) await sleep(1000);
});
app.route("/drain", (ws) => ws.forEach(() => {}));
app.route("/room", (ws) => {
  ws.subscribe("room");
  return ws.forEach(() => {});
});
app.route("/publish", (ws) =>
  ws.forEach((message) => {
    if (typeof message === "string") return ws.send("synced");
    app.publish("room", message);
  }));

const { hostname, port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
console.log(`listening on ws://${hostname}:${port}`);
