/**
 * permessage-deflate (RFC 7692): negotiation on both sides and the extension
 * that compresses and decompresses messages, on sock's own DEFLATE engine.
 *
 * @module
 */

import { CloseCode } from "../close.ts";
import { ProtocolError } from "../errors.ts";
import type {
  ClientExtensionFactory,
  Extension,
  ExtensionOffer,
  ServerExtensionFactory,
} from "../extensions.ts";
import { RSV1 } from "../frame.ts";
import { concat } from "../bytes.ts";
import { checkOption } from "../options.ts";
import { Deflater } from "./deflate.ts";
import { Inflater } from "./inflate.ts";

/** The extension's registered name. */
const NAME = "permessage-deflate";

/** The end of a sync flush, removed from every compressed message and put back to decode it (RFC 7692 §7.2.1). */
const TAIL = new Uint8Array([0x00, 0x00, 0xff, 0xff]);

/**
 * permessage-deflate settings. On a server they decide which offers to accept
 * and what to answer; on a client, what to offer and which answers to allow.
 * "Server" and "client" name the side that compresses: the server's window
 * is the one the server compresses with.
 *
 * @category Extensions
 */
export interface PerMessageDeflateOptions {
  /**
   * The server starts every message with an empty window, so it keeps no
   * compression state between messages. Default `false`.
   */
  serverNoContextTakeover?: boolean;
  /**
   * The client starts every message with an empty window, so neither side
   * keeps a window for the client's messages between them. Default `false`.
   */
  clientNoContextTakeover?: boolean;
  /** log2 of the largest window the server may compress with, 8–15. Default 15. */
  serverMaxWindowBits?: number;
  /**
   * log2 of the largest window the client may compress with, 8–15. A server
   * only limits clients that offered `client_max_window_bits`, and declines
   * offers without it when this is below 15. Default 15.
   */
  clientMaxWindowBits?: number;
  /** Compression level, 0–9, as zlib's. Default 6. */
  level?: number;
  /** Memory for compression, 1–9, as zlib's `memLevel`. Default 8. */
  memLevel?: number;
  /** Messages smaller than this many bytes are sent uncompressed. Default 1024. */
  threshold?: number;
}

/** What one side agreed to for its own compressor and its peer's. */
interface Agreement {
  /** Window bits and context takeover of the messages this side sends. */
  sendBits: number;
  sendNoContext: boolean;
  /** Window bits and context takeover of the messages this side receives. */
  receiveBits: number;
  receiveNoContext: boolean;
  /** Whether this side is the client: "server" and "client" in the parameters' names then swap. */
  client: boolean;
}

/** The parameters of one offer or answer, checked (RFC 7692 §7.1). */
interface Params {
  serverNoContextTakeover: boolean;
  clientNoContextTakeover: boolean;
  serverMaxWindowBits: number | undefined;
  /** `true` when given without a value. */
  clientMaxWindowBits: number | true | undefined;
}

/** Reads an offer's or answer's parameters; `undefined` when one is unknown, repeated or has a bad value. */
function readParams(offer: ExtensionOffer, isResponse: boolean): Params | undefined {
  const params: Params = {
    serverNoContextTakeover: false,
    clientNoContextTakeover: false,
    serverMaxWindowBits: undefined,
    clientMaxWindowBits: undefined,
  };
  const seen = new Set<string>();
  for (const [name, value] of offer.params) {
    if (seen.has(name)) return undefined;
    seen.add(name);
    if (name === "server_no_context_takeover" || name === "client_no_context_takeover") {
      if (value !== true) return undefined;
      if (name === "server_no_context_takeover") params.serverNoContextTakeover = true;
      else params.clientNoContextTakeover = true;
    } else if (name === "server_max_window_bits") {
      const bits = windowBits(value);
      if (bits === undefined) return undefined;
      params.serverMaxWindowBits = bits;
    } else if (name === "client_max_window_bits") {
      // Only an offer may leave the value out (RFC 7692 §7.1.2.2).
      if (value === true && !isResponse) {
        params.clientMaxWindowBits = true;
        continue;
      }
      const bits = windowBits(value);
      if (bits === undefined) return undefined;
      params.clientMaxWindowBits = bits;
    } else {
      return undefined;
    }
  }
  return params;
}

/** A window bits value: 8 to 15 in decimal digits without leading zeros. */
function windowBits(value: string | true): number | undefined {
  return typeof value === "string" && /^(?:[89]|1[0-5])$/.test(value) ? Number(value) : undefined;
}

/** Options checked once, shared by the factories' extensions. */
class Settings {
  readonly serverNoContextTakeover: boolean;
  readonly clientNoContextTakeover: boolean;
  readonly serverMaxWindowBits: number;
  readonly clientMaxWindowBits: number;
  readonly level: number;
  readonly memLevel: number;
  readonly threshold: number;

