import { test } from "node:test";
import assert from "node:assert/strict";
import {
  HeadReader,
  HttpHeaders,
  isToken,
  isTokenCode,
  parseTokenList,
  ProtocolError,
  trimOws,
} from "../../src/core/mod.ts";
import { joinBytes, latin1Bytes, latin1Text } from "../_helpers.ts";

const REQUEST = "GET /chat?room=1 HTTP/1.1\r\n" +
  "Host: server.example.com\r\n" +
  "Upgrade: websocket\r\n" +
  "Connection: Upgrade\r\n" +
  "Sec-WebSocket-Protocol: chat\r\n" +
  "sec-websocket-protocol: superchat\r\n" +
  "\r\n";

/** What a parsed head holds, in plain data. */
function summary(result: ReturnType<HeadReader["write"]>) {
  assert.ok(result, "the head should be complete");
  return {
    startLine: result.head.startLine,
    headers: [...result.head.headers],
    rest: latin1Text(result.rest),
  };
}

/** Feeds `text` to a fresh reader in the given pieces; returns the result of the last write. */
function readInPieces(text: string, cuts: number[], isRequest = true) {
  const bytes = latin1Bytes(text);
  const reader = new HeadReader(isRequest);
  const bounds = [0, ...cuts, bytes.length];
  let result: ReturnType<HeadReader["write"]>;
  for (let i = 0; i + 1 < bounds.length; i++) {
    assert.equal(result!, undefined, `the head completed early, before piece ${i}`);
    result = reader.write(bytes.subarray(bounds[i], bounds[i + 1]));
  }
  return result!;
}

/** The ProtocolError a head throws, for its status. */
function headError(text: string, isRequest = true, limits = {}): ProtocolError {
  const reader = new HeadReader(isRequest, limits);
  try {
    reader.write(latin1Bytes(text));
  } catch (error) {
    assert.ok(error instanceof ProtocolError, `expected a ProtocolError, got ${error}`);
    return error;
  }
  assert.fail("expected the head to be refused");
}

test("HeadReader parses a request head in one piece", () => {
  assert.deepEqual(summary(readInPieces(REQUEST, [])), {
    startLine: ["GET", "/chat?room=1", "HTTP/1.1"],
    headers: [
      ["Host", "server.example.com"],
      ["Upgrade", "websocket"],
      ["Connection", "Upgrade"],
      ["Sec-WebSocket-Protocol", "chat"],
      ["sec-websocket-protocol", "superchat"],
    ],
    rest: "",
  });
});

test("HeadReader gives the same head and rest for a head split at every offset", () => {
  const text = REQUEST + "\x81\x85frame";
  const expected = summary(readInPieces(text, []));
  assert.equal(expected.rest, "\x81\x85frame");
  for (let cut = 1; cut < REQUEST.length; cut++) {
    assert.deepEqual(summary(readInPieces(text, [cut])), expected, `split at ${cut}`);
  }
  for (let a = 1; a < REQUEST.length; a += 7) {
    for (let b = a + 1; b < REQUEST.length; b += 5) {
      assert.deepEqual(summary(readInPieces(text, [a, b])), expected, `split at ${a} and ${b}`);
    }
  }
});

test("HeadReader keeps no part of a chunk it was given: a head spanning chunks is copied", () => {
  const expected = summary(readInPieces(REQUEST, []));
  for (const cut of [1, 20, REQUEST.length - 1]) {
    const bytes = latin1Bytes(REQUEST);
    const reader = new HeadReader(true);
    const first = bytes.slice(0, cut);
    assert.equal(reader.write(first), undefined);
    first.fill(0x58); // The caller reuses its buffer.
    assert.deepEqual(summary(reader.write(bytes.slice(cut))), expected, `split at ${cut}`);
  }
});

test("HeadReader gives the same head for a head fed one byte at a time", () => {
  const bytes = latin1Bytes(REQUEST);
  const reader = new HeadReader(true);
  for (let i = 0; i < bytes.length - 1; i++) assert.equal(reader.write(bytes.subarray(i, i + 1)), undefined);
  assert.deepEqual(
    summary(reader.write(bytes.subarray(bytes.length - 1))),
    summary(readInPieces(REQUEST, [])),
  );
});

