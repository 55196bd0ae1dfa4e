/**
 * The npm `ws` package for tests that talk to it, loaded from tools/dev.
 *
 * @module
 */

import { createRequire } from "node:module";
import { dirname, join } from "node:path";

// The parts of npm `ws` used here, declared locally.
export interface WsSocket {
  on(event: string, listener: (...args: never[]) => void): unknown;
  once(event: string, listener: (...args: never[]) => void): unknown;
  send(data: string | Uint8Array, options?: { binary?: boolean; fin?: boolean }): void;
  ping(): void;
  close(code?: number, reason?: string): void;
  terminate(): void;
  /** The agreed extensions, as the server answered them. */
  readonly extensions: string;
  /** The TCP socket (a node `net.Socket`). */
  readonly _socket: { readonly bytesRead: number };
}

/** ws's permessage-deflate options. */
export interface WsDeflateOptions {
  threshold?: number;
  serverNoContextTakeover?: boolean;
  clientNoContextTakeover?: boolean;
  serverMaxWindowBits?: number;
  clientMaxWindowBits?: number | boolean;
}

export interface WsServer {
  on(event: string, listener: (...args: never[]) => void): unknown;
  once(event: string, listener: (...args: never[]) => void): unknown;
  address(): { port: number };
  readonly clients: Set<WsSocket>;
  close(callback?: (error?: Error) => void): void;
}

export interface WsModule {
  WebSocket: new (url: string, options?: { perMessageDeflate?: boolean | WsDeflateOptions }) => WsSocket;
  WebSocketServer: new (
    options: { port: number; host: string; perMessageDeflate?: boolean | WsDeflateOptions },
  ) => WsServer;
}

/**
 * Loads npm `ws` from tools/dev. Under Bun, `require("ws")` answers with Bun's built-in
 * re-implementation (backed by Bun's own WebSocket), so the package's entry file is loaded by path.
 */
export function loadWs(): { ws: WsModule; version: string; path: string } | { error: string } {
  try {
    const require = createRequire(new URL("../tools/dev/package.json", import.meta.url));
    const manifest = require.resolve("ws/package.json");
    const { version } = require(manifest) as { version: string };
    const path = join(dirname(manifest), "index.js");
    return { ws: require(path) as WsModule, version, path };
  } catch (error) {
    return { error: String(error) };
  }
}
