/**
 * Lets bench/servers.ts ask a bench server on Deno or Bun for a full garbage
 * collection, with SIGUSR2, to tell memory a server holds on to from memory it
 * has not collected yet. On Deno, start it with `--v8-flags=--expose-gc`.
 *
 * @module
 */

interface Collectors {
  gc?: () => void;
  Bun?: { gc(force: boolean): void };
  process?: { on(signal: string, listener: () => void): void };
}

/** Runs a full GC on every SIGUSR2. */
export function collectOnSignal(): void {
  const runtime = globalThis as unknown as Collectors;
  const collect = () => runtime.gc ? runtime.gc() : runtime.Bun?.gc(true);
  if ("Deno" in globalThis) Deno.addSignalListener("SIGUSR2", collect);
  else runtime.process?.on("SIGUSR2", collect);
}
