// Type-level checks of `Sock<Data>`: `ws.data` is typed from the `upgrade` hook (or `upgrade()`) to
// the handler. `deno check` (part of the gate) fails on any line below that does not type-check as
// stated, `@ts-expect-error` lines included; the test itself then checks the data at run time.

import { test } from "node:test";
import assert from "node:assert/strict";
import { connect, type Connection, Sock } from "../../mod.ts";

interface User {
  name: string;
  admin: boolean;
}

test("Sock<Data>: ws.data has the type the upgrade hook and upgrade() attach", async () => {
  const seen: string[] = [];
  const app: Sock<User> = new Sock<User>({
    upgrade: (request) => ({ data: { name: request.query || "ada", admin: false } }),
    fetch: (request) =>
      app.upgrade(request, (ws) => void seen.push(`fetch:${ws.data.name}`), {
        data: { name: "bob", admin: true },
      }),
  });
  app.route("/chat", (ws) => {
    const name: string = ws.data.name; // No cast: typed.
    const admin: boolean = ws.data.admin;
    seen.push(`route:${name}:${admin}`);
  });
  // @ts-expect-error: a handler of another data type does not fit.
  app.route("/other", (ws: Connection<{ id: number }>) => ws.data.id);
  // @ts-expect-error: the hook must attach the declared shape.
  new Sock<User>({ upgrade: () => ({ data: { name: 1 } }) });
  // @ts-expect-error: so must upgrade().
  ((request: Request) => app.upgrade(request, () => {}, { data: { name: "x" } }));
  const untyped = new Sock();
  untyped.route("/", (ws) => {
    // @ts-expect-error: without a Data parameter, ws.data is unknown.
    ws.data.name;
  });
  const { port } = await app.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    for (const path of ["/chat?eve", "/ws"]) {
      const ws = await connect(`ws://127.0.0.1:${port}${path}`);
      await ws.closed;
    }
    assert.deepEqual(seen, ["route:eve:false", "fetch:bob"]);
    for (const ws of app.connections) {
      const user: User = ws.data;
      assert.ok(user);
    }
  } finally {
    await app.close();
  }
});
