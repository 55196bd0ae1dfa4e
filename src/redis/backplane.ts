/**
 * A {@linkcode Backplane} over Redis pub/sub: every `Sock.publish` goes to a Redis channel, and
 * each process hands its server the messages the other processes published. Two connections per
 * backplane (a subscriber and a publisher), RESP2, no runtime dependencies.
 *
 * Delivery is Redis pub/sub's: at most once, in order per publisher. While the publisher is
 * disconnected its messages wait in a bounded queue and go out on reconnection; messages written
 * but not yet acknowledged when a connection drops, and messages published while a subscriber is
 * reconnecting, may be lost (counted in `stats.lost` where this process can know).
 *
 * @module
 */

import type { Message } from "../connection/inbox.ts";
import type { Backplane } from "../server/backplane.ts";
import type { Adapter, Endpoint, Transport } from "../transport.ts";
import { detectAdapter } from "../adapters/mod.ts";
import { unbracket } from "../core/url.ts";
import { utf8Length } from "../core/utf8.ts";
import { encodeCommand, RespDecoder, RespError, type RespValue } from "./resp.ts";
import { startTimer } from "../timers.ts";

/** How long one connection attempt (TCP, TLS, AUTH and SELECT) may take, in ms. */
const CONNECT_TIMEOUT = 10000;
/** First reconnection delay cap, doubled per failed attempt up to {@linkcode BACKOFF_MAX}, in ms. */
const BACKOFF_BASE = 100;
const BACKOFF_MAX = 5000;
/** Envelope: kind byte, then the origin id. */
const KIND_TEXT = 0, KIND_BINARY = 1;
const ORIGIN_LENGTH = 8;
const HEADER_LENGTH = 1 + ORIGIN_LENGTH;

const PING = encodeCommand(["PING"]);

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();

/**
 * Options for {@linkcode RedisBackplane}.
 *
 * @category Redis
 */
export interface RedisBackplaneOptions {
  /**
   * Where Redis is: `redis://[user:password@]host[:port][/db]`, or `rediss://…` for TLS. Default
   * `redis://127.0.0.1:6379`.
   */
  url?: string;
  /** Prepended to every topic to name its Redis channel. Default `"sock:"`. */
  channelPrefix?: string;
  /** The runtime adapter to connect with; detected by default. */
  adapter?: Adapter;
  /**
   * Most publishes kept while the publisher connection is down (or cannot write fast enough); the
   * oldest are dropped beyond it and counted in `stats.lost`. Default 10,000.
   */
  maxQueued?: number;
  /** Sharded pub/sub (`SSUBSCRIBE`/`SPUBLISH`, Redis 7 and later). Default `false`. */
  sharded?: boolean;
  /**
   * A connection that has been silent this many ms is sent a `PING`; one silent for twice as long
   * is taken as dead (a half-open TCP connection, a stopped server), closed and made again. `0`
   * turns it off. Default 10,000.
   */
  pingInterval?: number;
  /**
   * Told about every failure the backplane recovers from by itself: a failed connection attempt, a
   * dropped connection, an error reply, a `deliver` that threw. Default: ignored.
   */
  onError?: (error: unknown) => void;
}

/**
 * Counters of a {@linkcode RedisBackplane}.
 *
 * @category Redis
 */
export interface RedisBackplaneStats {
  /** Publishes Redis acknowledged. */
  published: number;
  /** Messages from other processes handed to `deliver`. */
  delivered: number;
  /**
   * Publishes known lost: dropped from a full queue, written but unacknowledged when the publisher
   * connection dropped, or refused by Redis.
   */
  lost: number;
  /** Connections (subscriber or publisher) made again after a drop or a failed attempt. */
  reconnects: number;
}

/** Where and how to connect, parsed from the URL. */
interface Target {
  endpoint: Endpoint;
  username: string;
  password: string;
  db: number | undefined;
}

/**
 * Parses a `redis://` or `rediss://` URL.
 *
 * @throws {TypeError} On any other URL.
 */