test("HeadReader hands back the bytes after the head as a view of the chunk, without copying", () => {
  const chunk = latin1Bytes("GET / HTTP/1.1\r\nHost: a\r\n\r\nNEXT");
  const result = new HeadReader(true).write(chunk);
  assert.ok(result);
  assert.equal(latin1Text(result.rest), "NEXT");
  assert.equal(result.rest.buffer, chunk.buffer);
});

test("HeadReader parses a status line with and without a reason phrase", () => {
  const full = new HeadReader(false).write(latin1Bytes("HTTP/1.1 404 Not Found\r\nX: 1\r\n\r\n"));
  assert.deepEqual(full?.head.startLine, ["HTTP/1.1", "404", "Not Found"]);
  const bare = new HeadReader(false).write(latin1Bytes("HTTP/1.1 101\r\nX: a b\r\n\r\n"));
  assert.deepEqual(bare?.head.startLine, ["HTTP/1.1", "101", ""]);
  assert.equal(bare?.head.headers.get("x"), "a b");
});

test("HeadReader trims optional whitespace around values and keeps inner tabs and obs-text", () => {
  const result = new HeadReader(true).write(
    latin1Bytes("GET / HTTP/1.1\r\nA: \t x\ty \t\r\nB:\r\nC:caf\xe9\r\n\r\n"),
  );
  assert.deepEqual([...result!.head.headers], [["A", "x\ty"], ["B", ""], ["C", "caf\xe9"]]);
});

test("HeadReader accepts a head of exactly maxHeadSize bytes and refuses one more with 431", () => {
  const head = "GET / HTTP/1.1\r\nHost: a\r\nX: 12345\r\n\r\n";
  const reader = new HeadReader(true, { maxHeadSize: head.length });
  const result = reader.write(latin1Bytes(head + "tail"));
  assert.equal(latin1Text(result!.rest), "tail");
  const longer = head.replace("12345", "123456");
  assert.equal(headError(longer, true, { maxHeadSize: head.length }).status, 431);
});

test("HeadReader refuses an endless head with 431 once maxHeadSize bytes arrived without a blank line", () => {
  const reader = new HeadReader(true, { maxHeadSize: 64 });
  assert.equal(reader.write(latin1Bytes("GET / HTTP/1.1\r\n")), undefined);
  let error: unknown;
  try {
    for (let i = 0; i < 10; i++) reader.write(latin1Bytes("X-Filler: abc\r\n"));
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof ProtocolError);
  assert.equal(error.status, 431);
});

test("HeadReader refuses an overlong request line with 414", () => {
  const limits = { maxLineLength: 20 };
  const exact = "GET /" + "a".repeat(6) + " HTTP/1.1"; // 20 bytes
  assert.equal(exact.length, 20);
  assert.ok(new HeadReader(true, limits).write(latin1Bytes(exact + "\r\nHost: a\r\n\r\n")));
  const error = headError("GET /" + "a".repeat(7) + " HTTP/1.1\r\nHost: a\r\n\r\n", true, limits);
  assert.equal(error.status, 414);
});

test("HeadReader refuses an overlong header line with 431", () => {
  const limits = { maxLineLength: 20 };
  const exact = "X: " + "v".repeat(17);
  assert.ok(new HeadReader(true, limits).write(latin1Bytes(`GET / HTTP/1.1\r\n${exact}\r\n\r\n`)));
  assert.equal(headError(`GET / HTTP/1.1\r\n${exact}v\r\n\r\n`, true, limits).status, 431);
});

test("HeadReader refuses an overlong status line with 431, not 414", () => {
  assert.equal(
    headError("HTTP/1.1 200 " + "O".repeat(40) + "\r\n\r\n", false, { maxLineLength: 20 }).status,
    431,
  );
});

test("HeadReader refuses an overlong line before its end arrives", () => {
  const reader = new HeadReader(true, { maxLineLength: 16 });
  let error: unknown;
  try {
    reader.write(latin1Bytes("GET / HTTP/1.1\r\nX: " + "v".repeat(100)));
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof ProtocolError);
  assert.equal(error.status, 431);
});

