/**
 * A client that comes back: sends a numbered message every second over `reconnecting()` and prints
 * the echoes, and each retry with its delay and reason.
 *
 *   deno run -A examples/reconnect.ts [--url ws://127.0.0.1:9001/] [--max-retries 20]
 *   bun examples/reconnect.ts
 *
 * Start `examples/echo_server.ts --port 9001` beside it, stop it (Ctrl+C) and start it again: the
 * client reports `attempt 1 in … ms`, `attempt 2 …` with growing delays, then carries on. It ends
 * after `--max-retries` failed attempts in a row (throwing the last error) or after 100 messages.
 *
 * @module
 */

import { ConnectionClosed } from "../src/connection/closed.ts";
import { reconnecting } from "../src/reconnect.ts";
import { option } from "./args.ts";

const url = option("url", "ws://127.0.0.1:9001/");
const maxRetries = Number(option("max-retries", "20"));
let sent = 0;

for await (
  const ws of reconnecting(url, {
    backoff: { initial: 500, max: 10_000 },
    maxRetries,
    onRetry: ({ attempt, delay, error }) => {
      console.log(`attempt ${attempt} in ${delay} ms (${error instanceof Error ? error.message : error})`);
    },
  })
) {
  console.log(`connected to ${url}`);
  const ticker = setInterval(() => void ws.send(`message ${++sent}`), 1000);
  try {
    for await (const message of ws) {
      console.log(`echo: ${message}`);
      if (sent >= 100) break;
    }
  } catch (error) {
    if (!(error instanceof ConnectionClosed)) throw error; // The loop decides from the close code.
  } finally {
    clearInterval(ticker);
  }
  if (sent >= 100) break;
}
console.log("done");
