import { test } from "node:test";
import assert from "node:assert/strict";
import {
  type HttpServerEvent,
  type HttpServerOptions,
  HttpServerProtocol,
} from "../../src/core/http_server.ts";
import { latin1Bytes, latin1Text } from "../_helpers.ts";

// ---- Helpers ----

/** A valid request sent right after each malformed one: it must never be read as a request. */
const SMUGGLED = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";

/** An event in plain data; the body pieces of consecutive `data` events are joined. */
type Rec =
  | {
    type: "request";
    method: string;
    target: string;
    version: string;
    headers: [string, string][];
    bodyLength: number | null;
    expectContinue: boolean;
    upgrade: boolean;
  }
  | { type: "data"; text: string }
  | { type: "end"; trailers: [string, string][] | undefined }
  | { type: "error"; status: number | undefined };

/** Appends events to `into` as plain records, copying body bytes at once (they are views). */
function record(into: Rec[], events: HttpServerEvent[]): Rec[] {
  for (const event of events) {
    switch (event.type) {
      case "request":
        into.push({
          type: "request",
          method: event.method,
          target: event.target,
          version: event.version,
          headers: [...event.headers],
          bodyLength: event.bodyLength,
          expectContinue: event.expectContinue,
          upgrade: event.upgrade,
        });
        break;
      case "data": {
        const last = into[into.length - 1];
        if (last?.type === "data") last.text += latin1Text(event.data);
        else into.push({ type: "data", text: latin1Text(event.data) });
        break;
      }
      case "end":
        into.push({ type: "end", trailers: event.trailers && [...event.trailers] });
        break;
      case "error":
        into.push({ type: "error", status: event.error.status });
        break;
    }
  }
  return into;
}

/** A protocol that has been fed `text` in one piece. */
function open(text: string, options?: HttpServerOptions): HttpServerProtocol {
  const http = new HttpServerProtocol(options);
  http.receiveData(latin1Bytes(text));
  return http;
}

/** The events since the last call, as records. */
function events(http: HttpServerProtocol): Rec[] {
  return record([], http.events());
}

/** The bytes queued since the last call, as text, with the `Date` value replaced by `<date>`. */
function output(http: HttpServerProtocol): string {
  return latin1Text(http.dataToSend()).replace(/\r\nDate: [^\r\n]*\r\n/g, "\r\nDate: <date>\r\n");
}

/** Answers the current request with a 200 and a body of known length. */
function answer(http: HttpServerProtocol, body = "ok"): void {
  http.respond(200, [], body.length);
  http.send(latin1Bytes(body));
  http.end();
}

/**
 * Feeds `text` cut at `cuts`, answering each request once its `end` arrives (so pipelined ones
 * follow), and returns every event and every byte written.
 */
function drive(
  text: string,
  cuts: number[],
  options?: HttpServerOptions,
): { records: Rec[]; written: string } {
  const http = new HttpServerProtocol(options);
  const bytes = latin1Bytes(text);
  const records: Rec[] = [];
  let written = "";
  const pump = () => {
    for (let batch = http.events(); batch.length > 0; batch = http.events()) {
      record(records, batch);
      for (const event of batch) if (event.type === "end") answer(http, "ok");
    }
    written += output(http);
  };
  const bounds = [0, ...cuts, bytes.length];
  for (let i = 0; i + 1 < bounds.length; i++) {
    http.receiveData(bytes.subarray(bounds[i], bounds[i + 1]));
    pump();
  }
  return { records, written };
}

/** Every offset from 1 to `length - 1`. */
function offsets(length: number): number[] {
  return Array.from({ length: length - 1 }, (_, i) => i + 1);
}

/** A request head: the start line, then the field lines, then the blank line. */
function head(start: string, lines: string[]): string {
  return start + "\r\n" + lines.map((line) => line + "\r\n").join("") + "\r\n";
}

/** A GET with a Host and the given start line. */
function get(start: string, lines: string[] = ["Host: a"]): string {
  return head(start, lines);
}

/** A POST to `/` with a Host, the given field lines and a body. */
function post(lines: string[], body = "", start = "POST / HTTP/1.1"): string {
  return head(start, ["Host: a", ...lines]) + body;
}

/** A chunked POST with the given (raw) body. */
function chunked(body: string, lines: string[] = []): string {
  return post(["Transfer-Encoding: chunked", ...lines], body);
}

/** A chunked body that would carry `SMUGGLED` inside one chunk. */
const SMUGGLED_CHUNK = `${SMUGGLED.length.toString(16)}\r\n${SMUGGLED}\r\n0\r\n\r\n`;

// ---- Malformed and ambiguous requests ----

/** A request that must be refused: 400 unless a rule gives another status. */
interface Malformed {
  name: string;
  bytes: string;
  status: number;
  options?: HttpServerOptions;
}

function row(name: string, bytes: string, status = 400, options?: HttpServerOptions): Malformed {
  return { name, bytes, status, options };
}