test("HeadReader accepts maxHeaders fields and refuses one more with 431", () => {
  const fields = (n: number) => Array.from({ length: n }, (_, i) => `X-${i}: ${i}\r\n`).join("");
  const ok = new HeadReader(true, { maxHeaders: 3 }).write(latin1Bytes(`GET / HTTP/1.1\r\n${fields(3)}\r\n`));
  assert.equal([...ok!.head.headers].length, 3);
  assert.equal(headError(`GET / HTTP/1.1\r\n${fields(4)}\r\n`, true, { maxHeaders: 3 }).status, 431);
});

const MALFORMED: [string, string][] = [
  ["a bare LF ending a header line", "GET / HTTP/1.1\r\nHost: a\n\r\n"],
  ["a bare LF ending the request line", "GET / HTTP/1.1\nHost: a\r\n\r\n"],
  ["a bare LF as the first byte", "\nGET / HTTP/1.1\r\n\r\n"],
  ["a bare CR inside a value", "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n"],
  ["a NUL in a value", "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n"],
  ["a control character in a value", "GET / HTTP/1.1\r\nHost: a\x01b\r\n\r\n"],
  ["a DEL in a value", "GET / HTTP/1.1\r\nHost: a\x7fb\r\n\r\n"],
  ["obs-fold (a line starting with a space)", "GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n"],
  ["obs-fold (a line starting with a tab)", "GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n"],
  ["a header line without a colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n"],
  ["a header line starting with a colon", "GET / HTTP/1.1\r\n: a\r\n\r\n"],
  ["whitespace before the colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n"],
  ["a field name that is not a token", "GET / HTTP/1.1\r\nX(y): a\r\n\r\n"],
  ["an empty line before the request line", "\r\nGET / HTTP/1.1\r\n\r\n"],
  ["a request line without a version", "GET /\r\nHost: a\r\n\r\n"],
  ["a request line without a version, then a value with a space", "GET /\r\nUser-Agent: a b\r\n\r\n"],
  ["a request line with two spaces in a row", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n"],
  ["a request line with a fourth part", "GET / HTTP/1.1 x\r\nHost: a\r\n\r\n"],
];

for (const [what, text] of MALFORMED) {
  test(`HeadReader refuses ${what} with 400`, () => {
    const error = headError(text);
    assert.equal(error.status, 400);
    assert.equal(error.code, 1002);
  });
}

test("HeadReader refuses a bare CR split from the next byte across writes", () => {
  const reader = new HeadReader(true);
  assert.equal(reader.write(latin1Bytes("GET / HTTP/1.1\r\nHost: a\r")), undefined);
  assert.throws(
    () => reader.write(latin1Bytes("X: b\r\n\r\n")),
    (e) => e instanceof ProtocolError && e.status === 400,
  );
});

test("HeadReader accepts a CRLF split across writes", () => {
  const reader = new HeadReader(true);
  assert.equal(reader.write(latin1Bytes("GET / HTTP/1.1\r")), undefined);
  assert.equal(reader.write(latin1Bytes("\nHost: a\r")), undefined);
  assert.equal(reader.write(latin1Bytes("\n\r")), undefined);
  const result = reader.write(latin1Bytes("\nrest"));
  assert.equal(result?.head.headers.get("host"), "a");
  assert.equal(latin1Text(result!.rest), "rest");
});

test("HeadReader does not modify the chunks it is given", () => {
  const chunks = ["GET / HT", "TP/1.1\r\nHost: a\r", "\n\r\nmore"].map(latin1Bytes);
  const copies = chunks.map((c) => c.slice());
  const reader = new HeadReader(true);
  for (const chunk of chunks) reader.write(chunk);
  assert.deepEqual(chunks, copies);
  assert.equal(latin1Text(joinBytes(chunks)), "GET / HTTP/1.1\r\nHost: a\r\n\r\nmore");
});

test("HttpHeaders looks up fields case-insensitively and keeps repeated fields apart", () => {
  const headers = new HttpHeaders([["Sec-WebSocket-Protocol", "chat"], ["HOST", "a"], [
    "sec-websocket-protocol",
    "json",
  ]]);
  assert.deepEqual(headers.getAll("sec-WEBSOCKET-protocol"), ["chat", "json"]);
  assert.equal(headers.get("Sec-WebSocket-Protocol"), "chat, json");
  assert.equal(headers.get("host"), "a");
  assert.equal(headers.has("Host"), true);
  assert.equal(headers.has("origin"), false);
  assert.equal(headers.get("origin"), null);
  assert.deepEqual(headers.getAll("origin"), []);
});

test("HttpHeaders from a parsed head looks up fields case-insensitively and takes appended fields", () => {
  const headers = new HeadReader(true).write(latin1Bytes(REQUEST))!.head.headers;
  assert.deepEqual(headers.getAll("SEC-WEBSOCKET-PROTOCOL"), ["chat", "superchat"]);
  assert.equal(headers.get("host"), "server.example.com");
  assert.equal(headers.has("Sec-WebSocket-Key"), false);
  headers.append("X-Extra", "1");
  assert.equal(headers.get("x-extra"), "1");
  assert.deepEqual([...headers].at(-1), ["X-Extra", "1"]);
  assert.equal([...headers].length, 6);
});

test("HttpHeaders ignores the case of letters only", () => {
  const headers = new HttpHeaders([["A@[", "1"], ["\xc9", "2"]]);
  assert.equal(headers.get("a@["), "1");
  assert.equal(headers.get("A`["), null);
  assert.equal(headers.get("A@{"), null);
  assert.equal(headers.get("\xc9"), "2");
  assert.equal(headers.get("\xe9"), null, "only ASCII letters fold, as names are tokens");
});

test("HttpHeaders iterates in order with names as given, appended fields last", () => {
  const source: [string, string][] = [["B", "1"], ["a", "2"]];
  const headers = new HttpHeaders(source);
  source.push(["c", "ignored"]);
  headers.append("X-Extra", "3");
  assert.deepEqual([...headers], [["B", "1"], ["a", "2"], ["X-Extra", "3"]]);
  assert.deepEqual([...new HttpHeaders()], []);
});

test("HttpHeaders keeps an empty value distinct from an absent field", () => {
  const headers = new HttpHeaders([["X-Empty", ""]]);
  assert.equal(headers.get("x-empty"), "");
  assert.equal(headers.has("x-empty"), true);
});

test("parseTokenList() splits a comma-separated list and skips empty elements", () => {
  assert.deepEqual(parseTokenList("keep-alive, Upgrade"), ["keep-alive", "Upgrade"]);
  assert.deepEqual(parseTokenList(" ,a ,\t,b\t, , "), ["a", "b"]);
  assert.deepEqual(parseTokenList(""), []);
  assert.deepEqual(parseTokenList("chat"), ["chat"]);
});

test("parseTokenList() refuses an element that is not a token with 400", () => {
  for (const value of ["a b", "a, b c", "a;b", 'a, "b"', "caf\xe9", "a/b"]) {
    assert.throws(
      () => parseTokenList(value),
      (e) => e instanceof ProtocolError && e.status === 400,
      JSON.stringify(value),
    );
  }
});

test("isToken() accepts every tchar and refuses separators, spaces, controls and non-ASCII", () => {
  assert.equal(isToken("!#$%&'*+-.^_`|~09azAZ"), true);
  assert.equal(isToken("permessage-deflate"), true);
  assert.equal(isToken(""), false);
  for (const c of ' "(),/:;<=>?@[\\]{}\t\r\n\0\x7f\xe9\u2028') {
    assert.equal(isToken(`a${c}b`), false, JSON.stringify(c));
    assert.equal(isTokenCode(c.charCodeAt(0)), false, JSON.stringify(c));
  }
  assert.equal(isTokenCode(0x41 + 0x10000), false);
});

test("trimOws() removes spaces and tabs at both ends only", () => {
  assert.equal(trimOws(" \t a b \t "), "a b");
  assert.equal(trimOws("\t\t"), "");
  assert.equal(trimOws("\r a \n"), "\r a \n");
});
