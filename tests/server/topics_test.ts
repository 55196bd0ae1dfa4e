// The server's topic hub (src/server/topics.ts) on its own, with scripted members: subscribing,
// unsubscribing and leaving, member counts, and who publish() reaches and counts.
import { test } from "node:test";
import { assert, assertEquals, assertStrictEquals } from "../assert.ts";
import { type Subscriber, Topics } from "../../src/server/topics.ts";

const CONNECTING = 0, OPEN = 1, CLOSING = 2, CLOSED = 3;

/** A member that records what it is sent; `onSend` runs after each send (to change its state). */
class Member implements Subscriber {
  readyState: number;
  sent: (string | Uint8Array)[] = [];
  onSend?: (member: Member) => void;

  constructor(readyState: number = OPEN) {
    this.readyState = readyState;
  }

  send(message: string | Uint8Array): Promise<void> {
    this.sent.push(message);
    this.onSend?.(this);
    return Promise.resolve();
  }
}

test("subscribe() adds a member to a topic once, however often it subscribes", () => {
  const topics = new Topics<Member>();
  const a = new Member(), b = new Member();
  topics.subscribe(a, "room");
  topics.subscribe(a, "room");
  topics.subscribe(b, "room");
  assertEquals(topics.subscribers("room"), 2);
  assertEquals(topics.publish("room", "hi"), 2);
  assertEquals(a.sent, ["hi"]);
  assertEquals(b.sent, ["hi"]);
});

test("publish() sends only to the topic's members", () => {
  const topics = new Topics<Member>();
  const a = new Member(), b = new Member(), c = new Member();
  topics.subscribe(a, "x");
  topics.subscribe(b, "y");
  topics.subscribe(c, "x");
  topics.subscribe(c, "y");
  assertEquals(topics.publish("x", "to x"), 2);
  assertEquals(topics.publish("y", "to y"), 2);
  assertEquals(a.sent, ["to x"]);
  assertEquals(b.sent, ["to y"]);
  assertEquals(c.sent, ["to x", "to y"]);
});

test("publish() hands the same message object to each member, text or bytes", () => {
  const topics = new Topics<Member>();
  const a = new Member(), b = new Member();
  topics.subscribe(a, "t");
  topics.subscribe(b, "t");
  const bytes = new Uint8Array([1, 2, 3]);
  assertEquals(topics.publish("t", bytes), 2);
  assertStrictEquals(a.sent[0], bytes);
  assertStrictEquals(b.sent[0], bytes);
});

test("unsubscribe() removes a member from one topic and leaves its others", () => {
  const topics = new Topics<Member>();
  const a = new Member(), b = new Member();
  topics.subscribe(a, "x");
  topics.subscribe(a, "y");
  topics.subscribe(b, "x");
  topics.unsubscribe(a, "x");
  assertEquals(topics.subscribers("x"), 1);
  assertEquals([...topics.topicsOf(a)], ["y"]);
  assertEquals(topics.publish("x", "m"), 1);
  assertEquals(a.sent, []);
  assertEquals(topics.publish("y", "m"), 1);
  assertEquals(a.sent, ["m"]);
});

test("unsubscribing from a topic not subscribed to is a no-op", () => {
  const topics = new Topics<Member>();
  const a = new Member(), b = new Member();
  topics.unsubscribe(a, "x"); // no topics at all
  topics.subscribe(b, "x");
  topics.unsubscribe(a, "x"); // a topic with other members
  topics.subscribe(a, "y");
  topics.unsubscribe(a, "x"); // other topics, not this one
  topics.unsubscribe(a, "nowhere");
  assertEquals(topics.subscribers("x"), 1);
  assertEquals(topics.subscribers("y"), 1);
  assertEquals([...topics.topicsOf(a)], ["y"]);
  assertEquals([...topics.topicsOf(b)], ["x"]);
});

test("a topic whose last member leaves is deleted, and can be subscribed to again", () => {
  const topics = new Topics<Member>();
  const a = new Member();
  topics.subscribe(a, "x");
  topics.unsubscribe(a, "x");
  assertEquals(topics.subscribers("x"), 0);
  assertEquals(topics.publish("x", "m"), 0);
  topics.subscribe(a, "x");
  assertEquals(topics.subscribers("x"), 1);
  assertEquals(topics.publish("x", "m"), 1);
  assertEquals(a.sent, ["m"]);
});

test("leave() removes a member from every topic and leaves the other members", () => {
  const topics = new Topics<Member>();
  const a = new Member(), b = new Member();
  for (const topic of ["x", "y", "z"]) topics.subscribe(a, topic);
  topics.subscribe(b, "y");
  topics.leave(a);
  assertEquals(topics.topicsOf(a).size, 0);
  assertEquals([topics.subscribers("x"), topics.subscribers("y"), topics.subscribers("z")], [0, 1, 0]);
  assertEquals(topics.publish("y", "m"), 1);
  assertEquals(a.sent, []);
  assertEquals(b.sent, ["m"]);
  topics.leave(a); // again: nothing to do
  topics.leave(new Member()); // never subscribed
  assertEquals(topics.subscribers("y"), 1);
});

