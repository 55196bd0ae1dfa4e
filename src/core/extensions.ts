/**
 * The generic extension mechanism (RFC 6455 §9): parsing and formatting
 * `Sec-WebSocket-Extensions`, negotiation on both sides, and the interface an
 * extension such as permessage-deflate implements.
 *
 * @module
 */

import { CloseCode } from "./close.ts";
import { ProtocolError } from "./errors.ts";
import { isToken, isTokenCode } from "./http.ts";

/**
 * One extension with its parameters, as offered or agreed.
 *
 * @category Extensions
 */
export interface ExtensionOffer {
  /** The extension token, e.g. `permessage-deflate`. */
  name: string;
  /** Parameters in order; `true` for a parameter without a value. Repeats are kept. */
  params: [string, string | true][];
}

/**
 * A negotiated extension, applied to every data message of a connection.
 * Extensions run in the order negotiated when sending, in reverse when receiving.
 * Their RSV bits go on a message's first frame only, as permessage-deflate
 * requires; a continuation frame with an RSV bit set fails with 1002.
 *
 * @category Extensions
 */
export interface Extension {
  /** The registered name, e.g. `permessage-deflate`. */
  readonly name: string;
  /** The RSV bits it may set on data frames (`0x40` RSV1, `0x20` RSV2, `0x10` RSV3). */
  readonly rsv: number;
  /**
   * What was agreed, for the application to read: every parameter by its registered name, with
   * the value in effect (permessage-deflate gives all four of its parameters, window bits as
   * numbers and context takeover as booleans, defaults included). Optional: an extension that
   * leaves it out reports no parameters.
   */
  readonly params?: Readonly<Record<string, string | number | boolean>>;
  /**
   * Transforms the next piece of an incoming message.
   *
   * @param data The piece, valid only during the call.
   * @param rsv The RSV bits of the message's first frame.
   * @param final Whether this is the last piece of the message.
   * @param maxSize How many bytes the result may hold; over that, throw a {@linkcode ProtocolError} with code 1009.
   * @returns The transformed bytes, owned by the caller.
   */
  decode(data: Uint8Array, rsv: number, final: boolean, maxSize: number): Uint8Array;
  /**
   * Transforms the next piece of an outgoing message.
   *
   * @param data The piece; must not be modified, and is only valid during the call: copy what must be kept.
   * @param first Whether this is the message's first frame.
   * @param final Whether this is its last frame.
   * @param compress `false` when the application asked to send this message uncompressed (the `compress` send option); read on the first frame.
   * @returns The bytes to send (owned by the caller) and, for the first frame, the RSV bits to set.
   */
  encode(
    data: Uint8Array,
    first: boolean,
    final: boolean,
    compress: boolean,
  ): { data: Uint8Array; rsv: number };
}

/**
 * The server side of an extension: picks an offer and makes the extension.
 *
 * @category Extensions
 */
export interface ServerExtensionFactory {
  /** The extension token it answers to. */
  readonly name: string;
  /**
   * Chooses among the client's offers of this extension, in the client's order.
   *
   * @param offers Every offer with this factory's name.
   * @returns The parameters to answer with and the extension, or `undefined` to decline.
   */
  accept(offers: ExtensionOffer[]): { response: ExtensionOffer; extension: Extension } | undefined;
}

/**
 * The client side of an extension: makes an offer and checks the answer.
 *
 * @category Extensions
 */
export interface ClientExtensionFactory {
  /** The extension token it offers. */
  readonly name: string;
  /**
   * The offers to send, most preferred first.
   *
   * @returns One or more offers.
   */
  offer(): ExtensionOffer[];
  /**
   * Checks the server's answer and makes the extension.
   *
   * @param response The parameters the server agreed to.
   * @returns The extension.
   * @throws {ProtocolError} When the answer is not one the offer allows.
   */
  complete(response: ExtensionOffer): Extension;
}

const enum Scan {
  Name,
  Param,
}

/**
 * Parses `Sec-WebSocket-Extensions` values (RFC 6455 §9.1), with quoted-string
 * parameter values, in one linear pass.
 *
 * @category Extensions
 *
 * @param value The field value (repeated fields joined with commas).
 * @returns The extensions in order.
 * @throws {ProtocolError} 400 for a malformed value.
 *
 * @example Parsing a browser's offer
 * ```ts
 * import { parseExtensions } from "@sock/sock";
 * import { assertEquals } from "@std/assert";
 *
 * assertEquals(parseExtensions('permessage-deflate; client_max_window_bits, x-foo; a="b c"'), [
 *   { name: "permessage-deflate", params: [["client_max_window_bits", true]] },
 *   { name: "x-foo", params: [["a", "b c"]] },
 * ]);
 * ```
 */
