/**
 * Command-line options for the examples, on Deno and Bun alike.
 *
 * @module
 */

const args: string[] = "Deno" in globalThis
  ? Deno.args
  : (globalThis as unknown as { process: { argv: string[] } }).process.argv.slice(2);

/**
 * The value after `--name` on the command line.
 *
 * @param name The option's name, without dashes.
 * @param fallback The value when the option is absent.
 * @returns The value.
 */
export function option(name: string, fallback: string): string {
  const at = args.indexOf(`--${name}`);
  return at >= 0 && at + 1 < args.length ? args[at + 1] : fallback;
}

/**
 * Whether `--name` is on the command line.
 *
 * @param name The flag's name, without dashes.
 * @returns `true` when present.
 */
export function flag(name: string): boolean {
  return args.includes(`--${name}`);
}