  constructor(options: PerMessageDeflateOptions) {
    this.serverNoContextTakeover = options.serverNoContextTakeover ?? false;
    this.clientNoContextTakeover = options.clientNoContextTakeover ?? false;
    const bits = { min: 8, max: 15, integer: true };
    this.serverMaxWindowBits = checkOption("serverMaxWindowBits", options.serverMaxWindowBits, 15, bits);
    this.clientMaxWindowBits = checkOption("clientMaxWindowBits", options.clientMaxWindowBits, 15, bits);
    this.level = checkOption("level", options.level, 6, { min: 0, max: 9, integer: true });
    this.memLevel = checkOption("memLevel", options.memLevel, 8, { min: 1, max: 9, integer: true });
    this.threshold = checkOption("threshold", options.threshold, 1024, {
      min: 0,
      max: Number.MAX_SAFE_INTEGER,
      integer: true,
    });
  }

  extension(agreement: Agreement): PerMessageDeflate {
    return new PerMessageDeflate(agreement, this);
  }
}

/**
 * The server side of permessage-deflate: accepts the first offer it can
 * honour and declines the others (a bad offer never fails the handshake).
 *
 * @category Extensions
 *
 * @example Accepting a browser's offer
 * ```ts
 * import { negotiateExtensions, parseExtensions, PerMessageDeflateServer } from "@sock/sock/core";
 * import { assertEquals } from "@std/assert";
 *
 * const offers = parseExtensions("permessage-deflate; client_max_window_bits");
 * const { header } = negotiateExtensions([new PerMessageDeflateServer()], offers);
 * assertEquals(header, "permessage-deflate");
 * ```
 */
export class PerMessageDeflateServer implements ServerExtensionFactory {
  /** The extension token, `permessage-deflate`. */
  readonly name: string = NAME;
  readonly #settings: Settings;

  /**
   * Creates the factory.
   *
   * @param options What to accept and how to compress.
   * @throws {RangeError} For an option out of range.
   */
  constructor(options: PerMessageDeflateOptions = {}) {
    this.#settings = new Settings(options);
  }

  /**
   * Picks the first offer it can accept.
   *
   * @param offers The client's permessage-deflate offers, in order.
   * @returns The answer and the extension, or `undefined` when no offer fits.
   */
  accept(offers: ExtensionOffer[]): { response: ExtensionOffer; extension: Extension } | undefined {
    const settings = this.#settings;
    for (const offer of offers) {
      const params = readParams(offer, false);
      if (!params) continue;
      const response: ExtensionOffer = { name: NAME, params: [] };
      const serverNoContext = params.serverNoContextTakeover || settings.serverNoContextTakeover;
      if (serverNoContext) response.params.push(["server_no_context_takeover", true]);
      const clientNoContext = params.clientNoContextTakeover || settings.clientNoContextTakeover;
      if (clientNoContext) response.params.push(["client_no_context_takeover", true]);
      const serverBits = Math.min(params.serverMaxWindowBits ?? 15, settings.serverMaxWindowBits);
      if (serverBits < 15 || params.serverMaxWindowBits !== undefined) {
        response.params.push(["server_max_window_bits", String(serverBits)]);
      }
      let clientBits = 15;
      if (params.clientMaxWindowBits === undefined) {
        // The client cannot be told to use a smaller window.
        if (settings.clientMaxWindowBits < 15) continue;
      } else {
        const offered = params.clientMaxWindowBits === true ? 15 : params.clientMaxWindowBits;
        clientBits = Math.min(offered, settings.clientMaxWindowBits);
        if (clientBits < 15 || params.clientMaxWindowBits !== true) {
          response.params.push(["client_max_window_bits", String(clientBits)]);
        }
      }
      const extension = settings.extension({
        sendBits: serverBits,
        sendNoContext: serverNoContext,
        receiveBits: clientBits,
        receiveNoContext: clientNoContext,
        client: false,
      });
      return { response, extension };
    }
    return undefined;
  }
}

/**
 * The client side of permessage-deflate: one offer from the options, and a
 * strict check of the server's answer (RFC 7692 §7.1).
 *
 * @category Extensions
 *
 * @example The offer a client makes
 * ```ts
 * import { formatExtensions, PerMessageDeflateClient } from "@sock/sock/core";
 * import { assertEquals } from "@std/assert";
 *
 * const offer = new PerMessageDeflateClient({ serverMaxWindowBits: 10 }).offer();
 * assertEquals(formatExtensions(offer), "permessage-deflate; server_max_window_bits=10; client_max_window_bits");
 * ```
 */
export class PerMessageDeflateClient implements ClientExtensionFactory {
  /** The extension token, `permessage-deflate`. */
  readonly name: string = NAME;
  readonly #settings: Settings;

  /**
   * Creates the factory.
   *
   * @param options What to offer and how to compress.
   * @throws {RangeError} For an option out of range.
   */
  constructor(options: PerMessageDeflateOptions = {}) {
    this.#settings = new Settings(options);
  }

