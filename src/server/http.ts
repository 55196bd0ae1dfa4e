/**
 * Plain HTTP on a connection: the sans-IO HTTP/1.1 core's requests as web-standard `Request`s,
 * and `Response`s written back with their bodies streamed.
 *
 * @module
 */

import type { HttpRequestEvent, HttpServerEvent, HttpServerProtocol } from "../core/http_server.ts";
import { encodeUtf8 } from "../core/utf8.ts";
import { byteLength, concat } from "../core/bytes.ts";
import type { ProtocolError } from "../core/errors.ts";
import { ignore } from "../connection/closed.ts";
import type { Link } from "../connection/link.ts";
import type { Transport, TransportSink } from "../transport.ts";
import { type Deadlines, TurnEnd } from "../timers.ts";

/** Queued body bytes beyond which reading pauses until the application reads the body. */
const BODY_HIGH_WATER = 65536;
/** What a queued body piece costs besides its bytes (its entry, its typed array), in bytes. */
const PIECE_COST = 128;
/** Response body bytes queued beyond which they are written (and the write awaited) before more is read. */
const SEND_HIGH_WATER = 65536;
/** Responses to pipelined requests that may go out in one write… */
const PIPELINE_BATCH = 16;
/** …when each body is at most this long. */
const SMALL_RESPONSE = 4096;
/** Output pieces up to this total are joined into one write. */
const JOIN_LIMIT = 16384;
/** Microtask turns a body's next chunk may take and still count as already there (static bodies take 1–5). */
const SETTLE_HOPS = 8;
const NOT_YET = Symbol("not yet");
const INTERNAL_ERROR = encodeUtf8("internal error\n");

/**
 * What a `fetch` handler learns besides the request, in the shapes `Deno.serve` (`remoteAddr`) and
 * `Bun.serve` (`requestIP()`) give it, so helpers written for either (Hono's `getConnInfo`) work.
 *
 * @category Server
 *
 * @example Reading the client's address
 * ```ts
 * import { Sock } from "@sock/sock";
 *
 * const app = new Sock({
 *   fetch: (_request, info) => new Response(`you are ${info.remoteAddr.hostname}\n`),
 * });
 * ```
 */
export class ServeInfo {
  readonly #transport: Transport;

  /**
   * Describes one connection.
   *
   * @param transport The connection.
   */
  constructor(transport: Transport) {
    this.#transport = transport;
  }

  /** The client's address, as `Deno.serve` gives it. */
  get remoteAddr(): { transport: "tcp"; hostname: string; port: number } {
    const address = this.#transport.remoteAddress;
    return { transport: "tcp", hostname: address?.hostname ?? "", port: address?.port ?? 0 };
  }

  /**
   * The client's address, as `Bun.serve`'s `server.requestIP()` gives it.
   *
   * @param _request The request (every request of a connection comes from the same address).
   * @returns The address, port and family; `null` when unknown.
   */
  requestIP(_request?: Request): { address: string; port: number; family: "IPv4" | "IPv6" } | null {
    const address = this.#transport.remoteAddress;
    if (!address) return null;
    return {
      address: address.hostname,
      port: address.port,
      family: address.hostname.includes(":") ? "IPv6" : "IPv4",
    };
  }
}

/** Waits at most a few microtask turns for `promise`; `NOT_YET` when it takes longer. */
async function settled<T>(promise: Promise<T>): Promise<T | typeof NOT_YET> {
  let value: T | typeof NOT_YET = NOT_YET;
  let failed = false, error: unknown;
  promise.then((result) => value = result, (thrown) => {
    failed = true;
    error = thrown;
  });
  for (let i = 0; i < SETTLE_HOPS && value === NOT_YET && !failed; i++) await null;
  if (failed) throw error;
  return value;
}

/**
 * One connection's plain HTTP requests: reads them through the core, hands each out as a
 * `Request` whose body streams with backpressure and whose `signal` aborts when the client goes
 * away, and writes `Response`s back in order.
 *
 * Reading goes on while a handler runs, so the end of the connection is noticed, but stops once
 * the next request's head is in (pipelined requests wait in order), or 64 KiB of body wait unread.
 *
 * @example Serving one request by hand
 * ```ts ignore
 * const stalls = new Deadlines<HttpSession>(1000, (session) => session.stall());
 * const session = new HttpSession(link, new HttpServerProtocol(), "http:", stalls, 30000);
 * const event = await session.nextRequest();
 * if (event) await session.respond(event, new Response("hi"));
 * ```
 */
