/**
 * Where the development tools' binaries are: the npm-installed ones in
 * `tools/dev/node_modules/.bin` when present, else whatever is on PATH.
 *
 * @module
 */

/**
 * The path of a development tool's binary.
 *
 * @param name `deno`, `bun`, …
 * @returns The installed binary's path, or `name` to look it up on PATH.
 */
export function localBin(name: string): string {
  const path = decodeURIComponent(new URL(`dev/node_modules/.bin/${name}`, import.meta.url).pathname);
  try {
    Deno.statSync(path);
    return path;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return name;
    throw error;
  }
}
