/**
 * The sans-IO protocol core of sock: RFC 6455 without sockets. Bytes in,
 * events out; commands in, bytes out. It uses only `Uint8Array`,
 * `TextEncoder`/`TextDecoder`, `URL` and Web Crypto, so it runs on Deno, Bun,
 * browsers and edge runtimes alike.
 *
 * @example An echo server's core, driven by hand
 * ```ts
 * import { ServerProtocol } from "@sock/sock/core";
 * import { assertEquals } from "@std/assert";
 *
 * const server = new ServerProtocol();
 * server.receiveData(new TextEncoder().encode(
 *   "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
 *     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
 * ));
 * assertEquals(server.events()[0].type, "request");
 * server.accept();
 * assertEquals(server.readyState, 1);
 * ```
 *
 * @module
 */

export { CloseCode, type CloseInfo, isValidCloseCode, MAX_CLOSE_REASON_BYTES } from "./close.ts";
export { encodeClosePayload, parseClosePayload } from "./close_frame.ts";
export { ProtocolError, type ProtocolErrorOptions } from "./errors.ts";
export {
  type ClientExtensionFactory,
  completeExtensions,
  type Extension,
  type ExtensionOffer,
  formatExtensions,
  negotiateExtensions,
  parseExtensions,
  type ServerExtensionFactory,
} from "./extensions.ts";
export {
  FrameDecoder,
  type FrameDecoderOptions,
  FrameEncoder,
  type FrameSink,
  MAX_CONTROL_PAYLOAD,
  Opcode,
  RSV1,
  RSV2,
  RSV3,
} from "./frame.ts";
export {
  type AcceptOptions,
  acceptResponse,
  acceptToken,
  checkAcceptResponse,
  formatRequest,
  formatResponse,
  generateKey,
  type HandshakeResponse,
  type HeadersInit,
  parseUpgradeRequest,
  type RequestOptions,
  type UpgradeRequest,
  WEBSOCKET_GUID,
} from "./handshake.ts";
export {
  type HeadLimits,
  HeadReader,
  HttpHeaders,
  isToken,
  isTokenCode,
  type ParsedHead,
  parseTokenList,
  trimOws,
} from "./http.ts";
export {
  type HttpDataEvent,
  type HttpEndEvent,
  type HttpErrorEvent,
  type HttpRequestEvent,
  type HttpServerEvent,
  type HttpServerOptions,
  HttpServerProtocol,
} from "./http_server.ts";
export { cryptoRandom, mask, MaskKeys, type RandomSource } from "./mask.ts";
export {
  type BinaryEvent,
  type ClosedEvent,
  type CloseFrameEvent,
  type CloseResult,
  type FailedEvent,
  type FrameEvent,
  type PingEvent,
  type PongEvent,
  Protocol,
  type ProtocolEvent,
  type ProtocolOptions,
  type ProtocolStats,
  ReadyState,
  type ReceiveOptions,
  type ReceiveResult,
  type SendOptions,
  type TextEvent,
} from "./protocol.ts";
export {
  type RejectOptions,
  type RequestEvent,
  type ServerAcceptOptions,
  type ServerEvent,
  ServerProtocol,
  type ServerProtocolOptions,
} from "./server_protocol.ts";
export {
  type AcceptedEvent,
  type ClientEvent,
  ClientProtocol,
  type ClientProtocolOptions,
  type RejectedEvent,
} from "./client_protocol.ts";
export { parseWebSocketUrl, type WebSocketUrl } from "./url.ts";
export { Socks5Error } from "./proxy.ts";
export { decodeUtf8, encodeUtf8, utf8Length, Utf8StreamDecoder } from "./utf8.ts";
export { Deflater, type DeflaterOptions } from "./deflate/deflate.ts";
export { Inflater } from "./deflate/inflate.ts";
export {
  PerMessageDeflateClient,
  type PerMessageDeflateOptions,
  PerMessageDeflateServer,
} from "./deflate/permessage_deflate.ts";