const MALFORMED: Malformed[] = [
  // Request line (RFC 9112 §2.2, §3, §2.3).
  row("two empty lines before the request line", "\r\n\r\n" + get("GET / HTTP/1.1")),
  row("a bare LF before the request line", "\n" + get("GET / HTTP/1.1")),
  row("a bare CR before the request line", "\r" + get("GET / HTTP/1.1")),
  row("a space before the method", get(" GET / HTTP/1.1")),
  row("two spaces after the method", get("GET  / HTTP/1.1")),
  row("tabs between the parts of the request line", get("GET\t/\tHTTP/1.1")),
  row("a request line without a version", get("GET /")),
  row("a request line without a target", get("GET HTTP/1.1")),
  row("a space after the version", get("GET / HTTP/1.1 ")),
  row("a fourth part in the request line", get("GET / HTTP/1.1 x")),
  row("a bare CR ending the request line", "GET / HTTP/1.1\rHost: a\r\n\r\n"),
  row("a lowercase protocol name", get("GET / http/1.1")),
  row("a version with two minor digits", get("GET / HTTP/1.10")),
  row("a version without a dot", get("GET / HTTP/11")),
  row("a version without a minor digit", get("GET / HTTP/1")),
  row("a protocol other than HTTP", get("GET / ICE/1.0")),
  row("HTTP/2.0", get("GET / HTTP/2.0"), 505),
  row("HTTP/3.0", get("GET / HTTP/3.0"), 505),
  row("HTTP/0.9", get("GET / HTTP/0.9"), 505),
  row("a method with a character that is not a token", get("GE@T / HTTP/1.1")),
  row("a NUL in the method", get("G\0ET / HTTP/1.1")),
  row("a NUL in the target", get("GET /a\0b HTTP/1.1")),
  row("a DEL in the target", get("GET /a\x7fb HTTP/1.1")),
  row("a non-ASCII byte in the target", get("GET /caf\xe9 HTTP/1.1")),
  row("`*` as the target of a GET", get("GET * HTTP/1.1")),
  row("a relative target", get("GET index.html HTTP/1.1")),
  row("authority-form with GET", get("GET a.example:80 HTTP/1.1")),
  row("absolute-form without an authority", get("GET http:///x HTTP/1.1")),
  row("a request line over the line limit", get(`GET /${"a".repeat(9000)} HTTP/1.1`), 414),
  // Host (RFC 9112 §3.2).
  row("an HTTP/1.1 request without Host", get("GET / HTTP/1.1", [])),
  row("two Host fields", get("GET / HTTP/1.1", ["Host: a", "Host: b"])),
  row("two equal Host fields", get("GET / HTTP/1.1", ["Host: a", "Host: a"])),
  row("two Host fields in HTTP/1.0", get("GET / HTTP/1.0", ["Host: a", "Host: b"])),
  row("a Host with a space inside", get("GET / HTTP/1.1", ["Host: a b"])),
  row("a Host with a path", get("GET / HTTP/1.1", ["Host: a/b"])),
  row("a Host with userinfo", get("GET / HTTP/1.1", ["Host: user@a"])),
  row("a Host with a port that is not a number", get("GET / HTTP/1.1", ["Host: a:b"])),
  // Field lines (RFC 9112 §2.2, §5).
  row("whitespace between a field name and its colon", get("GET / HTTP/1.1", ["Host: a", "X-A : 1"])),
  row("a tab between a field name and its colon", get("GET / HTTP/1.1", ["Host: a", "X-A\t: 1"])),
  row("an empty field name", get("GET / HTTP/1.1", ["Host: a", ": 1"])),
  row("a field name with a character that is not a token", get("GET / HTTP/1.1", ["Host: a", "X@A: 1"])),
  row("a field name with a non-ASCII byte", get("GET / HTTP/1.1", ["Host: a", "X-\xe9: 1"])),
  row("a field line without a colon", get("GET / HTTP/1.1", ["Host: a", "X-A"])),
  row("a NUL in a field name", get("GET / HTTP/1.1", ["Host: a", "X\0A: 1"])),
  row("a NUL in a field value", get("GET / HTTP/1.1", ["Host: a", "X-A: 1\x002"])),
  row("a DEL in a field value", get("GET / HTTP/1.1", ["Host: a", "X-A: 1\x7f"])),
  row("an escape character in a field value", get("GET / HTTP/1.1", ["Host: a", "X-A: \x1b[31m"])),
  row("obs-fold with a space", get("GET / HTTP/1.1", ["Host: a", "X-A: 1", " 2"])),
  row("obs-fold with a tab", get("GET / HTTP/1.1", ["Host: a", "X-A: 1", "\t2"])),
  row("whitespace before the first field line", get("GET / HTTP/1.1", [" Host: a"])),
  row(
    "a bare LF hiding a Content-Length in a field value",
    post([`X-A: 1\nContent-Length: ${SMUGGLED.length}`], SMUGGLED),
  ),
  row("a bare CR between field lines", "GET / HTTP/1.1\r\nHost: a\rX-A: 1\r\n\r\n"),
  row("a CR and a byte instead of the blank line", "GET / HTTP/1.1\r\nHost: a\r\n\rZ" + SMUGGLED),
  row("LF line endings throughout", "GET / HTTP/1.1\nHost: a\n\n"),
  row(
    "a field line over the line limit",
    get("GET / HTTP/1.1", ["Host: a", `X-A: ${"a".repeat(9000)}`]),
    431,
  ),
  row(
    "a head over the size limit",
    get("GET / HTTP/1.1", ["Host: a", ...[1, 2, 3].map((n) => `X-${n}: ${"a".repeat(6000)}`)]),
    431,
  ),
  row(
    "more field lines than allowed",
    get("GET / HTTP/1.1", ["Host: a", ...Array.from({ length: 128 }, (_, n) => `X-${n}: 1`)]),
    431,
  ),
  // Content-Length (RFC 9112 §6.3, RFC 9110 §8.6).
  row(
    "Content-Length then Transfer-Encoding (CL.TE)",
    post(["Content-Length: 6", "Transfer-Encoding: chunked"], "0\r\n\r\nX"),
  ),
  row(
    "Transfer-Encoding then Content-Length (TE.CL)",
    post(["Transfer-Encoding: chunked", "Content-Length: 4"], SMUGGLED_CHUNK),
  ),
  row(
    "Content-Length: 0 with Transfer-Encoding",
    post(["Content-Length: 0", "Transfer-Encoding: chunked"], SMUGGLED_CHUNK),
  ),
  row("a Content-Length with a plus sign", post(["Content-Length: +5"], "hello")),
  row("a negative Content-Length", post(["Content-Length: -5"], "hello")),
  row("a Content-Length with a space inside", post(["Content-Length: 1 0"], "helloworld")),
  row("a hexadecimal Content-Length", post(["Content-Length: 0x5"], "hello")),
  row("a Content-Length with a decimal point", post(["Content-Length: 5.0"], "hello")),
  row("a quoted Content-Length", post(['Content-Length: "5"'], "hello")),
  row("a Content-Length with a letter after it", post(["Content-Length: 5a"], "hello")),
  row("an empty Content-Length", post(["Content-Length:"], "hello")),
  row("a Content-Length list of equal values", post(["Content-Length: 5, 5"], "hello")),
  row("a Content-Length list of different values", post(["Content-Length: 5, 6"], "hello")),
  row("two equal Content-Length fields", post(["Content-Length: 5", "Content-Length: 5"], "hello")),
  row("two different Content-Length fields", post(["Content-Length: 5", "Content-Length: 6"], "hello")),
  row("whitespace before the colon of Content-Length", post(["Content-Length : 5"], "hello")),
  row("a Content-Length beyond 2^64", post(["Content-Length: 99999999999999999999999"], "hello"), 413),
  row("a Content-Length over maxBodySize", post(["Content-Length: 11"], "hello world"), 413, {
    maxBodySize: 10,
  }),
  // Transfer-Encoding (RFC 9112 §6.1, §6.3, §7; the TE.TE obfuscations).
  row("Transfer-Encoding: xchunked", post(["Transfer-Encoding: xchunked"], SMUGGLED_CHUNK)),
  row("Transfer-Encoding: chunk", post(["Transfer-Encoding: chunk"], SMUGGLED_CHUNK)),
  row(
    "whitespace before the colon of Transfer-Encoding",
    post(["Transfer-Encoding : chunked"], SMUGGLED_CHUNK),
  ),
  row(
    "a bare LF before the colon of Transfer-Encoding",
    post(["Transfer-Encoding\n: chunked"], SMUGGLED_CHUNK),
  ),
  row(
    "chunked, then a second Transfer-Encoding field with another coding",
    post(["Transfer-Encoding: chunked", "Transfer-encoding: x"], SMUGGLED_CHUNK),
  ),
  row(
    "an unknown coding, then chunked in a second field",
    post(["Transfer-Encoding: x", "Transfer-Encoding: chunked"], SMUGGLED_CHUNK),
    501,
  ),
  row("chunked twice in one field", post(["Transfer-Encoding: chunked, chunked"], SMUGGLED_CHUNK)),
  row(
    "chunked in two fields",
    post(["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"], SMUGGLED_CHUNK),
  ),
  row("Transfer-Encoding: identity", post(["Transfer-Encoding: identity"], SMUGGLED_CHUNK)),
  row("chunked followed by identity", post(["Transfer-Encoding: chunked, identity"], SMUGGLED_CHUNK)),
  row("a coding other than chunked, alone", post(["Transfer-Encoding: gzip"], SMUGGLED_CHUNK)),
  row("gzip before chunked", post(["Transfer-Encoding: gzip, chunked"], SMUGGLED_CHUNK), 501),
  row("a quoted chunked", post(['Transfer-Encoding: "chunked"'], SMUGGLED_CHUNK)),
  row("a parameter on chunked", post(["Transfer-Encoding: chunked;a=1"], SMUGGLED_CHUNK)),
  row("an empty list element after chunked", post(["Transfer-Encoding: chunked,"], SMUGGLED_CHUNK)),
  row("an empty list element before chunked", post(["Transfer-Encoding: , chunked"], SMUGGLED_CHUNK)),
  row("an empty Transfer-Encoding", post(["Transfer-Encoding:"], SMUGGLED_CHUNK)),
  row("a vertical tab before chunked", post(["Transfer-Encoding:\x0bchunked"], SMUGGLED_CHUNK)),
  row("a NUL after chunked", post(["Transfer-Encoding: chunked\0"], SMUGGLED_CHUNK)),
  row(
    "obs-fold hiding a Transfer-Encoding field",
    post(["X-A: 1", " Transfer-Encoding: chunked"], SMUGGLED_CHUNK),
  ),
  row(
    "chunked folded into Transfer-Encoding's value",
    post(["Transfer-Encoding:", " chunked"], SMUGGLED_CHUNK),
  ),
  row(
    "Transfer-Encoding in HTTP/1.0",
    post(["Transfer-Encoding: chunked"], SMUGGLED_CHUNK, "POST / HTTP/1.0"),
  ),
  row(
    "Transfer-Encoding and Content-Length in HTTP/1.0",
    post(["Transfer-Encoding: chunked", "Content-Length: 5"], "hello", "POST / HTTP/1.0"),
  ),
  // Chunked bodies (RFC 9112 §7.1).
  row("a chunk size with a 0x prefix", chunked("0x5\r\nhello\r\n0\r\n\r\n")),
  row("a space before the chunk size", chunked(" 5\r\nhello\r\n0\r\n\r\n")),
  row("a tab before the chunk size", chunked("\t5\r\nhello\r\n0\r\n\r\n")),
  row("whitespace after the chunk size", chunked("5 \r\nhello\r\n0\r\n\r\n")),
  row("a negative chunk size", chunked("-5\r\nhello\r\n0\r\n\r\n")),
  row("a plus sign before the chunk size", chunked("+5\r\nhello\r\n0\r\n\r\n")),
  row("a chunk size that is not hexadecimal", chunked("g\r\nhello\r\n0\r\n\r\n")),
  row("an empty chunk-size line", chunked("\r\nhello\r\n0\r\n\r\n")),
  row("a bare LF after the chunk size", chunked("5\nhello\r\n0\r\n\r\n")),
  row("a bare CR after the chunk size", chunked("5\rhello\r\n0\r\n\r\n")),
  row("a chunk size beyond 2^64", chunked(`1${"0".repeat(16)}\r\nhello\r\n0\r\n\r\n`), 413),
  row("a chunk extension without a name", chunked("5;\r\nhello\r\n0\r\n\r\n")),
  row("a chunk extension with only a value", chunked("5;=a\r\nhello\r\n0\r\n\r\n")),
  row("a chunk extension with an empty value", chunked("5;a=\r\nhello\r\n0\r\n\r\n")),
  row("a chunk extension value that is not a token", chunked("5;a=b@c\r\nhello\r\n0\r\n\r\n")),
  row("an unterminated quoted chunk extension", chunked('5;a="b\r\nhello\r\n0\r\n\r\n')),
  row("a bare LF in a chunk extension", chunked("5;a\nhello\r\n0\r\n\r\n")),
  row("a bare LF in a quoted chunk extension", chunked('5;a="b\nc"\r\nhello\r\n0\r\n\r\n')),
  row("a bare CR in a quoted chunk extension", chunked('5;a="b\rc"\r\nhello\r\n0\r\n\r\n')),
  row("a NUL in a chunk extension", chunked("5;a\0\r\nhello\r\n0\r\n\r\n")),
  row("whitespace after a chunk extension", chunked("5;a=b \r\nhello\r\n0\r\n\r\n")),
  row("a chunk-size line over 4096 bytes", chunked(`5;a=${"b".repeat(5000)}\r\nhello\r\n0\r\n\r\n`)),
  row("chunk data without its CRLF", chunked("5\r\nhello0\r\n\r\n")),
  row("chunk data longer than its size", chunked("3\r\nhello\r\n0\r\n\r\n")),
  row("a bare LF after chunk data", chunked("5\r\nhello\n0\r\n\r\n")),
  row("a bare CR after chunk data", chunked("5\r\nhello\r0\r\n\r\n")),
  row("a last chunk without the blank line", chunked("5\r\nhello\r\n0\r\n")),
  row("obs-fold in a trailer", chunked("0\r\nX-T: 1\r\n 2\r\n\r\n")),
  row("a trailer line without a colon", chunked("0\r\nX-T\r\n\r\n")),
  row("whitespace before the colon of a trailer", chunked("0\r\nX-T : 1\r\n\r\n")),
  row("a NUL in a trailer", chunked("0\r\nX-T: 1\x002\r\n\r\n")),
  row("a bare LF in a trailer", chunked("0\r\nX-T: 1\n\r\n")),
  row("more trailer fields than allowed", chunked("0\r\nX-1: 1\r\nX-2: 2\r\nX-3: 3\r\n\r\n"), 431, {
    maxHeaders: 2,
  }),
  row("one chunk over maxBodySize", chunked("b\r\nhello world\r\n0\r\n\r\n"), 413, { maxBodySize: 10 }),
  row("chunks adding up to more than maxBodySize", chunked("6\r\nhello \r\n6\r\nworld!\r\n0\r\n\r\n"), 413, {
    maxBodySize: 10,
  }),
];

