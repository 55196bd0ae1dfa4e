// parseWebSocketUrl(): the one reader of WebSocket URLs (RFC 6455 §3, WHATWG WebSockets), for the
// client's request, connect() and the WebSocket class.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseWebSocketUrl } from "../../src/core/url.ts";

test("parseWebSocketUrl() takes ws: and wss: URLs apart: TLS, host, port, request target, Host header", () => {
  const cases: [string, boolean, string, number, string, string][] = [
    ["ws://example.com", false, "example.com", 80, "/", "example.com"],
    ["wss://example.com/chat?room=1", true, "example.com", 443, "/chat?room=1", "example.com"],
    ["ws://example.com:9001/a", false, "example.com", 9001, "/a", "example.com:9001"],
    ["wss://example.com:80/", true, "example.com", 80, "/", "example.com:80"],
    ["ws://127.0.0.1:0/", false, "127.0.0.1", 0, "/", "127.0.0.1:0"],
    ["ws://[::1]:9001/x", false, "::1", 9001, "/x", "[::1]:9001"],
    ["wss://[2001:db8::1]/", true, "2001:db8::1", 443, "/", "[2001:db8::1]"],
    ["WS://Example.COM/a b?q=ü", false, "example.com", 80, "/a%20b?q=%C3%BC", "example.com"],
  ];
  for (const [input, secure, hostname, port, target, host] of cases) {
    const parsed = parseWebSocketUrl(input);
    assert.deepEqual(
      [parsed.secure, parsed.hostname, parsed.port, parsed.target, parsed.host],
      [secure, hostname, port, target, host],
      input,
    );
  }
});

test("parseWebSocketUrl() maps http: to ws: and https: to wss:, the default port following the new scheme", () => {
  assert.equal(parseWebSocketUrl("http://example.com/a").url.href, "ws://example.com/a");
  assert.equal(parseWebSocketUrl("https://example.com/a").url.href, "wss://example.com/a");
  // http's default 80 was dropped by URL before the scheme changed; https's 443 likewise.
  assert.equal(parseWebSocketUrl("http://example.com:80/").port, 80);
  assert.equal(parseWebSocketUrl("https://example.com:443/").port, 443);
  // A port that is not the new scheme's default stays, in the Host header too.
  const moved = parseWebSocketUrl("http://example.com:443/");
  assert.deepEqual([moved.secure, moved.port, moved.host], [false, 443, "example.com:443"]);
});

test("parseWebSocketUrl() accepts a URL object and never changes it", () => {
  const url = new URL("http://example.com/x");
  const parsed = parseWebSocketUrl(url);
  assert.equal(parsed.url.href, "ws://example.com/x");
  assert.notEqual(parsed.url, url);
  assert.equal(url.href, "http://example.com/x");
});

test("parseWebSocketUrl() refuses other schemes, fragments (empty ones too) and non-URLs with TypeError", () => {
  for (
    const input of [
      "ftp://example.com/",
      "file:///tmp/x",
      "example.com/chat",
      "ws://example.com/#",
      "ws://example.com/#top",
      "wss://example.com/a?b#c",
      "ws://",
      "",
    ]
  ) {
    assert.throws(() => parseWebSocketUrl(input), TypeError, input);
  }
});
