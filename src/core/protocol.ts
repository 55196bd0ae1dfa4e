/**
 * The sans-IO WebSocket connection (RFC 6455 §5–§7), shared by the server and
 * client sides: bytes in, events out; commands in, bytes out.
 *
 * @module
 */

import { CloseCode, type CloseInfo, isValidCloseCode, MAX_CLOSE_REASON_BYTES } from "./close.ts";
import { encodeClosePayload, parseClosePayload } from "./close_frame.ts";
import { ProtocolError } from "./errors.ts";
import type { Extension } from "./extensions.ts";
import { FrameDecoder, FrameEncoder, type FrameSink, MAX_CONTROL_PAYLOAD, Opcode } from "./frame.ts";
import { cryptoRandom, mask, MaskKeys, type RandomSource } from "./mask.ts";
import { checkOption } from "./options.ts";
import {
  decodeUtf8,
  encodeUtf8,
  encodeUtf8Into,
  unmaskShortText,
  utf8Length,
  Utf8StreamDecoder,
} from "./utf8.ts";

/**
 * Connection states, numbered like the web `WebSocket.readyState`.
 *
 * @category Protocol core
 *
 * @example Checking the state
 * ```ts
 * import { ReadyState } from "@sock/sock";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(ReadyState.Open, 1);
 * ```
 */
export const ReadyState = {
  /** The opening handshake is under way. */
  Connecting: 0,
  /** Messages flow both ways. */
  Open: 1,
  /** This side sent a close frame and waits for the peer's. */
  Closing: 2,
  /** Done: both close frames exchanged, the connection failed, or the transport ended. */
  Closed: 3,
} as const;

/**
 * One of the {@linkcode ReadyState} values.
 *
 * @category Protocol core
 */
export type ReadyState = typeof ReadyState[keyof typeof ReadyState];

const STATE_NAMES = ["CONNECTING", "OPEN", "CLOSING", "CLOSED"];

/**
 * A text message, or with `streamMessages` a piece of one.
 *
 * @category Protocol core
 */
export interface TextEvent {
  /** Discriminant. */
  type: "text";
  /** The text (a piece of it when streaming). */
  data: string;
  /** Whether this completes the message (always `true` unless streaming). */
  final: boolean;
}

/**
 * A binary message, or with `streamMessages` a piece of one.
 *
 * @category Protocol core
 */
export interface BinaryEvent {
  /** Discriminant. */
  type: "binary";
  /** The bytes, owned by the receiver (a piece of them when streaming). */
  data: Uint8Array;
  /** Whether this completes the message (always `true` unless streaming). */
  final: boolean;
}

/**
 * A ping from the peer; the pong is already queued unless `autoPong` is off.
 *
 * @category Protocol core
 */
export interface PingEvent {
  /** Discriminant. */
  type: "ping";
  /** The ping's application data. */
  data: Uint8Array;
}

/**
 * A pong from the peer.
 *
 * @category Protocol core
 */
export interface PongEvent {
  /** Discriminant. */
  type: "pong";
  /** The pong's application data. */
  data: Uint8Array;
}

/**
 * The peer's close frame arrived; if the peer started the close, the echo is already queued.
 * (Not the DOM's `CloseEvent`, which reports how a connection ended: that is {@linkcode ClosedEvent}.)
 *
 * @category Protocol core
 */
export interface CloseFrameEvent extends CloseInfo {
  /** Discriminant. */
  type: "close";
}

/**
 * The peer broke the protocol or a limit. When the connection was OPEN, the
 * close frame with `error.code` is queued; a server failing a handshake
 * queues the HTTP error response; a client failing one queues nothing.
 * Flush `dataToSend()`, then close the transport.
 *
 * @category Protocol core
 */
export interface FailedEvent {
  /** Discriminant. */
  type: "failed";
  /** What went wrong, with the close code and, during the handshake, the HTTP status. */
  error: ProtocolError;
}

/**
 * What went each way over a connection (see {@linkcode Protocol.stats}).
 *
 * @category Protocol core
 */
export interface ProtocolStats {
  /** Messages received complete. */
  messagesReceived: number;
  /** Messages sent (their last frame queued). */
  messagesSent: number;
  /** Payload bytes of the data frames received, as they arrived (compressed under permessage-deflate). */
  bytesReceived: number;
  /** Payload bytes of the data frames sent, as they left. */
  bytesSent: number;
}

/**
 * How a connection ended: the close frames that went each way, and the code and reason that sum them up.
 *
 * @category Protocol core
 */
export interface CloseResult {
  /** The peer's close code if it sent one; else the code we failed with; else 1006. */
  code: number;
  /** The reason that goes with `code`. */
  reason: string;
  /** Whether close frames went both ways. */
  wasClean: boolean;
  /** The peer's close frame, if one arrived. */
  received: CloseInfo | undefined;
  /** Our close frame, if one was sent. */
  sent: CloseInfo | undefined;
}

/**
 * The last event of every connection: the state is now CLOSED. Flush `dataToSend()`, then close
 * the transport. When to close it is the driver's choice: RFC 6455 §7.1.1 asks the server to close
 * the TCP connection first, and a client to wait a little for that before closing it itself; the
 * core needs neither, as nothing it queues follows this event.
 *
 * @category Protocol core
 */
export interface ClosedEvent extends CloseResult {
  /** Discriminant. */
  type: "closed";
}

/**
 * Events both sides produce once open: messages (or pieces of them) and control frames.
 *
 * @category Protocol core
 */
export type FrameEvent = TextEvent | BinaryEvent | PingEvent | PongEvent | CloseFrameEvent;

/**
 * Events the shared layer produces.
 *
 * @category Protocol core
 */
export type ProtocolEvent = FrameEvent | FailedEvent | ClosedEvent;

/**
 * Options both sides share; every limit has a safe default.
 *
 * @category Protocol core
 */