/** Feeds a malformed request and `SMUGGLED` whole or a byte at a time; checks the refusal. */
function assertRefused(c: Malformed, byteByByte: boolean): void {
  const http = new HttpServerProtocol(c.options);
  const bytes = latin1Bytes(c.bytes + SMUGGLED);
  const records: Rec[] = [];
  if (byteByByte) {
    for (let i = 0; i < bytes.length; i++) {
      record(records, (http.receiveData(bytes.subarray(i, i + 1)), http.events()));
    }
  } else {
    http.receiveData(bytes);
    record(records, http.events());
  }
  const how = byteByByte ? "a byte at a time" : "in one piece";
  assert.deepEqual(records.filter((r) => r.type === "error"), [{ type: "error", status: c.status }], how);
  assert.equal(records[records.length - 1].type, "error", `nothing is read after the error (${how})`);
  // Only the malformed request's own head may have been read (its body was the bad part).
  const requests = records.filter((r) => r.type === "request");
  assert.ok(requests.length <= 1, how);
  assert.ok(requests.every((r) => r.target !== "/smuggled"), how);
  const written = output(http);
  assert.match(written, new RegExp(`^HTTP/1\\.1 ${c.status} `), how);
  assert.match(written, /\r\nConnection: close\r\n/, how);
  assert.equal(written.match(/HTTP\/1\.1 \d{3} /g)?.length, 1, `one response (${how})`);
  assert.equal(http.keepAlive, false);
  assert.equal(http.wantsData, false);
  // Bytes arriving later are not read either.
  http.receiveData(latin1Bytes(SMUGGLED));
  assert.deepEqual(http.events(), []);
  assert.deepEqual(http.dataToSend(), []);
  assert.throws(() => http.respond(200), TypeError);
}

