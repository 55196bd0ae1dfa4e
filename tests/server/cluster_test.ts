// Several processes on one port (`listen({ reusePort: true })`, Linux SO_REUSEPORT; Deno needs
// --unstable-net), publish() leaving the sender out, subscribers() counting, and
// examples/cluster.ts: connections spread over its workers, and a SIGTERM to the primary closes
// every client with 1001 and leaves no worker behind.

import { test } from "node:test";
import assert from "node:assert/strict";
import process from "node:process";
import { connect } from "../../src/client.ts";
import type { Connection } from "../../src/connection/connection.ts";
import { ListenError } from "../../src/net_errors.ts";
import { Sock } from "../../src/server/sock.ts";
import { type Child, freePort, processAlive, RUNTIME, sleep, spawnScript } from "../_hardening.ts";

const options = { pingInterval: 0, timeout: 10000 };

/** Waits until `check` holds, at most `ms`; returns whether it did. */
async function eventually(check: () => boolean, ms: number): Promise<boolean> {
  const deadline = performance.now() + ms;
  while (!check()) {
    if (performance.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}

function echoApp(name: string): Sock {
  return new Sock().route("/echo", (ws) => ws.forEach((message) => ws.send(`${name}: ${message}`)));
}

test(`two servers in one process share a port with reusePort; without it the second gets EADDRINUSE (${RUNTIME})`, async () => {
  const first = echoApp("first"), second = echoApp("second");
  const clients: Connection[] = [];
  try {
    const { port } = await first.listen({ hostname: "127.0.0.1", port: 0, reusePort: true });
    const address = await second.listen({ hostname: "127.0.0.1", port, reusePort: true });
    assert.equal(address.port, port);
    // Both accept: the kernel hands each new connection to one of them.
    const seen = new Set<string>();
    for (let i = 0; i < 200 && seen.size < 2; i++) {
      const ws = await connect(`ws://127.0.0.1:${port}/echo`, options);
      clients.push(ws);
      await ws.send(`hello ${i}`);
      const answer = String(await ws.receive({ timeout: 10000 }));
      const match = /^(first|second): hello (\d+)$/.exec(answer);
      assert.ok(match && Number(match[2]) === i, `echo ${JSON.stringify(answer)}`);
      seen.add(match[1]);
    }
    assert.deepEqual([...seen].sort(), ["first", "second"], `after ${clients.length} connections`);
  } finally {
    for (const ws of clients) ws.terminate();
    await Promise.all([first.close(1000), second.close(1000)]);
  }

  const taken = new Sock();
  try {
    const { port } = await taken.listen({ hostname: "127.0.0.1", port: 0 });
    const error = await new Sock().listen({ hostname: "127.0.0.1", port }).catch((e) => e);
    assert.ok(error instanceof ListenError, `got ${error}`);
    assert.equal(error.code, "EADDRINUSE");
  } finally {
    await taken.close(1000);
  }
});

test(`publish(..., { except }) skips exactly the sender; subscribers() follows joins, leaves and closes (${RUNTIME})`, async () => {
  const app = new Sock();
  const published: number[] = [];
  app.route("/rooms/:room", async (ws, request) => {
    const room = request.params.room;
    ws.subscribe(room);
    await ws.send("joined");
    for await (const message of ws) {
      if (message === "leave") {
        ws.unsubscribe(room);
        await ws.send("left");
      } else {
        published.push(app.publish(room, message, { except: ws }));
      }
    }
  });
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  const join = async (room: string) => {
    const ws = await connect(`ws://127.0.0.1:${port}/rooms/${room}`, options);
    assert.equal(await ws.receive({ timeout: 10000 }), "joined");
    return ws;
  };
  const clients: Connection[] = [];
  try {
    assert.equal(app.subscribers("lobby"), 0);
    const [a, b, c] = [await join("lobby"), await join("lobby"), await join("lobby")];
    const other = await join("attic");
    clients.push(a, b, c, other);
    assert.equal(app.subscribers("lobby"), 3);
    assert.equal(app.subscribers("attic"), 1);

    await a.send("from a");
    assert.equal(await b.receive({ timeout: 10000 }), "from a");
    assert.equal(await c.receive({ timeout: 10000 }), "from a");
    // Had "from a" come back to a, it would be received before b's message.
    await b.send("from b");
    assert.equal(await a.receive({ timeout: 10000 }), "from b");
    assert.equal(await c.receive({ timeout: 10000 }), "from b");
    assert.deepEqual(published, [2, 2], "each publish counts the two others");

    await c.send("leave");
    assert.equal(await c.receive({ timeout: 10000 }), "left");
    assert.equal(app.subscribers("lobby"), 2);
    await a.send("after c left");
    assert.equal(await b.receive({ timeout: 10000 }), "after c left");
    assert.deepEqual(published, [2, 2, 1]);

    await b.close(1000);
    assert.ok(await eventually(() => app.subscribers("lobby") === 1, 10000), "b's close leaves the room");
    other.terminate();
    assert.ok(await eventually(() => app.subscribers("attic") === 0, 10000), "a dropped connection leaves");
    assert.equal(app.publish("lobby", "to everyone"), 1);
    assert.equal(await a.receive({ timeout: 10000 }), "to everyone");
    // c can still publish to the room it left, and nothing from the room reached it since.
    await c.send("from c");
    assert.equal(await a.receive({ timeout: 10000 }), "from c");
    assert.equal(await c.receive({ timeout: 300 }).catch(() => "nothing"), "nothing");
  } finally {
    for (const ws of clients) ws.terminate();
    await app.close(1000);
  }
});

/** examples/cluster.ts with two workers on `port`, once its primary says they all listen. */
async function startCluster(port: number): Promise<{ primary: Child; workers: number[] }> {
  const primary = spawnScript("../examples/cluster.ts", ["--workers", "2", "--port", String(port)]);
  try {
    await primary.line(new RegExp(`^listening on ws://127\\.0\\.0\\.1:${port} with 2 workers$`), 30000);
  } catch (error) {
    primary.kill();
    throw error;
  }
  const workers = [...primary.output().matchAll(/^worker (\d+) listening on /gm)].map((m) => Number(m[1]));
  return { primary, workers };
}

test(`examples/cluster.ts: connections spread over two workers; SIGTERM closes every client with 1001 and stops them all (${RUNTIME})`, async () => {
  const port = await freePort();
  const { primary, workers } = await startCluster(port);
  const clients: Connection[] = [];
  try {
    assert.equal(workers.length, 2, primary.output());
    assert.ok(workers.every(processAlive));
    const seen = new Map<number, number>();
    // With 40 connections both workers get some but with a chance of 2^-39; up to 200 if not.
    for (let i = 0; i < 200 && (i < 40 || seen.size < 2); i++) {
      const ws = await connect(`ws://127.0.0.1:${port}/echo`, options);
      clients.push(ws);
      await ws.send(`hello ${i}`);
      assert.equal(await ws.receive({ timeout: 10000 }), `hello ${i}`);
      await ws.send("pid");
      const pid = Number(await ws.receive({ timeout: 10000 }));
      assert.ok(workers.includes(pid), `pid ${pid} is one of the workers ${workers}`);
      seen.set(pid, (seen.get(pid) ?? 0) + 1);
    }
    console.log(
      `cluster (${RUNTIME}): ${clients.length} connections over workers ${JSON.stringify([...seen])}`,
    );
    assert.equal(seen.size, 2, `both workers served some of ${clients.length} connections`);
    const pages = new Set<number>();
    for (let i = 0; i < 4; i++) {
      const response = await fetch(`http://127.0.0.1:${port}/`, { headers: { Connection: "close" } });
      assert.equal(response.status, 200);
      pages.add(Number(await response.text()));
    }
    assert.ok([...pages].every((pid) => workers.includes(pid)), `GET / answered ${[...pages]}`);

    const closes = clients.map((ws) => ws.closed);
    const start = performance.now();
    process.kill(primary.pid, "SIGTERM");
    const code = await Promise.race([primary.exited, sleep(20000).then(() => "still running")]);
    assert.equal(code, 0, `the primary's exit; stdout: ${primary.output()}`);
    const results = await Promise.race([Promise.all(closes), sleep(10000).then(() => undefined)]);
    assert.ok(results, "every client saw its connection close");
    const codes = results.map((result) => result.code);
    assert.deepEqual(codes, codes.map(() => 1001), "every client got 1001");
    console.log(`cluster (${RUNTIME}): stopped in ${Math.round(performance.now() - start)} ms`);
    assert.ok(
      await eventually(() => !workers.some(processAlive), 10000),
      `workers left: ${workers.filter(processAlive)}`,
    );
    assert.match(primary.output(), /all workers stopped/);
  } finally {
    for (const ws of clients) ws.terminate();
    primary.kill();
    for (const pid of workers) {
      if (processAlive(pid)) process.kill(pid, "SIGKILL");
    }
    await primary.exited;
  }
});
