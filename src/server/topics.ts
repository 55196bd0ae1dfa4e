/**
 * The topic hub of the server: who is subscribed to what, and publishing to a topic. It keeps each
 * subscriber's topics itself, so a connection carries no set of its own.
 *
 * @module
 */

import { ReadyState } from "../core/protocol.ts";

/**
 * What the hub needs of a member: its ready state, and a `send()` that does not have to be awaited
 * (a server connection fits).
 *
 * @example A subscriber that records what it is sent
 * ```ts
 * import { type Subscriber, Topics } from "./topics.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const sent: (string | Uint8Array)[] = [];
 * const member: Subscriber = { readyState: 1, send: (message) => sent.push(message) };
 * const topics = new Topics<Subscriber>();
 * topics.subscribe(member, "news");
 * assertEquals(topics.publish("news", "hello"), 1);
 * assertEquals(sent, ["hello"]);
 * ```
 */
export interface Subscriber {
  /** The WebSocket ready state: `ReadyState.Open` is the only one published to. */
  readonly readyState: number;
  /** Queues a message; the hub never waits for what it returns. */
  send(message: string | Uint8Array): unknown;
}

/** The topics of a subscriber that has none: one shared empty set. */
const NONE: ReadonlySet<string> = new Set();

/**
 * Topics and their members. A topic exists while it has members (the last to leave deletes it);
 * per-subscriber topic sets are made only for subscribers that subscribe, and dropped when they
 * leave their last topic.
 *
 * @example A room
 * ```ts
 * import { type Subscriber, Topics } from "./topics.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const alice: Subscriber = { readyState: 1, send: () => {} };
 * const bob: Subscriber = { readyState: 1, send: () => {} };
 * const topics = new Topics<Subscriber>();
 * topics.subscribe(alice, "lobby");
 * topics.subscribe(bob, "lobby");
 * assertEquals(topics.publish("lobby", "hi"), 2);
 * topics.leave(bob); // bob's connection closed
 * assertEquals(topics.subscribers("lobby"), 1);
 * assertEquals(topics.publish("nobody's room", "hi"), 0);
 * ```
 *
 * @typeParam S The subscriber type, e.g. the server's connection.
 */
export class Topics<S extends Subscriber> {
  /** Members by topic; no empty sets. */
  #members = new Map<string, Set<S>>();
  /** Topics by subscriber; no empty sets. */
  #topics = new Map<S, Set<string>>();
  readonly #onTopic: ((topic: string, present: boolean) => void) | undefined;

  /**
   * Creates an empty hub.
   *
   * @param onTopic Called when a topic gains its first member (`present` true) and when it loses its
   *   last (false): a server tells its backplane which topics it wants.
   */
  constructor(onTopic?: (topic: string, present: boolean) => void) {
    this.#onTopic = onTopic;
  }

  /**
   * Adds `subscriber` to `topic`; subscribing again changes nothing.
   *
   * @example Subscribing
   * ```ts
   * import { type Subscriber, Topics } from "./topics.ts";
   * import { assertEquals } from "@std/assert";
   *
   * const member: Subscriber = { readyState: 1, send: () => {} };
   * const topics = new Topics<Subscriber>();
   * topics.subscribe(member, "a");
   * topics.subscribe(member, "a");
   * assertEquals(topics.subscribers("a"), 1);
   * assertEquals([...topics.topicsOf(member)], ["a"]);
   * ```
   *
   * @param subscriber The member.
   * @param topic The topic.
   */
  subscribe(subscriber: S, topic: string): void {
    let members = this.#members.get(topic);
    if (!members) {
      this.#members.set(topic, members = new Set());
      this.#onTopic?.(topic, true);
    }
    members.add(subscriber);
    let topics = this.#topics.get(subscriber);
    if (!topics) this.#topics.set(subscriber, topics = new Set());
    topics.add(topic);
  }

  /**
   * Removes `subscriber` from `topic`; a no-op when it is not subscribed to it.
   *
   * @example Unsubscribing
   * ```ts
   * import { type Subscriber, Topics } from "./topics.ts";
   * import { assertEquals } from "@std/assert";
   *
   * const member: Subscriber = { readyState: 1, send: () => {} };
   * const topics = new Topics<Subscriber>();
   * topics.subscribe(member, "a");
   * topics.unsubscribe(member, "a");
   * topics.unsubscribe(member, "never subscribed");
   * assertEquals(topics.subscribers("a"), 0);
   * assertEquals(topics.topicsOf(member).size, 0);
   * ```
   *
   * @param subscriber The member.
   * @param topic The topic.
   */
  unsubscribe(subscriber: S, topic: string): void {
    const topics = this.#topics.get(subscriber);
    if (!topics?.delete(topic)) return;
    if (topics.size === 0) this.#topics.delete(subscriber);
    this.#drop(subscriber, topic);
  }