  /**
   * The offer, from the options.
   *
   * @returns One offer.
   */
  offer(): ExtensionOffer[] {
    const settings = this.#settings;
    const params: [string, string | true][] = [];
    if (settings.serverNoContextTakeover) params.push(["server_no_context_takeover", true]);
    if (settings.clientNoContextTakeover) params.push(["client_no_context_takeover", true]);
    if (settings.serverMaxWindowBits < 15) {
      params.push(["server_max_window_bits", String(settings.serverMaxWindowBits)]);
    }
    params.push([
      "client_max_window_bits",
      settings.clientMaxWindowBits < 15 ? String(settings.clientMaxWindowBits) : true,
    ]);
    return [{ name: NAME, params }];
  }

  /**
   * Checks the server's answer against the offer.
   *
   * @param response The server's parameters.
   * @returns The extension.
   * @throws {ProtocolError} 1002 when the answer is malformed or not what the offer allows.
   */
  complete(response: ExtensionOffer): Extension {
    const settings = this.#settings;
    const params = readParams(response, true);
    const fail = (why: string) =>
      new ProtocolError(`invalid permessage-deflate answer: ${why}`, CloseCode.ProtocolError);
    if (!params) throw fail("unknown, repeated or malformed parameter");
    if (settings.serverNoContextTakeover && !params.serverNoContextTakeover) {
      throw fail("server_no_context_takeover was asked for");
    }
    const serverBits = params.serverMaxWindowBits ?? 15;
    if (serverBits > settings.serverMaxWindowBits) throw fail("server_max_window_bits above the offer");
    const clientBits = params.clientMaxWindowBits === undefined
      ? settings.clientMaxWindowBits
      : params.clientMaxWindowBits as number;
    if (clientBits > settings.clientMaxWindowBits) throw fail("client_max_window_bits above the offer");
    return settings.extension({
      sendBits: clientBits,
      sendNoContext: params.clientNoContextTakeover || settings.clientNoContextTakeover,
      receiveBits: serverBits,
      receiveNoContext: params.serverNoContextTakeover,
      client: true,
    });
  }
}

/**
 * One connection's permessage-deflate: compresses outgoing messages and
 * inflates incoming ones marked with RSV1. Made by the factories; its
 * compressor and decompressor allocate on first use, and without context
 * takeover release their windows after every message.
 */
class PerMessageDeflate implements Extension {
  readonly name: string = NAME;
  readonly rsv = RSV1;
  readonly #agreement: Agreement;
  readonly #settings: Settings;
  #deflater: Deflater | undefined;
  #inflater: Inflater | undefined;
  /** Whether the message being sent is compressed. */
  #compressing = false;

  constructor(agreement: Agreement, settings: Settings) {
    this.#agreement = agreement;
    this.#settings = settings;
  }

  /** The agreement in the parameters' terms, made when asked (nothing kept per connection). */
  get params(): Readonly<Record<string, string | number | boolean>> {
    const { sendBits, sendNoContext, receiveBits, receiveNoContext, client } = this.#agreement;
    return {
      server_no_context_takeover: client ? receiveNoContext : sendNoContext,
      client_no_context_takeover: client ? sendNoContext : receiveNoContext,
      server_max_window_bits: client ? receiveBits : sendBits,
      client_max_window_bits: client ? sendBits : receiveBits,
    };
  }

  decode(data: Uint8Array, rsv: number, final: boolean, maxSize: number): Uint8Array {
    if ((rsv & RSV1) === 0) return data;
    // zlib compresses with 512-byte windows when asked for 256, so a window of 8 bits is read as 9.
    const inflater = this.#inflater ??= new Inflater(Math.max(this.#agreement.receiveBits, 9));
    const out = inflater.write(data, maxSize);
    if (!final) return out;
    const rest = inflater.write(TAIL, maxSize - out.length);
    if (!inflater.atBoundary) {
      throw new ProtocolError("compressed message ends inside a block", CloseCode.InvalidPayloadData);
    }
    if (this.#agreement.receiveNoContext) inflater.reset();
    else inflater.restart();
    return rest.length === 0 ? out : concat([out, rest]);
  }

  encode(
    data: Uint8Array,
    first: boolean,
    final: boolean,
    compress = true,
  ): { data: Uint8Array; rsv: number } {
    if (first) {
      this.#compressing = compress && !(final && data.length < this.#settings.threshold);
    }
    if (!this.#compressing) return { data, rsv: 0 };
    const { sendBits, sendNoContext } = this.#agreement;
    const deflater = this.#deflater ??= new Deflater({
      windowBits: sendBits,
      level: this.#settings.level,
      memLevel: this.#settings.memLevel,
    });
    // Every piece ends with a sync flush, so a streamed message's pieces can be decoded as they go.
    let out = deflater.write(data, true);
    if (final) {
      out = out.subarray(0, out.length - TAIL.length);
      if (sendNoContext) deflater.reset();
    }
    return { data: out, rsv: first ? RSV1 : 0 };
  }
}