export interface ProtocolOptions {
  /** Largest message in bytes (after decompression); larger fails with 1009. Default 16 MiB. */
  maxMessageSize?: number;
  /** Largest frame payload in bytes; larger fails with 1009. Default `maxMessageSize`. */
  maxFrameSize?: number;
  /** Most frames in one message; more fails with 1009. Default 4096. */
  maxFragments?: number;
  /** Outgoing messages larger than this are split into frames of this size. Default unlimited. */
  fragmentSize?: number;
  /** Answer pings by itself. Default `true`. */
  autoPong?: boolean;
  /**
   * Deliver text and binary messages in pieces as frames arrive, each event
   * with `final` set on the last, so a large message is never buffered whole.
   * Default `false`: one event per message.
   */
  streamMessages?: boolean;
  /** Random bytes for mask keys and handshake keys. Default `crypto.getRandomValues`. */
  random?: RandomSource;
  /**
   * Hold back a protocol violation, the peer's close frame or the end of input (EOF) that
   * follows messages the application has not answered yet: the events up to it are delivered,
   * the connection stays OPEN so replies can be sent, the rest of the input is ignored, and the
   * ending takes effect (close frame queued behind the replies, then `failed` / `close` and
   * `closed`) when the driver calls {@linkcode Protocol.answered}. RFC 6455 §5.5.1 lets an
   * endpoint finish sending its current message before it answers a close. For drivers that
   * know when the application has answered what it read (sock's `Connection` does, bounded by
   * its close timeout). Default `false`: every ending takes effect at once.
   */
  holdEndings?: boolean;
  /**
   * Leave the frames that came with the handshake (a client's early frames, the frames behind a
   * server's 101) unread, for the driver to take with {@linkcode Protocol.takeUnread} and feed to
   * `receiveData()` with the limits it puts on every read (`maxWork`, `maxMessages`). Default
   * `false`: the handshake reads them at once, whatever they cost.
   */
  leaveUnread?: boolean;
}

/**
 * Options for one `receiveData()` call. Besides the chunk's ownership and the bounds on one call, a
 * driver passes hints it takes from its transport: facts about the runtime it runs on, which change
 * how fast the core's work is done, never what it produces.
 *
 * @category Protocol core
 */
export interface ReceiveOptions {
  /**
   * `true` hands the chunk over to the core: it may unmask whole binary messages in place and
   * deliver them as views of the chunk instead of copies (a message at least a sixteenth of the
   * chunk's `ArrayBuffer`, and any message when that buffer holds at most 4 KiB). Pass it only for
   * a buffer read fresh for this call; whether the core kept it is in the call's
   * {@linkcode ReceiveResult}. Default `false`: the chunk is neither modified nor kept.
   */
  transfer?: boolean;
  /**
   * Stop once about this much work is done: each frame costs 64 units plus its payload's
   * bytes, and each byte an extension decodes (inflates) costs one, so a compressed payload is
   * decoded in pieces of 1 KiB and a call may stop in the middle of one. `receiveData()` then
   * returns how much of the chunk it read. Default: no limit.
   */
  maxWork?: number;
  /** Stop once this many messages (or pieces, with `streamMessages`) were delivered. Default: no limit. */
  maxMessages?: number;
  /**
   * A hint: decode short texts in script instead of with `TextDecoder`, for a runtime where a
   * `TextDecoder` call costs more than the work (Deno, where it is an op: bench (g) 599k → 696k
   * messages/s). Slower where `TextDecoder` is native (Bun), even for ASCII. Default `false`.
   */
  scriptedTextDecoding?: boolean;
  /**
   * A hint: with `transfer`, deliver binary messages under 4 KiB as copies, not as views of the
   * chunk, for a runtime where a view costs more than a small copy (JavaScriptCore, so Bun: bench
   * (b) about +15%). Slower where views are cheap (V8, so Deno). Default `false`.
   */
  copySmallMessages?: boolean;
}

/**
 * What one `receiveData()` call did with its chunk.
 *
 * @category Protocol core
 */
export interface ReceiveResult {
  /**
   * How many bytes of the chunk were read: all of them unless a limit in {@linkcode ReceiveOptions}
   * stopped the call; then feed the rest (`chunk.subarray(read)`) later, before anything newer.
   */
  read: number;
  /**
   * Whether the core kept a reference into the chunk's buffer past the call: only with `transfer`,
   * when a binary message was delivered in place, as a view of the chunk. A driver whose transport
   * reads into the same buffer again may do so when this is `false`; when `true`, the buffer is the
   * message's now, and must not be read into again.
   */
  kept: boolean;
}

/**
 * Options for one outgoing message or piece of one.
 *
 * @category Protocol core
 */
export interface SendOptions {
  /** `false` sends a piece of a message; more pieces follow, the last with `fin: true`. Default `true`. */
  fin?: boolean;
  /**
   * `false` sends the message uncompressed even with permessage-deflate in
   * effect (read on a message's first piece). Default `true`; messages under
   * the extension's threshold go uncompressed anyway.
   */
  compress?: boolean;
}

/** What kind of data message is being assembled (received) or sent in pieces. */
const enum Assembling {
  None = 0,
  Text = 1,
  Binary = 2,
}

const EMPTY = new Uint8Array(0);
/** The extensions of every connection without any: one array for all, not one each. */
const NO_EXTENSIONS: readonly Extension[] = Object.freeze([]);
/**
 * The events of every connection without any (never added to: the first event gets an array), as
 * `NO_CHUNKS` is the frame encoder's queue. The two arrays an idle connection no longer holds, with
 * the storage they had grown, took 125 bytes of heap (5,000 idle connections on Bun: 2.86 -> 2.73 KiB
 * each).
 */
const NO_EVENTS: never[] = [];

/** How the input ended: a violation, the peer's close frame, or EOF. */
type Ending =
  | { kind: "failed"; error: unknown }
  | { kind: "close"; info: CloseInfo }
  | { kind: "eof" };

/** Thrown inside the frame decoder to stop it at a held close frame; never escapes `receiveData()`. */
const HELD = Symbol("held");

/** What a frame costs in `maxWork` units besides its payload: the fixed cost of one, in bytes unmasked. */
const FRAME_WORK = 64;
/**
 * The largest piece of a compressed payload inflated at once, so that `maxWork` can stop a call
 * inside a frame whose 64 KiB inflate to 64 MiB: a piece inflates to 1 MiB at most (DEFLATE's best
 * ratio is 1032:1), 2-3 ms here. Smaller pieces cost more per byte: 256-byte pieces inflated
 * English-like text 1.5-4.5× slower than 1 KiB ones (Deno and Bun).
 */