for (const c of MALFORMED) {
  test(`HttpServerProtocol refuses ${c.name} with ${c.status}`, () => {
    assertRefused(c, false);
    assertRefused(c, true);
  });
}

test("HttpServerProtocol's error response is complete and says to close", () => {
  const http = open(get("GET / HTTP/1.1", []));
  assert.deepEqual(events(http), [{ type: "error", status: 400 }]);
  const written = output(http);
  const [headText, body] = written.split("\r\n\r\n");
  assert.equal(
    headText,
    "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n" +
      `Content-Length: ${body.length}\r\nConnection: close\r\nDate: <date>`,
  );
  assert.ok(body.length > 0 && body.endsWith("\n"));
  assert.ok(!body.includes("/"), "the body does not echo the request");
});

test("HttpServerProtocol answers each over-limit status with its reason phrase", () => {
  const cases: [string, string][] = [
    [get("GET / HTTP/2.0"), "HTTP/1.1 505 HTTP Version Not Supported\r\n"],
    [post(["Transfer-Encoding: gzip, chunked"]), "HTTP/1.1 501 Not Implemented\r\n"],
    [get(`GET /${"a".repeat(9000)} HTTP/1.1`), "HTTP/1.1 414 URI Too Long\r\n"],
    [
      get("GET / HTTP/1.1", ["Host: a", `X: ${"a".repeat(9000)}`]),
      "HTTP/1.1 431 Request Header Fields Too Large\r\n",
    ],
    [post(["Content-Length: 20000000"]), "HTTP/1.1 413 Content Too Large\r\n"],
  ];
  for (const [request, statusLine] of cases) {
    assert.ok(output(open(request)).startsWith(statusLine), statusLine);
  }
});

test("HttpServerProtocol refuses a malformed request that follows a kept-alive exchange", () => {
  // Pipelined in the same piece: read only after the first response ends, then answered 400.
  const http = open(get("GET /first HTTP/1.1") + get("GET / HTTP/1.1", []) + SMUGGLED);
  assert.deepEqual(events(http).map((r) => r.type), ["request", "end"]);
  answer(http, "first");
  assert.deepEqual(events(http), [{ type: "error", status: 400 }]);
  const written = output(http);
  assert.match(
    written,
    /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nfirstHTTP\/1\.1 400 Bad Request\r\n[^]*Connection: close/,
  );
  assert.equal(http.keepAlive, false);
  // Arriving in a later read.
  const later = open(get("GET /first HTTP/1.1"));
  events(later);
  answer(later, "first");
  output(later);
  later.receiveData(latin1Bytes(get("GET / HTTP/2.0") + SMUGGLED));
  assert.deepEqual(events(later), [{ type: "error", status: 505 }]);
  assert.match(output(later), /^HTTP\/1\.1 505 /);
  later.receiveData(latin1Bytes(SMUGGLED));
  assert.deepEqual(events(later), []);
});

test("HttpServerProtocol queues no second response for an error after the response started", () => {
  const http = open(chunked("5\r\nhello\r\n"));
  assert.deepEqual(events(http).map((r) => r.type), ["request", "data"]);
  http.respond(200, [], null);
  http.send(latin1Bytes("partial"));
  assert.equal(
    output(http),
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nDate: <date>\r\n\r\n7\r\npartial\r\n",
  );
  http.receiveData(latin1Bytes("zz\r\n" + SMUGGLED));
  assert.deepEqual(events(http), [{ type: "error", status: 400 }]);
  assert.equal(output(http), "", "no error response");
  assert.equal(http.keepAlive, false);
  // The cut-short body is not completed with a last chunk, so the client sees it truncated.
  http.send(latin1Bytes("more"));
  http.end();
  assert.equal(output(http), "");
  assert.throws(() => http.respond(400), TypeError);
  http.receiveData(latin1Bytes(SMUGGLED));
  assert.deepEqual(events(http), []);
});