export class HttpSession implements TransportSink {
  /** The connection. */
  readonly link: Link;
  /** Its HTTP/1.1 protocol. */
  readonly http: HttpServerProtocol;
  readonly #scheme: string;
  readonly #stalls: Deadlines<HttpSession>;
  readonly #bodyTimeout: number;
  #stalled = false;
  /** Events not taken yet: the current body's pieces, its end, the next request, an error. */
  #queue: HttpServerEvent[] = [];
  #queuedBytes = 0;
  #reading = false;
  #ended = false;
  #wake: (() => void) | undefined;
  /** The current request's signal, once its handler read it. */
  #abort: AbortController | undefined;
  /** Whether the current request may become a WebSocket: nothing more is read while it is handled. */
  #holding = false;
  /** Called once when the first byte of the awaited request head arrives. */
  #onFirstByte: (() => void) | undefined;
  /** Bytes were read past the current request (pipelined): the core holds them. */
  #heldSome = false;
  /** Waiting for a request of which nothing arrived yet. */
  #idle = false;
  /** Counts the requests taken: a body stream reads only while its request is the current one. */
  #requests = 0;

  /**
   * Serves the requests of one connection.
   *
   * @param link The connection, not started yet.
   * @param http Its protocol.
   * @param scheme `http:` or `https:`, for request URLs.
   * @param stalls The deadlines of bodies waited for, shared by the server's sessions.
   * @param bodyTimeout How long a body may go without a byte while it is read, in ms.
   */
  constructor(
    link: Link,
    http: HttpServerProtocol,
    scheme: string,
    stalls: Deadlines<HttpSession>,
    bodyTimeout: number,
  ) {
    this.link = link;
    this.http = http;
    this.#scheme = scheme;
    this.#stalls = stalls;
    this.#bodyTimeout = bodyTimeout;
    link.open(this); // Paused until the first wait.
  }

  /** Whether it waits for the next request with nothing of it received yet. */
  get idle(): boolean {
    return this.#idle;
  }

  /** A body went without a byte for too long: the request body fails, and the connection closes. */
  stall(): void {
    this.#stalled = true;
    this.link.close();
  }

  /** Whether the request failed (malformed, or over a limit) while its handler ran: the client's fault. */
  get failed(): boolean {
    return this.refusal !== undefined;
  }

