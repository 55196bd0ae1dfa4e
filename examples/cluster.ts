/**
 * Several processes serving one port: a primary starts N workers (this same file with `--worker`,
 * on the same runtime), each a `Sock` listening with `reusePort: true`, and the kernel spreads
 * incoming connections among them (Linux `SO_REUSEPORT`; Deno needs `--unstable-net`):
 *
 *   deno run -A --unstable-net examples/cluster.ts [--workers 2] [--port 8002] [--host 127.0.0.1]
 *     [--redis redis://127.0.0.1:6379]
 *   bun examples/cluster.ts [--workers 2] [--port 8002] [--host 127.0.0.1] [--redis URL]
 *
 * Each worker serves `/echo` (every message comes back; the text `pid` is answered with the
 * worker's process id, to see which worker got a connection), a room `/rooms/:room` (every message
 * goes to the room's other members: in every worker with `--redis`, through Redis pub/sub; `pid`
 * is answered as on `/echo`) and `GET /`, answered with the worker's pid. Workers accept
 * permessage-deflate. Each prints
 * `worker PID listening on ws://HOST:PORT`; the primary prints `listening on ws://HOST:PORT with N
 * workers` once they all are.
 *
 * SIGTERM or SIGINT (Ctrl+C) to the primary is passed on to every worker, which closes its
 * connections with 1001 ("going away") and exits with 0; the primary then exits with 0. A second
 * signal to the primary kills the workers at once. A worker that dies on its own is logged and the
 * others keep serving. The port must be a concrete one: with `--port 0` each worker would get a
 * port of its own.
 *
 * @module
 */

import process from "node:process";
import { fileURLToPath } from "node:url";
import { Sock } from "../src/server/sock.ts";
import { RedisBackplane } from "../src/redis/backplane.ts";
import { flag, option } from "./args.ts";

const host = option("host", "127.0.0.1");
const port = Number(option("port", "8002"));
/** `--redis redis://host:port`: rooms reach their members in every worker, through Redis pub/sub. */
const redis = option("redis", "");
const workers = Number(option("workers", "2"));

/** Runs `stop` on the first SIGINT or SIGTERM and `again` on later ones, on either runtime. */
function onSignals(stop: (signal: string) => void, again: (signal: string) => void): void {
  let signalled = false;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    const listener = () => {
      if (signalled) return again(signal);
      signalled = true;
      stop(signal);
    };
    try {
      if ("Deno" in globalThis) Deno.addSignalListener(signal, listener);
      else process.on(signal, listener);
    } catch {
      // Windows has no SIGTERM listeners on Deno (nor SO_REUSEPORT): Ctrl+C still works.
    }
  }
}

// ---- A worker ----

async function worker(): Promise<void> {
  const pid = String(process.pid);
  const app = new Sock({
    fetch: (request) =>
      new URL(request.url).pathname === "/"
        ? new Response(`${pid}\n`)
        : new Response("not found\n", { status: 404 }),
    onError: (error) => console.error(`worker ${pid}: handler failed:`, error),
    backplane: redis ? new RedisBackplane({ url: redis }) : undefined,
    deflate: true,
  });
  app.route("/echo", (ws) => ws.forEach((message) => ws.send(message === "pid" ? pid : message)));
  app.route("/rooms/:room", (ws, request) => {
    const room = request.params.room;
    ws.subscribe(room);
    // With --redis, the room's members in the other workers get it too; without, only this worker's.
    return ws.forEach((message) =>
      message === "pid" ? ws.send(pid) : void app.publish(room, message, { except: ws })
    );
  });
  try {
    await app.listen({ hostname: host, port, reusePort: true });
  } catch (error) {
    // A ListenError: the port taken by a process that did not ask for reusePort, say.
    console.error(`worker ${pid}: ${(error as Error).message}`);
    process.exit(1);
  }
  console.log(`worker ${pid} listening on ws://${host}:${port}`);
  onSignals(async (signal) => {
    console.log(`worker ${pid}: ${signal}: closing ${app.connections.size} connection(s) with 1001`);
    await app.close(2000);
    process.exit(0);
  }, () => {
    // Ctrl+C reaches the whole process group and the primary passes it on too: already closing.
  });
}

// ---- The primary ----

/** A worker process, on either runtime. */
interface WorkerProcess {
  pid: number;
  stdout: ReadableStream<Uint8Array>;
  /** Resolves with how it ended: its exit code, or the signal that ended it. */
  exited: Promise<string>;
  kill(signal: "SIGINT" | "SIGTERM" | "SIGKILL"): void;
}

