/**
 * Pings and pongs of a connection: the application's pings and their round trips, and the
 * keepalive schedule that finds a dead peer.
 *
 * @module
 */

import type { CloseResult } from "../core/protocol.ts";
import { Deadlines, startTimer } from "../timers.ts";
import { ConnectionClosed, ignore, quiet } from "./closed.ts";
import type { ConnectionSettings } from "./options.ts";

/** What keepalive needs of its connection: one table of functions for every connection. */
export interface KeepaliveOwner<C> {
  /** Whether pings can still be sent. */
  isOpen(connection: C): boolean;
  /** Queues a ping with this payload and writes it. Throws for a payload over 125 bytes. */
  sendPing(connection: C, payload: string): void;
  /** Drops the connection: the peer did not answer in time. */
  terminate(connection: C): void;
}

interface Ping {
  start: number;
  resolve: (rtt: number) => void;
  reject: (error: unknown) => void;
}

/** The payload of keepalive pings: one for all, so a new one replaces an old one whose pong never came. */
const KEEPALIVE_PING = "keepalive";

/** Decodes pong payloads back into the keys `ping()` sent. */
const pongKeys = new TextDecoder();

/**
 * The keepalive schedule of every connection with the same ping interval: one timer, which wakes
 * four times per interval. A connection's first ping goes out three quarters to one interval after
 * it opened, and the next ones one interval apart, so a dead peer is found within the interval
 * plus the pong timeout.
 */
const schedules = new Map<number, Deadlines<Keepalive<never>>>();

/**
 * What the peer did since the last keepalive ping. One field of three states rather than two
 * booleans: a keepalive has 6 fields, which JavaScriptCore stores in 64 bytes instead of 80
 * (5,000 idle connections on Bun).
 */
const enum Peer {
  Silent,
  /** Bytes arrived since the last keepalive ping: the peer is alive even if its pong is late. */
  Heard,
  /** The connection closed. */
  Closed,
}

/**
 * Pings awaiting their pong, and the keepalive pings: sent every `interval` ms, a peer that neither
 * answers within `pongTimeout` nor sends anything meanwhile is dropped (reported as 1006).
 */
export class Keepalive<C> {
  /** Handed to the owner's functions (kept as `unknown`, so any part fits the shared queues). */
  readonly #connection: unknown;
  readonly #owner: KeepaliveOwner<C>;
  readonly #settings: ConnectionSettings;
  /** Pings awaiting their pong; made at the first ping. */
  #pings: Map<string, Ping> | undefined;
  #pongTimer: ReturnType<typeof setTimeout> | undefined;
  #peer = Peer.Silent;

  /**
   * @param connection The connection it belongs to.
   * @param owner What it needs of the connection.
   * @param settings `pingInterval` (0 for no keepalive pings) and `pongTimeout`.
   */
  constructor(connection: C, owner: KeepaliveOwner<C>, settings: ConnectionSettings) {
    this.#connection = connection;
    this.#owner = owner;
    this.#settings = settings;
    const interval = settings.pingInterval;
    if (!(interval > 0)) return;
    let schedule = schedules.get(interval);
    if (!schedule) schedules.set(interval, schedule = new Deadlines(interval / 4, Keepalive.#due));
    schedule.set(this, interval * 3 / 4);
  }

  /**
   * Bytes arrived: a sign of life, as a peer in the middle of sending a large frame cannot answer a
   * ping until it is done.
   */
  heard(): void {
    if (this.#peer === Peer.Silent) this.#peer = Peer.Heard;
  }

  /**
   * Queues a ping; resolves with the round-trip time in ms when its pong arrives.
   *
   * @param payload Up to 125 bytes.
   */
  ping(payload: string): Promise<number> {
    return quiet(
      new Promise((resolve, reject) => {
        // Throws only for a payload over 125 bytes (the caller's mistake): the promise rejects.
        this.#owner.sendPing(this.#connection as C, payload);
        const pings = this.#pings ??= new Map();
        // A pong answers every ping with its payload: one sent earlier settles with this one.
        const earlier = pings.get(payload);
        pings.set(payload, {
          start: performance.now(),
          resolve: earlier ? (rtt: number) => (earlier.resolve(rtt), resolve(rtt)) : resolve,
          reject: earlier ? (error: unknown) => (earlier.reject(error), reject(error)) : reject,
        });
      }),
    );
  }

  /** A pong arrived: the ping with its payload, if any, settles. */
  pong(payload: Uint8Array): void {
    if (!this.#pings?.size) return;
    const key = pongKeys.decode(payload);
    const ping = this.#pings.get(key);
    if (!ping) return;
    this.#pings.delete(key);
    ping.resolve(performance.now() - ping.start);
  }

  /** The connection closed: no more pings, and those whose pong can no longer come reject. */
  close(closed: CloseResult): void {
    this.#peer = Peer.Closed;
    schedules.get(this.#settings.pingInterval)?.delete(this);
    clearTimeout(this.#pongTimer);
    if (!this.#pings?.size) return;
    const error = new ConnectionClosed(closed);
    for (const ping of this.#pings.values()) ping.reject(error);
    this.#pings.clear();
  }

  /**
   * A keepalive tick: one function for every connection rather than a closure each (with the
   * shared write turn, Bun's heap per idle connection went from 4,304 to 3,900 bytes).
   */
  static #due(keepalive: Keepalive<never>): void {
    if (keepalive.#peer === Peer.Closed) return;
    // Due half a wake early, so the wake one interval from now fires it despite timer jitter.
    const interval = keepalive.#settings.pingInterval;
    schedules.get(interval)!.set(keepalive, interval * 7 / 8);
    keepalive.#tick();
  }

  /** One keepalive ping at a time: its pong clears the timer; without one, the peer is dropped. */
  #tick(): void {
    if (this.#pongTimer !== undefined || !this.#owner.isOpen(this.#connection as C)) return;
    this.#peer = Peer.Silent;
    const timer = startTimer(() => {
      this.#pongTimer = undefined;
      // Alive but silent on pings: forget this one (nothing awaits it), the next tick sends another.
      this.#pings?.delete(KEEPALIVE_PING);
      if (this.#peer === Peer.Silent) this.#owner.terminate(this.#connection as C);
    }, this.#settings.pongTimeout);
    this.#pongTimer = timer;
    this.ping(KEEPALIVE_PING).then(() => {
      if (this.#pongTimer !== timer) return;
      clearTimeout(timer);
      this.#pongTimer = undefined;
    }, ignore);
  }
}
