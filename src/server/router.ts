/**
 * The route table of the server: path patterns to handlers, with parameters. Pure: no I/O, no
 * timers; the server answers what {@linkcode Router.match} returns (a handler, a 400, or a 404).
 *
 * @module
 */

/**
 * A route that matched: its handler and its percent-decoded parameters.
 *
 * @example Reading a match
 * ```ts
 * import { Router, type RouteMatch } from "./router.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const router = new Router<string>();
 * router.add("/rooms/:room", "room");
 * const match = router.match("/rooms/lobby") as RouteMatch<string>;
 * assertEquals(match.handler, "room");
 * assertEquals(match.params, { room: "lobby" });
 * ```
 *
 * @typeParam H The handler type.
 */
export interface RouteMatch<H> {
  /** The handler of the first route that matched. */
  handler: H;
  /** Parameters by name, percent-decoded: `params.room` for `:room`, `params["*"]` for `*`. */
  params: Record<string, string>;
}

/**
 * A route matched, but its parameters are refused: the request is answered 400 with `refused` as
 * the body, before any hook or handler sees it.
 *
 * @example A refused parameter
 * ```ts
 * import { Router, type RouteRefusal } from "./router.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const router = new Router<string>();
 * router.add("/files/:name", "file");
 * const refusal = router.match("/files/%2e%2e") as RouteRefusal;
 * assertEquals(refusal.refused, "a route parameter holds a character or segment that is not allowed\n");
 * ```
 */
export interface RouteRefusal {
  /** The 400 response's body text, ending in a newline. */
  refused: string;
}

interface Route<H> {
  pattern: RegExp;
  names: string[];
  handler: H;
}

/** The 400 body for a percent-encoding that does not decode as UTF-8. */
const MALFORMED = "malformed percent-encoding in the path\n";
/** The 400 body for a decoded parameter that could leave its place. */
const UNSAFE = "a route parameter holds a character or segment that is not allowed\n";

/** Whether `value` holds a backslash or a control character (U+0000–U+001F, U+007F). */
function hasUnsafeCharacter(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c === 0x7f || c === 0x5c) return true;
  }
  return false;
}

/** Whether a decoded `:name` parameter is one plain segment: no `/`, `\` or control character, not `.` or `..`. */
function isSafeSegment(value: string): boolean {
  return !hasUnsafeCharacter(value) && !value.includes("/") && value !== "." && value !== "..";
}

/** Whether a decoded `*` parameter is plain segments: `/` allowed, but no `.` or `..` segment. */
function isSafeRest(value: string): boolean {
  return !hasUnsafeCharacter(value) &&
    !value.split("/").some((segment) => segment === "." || segment === "..");
}

/**
 * Paths to handlers. `:name` segments match one path segment and come out as `params.name`; a
 * last segment `*` matches the rest of the path (`params["*"]`, which may hold `/`). Other
 * segments match literally, regular-expression characters included. The first route added that
 * matches wins, even when its parameters are then refused.
 *
 * Parameters are percent-decoded, and refused when a decoded value could leave its place if used
 * in a file path, a key or a log line: a `:name` parameter holding `/`, `\`, or a control
 * character (U+0000–U+001F, U+007F), or being exactly `.` or `..`; the `*` parameter holding `\`
 * or a control character, or a segment (between `/`s) that is `.` or `..`. A percent-encoding that
 * does not decode as UTF-8 is refused too.
 *
 * @example Routes with parameters
 * ```ts
 * import { Router } from "./router.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const router = new Router<string>();
 * router.add("/rooms/:room", "room");
 * router.add("/files/*", "files");
 * assertEquals(router.match("/rooms/the%20lobby"), { handler: "room", params: { room: "the lobby" } });
 * assertEquals(router.match("/files/a/b.txt"), { handler: "files", params: { "*": "a/b.txt" } });
 * assertEquals(
 *   router.match("/files/%2e%2e/secret"),
 *   { refused: "a route parameter holds a character or segment that is not allowed\n" },
 * );
 * assertEquals(router.match("/elsewhere"), undefined);
 * ```
 *
 * @typeParam H The handler type: whatever the server calls for a matched request.
 */
export class Router<H> {
  #routes: Route<H>[] = [];

  /**
   * Adds a route after those already added.
   *
   * @example A static route and a parameter
   * ```ts
   * import { Router } from "./router.ts";
   * import { assertEquals } from "@std/assert";
   *
   * const router = new Router<number>();
   * router.add("/health", 1);
   * router.add("/users/:id/posts/:post", 2);
   * assertEquals(router.match("/health"), { handler: 1, params: {} });
   * assertEquals(router.match("/users/7/posts/42"), { handler: 2, params: { id: "7", post: "42" } });
   * ```
   *
   * @param path The path pattern, e.g. `/rooms/:room` or `/files/*`.
   * @param handler What a match returns for this route.
   */
  add(path: string, handler: H): void {
    const names: string[] = [];
    const source = path.split("/").map((segment) => {
      if (segment.startsWith(":")) {
        names.push(segment.slice(1));
        return "([^/]+)";
      }
      if (segment === "*") {
        names.push("*");
        return "(.*)";
      }
      return segment.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    }).join("/");
    this.#routes.push({ pattern: new RegExp(`^${source}$`), names, handler });
  }

  /**
   * The first route matching `path`, with its decoded parameters; `{ refused }` with the 400's body
   * when that route's parameters are refused (a bad percent-encoding, or a decoded value the rules
   * above do not allow); `undefined` when no route matches (a 404).
   *
   * @example Matching, refusing, and no match
   * ```ts
   * import { Router } from "./router.ts";
   * import { assertEquals } from "@std/assert";
   *
   * const router = new Router<string>();
   * router.add("/rooms/:room", "room");
   * assertEquals(router.match("/rooms/lobby"), { handler: "room", params: { room: "lobby" } });
   * assertEquals(router.match("/rooms/%E0%A4%A"), { refused: "malformed percent-encoding in the path\n" });
   * assertEquals(router.match("/rooms"), undefined);
   * ```
   *
   * @param path The request's path, without the query, still percent-encoded.
   * @returns The match, the refusal, or `undefined`.
   */
  match(path: string): RouteMatch<H> | RouteRefusal | undefined {
    for (const route of this.#routes) {
      const match = route.pattern.exec(path);
      if (!match) continue;
      const params: Record<string, string> = {};
      for (let i = 0; i < route.names.length; i++) {
        const name = route.names[i]!;
        let value: string;
        try {
          // One group per name, none optional: each takes part in the match.
          value = decodeURIComponent(match[i + 1]!);
        } catch {
          // decodeURIComponent's URIError: the client's mistake, not the server's.
          return { refused: MALFORMED };
        }
        if (name === "*" ? !isSafeRest(value) : !isSafeSegment(value)) return { refused: UNSAFE };
        params[name] = value;
      }
      return { handler: route.handler, params };
    }
    return undefined;
  }
}
