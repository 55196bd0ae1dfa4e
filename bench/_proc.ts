/**
 * Readings from Linux's /proc that the benches take on either runtime: the bench drivers on Deno,
 * the load generators on Bun.
 *
 * @module
 */

import { readFileSync } from "node:fs";

/** Clock ticks per second in /proc (USER_HZ), fixed at 100 on Linux. */
export const TICKS_PER_SECOND = 100;

/** utime + stime of a process so far, in seconds, from /proc/PID/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}