  /** Why the request was refused (malformed, or over a limit), if it was: its `status` is the answer's. */
  get refusal(): ProtocolError | undefined {
    for (const event of this.#queue) if (event.type === "error") return event.error;
    return undefined;
  }

  /** Whether the connection ended (the client went away, or it was closed). */
  get ended(): boolean {
    return this.#ended;
  }

  /** Whether the next request was read already: the client pipelines. */
  get pipelined(): boolean {
    return this.#queue.some((event) => event.type === "request");
  }

  /**
   * The next request's head.
   *
   * @param onFirstByte Called when its first byte arrives, unless it arrived already.
   * @returns The request, or `undefined` when the connection ended or the request was refused
   *   (its error response is queued: write it with `flush()`, then close).
   */
  async nextRequest(onFirstByte?: () => void): Promise<HttpRequestEvent | undefined> {
    this.#abort = undefined;
    this.#holding = false;
    // The last request's body, if still read, fails: the queue is the next request's now.
    this.#requests++;
    this.#wakeUp();
    // What the last request's handler left of its body.
    while (this.#queue.length > 0 && (this.#queue[0]!.type === "data" || this.#queue[0]!.type === "end")) {
      const left = this.#queue.shift()!;
      if (left.type === "data") this.#queuedBytes -= pieceCost(left.data);
    }
    const first = () =>
      this.#queue.length > 0 && (this.#queue[0]!.type === "request" || this.#queue[0]!.type === "error");
    this.#idle = !this.#heldSome && this.#queue.length === 0;
    this.#onFirstByte = this.#idle ? onFirstByte : undefined;
    await this.#wait(first);
    this.#idle = false;
    this.#onFirstByte = undefined;
    const event = this.#queue[0];
    if (!event || event.type !== "request") return undefined;
    this.#queue.shift();
    this.#holding = event.upgrade;
    if (!this.#holding) this.#pump(); // Notices the client going away while the handler runs.
    return event;
  }

  /**
   * The web-standard request for `event`.
   *
   * @param event The request's head.
   * @returns The request, or `undefined` when it cannot be one (a host or method `Request` refuses,
   *   or a method it would change into another).
   */
  request(event: HttpRequestEvent): Request | undefined {
    const target = event.target;
    const url = target.charCodeAt(0) === 0x2f
      ? this.#scheme + "//" + (event.headers.get("host") || "localhost") + target
      : target === "*"
      ? this.#scheme + "//" + (event.headers.get("host") || "localhost") + "/"
      : target;
    const hasBody = event.bodyLength !== 0 && event.method !== "GET" && event.method !== "HEAD";
    let request: Request;
    try {
      // Fields as pairs: on Deno, a `Headers` object costs 7.6 µs per Request against 4.8 µs.
      request = new Request(url, {
        method: event.method,
        headers: [...event.headers],
        body: hasBody ? this.#body(event) : null,
        // @ts-ignore: `duplex` is needed for a streamed body (Deno, Node), but not in every lib's RequestInit.
        duplex: "half",
      });
    } catch {
      return undefined;
    }
    // Bun's `Request` makes a method it does not know (FOO, or foo) a GET: the handler would see
    // another request than the client sent. Fetch upper-cases only the six it normalizes.
    if (request.method !== event.method && request.method !== event.method.toUpperCase()) return undefined;
    // `signal` is made when first read: a signal given to the constructor costs 5 µs per request on
    // Deno (it makes a dependent signal), and most handlers never read it.
    const id = this.#requests;
    let abort: AbortController | undefined;
    Object.defineProperty(request, "signal", {
      configurable: true,
      get: () => {
        if (!abort) {
          abort = new AbortController();
          if (this.#ended || id !== this.#requests) abort.abort();
          else this.#abort = abort;
        }
        return abort.signal;
      },
    });
    return request;
  }

  /**
   * Writes `response` as the answer to the current request, its body streamed as it comes.
   *
   * @param event The request it answers.
   * @param response The response.
   * @returns Once written; rejects with what reading the response's body threw (the connection is
   *   closed then, unless the 500 that replaces it could still be sent).
   */
  async respond(event: HttpRequestEvent, response: Response): Promise<void> {
    const http = this.http;
    // The request failed under the handler (a malformed body): its error response is queued instead.
    if (this.failed) return await this.flush();
    const fields: [string, string][] = [];
    let declared: number | null = null;
    response.headers.forEach((value, name) => {
      if (name === "content-length" && /^[0-9]{1,15}$/.test(value)) declared = Number(value);
      fields.push([name, value]);
    });
    // Fetch's Headers iteration joins Set-Cookie fields; each must stay its own field.
    const cookies = response.headers.getSetCookie?.() ?? [];
    if (cookies.length > 1) {
      for (let i = fields.length - 1; i >= 0; i--) if (fields[i]![0] === "set-cookie") fields.splice(i, 1);
      for (const cookie of cookies) fields.push(["set-cookie", cookie]);
    }
    const body = response.body;
    // Without a body, a declared length is kept for HEAD only (the length a GET gets): any other
    // response says 0, or the bytes of the next response would be read as its body.
    const none = event.method === "HEAD" ? declared ?? 0 : 0;
    /** Whether the head is queued: before that, a failure is answered 500 instead. */
    let started = false;
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    try {
      if (body === null || event.method === "HEAD" && declared !== null) {
        http.respond(response.status, fields, none);
        started = true;
        this.#end();
        if (body) body.cancel().catch(ignore);
        return await this.#flushEnded();
      }
      reader = body.getReader();
      let result: ReadableStreamReadResult<Uint8Array> = await reader.read();
      if (result.done) {
        http.respond(response.status, fields, none);
        started = true;
        this.#end();
        return await this.#flushEnded();
      }
      if (!(result.value instanceof Uint8Array)) {
        throw new TypeError("a response body chunk is not a Uint8Array");
      }
      let next: Promise<ReadableStreamReadResult<Uint8Array>> | undefined = reader.read();
      const after = await settled(next);
      const length = declared ?? (after !== NOT_YET && after.done ? chunkLength(result.value) : null);
      http.respond(response.status, fields, length);
      started = true;
      if (event.method === "HEAD") {
        reader.cancel().catch(ignore);
        this.#end();
        return await this.#flushEnded();
      }
      let sent = 0, queued = 0;
      for (;;) {
        const chunk = result.value;
        if (!(chunk instanceof Uint8Array)) throw new TypeError("a response body chunk is not a Uint8Array");
        sent += chunk.length;
        if (length !== null && sent > length) {
          throw new TypeError("the response body is longer than its Content-Length");
        }
        http.send(chunk);
        queued += chunk.length;
        if (next === undefined) next = reader.read();
        const settledNext = await settled(next);
        if (settledNext === NOT_YET || queued >= SEND_HIGH_WATER) {
          // Nothing more yet (a stream being produced), or enough waits: what is here goes out now,
          // and a client that does not read holds the stream back.
          await this.flush();
          queued = 0;
          if (this.#ended) throw new TypeError("the client went away");
          result = settledNext === NOT_YET ? await next : settledNext;
        } else result = settledNext;
        next = undefined;
        if (result.done) break;
      }
      if (length !== null && sent !== length) {
        throw new TypeError("the response body is shorter than its Content-Length");
      }
      this.#end();
      await (sent <= SMALL_RESPONSE ? this.#flushEnded() : this.flush());
    } catch (error) {
      reader?.cancel(error).catch(ignore);
      if (!started && !this.#ended) {
        // Nothing of the response was queued: a 500 replaces it, then the connection closes.
        try {
          http.respond(500, [["Content-Type", "text/plain; charset=utf-8"], ["Connection", "close"]], 15);
          http.send(INTERNAL_ERROR);
          this.#end();
        } catch {
          // The request failed meanwhile: its own error response is queued instead.
        }
        await this.flush().catch(ignore);
      }
      throw error;
    }
  }

  /**
   * After a small response: writes it, unless the next request is here already (pipelined), whose
   * response then goes out in the same write (at most `PIPELINE_BATCH` responses per write).
   */
  #flushEnded(): Promise<void> {
    if (++this.#batched < PIPELINE_BATCH && !this.#ended && this.http.keepAlive) {
      for (const event of this.#queue) {
        if (event.type !== "request") continue;
        // Written at the end of this turn at the latest, should the next handler take longer.
        if (!this.#turnFlush) {
          this.#turnFlush = true;
          HttpSession.#turnEnd.add(this);
        }
        return Promise.resolve();
      }
    }
    return this.flush();
  }

  /**
   * Writes what the protocol queued; resolves once the transport took it. Writes go out one after
   * another: one called while another is in flight waits for it.
   */
  flush(): Promise<void> {
    if (this.#writing) return this.#writing.then(() => this.flush());
    this.#batched = 0;
    const chunks = this.http.dataToSend();
    if (chunks.length === 0) return Promise.resolve();
    const size = byteLength(chunks);
    try {
      const written = this.link.transport.write(
        chunks.length > 1 && size <= JOIN_LIMIT ? [concat(chunks, size)] : chunks,
      );
      if (!written) return Promise.resolve();
      const writing: Promise<void> = this.#writing = written.then(undefined, (error) => {
        // The client went away (a reset while a response was written): it ends the session now,
        // before reading notices, so that it is not taken for a server error.
        this.end();
        throw error;
      }).finally(() => {
        if (this.#writing === writing) this.#writing = undefined;
      });
      return writing;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** The write in flight, if any. */
  #writing: Promise<void> | undefined;
  /** Responses queued since the last write. */
  #batched = 0;
  /** A write at the end of this turn is due. */
  #turnFlush = false;
  /** Writes what sessions batched during a turn. */
  static #turnEnd = new TurnEnd<HttpSession>((session) => {
    session.#turnFlush = false;
    session.flush().catch(() => session.link.close());
  });

  /** The body stream of the current request: pieces as the client sends them, read on demand. */
  #body(event: HttpRequestEvent): ReadableStream<Uint8Array> {
    let asked = false;
    const request = this.#requests;
    const over = () => request !== this.#requests;
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        if (!asked && !over()) {
          asked = true;
          if (event.expectContinue) {
            this.http.continue();
            await this.flush();
          }
        }
        const ready = () => over() || (this.#queue.length > 0 && this.#queue[0]!.type !== "request");
        if (!ready()) {
          this.#stalls.set(this, this.#bodyTimeout);
          await this.#wait(ready);
          this.#stalls.delete(this);
        }
        if (over()) {
          controller.error(new TypeError("the request body was not read before its response was sent"));
          return;
        }
        const piece = this.#queue[0];
        if (piece === undefined || piece.type === "request") {
          controller.error(
            new TypeError(
              this.#stalled
                ? "the request body timed out"
                : "the client went away before the end of the request body",
            ),
          );
          return;
        }
        if (piece.type === "error") {
          controller.error(piece.error);
          return;
        }
        this.#queue.shift();
        if (piece.type === "end") return controller.close();
        this.#queuedBytes -= pieceCost(piece.data);
        controller.enqueue(piece.data);
        this.#pump();
      },
      cancel: () => {
        // Unread body bytes would be read as the next request: this connection closes after the response.
      },
    }, { highWaterMark: 0 });
  }

  /** Waits until `ready()` or the end of the connection, reading meanwhile. */
  async #wait(ready: () => boolean): Promise<void> {
    while (!ready() && !this.#ended) {
      this.#pump();
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
  }

  /** Reads, unless enough waits already. */
  #pump(): void {
    if (this.#reading || this.#ended || this.#full()) return;
    this.#reading = true;
    this.link.resume();
  }

  /** Whether reading should pause: the next request is in, or the body waits to be read. */
  #full(): boolean {
    const head = this.#queue[this.#queue.length - 1];
    return this.#holding || this.#queuedBytes >= BODY_HIGH_WATER ||
      (head !== undefined && (head.type === "request" || head.type === "error")) ||
      (this.http.requestDone && this.#queue.length === 0 && !this.http.wantsData && this.#heldSome);
  }

  /** {@inheritDoc TransportSink.data} */
  data(chunk: Uint8Array): boolean {
    if (!this.http.wantsData) this.#heldSome = true;
    const onFirstByte = this.#onFirstByte;
    this.#onFirstByte = undefined;
    this.#idle = false;
    onFirstByte?.();
    this.http.receiveData(chunk);
    this.#take(true);
    if (this.#full()) {
      this.#reading = false;
      this.link.pause();
    }
    this.#wakeUp();
    return false; // Body bytes are copied.
  }

  /** {@inheritDoc TransportSink.end} */
  end(): void {
    this.#ended = true;
    this.#abort?.abort();
    this.#wakeUp();
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /**
   * Moves the protocol's events to the queue, copying body bytes when they are views of a read
   * buffer. The pieces of one read (a chunked body's chunks) become one: a queued piece costs far
   * more than its bytes, and a body of 1-byte chunks held 45 MB per connection on Deno (20 on Bun)
   * before reading paused, where `BODY_HIGH_WATER` allows 64 KiB.
   */
  #take(copy: boolean): void {
    let run: Uint8Array[] = [];
    for (const event of this.http.events()) {
      if (event.type === "data") {
        run.push(event.data);
        continue;
      }
      if (run.length > 0) {
        this.#queueData(run, copy);
        run = [];
      }
      this.#queue.push(event);
    }
    if (run.length > 0) this.#queueData(run, copy);
  }

  /** Queues consecutive body pieces as one, counted against `BODY_HIGH_WATER`. */
  #queueData(pieces: Uint8Array[], copy: boolean): void {
    const data = pieces.length > 1 ? concat(pieces) : copy ? pieces[0]!.slice() : pieces[0]!;
    this.#queuedBytes += pieceCost(data);
    this.#queue.push({ type: "data", data });
  }

  /** Ends the response; the next request's events that came with earlier reads (pipelined) follow. */
  #end(): void {
    this.http.end();
    this.#heldSome = false;
    this.#take(false);
  }
}

/**
 * What a queued body piece counts for against `BODY_HIGH_WATER`: its bytes and the cost of the
 * piece itself, so that a client sending its body a byte per read is paused as early as its bytes
 * would pause it.
 */
function pieceCost(data: Uint8Array): number {
  return data.length + PIECE_COST;
}

/** The length of a body chunk, 0 for anything but bytes. */
function chunkLength(chunk: unknown): number {
  return chunk instanceof Uint8Array ? chunk.length : 0;
}
