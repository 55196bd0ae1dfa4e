// 10,000 concurrent connections to a Sock on this runtime, each echoing, then a graceful shutdown
// under that load: every connection gets 1001 and the server process exits by itself. The server and
// the load generator (tests/fixtures/load_client.ts: raw TCP, pre-built masked frames) run in child
// processes with their file-descriptor limits raised, so the server's RSS is its own.

import { test } from "node:test";
import assert from "node:assert/strict";
import type { LoadReport } from "../fixtures/load_client.ts";
import { fromEnv, RUNTIME, sleep, spawnScript, startServer } from "../_hardening.ts";

/** `SOCK_LOAD_CONNECTIONS` and `SOCK_LOAD_ECHO_MS` make this a longer run. */
const COUNT = fromEnv("SOCK_LOAD_CONNECTIONS", 10_000);
const ECHO_MS = fromEnv("SOCK_LOAD_ECHO_MS", 3000);
/** The grace `close()` gets: far more than the close handshakes take, even on a loaded machine. */
const CLOSE_MS = 20_000;

// Bounds against hangs only; the runner's default (Bun: 60 s) could stop the run before them.
test(
  `${COUNT} connections on ${RUNTIME}: RSS per idle connection, echo rate, shutdown with 1001 for all, process exit`,
  {
    timeout: 180_000,
  },
  async () => {
    const server = await startServer({});
    const generator = spawnScript(new URL("../fixtures/load_client.ts", import.meta.url), [
      "--port",
      String(server.port),
      "--pid",
      String(server.pid),
      "--count",
      String(COUNT),
      "--echo-ms",
      String(ECHO_MS),
      "--close-ms",
      String(CLOSE_MS),
    ]);
    try {
      const report: LoadReport = JSON.parse(
        (await generator.line(/^\{.*\}$/, 60000 + ECHO_MS + 5 * COUNT + CLOSE_MS))[0],
      );
      const closed = Number((await server.line(/^closed in (\d+) ms/, CLOSE_MS + 10000))[1]);
      const exitStart = performance.now();
      const code = await Promise.race([server.exited, sleep(20000).then(() => "still running")]);
      const exitMs = performance.now() - exitStart;
      const perConnection = (report.rssIdle - report.rssBefore) / report.opened;
      console.log(
        `load (${RUNTIME}): ${report.opened} connections opened in ${report.openMs} ms; server RSS ${
          (report.rssBefore / 1048576).toFixed(1)
        } MiB -> ${(report.rssIdle / 1048576).toFixed(1)} MiB idle = ${
          (perConnection / 1024).toFixed(1)
        } KiB per connection`,
      );
      console.log(
        `load (${RUNTIME}): ${report.echoes} echoes of 32 bytes in ${report.echoMs} ms = ${
          Math.round(report.echoes / report.echoMs * 1000)
        } echoes/s over ${report.opened} connections (${report.wrongEchoes} wrong)`,
      );
      console.log(
        `load (${RUNTIME}): shutdown: ${report.closed1001} got 1001 (${report.closedOther} other) within ${report.shutdownMs} ms; ` +
          `close() resolved in ${closed} ms; the process exited by itself ${
            Math.round(exitMs)
          } ms later (code ${code})`,
      );
      assert.equal(report.opened, COUNT);
      assert.equal(report.wrongEchoes, 0);
      assert.ok(report.echoes >= COUNT, `every connection echoed: ${report.echoes}`);
      assert.equal(report.closed1001, COUNT, "every connection got 1001");
      assert.equal(report.tcpClosed, COUNT, "the server closed every TCP connection");
      // Resolved by every close handshake completing, not by its grace running out.
      assert.ok(closed < CLOSE_MS, `close() took ${closed} ms`);
      assert.equal(code, 0, "the server exited by itself within 20 s of close()");
      assert.ok(perConnection < 64 * 1024, `${perConnection} bytes per idle connection`);
    } finally {
      generator.kill();
      await generator.exited;
      await server.stop();
    }
  },
);