function parseUrl(url: string): Target {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError("RedisBackplane: the url is not a valid URL");
  }
  const tls = parsed.protocol === "rediss:";
  if (!tls && parsed.protocol !== "redis:") {
    throw new TypeError(`RedisBackplane: the url's scheme must be redis: or rediss:, not ${parsed.protocol}`);
  }
  const hostname = unbracket(parsed.hostname) || "127.0.0.1";
  const port = parsed.port === "" ? 6379 : Number(parsed.port);
  const path = parsed.pathname.replace(/^\/+|\/+$/g, "");
  let db: number | undefined;
  if (path !== "") {
    if (!/^\d{1,9}$/.test(path)) {
      throw new TypeError("RedisBackplane: the url's path must be a database number");
    }
    db = Number(path);
  }
  const endpoint: Endpoint = { hostname, port };
  if (tls) endpoint.tls = true;
  return {
    endpoint,
    username: decoded(parsed.username),
    password: decoded(parsed.password),
    db,
  };
}

/** A URL's percent-encoded user name or password, decoded; a malformed one is a `TypeError`. */
function decoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new TypeError("RedisBackplane: the url's credentials are not well percent-encoded");
  }
}

/** Rejects after `ms` unless `promise` settles first (the timer does not outlive it). */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = startTimer(() => reject(new Error(`RedisBackplane: ${what} timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** What waits for a reply: a command's promise, or `undefined` for a reply that goes to `onValue`. */
type Waiter = { resolve: (value: RespValue) => void; reject: (error: Error) => void } | undefined;

/**
 * One Redis connection: writes one batch at a time and decodes replies. On an `ordered` connection
 * (the publisher) every command gets exactly one reply, in order: those of
 * {@linkcode RedisConnection.command} resolve its promise, the others go to `onValue`. On the
 * subscriber, whose replies are pushes, only commands sent before subscribing may be awaited.
 */
class RedisConnection {
  readonly #transport: Transport;
  readonly #decoder = new RespDecoder();
  readonly #ordered: boolean;
  readonly #onValue: (value: RespValue) => void;
  readonly #onEnd: () => void;
  readonly #onDrain: () => void;
  #out: Uint8Array[] = [];
  #writing = false;
  #ended = false;
  /** Replies awaited, in the order their commands went out, from `#next` on. */
  #waiting: Waiter[] = [];
  #next = 0;
  /** When the last bytes arrived (`performance.now()`), for the keepalive. */
  lastHeard = performance.now();

  constructor(
    transport: Transport,
    ordered: boolean,
    onValue: (value: RespValue) => void,
    onEnd: () => void,
    onDrain: () => void,
  ) {
    this.#transport = transport;
    this.#ordered = ordered;
    this.#onValue = onValue;
    this.#onEnd = onEnd;
    this.#onDrain = onDrain;
  }

  /** Whether the stream ended (or was closed). */
  get ended(): boolean {
    return this.#ended;
  }

  /** Whether nothing waits to be written. */
  get idle(): boolean {
    return !this.#writing && this.#out.length === 0 && !this.#ended;
  }

  start(): void {
    this.#transport.start({
      data: (chunk) => {
        if (this.#ended) return false;
        this.lastHeard = performance.now();
        for (const value of this.#decoder.write(chunk)) {
          const waiter = this.#shift();
          if (waiter) waiter.resolve(value);
          else this.#onValue(value);
          if (this.#ended) break;
        }
        return false;
      },
      end: () => this.#end(),
    });
  }

  /** Sends a command whose reply is awaited. */
  command(args: readonly (string | Uint8Array)[]): Promise<RespValue> {
    if (this.#ended) return Promise.reject(new Error("RedisBackplane: connection closed"));
    return new Promise((resolve, reject) => {
      this.#waiting.push({ resolve, reject });
      this.#out.push(encodeCommand(args));
      this.#flush();
    });
  }

  /** Sends encoded commands whose replies go to `onValue`. */
  send(commands: Uint8Array[]): void {
    if (this.#ended) return;
    for (const command of commands) {
      this.#out.push(command);
      if (this.#ordered) this.#waiting.push(undefined);
    }
    this.#flush();
  }

  close(): void {
    this.#transport.close();
    this.#end();
  }

  /** The next waiter, if any; the array is compacted now and then rather than shifted per reply. */
  #shift(): Waiter {
    if (this.#next >= this.#waiting.length) return undefined;
    const waiter = this.#waiting[this.#next];
    this.#waiting[this.#next++] = undefined;
    if (this.#next === this.#waiting.length) {
      this.#waiting = [];
      this.#next = 0;
    } else if (this.#next >= 1024 && this.#next * 2 >= this.#waiting.length) {
      this.#waiting = this.#waiting.slice(this.#next);
      this.#next = 0;
    }
    return waiter;
  }

  #flush(): void {
    while (!this.#writing && !this.#ended && this.#out.length > 0) {
      const chunks = this.#out;
      this.#out = [];
      let result: Promise<void> | void;
      try {
        result = this.#transport.write(chunks);
      } catch {
        this.close();
        return;
      }
      if (result) {
        this.#writing = true;
        result.then(
          () => {
            this.#writing = false;
            this.#flush();
            if (this.idle) this.#onDrain();
          },
          () => this.close(),
        );
        return;
      }
    }
    if (this.idle) this.#onDrain();
  }

  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#out = [];
    const error = new Error("RedisBackplane: connection closed");
    const waiting = this.#waiting.slice(this.#next);
    this.#waiting = [];
    this.#next = 0;
    for (const waiter of waiting) waiter?.reject(error);
    this.#onEnd();
  }
}

/** One of the two connections and its reconnection state. */
interface Role {
  readonly name: "subscriber" | "publisher";
  connection: RedisConnection | undefined;
  /** Connected, authenticated and with its database selected. */
  ready: boolean;
  /** Failed attempts since the last success, for the backoff. */
  attempt: number;
  /** Whether it has ever been ready or failed (a later success is a reconnection). */
  tried: boolean;
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Resolves when the first attempt finished, either way. */
  firstAttempt: Promise<void>;
  settleFirst: () => void;
}

function newRole(name: Role["name"]): Role {
  let settleFirst!: () => void;
  const firstAttempt = new Promise<void>((resolve) => settleFirst = resolve);
  return {
    name,
    connection: undefined,
    ready: false,
    attempt: 0,
    tried: false,
    timer: undefined,
    firstAttempt,
    settleFirst,
  };
}

/**
 * A {@linkcode Backplane} over Redis pub/sub. Each topic is the Redis channel `channelPrefix +
 * topic`; each message travels in an envelope (a kind byte, this backplane's random 8-byte origin
 * id, the bytes) so that text arrives as text, bytes as bytes, and a process never gets its own
 * messages back.
 *
 * Two connections: a subscriber (`SUBSCRIBE`, or `SSUBSCRIBE` when `sharded`) and a publisher
 * (`PUBLISH` or `SPUBLISH`), each authenticated (`AUTH`) and with its database selected (`SELECT`)
 * as the URL says. A dropped connection is made again with exponential backoff and full jitter
 * (a random delay up to 100 ms, doubling per failed attempt up to 5 s); the subscriber then
 * subscribes to every wanted channel again, and the publisher sends what was queued meanwhile.
 *
 * `start()` resolves once both connections are ready, or once the first attempt of either failed:
 * it never rejects for an unreachable Redis, which a server can outlive; the backplane keeps
 * trying in the background (`onError` is told of each failure, `connected` says when it is up).
 *
 * @category Redis
 *
 * @example Two servers joined through Redis
 * ```ts ignore
 * import { connect, Sock } from "@sock/sock";
 * import { RedisBackplane } from "@sock/sock";
 *
 * const a = new Sock({ backplane: new RedisBackplane({ url: "redis://127.0.0.1:6379" }) });
 * const b = new Sock({ backplane: new RedisBackplane({ url: "redis://127.0.0.1:6379" }) });
 * b.route("/news", async (ws) => {
 *   ws.subscribe("news");
 *   await ws.closed;
 * });
 * await a.listen({ hostname: "127.0.0.1", port: 0 });
 * const { port } = await b.listen({ hostname: "127.0.0.1", port: 0 });
 * const ws = await connect(`ws://127.0.0.1:${port}/news`);
 * a.publish("news", "from a"); // reaches ws through Redis
 * console.log(await ws.receive());
 * ```
 *
 * @example Used directly
 * ```ts ignore
 * import { RedisBackplane } from "@sock/sock";
 *
 * const backplane = new RedisBackplane({ url: "redis://:secret@redis.internal:6379/0" });
 * await backplane.start((topic, message) => console.log(topic, message));
 * backplane.subscribe("news");
 * backplane.publish("news", new Uint8Array([1, 2, 3])); // other processes get the bytes
 * console.log(backplane.stats); // { published, delivered, lost, reconnects }
 * await backplane.close();
 * ```
 */
export class RedisBackplane implements Backplane {
  readonly #target: Target;
  readonly #prefix: string;
  readonly #adapter: Adapter;
  readonly #maxQueued: number;
  readonly #sharded: boolean;
  readonly #onError: ((error: unknown) => void) | undefined;
  readonly #pingInterval: number;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  /** This instance's id, in every envelope it publishes. */
  readonly #origin: Uint8Array<ArrayBuffer> = crypto.getRandomValues(new Uint8Array(ORIGIN_LENGTH));
  readonly #subscriber: Role = newRole("subscriber");
  readonly #publisher: Role = newRole("publisher");
  /** Topics wanted (without the prefix). */
  readonly #wanted = new Set<string>();
  /** Encoded publish commands not handed to the publisher connection yet; `#head` is the first. */
  #queue: (Uint8Array | undefined)[] = [];
  #head = 0;
  /** Publishes written whose replies have not come. */
  #inFlight = 0;
  #deliver: ((topic: string, message: Message) => void) | undefined;
  #started = false;
  #closed = false;
  readonly #stats: RedisBackplaneStats = { published: 0, delivered: 0, lost: 0, reconnects: 0 };

  /**
   * Creates a backplane; it connects at {@linkcode RedisBackplane.start}.
   *
   * @param options Where Redis is, and how to use it.
   * @throws {TypeError} On a URL that is not `redis://` or `rediss://`, or a bad `maxQueued`.
   *
   * @example Options
   * ```ts ignore
   * import { RedisBackplane } from "@sock/sock";
   *
   * const backplane = new RedisBackplane({
   *   url: "rediss://app:secret@redis.internal:6380/2",
   *   channelPrefix: "chat:",
   *   maxQueued: 50_000,
   *   sharded: true,
   *   onError: (error) => console.warn("redis backplane:", error),
   * });
   * ```
   */
  constructor(options: RedisBackplaneOptions = {}) {
    this.#target = parseUrl(options.url ?? "redis://127.0.0.1:6379");
    this.#prefix = options.channelPrefix ?? "sock:";
    this.#adapter = options.adapter ?? detectAdapter();
    const maxQueued = options.maxQueued ?? 10000;
    if (!Number.isInteger(maxQueued) || maxQueued < 0) {
      throw new TypeError("RedisBackplane: maxQueued must be a non-negative integer");
    }
    this.#maxQueued = maxQueued;
    this.#sharded = options.sharded ?? false;
    this.#onError = options.onError;
    const pingInterval = options.pingInterval ?? 10000;
    if (!(pingInterval >= 0 && pingInterval < 2 ** 31)) {
      throw new TypeError("RedisBackplane: pingInterval must be a number of ms from 0 to 2^31 - 1");
    }
    this.#pingInterval = pingInterval;
  }

  /**
   * A snapshot of the counters.
   *
   * @example Reading the counters
   * ```ts ignore
   * const { published, delivered, lost, reconnects } = backplane.stats;
   * ```
   */
  get stats(): RedisBackplaneStats {
    return { ...this.#stats };
  }

  /** Whether both connections are up and ready. */
  get connected(): boolean {
    return this.#subscriber.ready && this.#publisher.ready;
  }

  /** Publishes waiting for the publisher connection. */
  get queued(): number {
    return this.#queue.length - this.#head;
  }

  /**
   * Connects both connections; `deliver` then gets every message another process published to a
   * subscribed topic. Resolves once both are ready, or once the first attempt of either failed
   * (retrying in the background).
   *
   * @param deliver Called with each message from elsewhere.
   * @throws {Error} When called twice.
   */
  start(deliver: (topic: string, message: Message) => void): Promise<void> {
    if (this.#started) throw new Error("RedisBackplane: start() was already called");
    this.#started = true;
    this.#deliver = deliver;
    if (this.#closed) return Promise.resolve();
    void this.#connect(this.#subscriber);
    void this.#connect(this.#publisher);
    if (this.#pingInterval > 0) this.#pingTimer = setInterval(() => this.#keepalive(), this.#pingInterval);
    return Promise.all([this.#subscriber.firstAttempt, this.#publisher.firstAttempt]).then(() => {});
  }

  /**
   * Sends `message` to the other processes' members of `topic`, now or, while the publisher
   * connection is down, once it is up again.
   *
   * @param topic The topic.
   * @param message Text or bytes.
   */
  publish(topic: string, message: Message): void {
    if (this.#closed) return;
    const text = typeof message === "string";
    const length = text ? utf8Length(message) : message.length;
    const payload = new Uint8Array(HEADER_LENGTH + length);
    payload[0] = text ? KIND_TEXT : KIND_BINARY;
    payload.set(this.#origin, 1);
    if (text) utf8Encoder.encodeInto(message, payload.subarray(HEADER_LENGTH));
    else payload.set(message, HEADER_LENGTH);
    this.#queue.push(encodeCommand([this.#sharded ? "SPUBLISH" : "PUBLISH", this.#prefix + topic, payload]));
    while (this.queued > this.#maxQueued) {
      this.#queue[this.#head++] = undefined;
      this.#stats.lost++;
    }
    this.#pump();
  }

  /**
   * Wants messages for `topic` from now on.
   *
   * @param topic The topic.
   */
  subscribe(topic: string): void {
    if (this.#closed || this.#wanted.has(topic)) return;
    this.#wanted.add(topic);
    if (this.#subscriber.ready) this.#sendSubscriptions(true, [topic]);
  }

  /**
   * Stops wanting messages for `topic`.
   *
   * @param topic The topic.
   */
  unsubscribe(topic: string): void {
    if (this.#closed || !this.#wanted.delete(topic)) return;
    if (this.#subscriber.ready) this.#sendSubscriptions(false, [topic]);
  }

  /** Closes both connections and stops reconnecting: no more deliveries. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    clearInterval(this.#pingTimer);
    for (const role of [this.#subscriber, this.#publisher]) {
      clearTimeout(role.timer);
      role.timer = undefined;
      role.ready = false;
      const connection = role.connection;
      role.connection = undefined;
      connection?.close();
      role.settleFirst();
    }
    this.#queue = [];
    this.#head = 0;
    return Promise.resolve();
  }

  /**
   * How many processes have members of `topic`, across every process that uses this Redis: the
   * number of connections subscribed to its channel (`PUBSUB NUMSUB`, or `PUBSUB SHARDNUMSUB` when
   * `sharded`), this process's included. (Each process's own count of members is
   * `Sock.subscribers(topic)`.)
   *
   * @param topic The topic.
   * @returns The count, as Redis has it now.
   * @throws {Error} While the publisher connection is down, or when Redis refuses the command.
   *
   * @example Which processes would a publish reach?
   * ```ts ignore
   * const processes = await backplane.processes("news");
   * console.log(`${processes} process(es) have members of "news"`);
   * ```
   */
  async processes(topic: string): Promise<number> {
    const connection = this.#publisher.connection;
    if (!this.#publisher.ready || !connection) {
      throw new Error("RedisBackplane: not connected to Redis");
    }
    const verb = this.#sharded ? "SHARDNUMSUB" : "NUMSUB";
    const reply = await connection.command(["PUBSUB", verb, this.#prefix + topic]);
    if (reply instanceof RespError) {
      throw new Error(`RedisBackplane: PUBSUB ${verb} failed: ${reply.message}`);
    }
    const count = Array.isArray(reply) ? reply[1] : undefined;
    if (typeof count !== "number") throw new Error(`RedisBackplane: unexpected PUBSUB ${verb} reply`);
    return count;
  }

  /** Pings connections that have been silent for an interval; closes those silent for two. */
  #keepalive(): void {
    const now = performance.now();
    for (const role of [this.#subscriber, this.#publisher]) {
      const connection = role.connection;
      if (!role.ready || !connection) continue;
      const silent = now - connection.lastHeard;
      if (silent >= 2 * this.#pingInterval) {
        // Judged after the I/O waiting now is read (a timer set here runs after it): a process that
        // was stalled (a long pause, a starved CPU) must not take its own delay for a silent Redis.
        setTimeout(() => {
          if (
            role.connection !== connection ||
            performance.now() - connection.lastHeard < 2 * this.#pingInterval
          ) {
            return;
          }
          this.#report(new Error(`RedisBackplane: the ${role.name} connection went silent (no PING answer)`));
          connection.close(); // #dropped reconnects.
        }, 0);
      } else if (silent >= this.#pingInterval * 0.9) {
        // The subscriber's answer is a push, ignored; the publisher's is awaited so it is not
        // counted as a publish.
        if (role === this.#subscriber) connection.send([PING]);
        else connection.command(["PING"]).catch(() => {});
      }
    }
  }

  #report(error: unknown): void {
    if (!this.#onError) return;
    try {
      this.#onError(error);
    } catch {
      // A reporter that throws must not stop the backplane.
    }
  }

  async #connect(role: Role): Promise<void> {
    role.timer = undefined;
    if (this.#closed) return;
    let connection: RedisConnection;
    const attempt = { gaveUp: false };
    try {
      connection = await within(this.#open(role, attempt), CONNECT_TIMEOUT, `connecting the ${role.name}`);
    } catch (error) {
      attempt.gaveUp = true; // #open closes what it makes late.
      if (this.#closed) return;
      this.#report(error);
      role.tried = true;
      role.settleFirst();
      this.#retry(role);
      return;
    }
    if (this.#closed) {
      connection.close();
      return;
    }
    if (role.tried) this.#stats.reconnects++;
    role.tried = true;
    role.attempt = 0;
    role.connection = connection;
    role.ready = true;
    if (role === this.#subscriber) {
      if (this.#wanted.size > 0) this.#sendSubscriptions(true, [...this.#wanted]);
    } else {
      this.#pump();
    }
    role.settleFirst();
  }

  /** Connects, authenticates and selects the database; closes what it made if that fails or takes too long. */
  async #open(role: Role, attempt: { gaveUp: boolean }): Promise<RedisConnection> {
    const transport = await this.#adapter.connect(this.#target.endpoint);
    const connection: RedisConnection = new RedisConnection(
      transport,
      role === this.#publisher,
      (value) => role === this.#subscriber ? this.#onSubscriberValue(value) : this.#onPublisherValue(value),
      () => this.#dropped(role, connection),
      () => role === this.#publisher && this.#pump(),
    );
    const abandon = (error: unknown): never => {
      connection.close();
      throw error;
    };
    // Past the timeout the caller has given up: close what arrives late.
    if (this.#closed || attempt.gaveUp) abandon(new Error("RedisBackplane: gave up"));
    connection.start();
    const { username, password, db } = this.#target;
    try {
      if (password !== "") {
        const reply = await connection.command(
          username !== "" ? ["AUTH", username, password] : ["AUTH", password],
        );
        if (reply instanceof RespError) throw new Error(`RedisBackplane: AUTH failed: ${reply.message}`);
      }
      if (db !== undefined && db !== 0) {
        const reply = await connection.command(["SELECT", String(db)]);
        if (reply instanceof RespError) {
          throw new Error(`RedisBackplane: SELECT ${db} failed: ${reply.message}`);
        }
      }
    } catch (error) {
      abandon(error);
    }
    if (connection.ended) abandon(new Error("RedisBackplane: connection closed while connecting"));
    if (this.#closed || attempt.gaveUp) abandon(new Error("RedisBackplane: gave up"));
    return connection;
  }

  #dropped(role: Role, connection: RedisConnection): void {
    if (role.connection !== connection) return; // Still connecting: #connect retries.
    role.connection = undefined;
    role.ready = false;
    if (role === this.#publisher) {
      this.#stats.lost += this.#inFlight;
      this.#inFlight = 0;
    }
    if (this.#closed) return;
    this.#report(new Error(`RedisBackplane: the ${role.name} connection dropped`));
    this.#retry(role);
  }

  #retry(role: Role): void {
    if (this.#closed || role.timer !== undefined) return;
    const cap = Math.min(BACKOFF_MAX, BACKOFF_BASE * 2 ** Math.min(role.attempt, 16));
    role.attempt++;
    role.timer = setTimeout(() => void this.#connect(role), Math.random() * cap);
  }

  #sendSubscriptions(subscribe: boolean, topics: string[]): void {
    const connection = this.#subscriber.connection;
    if (!connection) return;
    const verb = this.#sharded
      ? (subscribe ? "SSUBSCRIBE" : "SUNSUBSCRIBE")
      : (subscribe ? "SUBSCRIBE" : "UNSUBSCRIBE");
    const channels = topics.map((topic) => this.#prefix + topic);
    // Sharded channels one command each: a cluster refuses channels of different slots in one.
    if (this.#sharded) connection.send(channels.map((channel) => encodeCommand([verb, channel])));
    else connection.send([encodeCommand([verb, ...channels])]);
  }

  /** Hands queued publishes to the publisher connection when it is ready and idle. */
  #pump(): void {
    const connection = this.#publisher.connection;
    if (!this.#publisher.ready || !connection || !connection.idle || this.queued === 0) return;
    const batch = this.#queue.slice(this.#head) as Uint8Array[];
    this.#queue = [];
    this.#head = 0;
    this.#inFlight += batch.length;
    connection.send(batch);
  }

  #onPublisherValue(value: RespValue): void {
    if (this.#inFlight > 0) this.#inFlight--;
    if (value instanceof RespError) {
      this.#stats.lost++;
      this.#report(value);
    } else {
      this.#stats.published++;
    }
  }

  #onSubscriberValue(value: RespValue): void {
    if (value instanceof RespError) {
      this.#report(value);
      return;
    }
    if (!Array.isArray(value) || value.length !== 3) return; // (s)subscribe confirmations, pongs.
    const [kind, channel, payload] = value;
    if (
      !(kind instanceof Uint8Array) || !(channel instanceof Uint8Array) || !(payload instanceof Uint8Array)
    ) return;
    // "message" (7 bytes) or "smessage" (8 bytes).
    const name = utf8Decoder.decode(kind);
    if (name !== "message" && name !== "smessage") return;
    if (payload.length < HEADER_LENGTH) return;
    if (this.#ours(payload)) return;
    const channelName = utf8Decoder.decode(channel);
    if (!channelName.startsWith(this.#prefix)) return;
    const topic = channelName.slice(this.#prefix.length);
    // A message may still come for a topic just unsubscribed.
    if (!this.#wanted.has(topic)) return;
    const body = payload.subarray(HEADER_LENGTH);
    let message: Message;
    if (payload[0] === KIND_TEXT) message = utf8Decoder.decode(body);
    else if (payload[0] === KIND_BINARY) message = body;
    else return;
    this.#stats.delivered++;
    try {
      this.#deliver?.(topic, message);
    } catch (error) {
      this.#report(error);
    }
  }

  #ours(payload: Uint8Array): boolean {
    for (let k = 0; k < ORIGIN_LENGTH; k++) if (payload[1 + k] !== this.#origin[k]) return false;
    return true;
  }
}