export function parseExtensions(value: string): ExtensionOffer[] {
  const result: ExtensionOffer[] = [];
  let i = 0;
  const n = value.length;
  const fail = (why: string) =>
    new ProtocolError(`malformed Sec-WebSocket-Extensions: ${why}`, CloseCode.ProtocolError, { status: 400 });
  const skipOws = () => {
    while (i < n && (value[i] === " " || value[i] === "\t")) i++;
  };
  const readToken = () => {
    const start = i;
    while (i < n && isTokenCode(value.charCodeAt(i))) i++;
    if (i === start) throw fail(`expected a token at offset ${start}`);
    return value.slice(start, i);
  };
  let state = Scan.Name;
  let current: ExtensionOffer | undefined;
  while (true) {
    skipOws();
    if (state === Scan.Name) {
      if (i < n && value[i] === ",") { // Empty list element.
        i++;
        continue;
      }
      if (i >= n) break;
      current = { name: readToken(), params: [] };
      result.push(current);
      state = Scan.Param;
      continue;
    }
    if (i >= n) break;
    if (value[i] === ",") {
      i++;
      state = Scan.Name;
      continue;
    }
    if (value[i] !== ";") throw fail(`unexpected character at offset ${i}`);
    i++;
    skipOws();
    const name = readToken();
    skipOws();
    let paramValue: string | true = true;
    if (i < n && value[i] === "=") {
      i++;
      skipOws();
      if (i < n && value[i] === '"') {
        i++;
        let text = "";
        while (true) {
          if (i >= n) throw fail("unterminated quoted string");
          const c = value[i++];
          if (c === '"') break;
          if (c === "\\") {
            if (i >= n) throw fail("unterminated quoted string");
            text += value[i++];
          } else {
            text += c;
          }
        }
        paramValue = text;
      } else {
        paramValue = readToken();
      }
    }
    current!.params.push([name, paramValue]);
  }
  return result;
}

/**
 * Formats extensions for a `Sec-WebSocket-Extensions` field, quoting values
 * that are not tokens.
 *
 * @category Extensions
 *
 * @param extensions The extensions to format.
 * @returns The field value.
 * @throws {TypeError} When a name or parameter name is not a token.
 *
 * @example Formatting an agreement
 * ```ts
 * import { formatExtensions } from "@sock/sock";
 * import { assertEquals } from "@std/assert";
 *
 * const value = formatExtensions([{ name: "permessage-deflate", params: [["server_max_window_bits", "10"]] }]);
 * assertEquals(value, "permessage-deflate; server_max_window_bits=10");
 * ```
 */
export function formatExtensions(extensions: ExtensionOffer[]): string {
  return extensions.map(({ name, params }) => {
    if (!isToken(name)) throw new TypeError(`extension name ${JSON.stringify(name)} is not a token`);
    let text = name;
    for (const [key, value] of params) {
      if (!isToken(key)) throw new TypeError(`extension parameter ${JSON.stringify(key)} is not a token`);
      text += `; ${key}`;
      if (value !== true) {
        text += "=" + (isToken(value) ? value : `"${value.replace(/["\\]/g, "\\$&")}"`);
      }
    }
    return text;
  }).join(", ");
}

/**
 * Server-side negotiation: each factory, in the server's order, looks at the
 * client's offers of its name and accepts one or declines. Offers nobody
 * accepts are declined silently, as RFC 6455 §9.1 allows.
 *
 * @category Extensions
 *
 * @param factories The server's extensions, in order of preference.
 * @param offers The client's offers.
 * @returns The response field value (`undefined` when nothing was agreed) and the extensions.
 * @throws {TypeError} When two agreed extensions claim the same RSV bit.
 *
 * @example Declining everything
 * ```ts
 * import { negotiateExtensions } from "@sock/sock";
 * import { assertEquals } from "@std/assert";
 *
 * const result = negotiateExtensions([], [{ name: "permessage-deflate", params: [] }]);
 * assertEquals(result.header, undefined);
 * assertEquals(result.extensions, []);
 * ```
 */
export function negotiateExtensions(
  factories: readonly ServerExtensionFactory[],
  offers: readonly ExtensionOffer[],
): { header: string | undefined; extensions: Extension[] } {
  const responses: ExtensionOffer[] = [];
  const extensions: Extension[] = [];
  let rsv = 0;
  for (const factory of factories) {
    const mine = offers.filter((offer) => offer.name === factory.name);
    if (mine.length === 0) continue;
    const agreed = factory.accept(mine);
    if (!agreed) continue;
    if (agreed.extension.rsv & rsv) {
      throw new TypeError(`extension ${factory.name} claims an RSV bit already in use`);
    }
    rsv |= agreed.extension.rsv;
    responses.push(agreed.response);
    extensions.push(agreed.extension);
  }
  return { header: responses.length ? formatExtensions(responses) : undefined, extensions };
}

/**
 * Client-side completion: every extension in the server's answer must have
 * been offered, at most once each.
 *
 * @category Extensions
 *
 * @param factories The client's extensions, as offered.
 * @param responses The server's `Sec-WebSocket-Extensions`, parsed.
 * @returns The extensions in the server's order.
 * @throws {ProtocolError} 1002 for an extension not offered or answered twice, or as the factory decides.
 *
 * @example Refusing an answer that was not offered
 * ```ts
 * import { completeExtensions, ProtocolError } from "@sock/sock";
 * import { assertEquals, assertThrows } from "@std/assert";
 *
 * const error = assertThrows(() => completeExtensions([], [{ name: "x-unknown", params: [] }]), ProtocolError);
 * assertEquals(error.code, 1002);
 * ```
 */
export function completeExtensions(
  factories: readonly ClientExtensionFactory[],
  responses: readonly ExtensionOffer[],
): Extension[] {
  const extensions: Extension[] = [];
  const seen = new Set<string>();
  let rsv = 0;
  for (const response of responses) {
    const factory = factories.find((f) => f.name === response.name);
    if (!factory) {
      throw new ProtocolError(
        `server agreed to ${response.name}, which was not offered`,
        CloseCode.ProtocolError,
      );
    }
    if (seen.has(response.name)) {
      throw new ProtocolError(`server agreed to ${response.name} twice`, CloseCode.ProtocolError);
    }
    seen.add(response.name);
    const extension = factory.complete(response);
    if (extension.rsv & rsv) {
      throw new ProtocolError(
        `extensions ${response.name} and another share an RSV bit`,
        CloseCode.ProtocolError,
      );
    }
    rsv |= extension.rsv;
    extensions.push(extension);
  }
  return extensions;
}