test("a member that left may subscribe again", () => {
  const topics = new Topics<Member>();
  const a = new Member();
  topics.subscribe(a, "x");
  topics.leave(a);
  topics.subscribe(a, "y");
  assertEquals([...topics.topicsOf(a)], ["y"]);
  assertEquals(topics.subscribers("x"), 0);
  assertEquals(topics.subscribers("y"), 1);
});

test("topicsOf() lists a member's topics in the order it subscribed, and one shared empty set for none", () => {
  const topics = new Topics<Member>();
  const a = new Member(), b = new Member();
  assertEquals(topics.topicsOf(a).size, 0);
  assertStrictEquals(topics.topicsOf(a), topics.topicsOf(b));
  topics.subscribe(a, "b");
  topics.subscribe(a, "a");
  topics.subscribe(a, "c");
  assertEquals([...topics.topicsOf(a)], ["b", "a", "c"]);
  assert(topics.topicsOf(a).has("a"));
  assert(!topics.topicsOf(a).has("d"));
  assertEquals(topics.topicsOf(b).size, 0);
  topics.unsubscribe(a, "a");
  topics.unsubscribe(a, "b");
  topics.unsubscribe(a, "c");
  assertStrictEquals(topics.topicsOf(a), topics.topicsOf(b));
});

test("a member may unsubscribe from each of its topics while iterating topicsOf()", () => {
  const topics = new Topics<Member>();
  const a = new Member();
  for (const topic of ["x", "y", "z"]) topics.subscribe(a, topic);
  const seen: string[] = [];
  for (const topic of topics.topicsOf(a)) {
    seen.push(topic);
    topics.unsubscribe(a, topic);
  }
  assertEquals(seen, ["x", "y", "z"]);
  assertEquals(topics.topicsOf(a).size, 0);
  assertEquals(topics.subscribers("x") + topics.subscribers("y") + topics.subscribers("z"), 0);
});

test("subscribers() counts members open or not, and is 0 for an unknown topic", () => {
  const topics = new Topics<Member>();
  assertEquals(topics.subscribers("unknown"), 0);
  for (const state of [CONNECTING, OPEN, CLOSING, CLOSED]) topics.subscribe(new Member(state), "room");
  assertEquals(topics.subscribers("room"), 4);
});

test("publishing to an unknown or emptied topic sends nothing and returns 0", () => {
  const topics = new Topics<Member>();
  const a = new Member();
  assertEquals(topics.publish("unknown", "m"), 0);
  assertEquals(topics.publish("", "m"), 0);
  topics.subscribe(a, "x");
  topics.unsubscribe(a, "x");
  assertEquals(topics.publish("x", "m"), 0);
  topics.subscribe(a, "y");
  topics.leave(a);
  assertEquals(topics.publish("y", "m"), 0);
  assertEquals(a.sent, []);
});

test("publish() skips members that are not open: nothing is sent to them and they are not counted", () => {
  const topics = new Topics<Member>();
  const members = [CONNECTING, OPEN, CLOSING, CLOSED, OPEN].map((state) => new Member(state));
  for (const member of members) topics.subscribe(member, "room");
  assertEquals(topics.publish("room", "m"), 2);
  assertEquals(members.map((member) => member.sent.length), [0, 1, 0, 0, 1]);
});

test("a member cut by its own send (no longer open after it) is sent the message but not counted", () => {
  const topics = new Topics<Member>();
  const cut = new Member(), kept = new Member();
  cut.onSend = (member) => member.readyState = CLOSING;
  topics.subscribe(cut, "room");
  topics.subscribe(kept, "room");
  assertEquals(topics.publish("room", "m"), 1);
  assertEquals(cut.sent, ["m"]);
  assertEquals(kept.sent, ["m"]);
  // Now closing: skipped, until it is gone.
  assertEquals(topics.publish("room", "again"), 1);
  assertEquals(cut.sent, ["m"]);
  assertEquals(topics.subscribers("room"), 2);
});

test("a member that leaves every topic during its own send does not stop the others being reached", () => {
  const topics = new Topics<Member>();
  const members = [new Member(), new Member(), new Member()];
  for (const member of members) topics.subscribe(member, "room");
  members[0].onSend = (member) => {
    member.readyState = CLOSED;
    topics.leave(member);
  };
  assertEquals(topics.publish("room", "m"), 2);
  assertEquals(members.map((member) => member.sent), [["m"], ["m"], ["m"]]);
  assertEquals(topics.subscribers("room"), 2);
  assertEquals(topics.topicsOf(members[0]).size, 0);
});

test("publish() does not wait for send(): a send that never settles does not hold it back", () => {
  const topics = new Topics<Subscriber>();
  let sends = 0;
  const stuck: Subscriber = {
    readyState: OPEN,
    send: () => {
      sends++;
      return new Promise(() => {});
    },
  };
  topics.subscribe(stuck, "room");
  assertEquals(topics.publish("room", "a"), 1);
  assertEquals(topics.publish("room", "b"), 1);
  assertEquals(sends, 2);
});

test("one hub keeps its subscribers apart from another's", () => {
  const one = new Topics<Member>(), two = new Topics<Member>();
  const a = new Member();
  one.subscribe(a, "x");
  assertEquals(two.subscribers("x"), 0);
  assertEquals(two.topicsOf(a).size, 0);
  assertEquals(two.publish("x", "m"), 0);
  assertEquals(a.sent, []);
});