test("HttpServerProtocol refuses an over-long body even after its response was sent", () => {
  const http = open(chunked("5\r\nhello\r\n"), { maxBodySize: 8 });
  events(http);
  http.respond(200, [], 2);
  http.send(latin1Bytes("ok"));
  output(http);
  http.receiveData(latin1Bytes("5\r\nworld\r\n0\r\n\r\n" + SMUGGLED));
  assert.deepEqual(events(http), [{ type: "error", status: 413 }]);
  http.end();
  assert.equal(output(http), "");
  assert.equal(http.keepAlive, false);
});

// A deterministic mutation fuzz: every outcome is events, or one error with one of our statuses.
test("HttpServerProtocol meets mutated pipelines with events or a refusal, never more", () => {
  const base = chunked('5;x="y"\r\nhello\r\n0\r\nT: v\r\n\r\n') + post(["Content-Length: 2"], "hi") +
    get("GET /c HTTP/1.1");
  const alphabet = '\r\n \t\0:;,0fx"-+GH/1';
  let seed = 0x2545f491;
  const next = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
  for (let round = 0; round < 2000; round++) {
    const chars = [...base];
    for (let edits = 1 + next(3); edits > 0; edits--) {
      const at = next(chars.length), c = alphabet[next(alphabet.length)];
      const kind = next(3);
      if (kind === 0) chars[at] = c;
      else if (kind === 1) chars.splice(at, 0, c);
      else chars.splice(at, 1);
    }
    const text = chars.join("");
    const cut = next(text.length);
    let result;
    try {
      result = drive(text, cut > 0 ? [cut] : []);
    } catch (error) {
      assert.fail(`round ${round} threw ${error} for ${JSON.stringify(text)}`);
    }
    const errors = result.records.filter((r) => r.type === "error");
    assert.ok(errors.length <= 1, `round ${round}`);
    if (errors.length === 1) {
      assert.equal(result.records[result.records.length - 1].type, "error", `round ${round}`);
      assert.ok([400, 413, 414, 431, 501, 505].includes(errors[0].status!), `round ${round}`);
      assert.match(
        result.written,
        new RegExp(`HTTP/1\\.1 ${errors[0].status} [^]*Connection: close`),
        `round ${round}`,
      );
    }
  }
});

// ---- Reading requests ----

test("HttpServerProtocol reads a GET and reports its fields", () => {
  const http = open(
    "GET /search?q=a%20b HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\nX-Multi: 1\r\nx-multi: 2\r\n\r\n",
  );
  assert.deepEqual(events(http), [
    {
      type: "request",
      method: "GET",
      target: "/search?q=a%20b",
      version: "HTTP/1.1",
      headers: [["Host", "example.com:8080"], ["Accept", "*/*"], ["X-Multi", "1"], ["x-multi", "2"]],
      bodyLength: 0,
      expectContinue: false,
      upgrade: false,
    },
    { type: "end", trailers: undefined },
  ]);
  assert.equal(http.requestDone, true);
  assert.equal(http.wantsData, false, "a complete request waits for its response");
});

test("HttpServerProtocol reads a Content-Length body split at every offset", () => {
  const text = post(["Content-Length: 11", "Content-Type: text/plain"], "hello world") +
    get("GET /next HTTP/1.1");
  const whole = drive(text, []);
  assert.deepEqual(whole.records.map((r) => r.type === "request" ? r.target : r.type), [
    "/",
    "data",
    "end",
    "/next",
    "end",
  ]);
  assert.deepEqual(whole.records[1], { type: "data", text: "hello world" });
  assert.equal((whole.records[0] as { bodyLength: number }).bodyLength, 11);
  for (const cut of offsets(text.length)) assert.deepEqual(drive(text, [cut]), whole, `split at ${cut}`);
  assert.deepEqual(drive(text, offsets(text.length)), whole, "a byte at a time");
});

test("HttpServerProtocol reads a chunked body with extensions and trailers split at every offset", () => {
  const body = '5;name=value\r\nhello\r\n1 ; a = "q\\"x" ;b\r\n,\r\nA\r\n0123456789\r\n' +
    "0\r\nX-Checksum: abc\r\nX-Other:  d \r\n\r\n";
  const text = head("PUT /upload HTTP/1.1", ["Host: a", "Transfer-Encoding: chunked"]) + body +
    get("GET /next HTTP/1.1");
  const whole = drive(text, []);
  assert.deepEqual(whole.records.slice(1, 3), [
    { type: "data", text: "hello,0123456789" },
    { type: "end", trailers: [["X-Checksum", "abc"], ["X-Other", "d"]] },
  ]);
  assert.equal((whole.records[0] as { bodyLength: null }).bodyLength, null);
  assert.equal((whole.records[3] as { target: string }).target, "/next");
  for (const cut of offsets(text.length)) assert.deepEqual(drive(text, [cut]), whole, `split at ${cut}`);
  assert.deepEqual(drive(text, offsets(text.length)), whole, "a byte at a time");
  for (let a = 1; a < text.length; a += 3) {
    for (let b = a + 1; b < text.length; b += 4) {
      assert.deepEqual(drive(text, [a, b]), whole, `split at ${a}, ${b}`);
    }
  }
});

test("HttpServerProtocol hands out body data as it arrives", () => {
  const http = open(post(["Content-Length: 10"], "hel"));
  assert.deepEqual(events(http).slice(1), [{ type: "data", text: "hel" }]);
  assert.equal(http.wantsData, true);
  assert.equal(http.requestDone, false);
  http.receiveData(latin1Bytes("lowor"));
  assert.deepEqual(events(http), [{ type: "data", text: "lowor" }]);
  http.receiveData(latin1Bytes("ld"));
  assert.deepEqual(events(http), [{ type: "data", text: "ld" }, { type: "end", trailers: undefined }]);
  assert.equal(http.requestDone, true);
});

test("HttpServerProtocol reads a body of exactly maxBodySize", () => {
  const byLength = open(post(["Content-Length: 10"], "0123456789"), { maxBodySize: 10 });
  assert.deepEqual(events(byLength).map((r) => r.type), ["request", "data", "end"]);
  const byChunks = open(chunked("6\r\n012345\r\n4\r\n6789\r\n0\r\n\r\n"), { maxBodySize: 10 });
  assert.deepEqual(events(byChunks).map((r) => r.type), ["request", "data", "end"]);
});

