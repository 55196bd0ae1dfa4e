// The server's route table (src/server/router.ts) on its own: static paths, `:name` and `*`
// parameters, first match wins, percent-decoding, and every kind of refused parameter.
import { test } from "node:test";
import { assertEquals } from "../assert.ts";
import { Router } from "../../src/server/router.ts";

const MALFORMED = { refused: "malformed percent-encoding in the path\n" };
const UNSAFE = { refused: "a route parameter holds a character or segment that is not allowed\n" };

/** A router with these routes, each route's handler being its pattern. */
function routes(...patterns: string[]): Router<string> {
  const router = new Router<string>();
  for (const pattern of patterns) router.add(pattern, pattern);
  return router;
}

test("a static route matches its path exactly, with no parameters", () => {
  const router = routes("/", "/echo", "/a/b");
  assertEquals(router.match("/"), { handler: "/", params: {} });
  assertEquals(router.match("/echo"), { handler: "/echo", params: {} });
  assertEquals(router.match("/a/b"), { handler: "/a/b", params: {} });
  for (const path of ["", "/echo/", "/echoes", "/ech", "/a", "/a/b/c", "echo", "/ECHO"]) {
    assertEquals(router.match(path), undefined, path);
  }
});

test("match() returns undefined when no route matches, and on a router with none", () => {
  assertEquals(new Router<string>().match("/"), undefined);
  assertEquals(routes("/rooms/:room").match("/users/1"), undefined);
});

test("a :name parameter matches one non-empty segment", () => {
  const router = routes("/rooms/:room", "/users/:id/posts/:post");
  assertEquals(router.match("/rooms/lobby"), { handler: "/rooms/:room", params: { room: "lobby" } });
  assertEquals(
    router.match("/users/7/posts/42"),
    { handler: "/users/:id/posts/:post", params: { id: "7", post: "42" } },
  );
  assertEquals(router.match("/rooms/"), undefined);
  assertEquals(router.match("/rooms"), undefined);
  assertEquals(router.match("/rooms/a/b"), undefined);
  assertEquals(router.match("/users/7/posts"), undefined);
});

test("a :name parameter may hold characters other than a slash, dots and spaces included", () => {
  const router = routes("/f/:name");
  for (const value of ["a.b", "...", ".hidden", "a..b", "x:y", "a*b", "(x)", "a+b", "é", "😀"]) {
    assertEquals(router.match(`/f/${value}`), { handler: "/f/:name", params: { name: value } }, value);
  }
});

test("a last segment * matches the rest of the path, empty or holding slashes", () => {
  const router = routes("/files/*");
  assertEquals(router.match("/files/a/b.txt"), { handler: "/files/*", params: { "*": "a/b.txt" } });
  assertEquals(router.match("/files/a"), { handler: "/files/*", params: { "*": "a" } });
  assertEquals(router.match("/files/"), { handler: "/files/*", params: { "*": "" } });
  assertEquals(router.match("/files/a//b/"), { handler: "/files/*", params: { "*": "a//b/" } });
  assertEquals(router.match("/files"), undefined);
  assertEquals(router.match("/filesx/a"), undefined);
});

test("a :name parameter and a * rest come out together", () => {
  const router = routes("/u/:user/*");
  assertEquals(router.match("/u/ann/a/b"), { handler: "/u/:user/*", params: { user: "ann", "*": "a/b" } });
});

test("the first matching route wins, in the order they were added", () => {
  const router = routes("/rooms/special", "/rooms/:room", "/rooms/*", "/*");
  assertEquals(router.match("/rooms/special"), { handler: "/rooms/special", params: {} });
  assertEquals(router.match("/rooms/other"), { handler: "/rooms/:room", params: { room: "other" } });
  assertEquals(router.match("/rooms/a/b"), { handler: "/rooms/*", params: { "*": "a/b" } });
  assertEquals(router.match("/x"), { handler: "/*", params: { "*": "x" } });

  const reversed = routes("/rooms/:room", "/rooms/special");
  assertEquals(reversed.match("/rooms/special"), { handler: "/rooms/:room", params: { room: "special" } });
});

test("a route whose parameters are refused answers, even when a later route would match", () => {
  const router = routes("/f/:name", "/f/*");
  assertEquals(router.match("/f/%2e%2e"), UNSAFE);
  assertEquals(router.match("/f/%E0%A4%A"), MALFORMED);
});

test("the same handler may serve several routes", () => {
  const router = new Router<() => number>();
  const handler = () => 1;
  router.add("/a", handler);
  router.add("/b/:x", handler);
  assertEquals(router.match("/a"), { handler, params: {} });
  assertEquals(router.match("/b/1"), { handler, params: { x: "1" } });
});

test("regular-expression characters in static segments match only themselves", () => {
  const patterns = ["/a.b", "/a+", "/a?", "/(x)", "/[x]", "/{1}", "/x|y", "/^a$", "/a\\b", "/a*b"];
  const router = routes(...patterns);
  for (const pattern of patterns) {
    assertEquals(router.match(pattern), { handler: pattern, params: {} }, pattern);
  }
  for (const path of ["/axb", "/aa", "/a", "/", "/x", "/y", "/[", "/ab", "/aab", "/a\\\\b"]) {
    assertEquals(router.match(path), undefined, path);
  }
});

