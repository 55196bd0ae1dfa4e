// Sock with a backplane: what it publishes goes to the backplane too, what the backplane delivers
// reaches the local members only, and the backplane hears which topics have local members.

import { test } from "node:test";
import assert from "node:assert/strict";
import { type Backplane, connect, type Message, Sock } from "../../mod.ts";

/** Backplanes joined in this process: each hears what the others publish, and logs its calls. */
function bus() {
  const receivers = new Set<(topic: string, message: Message) => void>();
  return () => {
    const calls: string[] = [];
    let mine: ((topic: string, message: Message) => void) | undefined;
    const backplane: Backplane = {
      start(deliver) {
        calls.push("start");
        mine = deliver;
        receivers.add(deliver);
      },
      publish(topic, message) {
        calls.push(`publish ${topic}`);
        for (const receiver of receivers) if (receiver !== mine) receiver(topic, message);
      },
      subscribe: (topic) => void calls.push(`subscribe ${topic}`),
      unsubscribe: (topic) => void calls.push(`unsubscribe ${topic}`),
      close() {
        calls.push("close");
        if (mine) receivers.delete(mine);
      },
    };
    return { backplane, calls };
  };
}

test("Sock with a backplane: a publish on one server reaches the other's members, text and bytes alike", async () => {
  const make = bus();
  const one = make(), two = make();
  const a = new Sock({ backplane: one.backplane });
  const b = new Sock({ backplane: two.backplane });
  for (const app of [a, b]) {
    app.route("/rooms/:room", async (ws, request) => {
      ws.subscribe(request.params.room!);
      await ws.send("in");
      for await (const message of ws) app.publish(request.params.room!, message, { except: ws });
    });
  }
  const { port: portA } = await a.listen({ hostname: "127.0.0.1", port: 0 });
  const { port: portB } = await b.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const onA = await connect(`ws://127.0.0.1:${portA}/rooms/lobby`);
    const onB = await connect(`ws://127.0.0.1:${portB}/rooms/lobby`);
    for (const ws of [onA, onB]) assert.equal(await ws.receive({ timeout: 5000 }), "in");
    await onA.send("hello from a");
    assert.equal(await onB.receive({ timeout: 5000 }), "hello from a");
    await onB.send(new Uint8Array([1, 2, 3]));
    assert.deepEqual(await onA.receive({ timeout: 5000 }), new Uint8Array([1, 2, 3]));
    assert.equal(a.publish("lobby", "to everyone"), 1, "counted: the local member only");
    assert.equal(await onA.receive({ timeout: 5000 }), "to everyone");
    assert.equal(await onB.receive({ timeout: 5000 }), "to everyone");
    await onA.close(1000);
    await onB.close(1000);
    // The last local member left: the backplane hears it.
    for (const { calls } of [one, two]) {
      const deadline = Date.now() + 10_000;
      while (!calls.includes("unsubscribe lobby") && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
  } finally {
    await a.close();
    await b.close();
  }
  assert.deepEqual(one.calls, [
    "start",
    "subscribe lobby",
    "publish lobby",
    "publish lobby",
    "unsubscribe lobby",
    "close",
  ]);
  assert.deepEqual(two.calls, ["start", "subscribe lobby", "publish lobby", "unsubscribe lobby", "close"]);
});