test("HttpServerProtocol reads Content-Length with leading zeros and surrounding whitespace", () => {
  assert.deepEqual(events(open(post(["Content-Length: 005"], "hello"))).slice(1), [
    { type: "data", text: "hello" },
    { type: "end", trailers: undefined },
  ]);
  assert.deepEqual(events(open(post([`Content-Length:\t${"0".repeat(30)}3 `], "abc"))).slice(1), [
    { type: "data", text: "abc" },
    { type: "end", trailers: undefined },
  ]);
});

test("HttpServerProtocol reads valid Transfer-Encoding spellings as chunked, so nothing is smuggled", () => {
  // Optional whitespace and case are part of the field's syntax: these all mean chunked (RFC 9110 §5.5, §10.1.4).
  for (
    const field of [
      "Transfer-Encoding:\tchunked",
      "Transfer-Encoding: chunked \t",
      "transfer-encoding: CHUNKED",
    ]
  ) {
    const http = open(post([field], SMUGGLED_CHUNK) + get("GET /next HTTP/1.1"));
    const records = events(http);
    assert.equal((records[0] as { bodyLength: null }).bodyLength, null, field);
    assert.deepEqual(records.slice(1), [
      { type: "data", text: SMUGGLED },
      { type: "end", trailers: undefined },
    ], field);
    answer(http);
    assert.deepEqual(
      events(http).map((r) => r.type === "request" ? r.target : r.type),
      ["/next", "end"],
      field,
    );
  }
});

test("HttpServerProtocol accepts chunk sizes of any case and with leading zeros, and empty chunks' end", () => {
  const http = open(
    chunked("00000000000000000005\r\nhello\r\na\r\n0123456789\r\nA\r\nabcdefghij\r\n000\r\n\r\n"),
  );
  assert.deepEqual(events(http).slice(1), [
    { type: "data", text: "hello0123456789abcdefghij" },
    { type: "end", trailers: undefined },
  ]);
});

test("HttpServerProtocol ignores one empty line before a request line (RFC 9112 §2.2)", () => {
  assert.deepEqual(events(open("\r\n" + get("GET / HTTP/1.1"))).map((r) => r.type), ["request", "end"]);
  // After a body, as some clients send; the CRLF split across reads.
  const http = open(post(["Content-Length: 2"], "hi") + "\r");
  assert.deepEqual(events(http).map((r) => r.type), ["request", "data", "end"]);
  answer(http);
  http.receiveData(latin1Bytes("\n" + get("GET /next HTTP/1.1")));
  assert.deepEqual(events(http).map((r) => r.type === "request" ? r.target : r.type), ["/next", "end"]);
});

test("HttpServerProtocol reads HTTP/1.x with a higher minor version as HTTP/1.1", () => {
  const http = open(get("GET / HTTP/1.2"));
  const [request] = events(http);
  assert.equal(request.type === "request" && request.version, "HTTP/1.1");
  http.respond(200, [], null);
  assert.match(output(http), /^HTTP\/1\.1 200 OK\r\nTransfer-Encoding: chunked\r\n/);
});

test("HttpServerProtocol reads HTTP/1.0 without Host", () => {
  const [request] = events(open(get("GET / HTTP/1.0", [])));
  assert.equal(request.type === "request" && request.version, "HTTP/1.0");
});

test("HttpServerProtocol accepts every form of a valid Host", () => {
  for (
    const host of [
      "example.com",
      "example.com:443",
      "[::1]:8080",
      "[::1]",
      "127.0.0.1:80",
      "a:",
      "",
      "xn--bcher-kva.example",
    ]
  ) {
    const [request] = events(open(get("GET / HTTP/1.1", [`Host: ${host}`])));
    assert.equal(request.type, "request", host);
  }
});

test("HttpServerProtocol delivers methods as sent: an unknown or lowercase one is the app's to refuse", () => {
  // Methods are case-sensitive (RFC 9110 §9.1): `get` is not GET, and `head` gets a body.
  for (const method of ["get", "PROPFIND", "M-SEARCH", "PURGE"]) {
    const [request] = events(open(get(`${method} / HTTP/1.1`)));
    assert.equal(request.type === "request" && request.method, method);
  }
  const http = open(get("head / HTTP/1.1"));
  events(http);
  answer(http, "body");
  assert.match(output(http), /Content-Length: 4\r\n[^]*\r\n\r\nbody$/);
});

test("HttpServerProtocol accepts origin-form, absolute-form, and `*` for OPTIONS", () => {
  for (
    const [start, target] of [
      ["GET //double HTTP/1.1", "//double"],
      ["GET http://example.com/a?b HTTP/1.1", "http://example.com/a?b"],
      ["GET https://example.com HTTP/1.1", "https://example.com"],
      ["OPTIONS * HTTP/1.1", "*"],
    ]
  ) {
    const [request] = events(open(get(start)));
    assert.equal(request.type === "request" && request.target, target);
  }
});

test("HttpServerProtocol keeps obs-text in field values", () => {
  const [request] = events(open(get("GET / HTTP/1.1", ["Host: a", "X-Name: caf\xe9 \x80\xff"])));
  assert.deepEqual(request.type === "request" && request.headers[1], ["X-Name", "caf\xe9 \x80\xff"]);
});

test("HttpServerProtocol flags an upgrade and hands over the bytes after it on detach()", () => {
  const http = open(
    get("GET /chat HTTP/1.1", ["Host: a", "Upgrade: websocket", "Connection: Upgrade"]) + "\x81\x82\x00\xff",
  );
  const [request, end] = events(http);
  assert.equal(request.type === "request" && request.upgrade, true);
  assert.equal(end.type, "end");
  http.receiveData(latin1Bytes("GET / HTTP/1.1\r\n\r\n"));
  assert.deepEqual(events(http), [], "held, not read as HTTP");
  assert.equal(latin1Text(http.detach()), "\x81\x82\x00\xffGET / HTTP/1.1\r\n\r\n");
  http.receiveData(latin1Bytes(SMUGGLED));
  assert.deepEqual(events(http), []);
  assert.deepEqual(http.dataToSend(), []);
  assert.equal(latin1Text(http.detach()), "");
  assert.equal(http.keepAlive, false);
});

test("HttpServerProtocol detach() returns nothing when no bytes followed the request", () => {
  const http = open(get("GET /chat HTTP/1.1", ["Host: a", "Upgrade: WebSocket", "Connection: upgrade"]));
  assert.equal((events(http)[0] as { upgrade: boolean }).upgrade, true);
  assert.equal(http.detach().length, 0);
});

// ---- Pipelining ----