  /**
   * Removes `subscriber` from every topic: call it when its connection closes.
   *
   * @example A member leaving
   * ```ts
   * import { type Subscriber, Topics } from "./topics.ts";
   * import { assertEquals } from "@std/assert";
   *
   * const member: Subscriber = { readyState: 1, send: () => {} };
   * const topics = new Topics<Subscriber>();
   * topics.subscribe(member, "a");
   * topics.subscribe(member, "b");
   * topics.leave(member);
   * assertEquals(topics.subscribers("a") + topics.subscribers("b"), 0);
   * assertEquals(topics.topicsOf(member).size, 0);
   * ```
   *
   * @param subscriber The member.
   */
  leave(subscriber: S): void {
    const topics = this.#topics.get(subscriber);
    if (!topics) return;
    this.#topics.delete(subscriber);
    for (const topic of topics) this.#drop(subscriber, topic);
  }

  /**
   * The topics `subscriber` is in (one shared empty set when it is in none). The set is the hub's
   * own, not a copy: read it when needed rather than keep it, as leaving the last topic drops it and
   * a later subscribe makes a new one.
   *
   * @example Listing a member's topics
   * ```ts
   * import { type Subscriber, Topics } from "./topics.ts";
   * import { assertEquals } from "@std/assert";
   *
   * const member: Subscriber = { readyState: 1, send: () => {} };
   * const topics = new Topics<Subscriber>();
   * assertEquals(topics.topicsOf(member).size, 0);
   * topics.subscribe(member, "a");
   * topics.subscribe(member, "b");
   * assertEquals([...topics.topicsOf(member)], ["a", "b"]);
   * ```
   *
   * @param subscriber The member.
   * @returns Its topics, in the order it subscribed.
   */
  topicsOf(subscriber: S): ReadonlySet<string> {
    return this.#topics.get(subscriber) ?? NONE;
  }

  /**
   * Sends a message to every open member of `topic`, without waiting: each member's `send()`
   * buffers it (a server connection that does not read is cut with 1008 once more than
   * `maxBufferedAmount` bytes wait for it).
   *
   * Members that are not open (closing: cut, closed by a handler, or answering the peer's close)
   * are skipped at the cost of one check: nothing may follow their close frame, so a publish to
   * them would only fail. A room with a member that takes seconds to close thus costs no more
   * than one without it.
   *
   * @example Only open members count
   * ```ts
   * import { type Subscriber, Topics } from "./topics.ts";
   * import { assertEquals } from "@std/assert";
   *
   * const open: Subscriber = { readyState: 1, send: () => {} };
   * const closing: Subscriber = { readyState: 2, send: () => {} };
   * const topics = new Topics<Subscriber>();
   * topics.subscribe(open, "room");
   * topics.subscribe(closing, "room");
   * assertEquals(topics.publish("room", new Uint8Array([1, 2])), 1);
   * assertEquals(topics.publish("empty room", "hello"), 0);
   * ```
   *
   * @param topic The topic.
   * @param message The message.
   * @param except A member to leave out (the sender, say).
   * @returns How many members it was queued for: those not open are not counted, nor one that
   *   this message cut (not open after its `send()`).
   */
  publish(topic: string, message: string | Uint8Array, except?: S): number {
    const members = this.#members.get(topic);
    if (!members) return 0;
    let queued = 0;
    for (const member of members) {
      // Closing: whatever was sent would only wait for the close to reject it.
      if (member.readyState !== ReadyState.Open || member === except) continue;
      // Never rejects unhandled, and past maxBufferedAmount it cuts the member instead of queueing.
      member.send(message);
      if (member.readyState === ReadyState.Open) queued++;
    }
    return queued;
  }

  /**
   * How many members `topic` has, open or not.
   *
   * @example Counting members
   * ```ts
   * import { type Subscriber, Topics } from "./topics.ts";
   * import { assertEquals } from "@std/assert";
   *
   * const topics = new Topics<Subscriber>();
   * topics.subscribe({ readyState: 1, send: () => {} }, "room");
   * topics.subscribe({ readyState: 3, send: () => {} }, "room");
   * assertEquals(topics.subscribers("room"), 2);
   * assertEquals(topics.subscribers("unknown"), 0);
   * ```
   *
   * @param topic The topic.
   * @returns Its number of members; 0 for a topic nobody is subscribed to.
   */
  subscribers(topic: string): number {
    return this.#members.get(topic)?.size ?? 0;
  }

  /** Removes `subscriber` from `topic`'s members, deleting the topic when it was the last. */
  #drop(subscriber: S, topic: string): void {
    const members = this.#members.get(topic);
    if (!members) return;
    members.delete(subscriber);
    if (members.size > 0) return;
    this.#members.delete(topic);
    this.#onTopic?.(topic, false);
  }
}