test("parameters are percent-decoded, as UTF-8", () => {
  const router = routes("/rooms/:room", "/files/*");
  assertEquals(router.match("/rooms/the%20lobby"), {
    handler: "/rooms/:room",
    params: { room: "the lobby" },
  });
  assertEquals(router.match("/rooms/caf%C3%A9"), { handler: "/rooms/:room", params: { room: "café" } });
  assertEquals(router.match("/rooms/%F0%9F%98%80"), { handler: "/rooms/:room", params: { room: "😀" } });
  assertEquals(router.match("/rooms/100%25"), { handler: "/rooms/:room", params: { room: "100%" } });
  assertEquals(router.match("/rooms/a%3Fb%23c"), { handler: "/rooms/:room", params: { room: "a?b#c" } });
  assertEquals(router.match("/files/a%2Fb/c"), { handler: "/files/*", params: { "*": "a/b/c" } });
  assertEquals(router.match("/files/%2e%2e%2e"), { handler: "/files/*", params: { "*": "..." } });
});

test("static segments are matched as sent, not decoded", () => {
  const router = routes("/a b", "/c%20d");
  assertEquals(router.match("/a%20b"), undefined);
  assertEquals(router.match("/a b"), { handler: "/a b", params: {} });
  assertEquals(router.match("/c%20d"), { handler: "/c%20d", params: {} });
});

test("a bad percent-encoding in a parameter is refused as malformed", () => {
  const router = routes("/rooms/:room", "/files/*");
  for (const value of ["%", "%2", "%zz", "a%", "%E0%A4%A", "%C3", "%C3%28", "%FF", "%ED%A0%80", "%C0%AF"]) {
    assertEquals(router.match(`/rooms/${value}`), MALFORMED, `:name ${value}`);
    assertEquals(router.match(`/files/x/${value}`), MALFORMED, `* ${value}`);
  }
});

test("a bad percent-encoding in a static segment is no parameter: it matches as written, or not at all", () => {
  const router = routes("/%zz/:x");
  assertEquals(router.match("/%zz/1"), { handler: "/%zz/:x", params: { x: "1" } });
  assertEquals(routes("/rooms").match("/%zz"), undefined);
});

test("a :name parameter holding a slash, a backslash or a control character is refused", () => {
  const router = routes("/rooms/:room");
  const values = [
    "%2F",
    "a%2fb",
    "%5C",
    "a%5cb",
    "a\\b",
    "%00",
    "%01",
    "%09",
    "%0A",
    "%0d",
    "%1F",
    "%7F",
    "a%7fb",
  ];
  for (const value of values) assertEquals(router.match(`/rooms/${value}`), UNSAFE, value);
});

test("a :name parameter that is exactly . or .. is refused, decoded or not", () => {
  const router = routes("/rooms/:room");
  for (const value of [".", "..", "%2e", "%2E", "%2e%2e", ".%2e", "%2E."]) {
    assertEquals(router.match(`/rooms/${value}`), UNSAFE, value);
  }
});

test("characters just outside the refused ranges are allowed in parameters", () => {
  const router = routes("/rooms/:room", "/files/*");
  for (const [encoded, value] of [["%20", " "], ["%7E", "~"], ["%C2%80", "\u0080"], ["%2F%2F", "//"]]) {
    const expected = value.includes("/") ? UNSAFE : { handler: "/rooms/:room", params: { room: value } };
    assertEquals(router.match(`/rooms/${encoded}`), expected, encoded);
    assertEquals(router.match(`/files/${encoded}`), { handler: "/files/*", params: { "*": value } }, encoded);
  }
});

test("a * parameter with a . or .. segment is refused, wherever the segment is", () => {
  const router = routes("/files/*");
  const paths = [
    ".",
    "..",
    "../secret",
    "a/../b",
    "a/..",
    "./a",
    "a/./b",
    "a/.",
    "%2e%2e/secret",
    "a%2F..%2Fb",
    "a/%2E",
    "%2e%2e",
  ];
  for (const path of paths) assertEquals(router.match(`/files/${path}`), UNSAFE, path);
  assertEquals(router.match("/files/a/...b/.c/d."), { handler: "/files/*", params: { "*": "a/...b/.c/d." } });
});

test("a * parameter holding a backslash or a control character is refused", () => {
  const router = routes("/files/*");
  for (const value of ["a\\b", "a%5Cb", "%5c", "a/%00", "%01/b", "%0A", "%1f", "a/b%7F"]) {
    assertEquals(router.match(`/files/${value}`), UNSAFE, value);
  }
});

test("refusals depend on the decoded parameters only, not on the route's static part", () => {
  const router = routes("/a.b/:x");
  assertEquals(router.match("/a.b/ok"), { handler: "/a.b/:x", params: { x: "ok" } });
  assertEquals(router.match("/a.b/.."), UNSAFE);
});