test("HttpServerProtocol reads pipelined requests one at a time, in order", () => {
  const http = open(
    get("GET /1 HTTP/1.1") + post(["Content-Length: 3"], "two") + chunked("5\r\nthree\r\n0\r\n\r\n") +
      get("GET /4 HTTP/1.1"),
  );
  const targets = () =>
    events(http).map((r) => r.type === "request" ? r.target : r.type === "data" ? r.text : r.type);
  assert.deepEqual(targets(), ["/1", "end"]);
  assert.deepEqual(targets(), [], "the second waits for the first response");
  http.respond(200, [], 1);
  assert.deepEqual(targets(), [], "…to end, not just start");
  http.send(latin1Bytes("1"));
  http.end();
  assert.deepEqual(targets(), ["/", "two", "end"]);
  answer(http, "2");
  assert.deepEqual(targets(), ["/", "three", "end"]);
  answer(http, "3");
  assert.deepEqual(targets(), ["/4", "end"]);
  answer(http, "4");
  const written = output(http);
  assert.deepEqual(written.match(/\r\n\r\n\d/g), ["\r\n\r\n1", "\r\n\r\n2", "\r\n\r\n3", "\r\n\r\n4"]);
  assert.equal(http.keepAlive, true);
});

test("HttpServerProtocol holds bytes that arrive while a response is pending", () => {
  const http = open(get("GET /1 HTTP/1.1"));
  events(http);
  const second = get("GET /2 HTTP/1.1");
  for (const c of second) http.receiveData(latin1Bytes(c));
  assert.deepEqual(events(http), []);
  answer(http);
  assert.deepEqual(events(http).map((r) => r.type === "request" ? r.target : r.type), ["/2", "end"]);
});

// ---- Persistent connections (RFC 9112 §9.3) ----

test("HttpServerProtocol keeps an HTTP/1.1 connection open by default", () => {
  const http = open(get("GET / HTTP/1.1"));
  events(http);
  answer(http);
  assert.equal(output(http), "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nDate: <date>\r\n\r\nok");
  assert.equal(http.keepAlive, true);
  assert.equal(http.wantsData, true);
});

test("HttpServerProtocol closes after an HTTP/1.1 request with Connection: close", () => {
  for (const value of ["close", "CLOSE", "keep-alive, close", "foo,close"]) {
    const http = open(get("GET / HTTP/1.1", ["Host: a", `Connection: ${value}`]) + SMUGGLED);
    events(http);
    answer(http);
    assert.match(output(http), /^HTTP\/1\.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n/, value);
    assert.equal(http.keepAlive, false, value);
    assert.deepEqual(events(http), [], `pipelined bytes are dropped (${value})`);
  }
  // Several Connection fields are one list.
  const split = open(get("GET / HTTP/1.1", ["Host: a", "Connection: x", "Connection: close"]));
  events(split);
  answer(split);
  assert.equal(split.keepAlive, false);
});

test("HttpServerProtocol closes after an HTTP/1.0 request unless it asks to keep alive", () => {
  const plain = open(get("GET / HTTP/1.0") + SMUGGLED);
  events(plain);
  answer(plain);
  assert.match(output(plain), /\r\nConnection: close\r\n/);
  assert.equal(plain.keepAlive, false);
  assert.deepEqual(events(plain), []);

  const kept = open(get("GET / HTTP/1.0", ["Connection: Keep-Alive"]) + get("GET /next HTTP/1.0"));
  events(kept);
  answer(kept);
  assert.equal(
    output(kept),
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\nDate: <date>\r\n\r\nok",
  );
  assert.equal(kept.keepAlive, true);
  assert.deepEqual(events(kept).map((r) => r.type === "request" ? r.target : r.type), ["/next", "end"]);
});

test("HttpServerProtocol closes when the app says Connection: close", () => {
  const http = open(get("GET / HTTP/1.1") + SMUGGLED);
  events(http);
  http.respond(200, [["Connection", "Close"]], 0);
  http.end();
  assert.equal(
    output(http),
    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\nDate: <date>\r\n\r\n",
  );
  assert.equal(http.keepAlive, false);
  assert.deepEqual(events(http), []);
});

test("HttpServerProtocol closes when a response ends before the request body was read", () => {
  const http = open(post(["Content-Length: 10"], "hel"));
  events(http);
  answer(http, "early");
  assert.equal(http.keepAlive, false);
  // The rest of the body (which could look like a request) is never read.
  http.receiveData(latin1Bytes("loworld" + SMUGGLED));
  assert.deepEqual(events(http), []);
  // A chunked one likewise.
  const chunkedHttp = open(chunked("5\r\nhello\r\n"));
  events(chunkedHttp);
  answer(chunkedHttp);
  assert.equal(chunkedHttp.keepAlive, false);
  chunkedHttp.receiveData(latin1Bytes(`0\r\n\r\n${SMUGGLED}`));
  assert.deepEqual(events(chunkedHttp), []);
});

test("HttpServerProtocol keeps alive when a response started early ends after the body", () => {
  const http = open(post(["Content-Length: 4"], "ab"));
  events(http);
  http.respond(200, [], null);
  http.send(latin1Bytes("x"));
  http.receiveData(latin1Bytes("cd" + get("GET /next HTTP/1.1")));
  assert.deepEqual(events(http), [{ type: "data", text: "cd" }, { type: "end", trailers: undefined }]);
  http.end();
  assert.equal(http.keepAlive, true);
  assert.deepEqual(events(http).map((r) => r.type === "request" ? r.target : r.type), ["/next", "end"]);
});

// ---- Responses ----

test("HttpServerProtocol sends a response of unknown length chunked to HTTP/1.1", () => {
  const http = open(get("GET / HTTP/1.1"));
  events(http);
  http.respond(200, [["Content-Type", "text/plain"]], null);
  http.send(latin1Bytes("hello"));
  http.send(new Uint8Array(0));
  http.send(latin1Bytes("x".repeat(26)));
  http.end();
  assert.equal(
    output(http),
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nDate: <date>\r\n\r\n" +
      `5\r\nhello\r\n1a\r\n${"x".repeat(26)}\r\n0\r\n\r\n`,
  );
  assert.equal(http.keepAlive, true);
});

test("HttpServerProtocol sends a response of unknown length to HTTP/1.0 delimited by the close", () => {
  const http = open(get("GET / HTTP/1.0", ["Connection: keep-alive"]));
  events(http);
  http.respond(200, [], null);
  http.send(latin1Bytes("hello"));
  http.end();
  assert.equal(output(http), "HTTP/1.1 200 OK\r\nConnection: close\r\nDate: <date>\r\n\r\nhello");
  assert.equal(http.keepAlive, false);
});