const COMPRESSED_PIECE = 1024;

/** Below this many UTF-16 units, text is encoded into a scratch buffer (3 bytes per unit suffice). */
const SHORT_TEXT = 128;
/**
 * Speed trick: short texts are encoded in script into this one buffer, shared by every connection
 * (the frame encoder copies a payload this small into its frame at once), and sent through a view
 * of it per length, made once, as a view costs more than the encoding. This came with "no views
 * on the per-message path" (commit 2523301: in-process echo, Bun text 1,188 → 565 ns/msg, for all
 * of that commit's changes together; this buffer's own share was not measured). Until 0.2.0 the
 * encoder took a length parameter instead of a view per length: the same speed within noise
 * (16 texts of 32 bytes per write: Deno 103.8 vs 103.5 ns/msg, Bun 99 vs 98; mixed lengths 219 vs
 * 217, 171 vs 168; medians of 6 runs each).
 */
const SEND_SCRATCH = new Uint8Array(SHORT_TEXT * 3);
/** The views of SEND_SCRATCH by length, each made when first needed. */
const SEND_VIEWS: (Uint8Array | undefined)[] = new Array(SHORT_TEXT * 3 + 1).fill(undefined);

/**
 * A whole binary message in a transferred chunk is delivered in place when it
 * is at least a sixteenth of the buffer under the chunk, or that buffer holds
 * at most this many bytes; otherwise it is copied, so a few bytes never pin a
 * large buffer. Speed trick: small messages in small chunks as views, not copies, bought bench
 * (b) 403k → 617k msg/s on Deno, 376k → 571k on Bun (commit 0f193b7, with the write path of that
 * commit); the sixteenth rule that followed (224e006) is a memory bound, its cost not measured.
 * `copySmallMessages` turns the small case back into copies where those are cheaper.
 */
const IN_PLACE_LIMIT = 4096;

/**
 * The limits and switches a connection reads from its options, worked out once per options object
 * and shared by every connection made with it (as a server makes them all), instead of seven fields
 * of each. With `call` below, and the length of a control frame's payload so far no longer kept, a
 * server connection's core went from 51 fields in 432 bytes to 38 in 320 on JavaScriptCore (5,000
 * idle connections on Bun: 3.37 -> 3.26 KiB of heap each).
 */
interface Limits {
  readonly maxMessageSize: number;
  readonly maxFrameSize: number;
  readonly maxFragments: number;
  readonly fragmentSize: number;
  readonly autoPong: boolean;
  readonly stream: boolean;
  readonly holdEndings: boolean;
  readonly leaveUnread: boolean;
}

const limitsByOptions = new WeakMap<ProtocolOptions, Limits>();

/** The limits of `options`: read (and checked) when the first connection is made with them. */
function limitsOf(options: ProtocolOptions): Limits {
  let limits = limitsByOptions.get(options);
  if (limits) return limits;
  const maxMessageSize = checkOption("maxMessageSize", options.maxMessageSize, 16 * 1024 * 1024, { min: 0 });
  limits = {
    maxMessageSize,
    maxFrameSize: checkOption("maxFrameSize", options.maxFrameSize, maxMessageSize, { min: 0 }),
    maxFragments: checkOption("maxFragments", options.maxFragments, 4096, { min: 1 }),
    fragmentSize: checkOption("fragmentSize", options.fragmentSize, Infinity, { min: 1 }),
    autoPong: options.autoPong ?? true,
    stream: options.streamMessages ?? false,
    holdEndings: options.holdEndings ?? false,
    leaveUnread: options.leaveUnread ?? false,
  };
  limitsByOptions.set(options, limits);
  return limits;
}

/**
 * The state of the `receiveData()` call running, in one object for every connection instead of
 * seven fields of each (see `Limits`): a call runs to its end without running any code that could
 * start another one (events are queued, not dispatched), so no two calls ever overlap.
 */
const call = {
  /** Whether the chunk being decoded was transferred to us. */
  transfer: false,
  /** Whether a message was delivered as a view of the chunk being decoded (see `ReceiveResult.kept`). */
  kept: false,
  /** The hints of the call (see `ReceiveOptions`). */
  scriptedText: false,
  copySmall: false,
  /** Work done, and allowed, in the call (see `ReceiveOptions.maxWork`). */
  work: 0,
  maxWork: Infinity,
  /** Messages the call may still deliver (see `ReceiveOptions.maxMessages`). */
  room: Infinity,
};

/**
 * The connection after the handshake: frames, messages, control frames and
 * the close handshake. {@linkcode ServerProtocol} and {@linkcode ClientProtocol}
 * add the opening handshake and their own events (`SideEvent`); use those.
 *
 * Every method is synchronous. Feed received bytes to `receiveData()`, read
 * `events()`, write `dataToSend()` to the transport.
 *
 * @category Protocol core
 */
export class Protocol<SideEvent = never> implements FrameSink {
  #state: ReadyState = ReadyState.Connecting;
  /** `NO_EVENTS` while there are none: an idle connection holds no array of its own. */
  #events: (ProtocolEvent | SideEvent)[] = NO_EVENTS;
  #decoder: FrameDecoder;
  #encoder: FrameEncoder;
  #extensions: readonly Extension[] = NO_EXTENSIONS;
  #extensionsHeader = "";
  #subprotocol = "";

  readonly #limits: Limits;
  /** Bytes that came with the handshake, left unread (see `leaveUnread`). */
  #unread: Uint8Array | undefined;
  /** A message was delivered since the driver last called `answered()`. */
  #unanswered = false;
  /** An ending held back until the messages before it are answered. */
  #held: Ending | undefined;