/** The part of `Bun.spawn` used here, declared locally instead of depending on bun-types. */
interface BunSpawn {
  spawn(cmd: string[], options: { stdin: "ignore"; stdout: "pipe"; stderr: "inherit" }): {
    pid: number;
    stdout: ReadableStream<Uint8Array>;
    exited: Promise<number>;
    signalCode: string | null;
    kill(signal?: string): void;
  };
}

/** Starts this file with `--worker` and the same options, on this runtime. */
function spawnWorker(): WorkerProcess {
  const script = fileURLToPath(import.meta.url);
  const args = [
    script,
    "--worker",
    "--host",
    host,
    "--port",
    String(port),
    ...redis ? ["--redis", redis] : [],
  ];
  if ("Deno" in globalThis) {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-net", "--unstable-net", ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    return {
      pid: child.pid,
      stdout: child.stdout,
      exited: child.status.then(({ code, signal }) => signal ? signal : `code ${code}`),
      kill: (signal) => {
        try {
          child.kill(signal);
        } catch {
          // Gone already.
        }
      },
    };
  }
  const bun = (globalThis as unknown as { Bun: BunSpawn }).Bun;
  const child = bun.spawn([process.execPath, ...args], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "inherit",
  });
  return {
    pid: child.pid,
    stdout: child.stdout,
    exited: child.exited.then((code) => child.signalCode ?? `code ${code}`),
    kill: (signal) => child.kill(signal),
  };
}

/** Passes a worker's output on, line by line, calling `onLine` with each. */
async function pump(stdout: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
  const decoder = new TextDecoder();
  let text = "";
  for await (const chunk of stdout) {
    text += decoder.decode(chunk, { stream: true });
    let end;
    while ((end = text.indexOf("\n")) >= 0) {
      const line = text.slice(0, end);
      text = text.slice(end + 1);
      console.log(line);
      onLine(line);
    }
  }
  if (text) console.log(text);
}

async function primary(): Promise<void> {
  if (!Number.isInteger(workers) || workers < 1) {
    console.error(`--workers must be a positive integer, not ${option("workers", "")}`);
    process.exit(2);
  }
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    console.error(`--port must be a port number from 1 to 65535 (0 would give each worker its own port)`);
    process.exit(2);
  }
  let stopping = false;
  const running = new Set<WorkerProcess>();
  const ready = Promise.withResolvers<void>();
  let listening = 0;
  const ended: Promise<void>[] = [];
  let clean = true;
  for (let i = 0; i < workers; i++) {
    const child = spawnWorker();
    running.add(child);
    let up = false;
    const output = pump(child.stdout, (line) => {
      if (!up && line.startsWith(`worker ${child.pid} listening on `)) {
        up = true;
        if (++listening === workers) ready.resolve();
      }
    }).catch(() => {});
    ended.push((async () => {
      const how = await child.exited;
      await output;
      running.delete(child);
      if (stopping) {
        if (how !== "code 0") clean = false;
        return;
      }
      if (!up) {
        // One that never listened (the port taken, say): no cluster, then.
        ready.reject(new Error(`worker ${child.pid} ended (${how}) before listening`));
      } else if (running.size > 0) {
        console.error(`worker ${child.pid} ended unexpectedly (${how}); ${running.size} still serving`);
      } else {
        console.error(`worker ${child.pid} ended unexpectedly (${how}); none left, exiting`);
        process.exit(1);
      }
    })());
  }
  onSignals(async (signal) => {
    stopping = true;
    console.log(`${signal}: stopping ${running.size} worker(s)`);
    for (const child of running) child.kill(signal as "SIGINT" | "SIGTERM");
    await Promise.all(ended);
    console.log(clean ? "all workers stopped" : "workers stopped, not all with 0");
    process.exit(clean ? 0 : 1);
  }, (signal) => {
    console.log(`${signal} again: killing the workers`);
    for (const child of running) child.kill("SIGKILL");
    process.exit(1);
  });
  try {
    await ready.promise;
  } catch (error) {
    console.error((error as Error).message);
    stopping = true;
    for (const child of running) child.kill("SIGTERM");
    await Promise.all(ended);
    process.exit(1);
  }
  console.log(`listening on ws://${host}:${port} with ${workers} workers`);
}

if (flag("worker")) await worker();
else await primary();