test("HttpServerProtocol sends no body for HEAD but keeps its Content-Length", () => {
  const http = open(get("HEAD / HTTP/1.1") + get("HEAD /unknown HTTP/1.1"));
  events(http);
  http.respond(200, [["Content-Type", "text/html"]], 1234);
  http.send(latin1Bytes("ignored"));
  http.end();
  assert.equal(
    output(http),
    "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1234\r\nDate: <date>\r\n\r\n",
  );
  assert.equal(http.keepAlive, true);
  events(http);
  http.respond(200, [], null);
  http.send(latin1Bytes("ignored"));
  http.end();
  assert.equal(output(http), "HTTP/1.1 200 OK\r\nDate: <date>\r\n\r\n", "no framing and no last chunk");
  assert.equal(http.keepAlive, true);
});

test("HttpServerProtocol sends no body and no framing for 204 and 304", () => {
  for (const status of [204, 304]) {
    for (const length of [5, null]) {
      const http = open(get("GET / HTTP/1.1"));
      events(http);
      http.respond(status, [["ETag", '"x"']], length);
      http.send(latin1Bytes("ignored"));
      http.end();
      const written = output(http);
      assert.match(
        written,
        new RegExp(`^HTTP/1\\.1 ${status} [^\\r]+\\r\\nETag: "x"\\r\\nDate: <date>\\r\\n\\r\\n$`),
      );
      assert.equal(http.keepAlive, true);
    }
  }
});

test("HttpServerProtocol writes Date in IMF-fixdate unless the app gives one", () => {
  const http = open(get("GET / HTTP/1.1") + get("GET / HTTP/1.1"));
  events(http);
  answer(http);
  const written = latin1Text(http.dataToSend());
  assert.match(
    written,
    /\r\nDate: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT\r\n/,
  );
  events(http);
  http.respond(200, { Date: "Sun, 06 Nov 1994 08:49:37 GMT" }, 0);
  http.end();
  const second = latin1Text(http.dataToSend());
  assert.equal(second.match(/\r\nDate: /gi)?.length, 1);
  assert.match(second, /\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n/);
});

test("HttpServerProtocol drops the app's framing fields and writes its own", () => {
  const http = open(get("GET / HTTP/1.1"));
  events(http);
  http.respond(200, [
    ["X-Before", "1"],
    ["Content-Length", "999"],
    ["transfer-encoding", "gzip"],
    ["Connection", "keep-alive, upgrade"],
    ["Keep-Alive", "timeout=5"],
    ["Upgrade", "h2c"],
    ["TE", "trailers"],
    ["X-After", "2"],
  ], 2);
  http.send(latin1Bytes("ok"));
  http.end();
  assert.equal(
    output(http),
    "HTTP/1.1 200 OK\r\nX-Before: 1\r\nUpgrade: h2c\r\nX-After: 2\r\nContent-Length: 2\r\n" +
      "Connection: upgrade\r\nDate: <date>\r\n\r\nok",
    "an Upgrade field is kept, with the Connection: upgrade it needs (RFC 9110 §7.8)",
  );
  assert.equal(http.keepAlive, true);
});

test("HttpServerProtocol refuses responses the caller cannot send", () => {
  const idle = new HttpServerProtocol();
  assert.throws(() => idle.respond(200), TypeError, "no request yet");
  assert.throws(() => idle.send(latin1Bytes("x")), TypeError);
  assert.throws(() => idle.end(), TypeError);
  const http = open(get("GET / HTTP/1.1"));
  events(http);
  assert.throws(() => http.respond(100), RangeError);
  assert.throws(() => http.respond(600), RangeError);
  assert.throws(() => http.respond(200, [["X", "a\r\nSet-Cookie: b"]]), TypeError, "no header injection");
  answer(http);
  assert.throws(() => http.end(), TypeError, "ended twice");
  assert.throws(() => http.respond(200), TypeError, "no request waiting");
});

// ---- 100-continue (RFC 9110 §10.1.1) ----

test("HttpServerProtocol sends 100 Continue once, before the body", () => {
  const http = open(post(["Expect: 100-continue", "Content-Length: 5"]));
  const [request] = events(http);
  assert.equal(request.type === "request" && request.expectContinue, true);
  http.continue();
  http.continue();
  assert.equal(output(http), "HTTP/1.1 100 Continue\r\n\r\n");
  http.receiveData(latin1Bytes("hello"));
  assert.deepEqual(events(http).map((r) => r.type), ["data", "end"]);
  answer(http);
  assert.match(output(http), /^HTTP\/1\.1 200 OK\r\n/);
});

test("HttpServerProtocol sends no 100 Continue after the body started or a response started", () => {
  const afterBody = open(post(["Expect: 100-Continue", "Content-Length: 5"], "h"));
  assert.equal(
    (events(afterBody)[0] as { expectContinue: boolean }).expectContinue,
    true,
    "case-insensitive",
  );
  afterBody.continue();
  assert.equal(output(afterBody), "");

  const afterResponse = open(post(["Expect: 100-continue", "Content-Length: 5"]));
  events(afterResponse);
  afterResponse.respond(417, [], 0);
  afterResponse.continue();
  afterResponse.end();
  assert.match(output(afterResponse), /^HTTP\/1\.1 417 [^]*\r\n\r\n$/);
  assert.equal(afterResponse.keepAlive, false, "the unread body closes the connection");

  const chunkedBody = open(chunked("5\r\nhello\r\n", ["Expect: 100-continue"]));
  events(chunkedBody);
  chunkedBody.continue();
  assert.equal(output(chunkedBody), "");
});

test("HttpServerProtocol ignores Expect on HTTP/1.0 or with another expectation", () => {
  for (
    const request of [
      post(["Expect: 100-continue", "Content-Length: 5"], "", "POST / HTTP/1.0"),
      post(["Expect: something-else", "Content-Length: 5"]),
    ]
  ) {
    const http = open(request);
    assert.equal((events(http)[0] as { expectContinue: boolean }).expectContinue, false, request);
    http.continue();
    assert.equal(output(http), "", request);
  }
});

test("HttpServerProtocol sends no 100 Continue for a request without a body", () => {
  // Nothing is awaited: the framing says there is no content (RFC 9110 §10.1.1).
  const http = open(post(["Expect: 100-continue"]));
  assert.deepEqual(events(http).map((r) => r.type), ["request", "end"]);
  http.continue();
  assert.equal(output(http), "");
});