  // Incoming frame and message.
  #frameOpcode = 0;
  #frameFin = false;
  #frameLength = 0;
  #frameRemaining = 0;
  #message = Assembling.None;
  #messageRsv = 0;
  #messageSize = 0;
  #fragments = 0;
  #decodedSize = 0;
  #text = "";
  /** Made for the first text split over frames or reads: most connections never see one. */
  #utf8: Utf8StreamDecoder | undefined;
  /** Whether the current text went through the incremental decoder. */
  #utf8Used = false;
  #binary: Uint8Array = EMPTY;
  #binaryLength = 0;
  #scratch = EMPTY;
  /**
   * The payload of the control frame being received: made at its start, of its exact length (at
   * most 125 bytes), and handed on with its event, so nothing is kept between control frames and
   * nothing copied: one allocation per control frame instead of two for the first, and no 125-byte
   * buffer kept by a connection once a ping or pong came (a handshake and a ping, 20,000 server
   * cores kept: 1,770 -> 1,563 B of heap each on Bun, 1,844 -> 1,643 on Deno). How much of it has
   * come is the frame's length less what remains of it.
   */
  #control = EMPTY;
  #lastPiece: TextEvent | BinaryEvent | undefined;

  // Outgoing message.
  #sending = Assembling.None;

  #closeReceived: CloseInfo | undefined;
  #closeSent: CloseInfo | undefined;
  /** The peer's close frame came while OPEN: the peer began the closing handshake. */
  #peerBegan = false;

  // Counted for `stats`: messages complete each way, and data frames' payload bytes as they travel.
  #messagesIn = 0;
  #messagesOut = 0;
  #bytesIn = 0;
  #bytesOut = 0;

  /**
   * Creates a connection in the CONNECTING state.
   *
   * @param isClient `true` for the client side: mask outgoing frames, refuse masked ones.
   * @param options Limits and behaviour, read (all but `random`) when the first connection is made
   *   with this object: connections made with it later share what was read then.
   */
  constructor(isClient: boolean, options: ProtocolOptions = {}) {
    const limits = this.#limits = limitsOf(options);
    this.#decoder = new FrameDecoder(this, { expectMasked: !isClient, maxFrameSize: limits.maxFrameSize });
    this.#encoder = new FrameEncoder(isClient ? new MaskKeys(options.random ?? cryptoRandom) : undefined);
  }

  /** The connection state. */
  get readyState(): ReadyState {
    return this.#state;
  }

  /** The subprotocol agreed in the handshake; empty when none. */
  get subprotocol(): string {
    return this.#subprotocol;
  }

  /** The extensions in effect, in negotiated order. */
  get extensions(): readonly Extension[] {
    return this.#extensions;
  }

  /**
   * The agreed `Sec-WebSocket-Extensions` value, parameters included: the one the server sent (on
   * a client, as received); empty when none.
   */
  get extensionsHeader(): string {
    return this.#extensionsHeader;
  }

  /** The peer's close frame, once received. */
  get closeReceived(): CloseInfo | undefined {
    return this.#closeReceived;
  }

  /** Our close frame, once sent. */
  get closeSent(): CloseInfo | undefined {
    return this.#closeSent;
  }

  /** Whether the peer began the closing handshake: its close frame came while the connection was OPEN. */
  get closedByPeer(): boolean {
    return this.#peerBegan;
  }

  /**
   * What went each way so far: messages complete, and the payload bytes of data frames as they
   * travel (compressed, under permessage-deflate).
   *
   * @example Counting an exchange
   * ```ts
   * import { ClientProtocol, ServerProtocol } from "@sock/sock";
   * import { assertEquals } from "@std/assert";
   *
   * const client = new ClientProtocol({ url: "ws://example.com/" });
   * const server = new ServerProtocol();
   * client.sendRequest();
   * for (const bytes of client.dataToSend()) server.receiveData(bytes);
   * server.events();
   * server.accept();
   * for (const bytes of server.dataToSend()) client.receiveData(bytes);
   * client.send("hello");
   * for (const bytes of client.dataToSend()) server.receiveData(bytes);
   * assertEquals(server.stats, { messagesReceived: 1, messagesSent: 0, bytesReceived: 5, bytesSent: 0 });
   * assertEquals(client.stats.messagesSent, 1);
   * ```
   */
  get stats(): ProtocolStats {
    return {
      messagesReceived: this.#messagesIn,
      messagesSent: this.#messagesOut,
      bytesReceived: this.#bytesIn,
      bytesSent: this.#bytesOut,
    };
  }

  /**
   * Whether an ending (violation, close frame, EOF) is held back until the driver calls
   * `answered()` (see `holdEndings`). Input is ignored meanwhile.
   */
  get endingHeld(): boolean {
    return this.#held !== undefined;
  }

  /** Whether a message has started arriving and is not complete yet. */
  get receivingMessage(): boolean {
    return this.#message !== Assembling.None;
  }

  /** Bytes queued in `dataToSend()` and not yet taken. */
  get bufferedAmount(): number {
    return this.#encoder.pending;
  }

  /**
   * Lets go of the buffers frames are packed into, which a past burst may have
   * left large; frames sent later make new ones. Call it when the connection
   * has gone quiet and every buffer `dataToSend()` returned has been written.
   */
  shrinkBuffers(): void {
    this.#encoder.shrink();
  }

  /**
   * Takes the events produced since the last call, in order.
   *
   * @returns The events; empty when there are none.
   */
  events(): (ProtocolEvent | SideEvent)[] {
    const events = this.#events;
    if (events === NO_EVENTS) return [];
    this.#events = NO_EVENTS;
    return events;
  }

  /**
   * Takes the bytes to write to the transport, in order: handshake, frames,
   * and the replies the protocol owes by itself (pongs, the close echo).
   *
   * @param options `reuse: true` when every buffer from the previous call has
   *   been written: the buffers returned may then be reused after the next
   *   call (no copy per write), so they must be written before it.
   * @returns The buffers to write, in order; empty when there is nothing to send.
   */
  dataToSend(options?: { reuse?: boolean }): Uint8Array[] {
    return this.#encoder.take(options?.reuse);
  }

