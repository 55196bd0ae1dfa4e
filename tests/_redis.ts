// A real redis-server for the tests: started as a child process on a free loopback port without
// persistence, stopped by its PID. Tests that need it are skipped visibly when it is missing.

import { test } from "node:test";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import process from "node:process";
import { eventually } from "./_helpers.ts";

export const REDIS = "/usr/bin/redis-server";
export const HAVE_REDIS: boolean = existsSync(REDIS);
/** The installed server's major version, 0 when there is none. */
export const REDIS_MAJOR: number = HAVE_REDIS
  ? Number(/v=(\d+)\./.exec(execFileSync(REDIS, ["--version"]).toString())?.[1] ?? 0)
  : 0;
const TIMEOUT = 60000;

export { freePort, sleep } from "./_hardening.ts";
/** Polls `check` until it holds; throws after `ms` (10 s by default). */
export const waitFor = (check: () => boolean, what: string, ms = 10000): Promise<void> =>
  eventually(check, what, ms);

/** A running redis-server. */
export interface RedisChild {
  port: number;
  child: ChildProcess;
  exited: Promise<void>;
}

/** Starts redis-server on `port` (with `args` besides) and waits until it accepts connections. */
export async function startRedis(port: number, args: string[] = []): Promise<RedisChild> {
  const child = spawn(
    REDIS,
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", ...args],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let output = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`redis-server did not start:\n${output}`)), 10000);
    child.stdout!.on("data", (chunk: Uint8Array) => {
      output += new TextDecoder().decode(chunk);
      if (output.includes("Ready to accept connections")) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr!.on("data", (chunk: Uint8Array) => output += new TextDecoder().decode(chunk));
    exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`redis-server exited:\n${output}`));
    });
  });
  return { port, child, exited };
}

/** Sends `signal` to a redis-server that still runs. */
export function signalRedis(redis: RedisChild, signal: "SIGKILL" | "SIGSTOP" | "SIGCONT"): void {
  if (redis.child.exitCode === null && redis.child.signalCode === null && redis.child.pid !== undefined) {
    try {
      process.kill(redis.child.pid, signal);
    } catch {
      // Already gone.
    }
  }
}

/** Kills a redis-server by its PID and waits for it to exit. */
export async function stopRedis(redis: RedisChild): Promise<void> {
  signalRedis(redis, "SIGKILL");
  await redis.exited;
}

/** A test that needs redis-server, or a visible skip. */
export function redisTest(
  name: string,
  body: () => Promise<void>,
  skipReason?: string,
  timeout = TIMEOUT,
): void {
  if (!HAVE_REDIS) test.skip(`${name} (${REDIS} not installed)`, () => {});
  else if (skipReason) test.skip(`${name} (${skipReason})`, () => {});
  else test(name, { timeout }, body);
}