  /**
   * Feeds bytes received from the transport. Errors never escape: a protocol
   * violation queues the right close frame and produces a `failed` event.
   * Bytes after CLOSED are ignored.
   *
   * @example A binary message delivered in place keeps the chunk
   * ```ts
   * import { ServerProtocol } from "@sock/sock";
   * import { assertEquals } from "@std/assert";
   *
   * const server = new ServerProtocol();
   * server.receiveData(new TextEncoder().encode(
   *   "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
   *     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
   * ));
   * server.accept();
   * server.events();
   * // A masked binary frame of 3 bytes (mask key 0), read into a buffer of its own.
   * const chunk = new Uint8Array([0x82, 0x83, 0, 0, 0, 0, 1, 2, 3]);
   * assertEquals(server.receiveData(chunk, { transfer: true }), { read: 9, kept: true });
   * const [message] = server.events();
   * assertEquals(message.type === "binary" && message.data.buffer === chunk.buffer, true);
   * // Without transfer the core copies, and the transport may read into the buffer again.
   * assertEquals(server.receiveData(chunk.slice()), { read: 9, kept: false });
   * ```
   *
   * @param chunk The bytes; not modified or kept after the call unless transferred.
   * @param options `transfer: true` to hand the chunk over; `maxWork` and `maxMessages` to bound
   *   what one call does; the transport's runtime hints (see {@linkcode ReceiveOptions}).
   * @returns How many bytes of `chunk` were read (all of them unless a limit in `options` stopped
   *   the call; then feed `chunk.subarray(read)` later, before anything newer), and whether the
   *   core kept the chunk's buffer (see {@linkcode ReceiveResult}).
   */
  receiveData(chunk: Uint8Array, options?: ReceiveOptions): ReceiveResult {
    if (this.#state === ReadyState.Closed || this.#held) return { read: chunk.length, kept: false };
    call.transfer = options?.transfer ?? false;
    call.kept = false;
    call.scriptedText = options?.scriptedTextDecoding ?? false;
    call.copySmall = options?.copySmallMessages ?? false;
    call.work = 0;
    call.maxWork = options?.maxWork ?? Infinity;
    call.room = options?.maxMessages ?? Infinity;
    let read = chunk.length;
    try {
      read = this.#decoder.write(chunk);
    } catch (error) {
      if (error !== HELD) this.#end({ kind: "failed", error });
    }
    call.transfer = false;
    const kept = call.kept;
    // Past an ending, the rest of the chunk is never read (RFC 6455 §7.1.7, §5.5.1).
    if (this.readyState === ReadyState.Closed || this.#held) read = chunk.length;
    return { read, kept };
  }

  /**
   * Reports that the transport has no more bytes to give (EOF, reset).
   * Without a completed close handshake this ends the connection as 1006
   * (held back with `holdEndings` while messages are unanswered).
   */
  receiveEof(): void {
    if (!this.#held) this.#end({ kind: "eof" });
  }

  /**
   * Tells the core that the application has answered every message delivered so far (with
   * `holdEndings`): an ending held back for them takes effect now, its close frame queued
   * behind the replies. Call it when the application waits for the next message, or gives up
   * waiting for it to do so.
   *
   * @example A reply goes out before the close frame that follows its message
   * ```ts
   * import { ServerProtocol } from "@sock/sock";
   * import { assertEquals } from "@std/assert";
   *
   * const server = new ServerProtocol({ holdEndings: true });
   * server.receiveData(new TextEncoder().encode(
   *   "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
   *     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
   * ));
   * server.events();
   * server.accept();
   * server.dataToSend();
   * // An unmasked "Hi" (a violation: client frames must be masked) after a masked "Hello".
   * server.receiveData(new Uint8Array([
   *   0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
   *   0x81, 0x02, 0x48, 0x69,
   * ]));
   * assertEquals(server.events(), [{ type: "text", data: "Hello", final: true }]);
   * server.send("Hello"); // Still OPEN: the reply is queued first.
   * server.answered();
   * assertEquals(server.events().map((event) => event.type), ["failed", "closed"]);
   * const [bytes] = server.dataToSend();
   * assertEquals([bytes[0], bytes[7], bytes[9], bytes[10]], [0x81, 0x88, 0x03, 0xea]); // Text, then close 1002.
   * ```
   */
  answered(): void {
    this.#unanswered = false;
    const held = this.#held;
    if (held === undefined) return;
    this.#held = undefined;
    this.#enact(held);
  }

  /** The input ended: at once, or once the messages before it are answered (`holdEndings`). */
  #end(ending: Ending): void {
    if (this.#limits.holdEndings && this.#unanswered && this.#state === ReadyState.Open) {
      this.#held = ending;
      return;
    }
    this.#enact(ending);
  }

  #enact(ending: Ending): void {
    if (ending.kind === "failed") this.fail(ending.error);
    else if (ending.kind === "close") this.#peerClosed(ending.info);
    else this.finish();
  }

  /**
   * Sends a text (string) or binary (`Uint8Array`) message, or a piece of one.
   *
   * @param data The message; a string is sent as UTF-8 text.
   * @param options `fin: false` to send a piece of a fragmented message.
   * @throws {TypeError} When the connection is not OPEN, or a piece's type differs from its message's.
   */
  send(data: string | Uint8Array, options?: SendOptions): void {
    if (typeof data === "string") this.sendText(data, options);
    else this.sendBinary(data, options);
  }

  /**
   * Sends a text message, or a piece of one.
   *
   * @param text The text.
   * @param options `fin: false` to send a piece of a fragmented message.
   * @throws {TypeError} When the connection is not OPEN or a binary message is in progress.
   */
  sendText(text: string, options?: SendOptions): void {
    const n = text.length;
    if (n < SHORT_TEXT && this.#extensions.length === 0) {
      const length = encodeUtf8Into(text, SEND_SCRATCH);
      this.#sendData(Assembling.Text, SEND_VIEWS[length] ??= SEND_SCRATCH.subarray(0, length), options);
      return;
    }
    this.#sendData(Assembling.Text, encodeUtf8(text), options);
  }

  /**
   * Sends a binary message, or a piece of one. The bytes are not modified,
   * but a payload of 256 KiB or more is queued by reference, without a copy:
   * leave it unchanged until `dataToSend()` has handed it out and it is written.
   *
   * @param data The bytes.
   * @param options `fin: false` to send a piece of a fragmented message.
   * @throws {TypeError} When the connection is not OPEN or a text message is in progress.
   */
  sendBinary(data: Uint8Array, options?: SendOptions): void {
    this.#sendData(Assembling.Binary, data, options);
  }

  /**
   * Sends a ping.
   *
   * @param data Up to 125 bytes of application data (a string is sent as UTF-8).
   * @throws {TypeError} When the connection is not OPEN.
   * @throws {RangeError} When the data is over 125 bytes.
   */
  ping(data: string | Uint8Array = EMPTY): void {
    this.#sendControl(Opcode.Ping, data);
  }

  /**
   * Sends a pong (an unsolicited one is a heartbeat).
   *
   * @param data Up to 125 bytes of application data.
   * @throws {TypeError} When the connection is not OPEN.
   * @throws {RangeError} When the data is over 125 bytes.
   */
  pong(data: string | Uint8Array = EMPTY): void {
    this.#sendControl(Opcode.Pong, data);
  }

  /**
   * Starts the close handshake: queues a close frame and moves to CLOSING.
   * Does nothing once CLOSING or CLOSED (the core answers a peer's close by itself).
   *
   * @param code A close code valid on the wire, or none for an empty close frame.
   * @param reason Up to 123 bytes of UTF-8; needs a code.
   * @throws {RangeError} For an invalid code or an overlong reason.
   * @throws {TypeError} For a reason without a code, or before the handshake completes.
   */
  close(code?: number, reason = ""): void {
    if (this.#state === ReadyState.Connecting) {
      throw new TypeError("cannot close before the opening handshake completes");
    }
    if (this.#state !== ReadyState.Open) return;
    const payload = encodeClosePayload(code, reason);
    this.#encoder.frame(Opcode.Close, payload, true, 0);
    this.#closeSent = { code: code ?? CloseCode.NoStatusReceived, reason };
    this.#state = ReadyState.Closing;
  }

  // ---- For the handshake layers -------------------------------------------

  /**
   * Takes the bytes that came with the handshake and were left unread (with `leaveUnread`):
   * feed them to `receiveData()` before anything read later.
   *
   * @returns The bytes, owned by the caller, or `undefined` when there are none.
   */
  takeUnread(): Uint8Array | undefined {
    const unread = this.#unread;
    this.#unread = undefined;
    return unread;
  }

  /** Reads (or with `leaveUnread` keeps) frames that came with the handshake; `bytes` become the core's. */
  protected receiveAfterHandshake(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    if (this.#limits.leaveUnread) this.#unread = bytes;
    else this.receiveData(bytes);
  }

  /** Queues raw bytes (HTTP heads and bodies); `handOver` when the caller never touches them again. */
  protected sendRaw(bytes: Uint8Array, handOver = false): void {
    this.#encoder.raw(bytes, handOver);
  }

  /** Adds an event. */
  protected emit(event: ProtocolEvent | SideEvent): void {
    if (this.#events === NO_EVENTS) this.#events = [event];
    else this.#events.push(event);
  }

  /** Moves to OPEN with the agreed subprotocol and extensions (and the header that agreed them). */
  protected open(subprotocol: string, extensions: Extension[], extensionsHeader = ""): void {
    this.#subprotocol = subprotocol;
    this.#extensions = extensions.length > 0 ? extensions : NO_EXTENSIONS;
    this.#extensionsHeader = extensionsHeader;
    let rsv = 0;
    for (const extension of extensions) rsv |= extension.rsv;
    this.#decoder.allowedRsv = rsv;
    this.#state = ReadyState.Open;
  }

  /**
   * Fails the connection (RFC 6455 §7.1.7): queues a close frame with the
   * error's code when still OPEN, reports `failed`, then ends the connection,
   * which reports that code. The core calls it for what the peer sent; a
   * driver may call it for a failure it finds itself, such as a peer that
   * does not read (1008). Input is ignored from then on.
   *
   * @example Failing a connection whose peer does not keep up
   * ```ts
   * import { ProtocolError, ServerProtocol } from "@sock/sock";
   * import { assertEquals } from "@std/assert";
   *
   * const server = new ServerProtocol();
   * server.receiveData(new TextEncoder().encode(
   *   "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
   *     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
   * ));
   * server.events();
   * server.accept();
   * server.fail(new ProtocolError("send buffer full", 1008));
   * const closed = server.events().find((event) => event.type === "closed");
   * assertEquals(closed?.code, 1008);
   * ```
   *
   * @param error The error; anything that is not a {@linkcode ProtocolError} becomes 1011.
   */
  fail(error: unknown): void {
    if (this.#state === ReadyState.Closed) return;
    // Anything but our own error with a code fit for the wire becomes 1011, with no internals.
    const failure = error instanceof ProtocolError && isValidCloseCode(error.code)
      ? error
      : new ProtocolError("internal error", CloseCode.InternalError, { cause: error });
    // A connection that never opened ends as 1006, as in browsers.
    let failed: CloseInfo | undefined;
    if (this.#state !== ReadyState.Connecting) {
      const reason = truncateReason(failure.message);
      failed = { code: failure.code, reason };
      if (this.#state === ReadyState.Open) {
        this.#encoder.frame(Opcode.Close, encodeClosePayload(failure.code, reason), true, 0);
        this.#closeSent = failed;
      }
    }
    this.emit({ type: "failed", error: failure });
    this.finish(failed);
  }

  /**
   * Moves to CLOSED and emits the `closed` event, once.
   *
   * @param failed The code and reason of the failure that ends the connection, if one does: they
   *   are reported unless the peer's close frame came first. (A parameter, not a field: see
   *   `Opening` in server_protocol.ts for what a field less per connection saves.)
   */
  protected finish(failed?: CloseInfo): void {
    if (this.#state === ReadyState.Closed) return;
    this.#state = ReadyState.Closed;
    const received = this.#closeReceived, sent = this.#closeSent;
    const { code, reason } = received ?? failed ?? { code: CloseCode.AbnormalClosure, reason: "" };
    this.emit({ type: "closed", code, reason, wasClean: !!(received && sent), received, sent });
  }

  // ---- FrameSink -----------------------------------------------------------

  /** @internal */
  frameStart(fin: boolean, rsv: number, opcode: number, length: number): void {
    if (this.#state === ReadyState.Closed) return;
    this.#frameOpcode = opcode;
    this.#frameFin = fin;
    this.#frameLength = length;
    this.#frameRemaining = length;
    if (opcode >= Opcode.Close) {
      this.#control = length === 0 ? EMPTY : new Uint8Array(length);
      return;
    }
    if (opcode === Opcode.Continuation) {
      if (this.#message === Assembling.None) {
        throw new ProtocolError("continuation frame without a message to continue", CloseCode.ProtocolError);
      }
      if (rsv !== 0) throw new ProtocolError("RSV bits set on a continuation frame", CloseCode.ProtocolError);
    } else {
      if (this.#message !== Assembling.None) {
        throw new ProtocolError("new data frame inside a fragmented message", CloseCode.ProtocolError);
      }
      this.#message = opcode === Opcode.Text ? Assembling.Text : Assembling.Binary;
      this.#messageRsv = rsv;
      this.#messageSize = 0;
      this.#decodedSize = 0;
      this.#fragments = 0;
      this.#decoder.maxPiece = rsv === 0 ? Infinity : COMPRESSED_PIECE;
    }
    if (++this.#fragments > this.#limits.maxFragments) {
      throw new ProtocolError(
        `message has more than ${this.#limits.maxFragments} fragments`,
        CloseCode.MessageTooBig,
      );
    }
    this.#messageSize += length;
    this.#bytesIn += length;
    if (this.#messageSize > this.#limits.maxMessageSize) {
      throw new ProtocolError(
        `message exceeds the limit of ${this.#limits.maxMessageSize} bytes`,
        CloseCode.MessageTooBig,
      );
    }
  }

  /** @internal */
  framePayload(chunk: Uint8Array, start: number, end: number, key: number, phase: number): void {
    if (this.#state === ReadyState.Closed) return;
    const n = end - start;
    const offset = this.#frameLength - this.#frameRemaining;
    this.#frameRemaining -= n;
    if (this.#frameOpcode >= Opcode.Close) {
      mask(chunk, key, this.#control, offset, phase, start, end);
    } else if (this.#messageRsv !== 0) {
      this.#decodeExtensions(this.#unmaskToScratch(chunk, start, end, key, phase), false);
    } else {
      this.#messagePiece(chunk, start, end, key, phase, this.#binaryLength + n + this.#frameRemaining);
    }
  }

  /** @internal */
  frameEnd(): void {
    if (this.#state === ReadyState.Closed) return;
    if ((call.work += FRAME_WORK + this.#frameLength) >= call.maxWork) this.#decoder.stop = true;
    const opcode = this.#frameOpcode;
    if (opcode >= Opcode.Close) {
      const payload = this.#control;
      this.#control = EMPTY;
      this.#controlFrame(opcode, payload);
      return;
    }
    if (!this.#frameFin) return;
    if (this.#messageRsv !== 0) this.#decodeExtensions(EMPTY, true);
    this.#endMessage();
  }

  // ---- Receiving -----------------------------------------------------------

  /** The bytes of `chunk` from `start` to `end`, unmasked, as a view valid until the next call. */
  #unmaskToScratch(chunk: Uint8Array, start: number, end: number, key: number, phase: number): Uint8Array {
    if (key === 0) return chunk.subarray(start, end);
    const n = end - start;
    if (this.#scratch.length < n) {
      this.#scratch = new Uint8Array(Math.max(n, this.#scratch.length * 2, 1024));
    }
    mask(chunk, key, this.#scratch, 0, phase, start, end);
    return this.#scratch.subarray(0, n);
  }

  #decodeExtensions(bytes: Uint8Array, final: boolean): void {
    let data = bytes;
    const limit = this.#limits.maxMessageSize - this.#decodedSize;
    for (let i = this.#extensions.length - 1; i >= 0; i--) {
      data = this.#extensions[i]!.decode(data, this.#messageRsv, final, limit);
    }
    this.#decodedSize += data.length;
    if ((call.work += data.length) >= call.maxWork) this.#decoder.stop = true;
    if (this.#decodedSize > this.#limits.maxMessageSize) {
      throw new ProtocolError("decoded message exceeds the size limit", CloseCode.MessageTooBig);
    }
    if (data.length > 0) this.#messagePiece(data, 0, data.length, 0, 0, Infinity);
  }

  /**
   * One piece of a data message's payload: `chunk` from `start` to `end`, still masked with `key`.
   * `expected` bounds the binary message's size as far as known: buffers grow
   * at most to it, so a peer cannot make us allocate much more than it sent.
   */
  #messagePiece(
    chunk: Uint8Array,
    start: number,
    end: number,
    key: number,
    phase: number,
    expected: number,
  ): void {
    const n = end - start;
    // The whole message in this one piece, as sent (no extension transformed it).
    const whole = this.#frameFin && this.#fragments === 1 && n === this.#frameLength &&
      this.#messageRsv === 0;
    if (this.#message === Assembling.Text) {
      if (whole && !this.#limits.stream) {
        this.#text = unmaskShortText(chunk, start, end, key, phase, call.scriptedText) ??
          decodeUtf8(this.#unmaskToScratch(chunk, start, end, key, phase));
        return;
      }
      const part = (this.#utf8 ??= new Utf8StreamDecoder()).write(
        this.#unmaskToScratch(chunk, start, end, key, phase),
      );
      if (this.#limits.stream) {
        if (part !== "") this.#piece({ type: "text", data: part, final: false });
      } else {
        this.#text += part;
        this.#utf8Used = true;
      }
      return;
    }
    if (this.#limits.stream) {
      const data = new Uint8Array(n);
      mask(chunk, key, data, 0, phase, start, end);
      this.#piece({ type: "binary", data, final: false });
      return;
    }
    if (whole && call.transfer && this.#inPlace(chunk, n)) {
      // A whole message inside a chunk handed over to us: unmask it where it lies.
      mask(chunk, key, chunk, start, phase, start, end);
      this.#binary = chunk.subarray(start, end);
      this.#binaryLength = n;
      call.kept = true;
      return;
    }
    const needed = this.#binaryLength + n;
    if (needed > this.#binary.length) {
      // Grow to exactly what the frame announced once a sixteenth of it has arrived (so a peer
      // makes us allocate at most 16 times what it sent), else geometrically; geometrically too
      // while more frames may follow, so a message of many frames is copied O(n) times, not O(n²).
      const doubled = Math.max(this.#binary.length * 2, 1024);
      let capacity = expected <= needed * 16 ? expected : Math.min(doubled, expected);
      if (!this.#frameFin) capacity = Math.max(capacity, doubled);
      // Never beyond the largest message allowed: what a connection may hold is counted in those.
      const grown = new Uint8Array(Math.max(Math.min(capacity, this.#limits.maxMessageSize), needed));
      if (this.#binaryLength > 0) grown.set(this.#binary.subarray(0, this.#binaryLength));
      this.#binary = grown;
    }
    mask(chunk, key, this.#binary, this.#binaryLength, phase, start, end);
    this.#binaryLength = needed;
  }

  /** Whether a whole message of `n` bytes in a transferred `chunk` is delivered in place (see IN_PLACE_LIMIT). */
  #inPlace(chunk: Uint8Array, n: number): boolean {
    if (n < IN_PLACE_LIMIT && call.copySmall) return false;
    const size = chunk.buffer.byteLength;
    return n * 16 >= size || size <= IN_PLACE_LIMIT;
  }

  #piece(event: TextEvent | BinaryEvent): void {
    this.#unanswered = true;
    if (--call.room <= 0) this.#decoder.stop = true;
    this.#lastPiece = event;
    this.emit(event);
  }

  #endMessage(): void {
    this.#messagesIn++;
    this.#unanswered = true;
    if (--call.room <= 0) this.#decoder.stop = true;
    const kind = this.#message;
    this.#message = Assembling.None;
    if (this.#limits.stream) {
      const tail = kind === Assembling.Text ? this.#utf8?.end() ?? "" : "";
      const last = this.#lastPiece;
      if (last && tail === "" && this.#events[this.#events.length - 1] === last) {
        last.final = true;
      } else if (kind === Assembling.Text) {
        this.emit({ type: "text", data: tail, final: true });
      } else {
        this.emit({ type: "binary", data: EMPTY, final: true });
      }
      this.#lastPiece = undefined;
      return;
    }
    if (kind === Assembling.Text) {
      let text = this.#text;
      if (this.#utf8Used) text += this.#utf8!.end();
      this.#text = "";
      this.#utf8Used = false;
      this.emit({ type: "text", data: text, final: true });
    } else {
      const length = this.#binaryLength;
      const buffer = this.#binary;
      // A view when little of the buffer is unused: copying a large message would hold it twice.
      const data = length === buffer.length
        ? buffer
        : (buffer.length - length) * 8 <= buffer.length
        ? buffer.subarray(0, length)
        : buffer.slice(0, length);
      this.#binary = EMPTY;
      this.#binaryLength = 0;
      this.emit({ type: "binary", data, final: true });
    }
  }

  #controlFrame(opcode: number, payload: Uint8Array): void {
    if (opcode === Opcode.Ping) {
      this.emit({ type: "ping", data: payload });
      // Also while CLOSING: RFC 6455 §5.5.2 wants a pong until the peer's close arrives.
      if (this.#limits.autoPong) {
        this.#encoder.frame(Opcode.Pong, payload, true, 0);
      }
    } else if (opcode === Opcode.Pong) {
      this.emit({ type: "pong", data: payload });
    } else {
      this.#end({ kind: "close", info: parseClosePayload(payload) });
      // Nothing after a close frame is read (RFC 6455 §5.5.1): stop the decoder here.
      throw HELD;
    }
  }

  #peerClosed(info: CloseInfo): void {
    this.#closeReceived = info;
    this.emit({ type: "close", code: info.code, reason: info.reason });
    if (this.#state === ReadyState.Open) {
      this.#peerBegan = true;
      // Echo the code (RFC 6455 §5.5.1); an empty close is answered with an empty one.
      const code = info.code === CloseCode.NoStatusReceived ? undefined : info.code;
      this.#encoder.frame(Opcode.Close, encodeClosePayload(code), true, 0);
      this.#closeSent = { code: info.code, reason: "" };
    }
    this.finish();
  }

  // ---- Sending -------------------------------------------------------------

  #checkCanSend(): void {
    if (this.#state !== ReadyState.Open) {
      throw new TypeError(`cannot send: the connection is ${STATE_NAMES[this.#state]}`);
    }
  }

  /** Sends `payload` as a message or a piece of one. */
  #sendData(kind: Assembling, payload: Uint8Array, options: SendOptions | undefined): void {
    this.#checkCanSend();
    const fin = options?.fin ?? true;
    const first = this.#sending === Assembling.None;
    if (!first && this.#sending !== kind) {
      throw new TypeError("cannot mix text and binary pieces in one message");
    }
    let rsv = 0;
    let data = payload;
    let n = payload.length;
    for (const extension of this.#extensions) {
      const encoded = extension.encode(data, first, fin, options?.compress ?? true);
      data = encoded.data;
      n = data.length;
      if (first) rsv |= encoded.rsv;
    }
    this.#sending = fin ? Assembling.None : kind;
    this.#bytesOut += n;
    if (fin) this.#messagesOut++;
    let opcode: number = first ? kind : Opcode.Continuation;
    const size = this.#limits.fragmentSize;
    if (n <= size) {
      // One frame (an empty message too).
      this.#encoder.frame(opcode, data, fin, rsv);
      return;
    }
    // Split into frames of at most `fragmentSize`.
    for (let offset = 0; offset < n; offset += size) {
      const end = Math.min(n, offset + size);
      this.#encoder.frame(opcode, data.subarray(offset, end), fin && end === n, rsv);
      opcode = Opcode.Continuation;
      rsv = 0;
    }
  }

  #sendControl(opcode: number, data: string | Uint8Array): void {
    this.#checkCanSend();
    const payload = typeof data === "string" ? encodeUtf8(data) : data;
    if (payload.length > MAX_CONTROL_PAYLOAD) {
      throw new RangeError(`control frame data is ${payload.length} bytes; at most 125 are allowed`);
    }
    this.#encoder.frame(opcode, payload, true, 0);
  }
}

/** Shortens an error message to a close reason that fits a close frame. */
function truncateReason(message: string): string {
  let reason = message;
  while (utf8Length(reason) > MAX_CLOSE_REASON_BYTES) reason = reason.slice(0, -1);
  return reason;
}
