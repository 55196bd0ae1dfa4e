import { test } from "node:test";
import assert from "node:assert/strict";
import zlib from "node:zlib";
import {
  acceptToken,
  ClientProtocol,
  type ClientProtocolOptions,
  completeExtensions,
  type Extension,
  negotiateExtensions,
  parseExtensions,
  PerMessageDeflateClient,
  type PerMessageDeflateOptions,
  PerMessageDeflateServer,
  ProtocolError,
  type ProtocolEvent,
  ServerProtocol,
} from "../../../src/core/mod.ts";
import {
  acceptResponseText,
  buildFrame,
  joinBytes,
  jsonRecords,
  latin1Bytes,
  latin1Text,
  readFrames,
  RFC7692,
  RFC_RANDOM,
  sent,
  splits,
  upgradeRequest,
} from "../../_helpers.ts";

const encoder = new TextEncoder();

const json = jsonRecords;

// ---- Negotiation ----------------------------------------------------------

function serverAnswer(offer: string, options?: PerMessageDeflateOptions): string | undefined {
  return negotiateExtensions([new PerMessageDeflateServer(options)], parseExtensions(offer)).header;
}

test("the server accepts each parameter of RFC 7692 §7.1 as offered", () => {
  const cases: [string, string][] = [
    ["permessage-deflate", "permessage-deflate"],
    ["permessage-deflate; client_max_window_bits", "permessage-deflate"],
    ["permessage-deflate; client_max_window_bits=10", "permessage-deflate; client_max_window_bits=10"],
    ["permessage-deflate; server_max_window_bits=9", "permessage-deflate; server_max_window_bits=9"],
    ["permessage-deflate; server_no_context_takeover", "permessage-deflate; server_no_context_takeover"],
    ["permessage-deflate; client_no_context_takeover", "permessage-deflate; client_no_context_takeover"],
    [
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8; " +
      "client_max_window_bits=8",
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=8; " +
      "client_max_window_bits=8",
    ],
    ['permessage-deflate; server_max_window_bits="12"', "permessage-deflate; server_max_window_bits=12"],
  ];
  for (const [offer, answer] of cases) assert.equal(serverAnswer(offer), answer, offer);
});

test("the server's options shape its answer", () => {
  const offer = "permessage-deflate; client_max_window_bits";
  assert.equal(
    serverAnswer(offer, { serverNoContextTakeover: true, clientNoContextTakeover: true }),
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
  );
  assert.equal(
    serverAnswer(offer, { serverMaxWindowBits: 10 }),
    "permessage-deflate; server_max_window_bits=10",
  );
  assert.equal(
    serverAnswer(offer, { clientMaxWindowBits: 11 }),
    "permessage-deflate; client_max_window_bits=11",
  );
  // The smaller of the offer's and the server's limits wins.
  assert.equal(
    serverAnswer("permessage-deflate; server_max_window_bits=12; client_max_window_bits=9", {
      serverMaxWindowBits: 10,
      clientMaxWindowBits: 11,
    }),
    "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9",
  );
  // A client that cannot be told to use a smaller window is declined when the server requires one.
  assert.equal(serverAnswer("permessage-deflate", { clientMaxWindowBits: 10 }), undefined);
});

test("the server declines bad offers and takes the first good one, from one header or repeated headers", () => {
  const bad = [
    "permessage-deflate; x-unknown",
    "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    "permessage-deflate; server_no_context_takeover=1",
    "permessage-deflate; server_max_window_bits",
    "permessage-deflate; server_max_window_bits=16",
    "permessage-deflate; server_max_window_bits=7",
    "permessage-deflate; server_max_window_bits=08",
    "permessage-deflate; client_max_window_bits=abc",
    "permessage-deflate; client_max_window_bits=1; client_max_window_bits=9",
  ];
  for (const offer of bad) {
    assert.equal(serverAnswer(offer), undefined, offer);
    assert.equal(
      serverAnswer(`${offer}, permessage-deflate; client_max_window_bits=12`),
      "permessage-deflate; client_max_window_bits=12",
      offer,
    );
  }
});

test("a server with deflate negotiates over repeated Sec-WebSocket-Extensions headers; without it, declines", async () => {
  const request = upgradeRequest({
    extra: [
      ["Sec-WebSocket-Extensions", "x-other, permessage-deflate; server_max_window_bits=99"],
      ["Sec-WebSocket-Extensions", "permessage-deflate; server_max_window_bits=10"],
    ],
  });
  const answer = (extensions?: PerMessageDeflateServer[]) => {
    const server = new ServerProtocol({ extensions });
    server.receiveData(latin1Bytes(request));
    server.events();
    server.accept();
    return /\r\nSec-WebSocket-Extensions: ([^\r]*)\r\n/i.exec(latin1Text(server.dataToSend()))?.[1];
  };
  assert.equal(
    await answer([new PerMessageDeflateServer()]),
    "permessage-deflate; server_max_window_bits=10",
  );
  assert.equal(await answer(), undefined);
});

test("the client offers what its options say", () => {
  const offer = (options?: PerMessageDeflateOptions) => new PerMessageDeflateClient(options).offer();
  assert.deepEqual(offer(), [{ name: "permessage-deflate", params: [["client_max_window_bits", true]] }]);
  assert.deepEqual(
    offer({
      serverNoContextTakeover: true,
      clientNoContextTakeover: true,
      serverMaxWindowBits: 9,
      clientMaxWindowBits: 8,
    }),
    [{
      name: "permessage-deflate",
      params: [
        ["server_no_context_takeover", true],
        ["client_no_context_takeover", true],
        ["server_max_window_bits", "9"],
        ["client_max_window_bits", "8"],
      ],
    }],
  );
});

test("the client accepts answers its offer allows and fails the others with 1002", () => {
  const complete = (answer: string, options?: PerMessageDeflateOptions) =>
    completeExtensions([new PerMessageDeflateClient(options)], parseExtensions(answer));
  for (
    const answer of [
      "permessage-deflate",
      "permessage-deflate; server_no_context_takeover",
      "permessage-deflate; client_no_context_takeover",
      "permessage-deflate; server_max_window_bits=8",
      "permessage-deflate; client_max_window_bits=15",
    ]
  ) {
    assert.equal(complete(answer)[0].name, "permessage-deflate", answer);
  }
  const refused: [string, PerMessageDeflateOptions?][] = [
    ["permessage-deflate; x-unknown"],
    ["permessage-deflate; client_max_window_bits"], // An answer must give a value.
    ["permessage-deflate; server_max_window_bits=16"],
    ["permessage-deflate; server_no_context_takeover; server_no_context_takeover"],
    ["permessage-deflate; server_max_window_bits=12", { serverMaxWindowBits: 10 }],
    ["permessage-deflate; client_max_window_bits=12", { clientMaxWindowBits: 10 }],
    ["permessage-deflate", { serverNoContextTakeover: true }],
    ["permessage-deflate, permessage-deflate"],
  ];
  for (const [answer, options] of refused) {
    assert.throws(() => complete(answer, options), (error: unknown) => {
      assert.ok(error instanceof ProtocolError, answer);
      assert.equal(error.code, 1002, answer);
      return true;
    }, answer);
  }
});

test("permessage-deflate options are checked", () => {
  for (
    const options of [
      { serverMaxWindowBits: 7 },
      { clientMaxWindowBits: 16 },
      { level: 10 },
      { memLevel: 0 },
      { threshold: -1 },
    ]
  ) {
    assert.throws(() => new PerMessageDeflateServer(options), RangeError, JSON.stringify(options));
    assert.throws(() => new PerMessageDeflateClient(options), RangeError, JSON.stringify(options));
  }
});

// ---- Messages over a protocol pair ----------------------------------------

interface Pair {
  server: ServerProtocol;
  client: ClientProtocol;
}

/** A server and a client that agreed on permessage-deflate with these settings. */
function pair(
  serverOptions: PerMessageDeflateOptions = {},
  clientOptions: PerMessageDeflateOptions = {},
  protocolOptions: Omit<Partial<ClientProtocolOptions>, "extensions"> = {},
): Pair {
  const client = new ClientProtocol({
    url: "ws://example.com/",
    extensions: [new PerMessageDeflateClient(clientOptions)],
    ...protocolOptions,
  });
  const server = new ServerProtocol({
    extensions: [new PerMessageDeflateServer(serverOptions)],
    ...protocolOptions,
  });
  client.sendRequest();
  server.receiveData(joinBytes(client.dataToSend()));
  server.events();
  server.accept();
  client.receiveData(joinBytes(server.dataToSend()));
  assert.equal(client.events()[0]?.type, "accepted");
  assert.equal(client.extensions[0]?.name, "permessage-deflate");
  return { server, client };
}

/** Moves what `from` sent to `to`, optionally cut at `cut`; returns the events and the bytes. */
function deliver(from: ServerProtocol | ClientProtocol, to: ServerProtocol | ClientProtocol, cut?: number) {
  const bytes = sent(from);
  if (cut === undefined) to.receiveData(bytes);
  else for (const chunk of [bytes.subarray(0, cut), bytes.subarray(cut)]) to.receiveData(chunk);
  return { events: to.events() as ProtocolEvent[], bytes };
}

function messages(events: ProtocolEvent[]): (string | Uint8Array)[] {
  return events.flatMap((e) => e.type === "text" || e.type === "binary" ? [e.data] : []);
}

test("messages round-trip compressed both ways, with RSV1 on the first frame only", async () => {
  const { server, client } = await pair();
  const text = json(5000);
  const binary = encoder.encode(json(3000, 2));
  client.send(text);
  client.sendBinary(binary);
  let { events, bytes } = deliver(client, server);
  assert.deepEqual(messages(events), [text, binary]);
  const frames = readFrames(bytes);
  assert.deepEqual(frames.map((f) => f.first), [0xc1, 0xc2]); // FIN + RSV1 + opcode.
  assert.ok(bytes.length < (text.length + binary.length) / 2, `${bytes.length} bytes on the wire`);
  server.send(text, { fin: false });
  server.send(text);
  server.ping("still compressed?");
  ({ events, bytes } = deliver(server, client));
  assert.deepEqual(messages(events), [text + text]);
  assert.deepEqual(readFrames(bytes).map((f) => f.first), [0x41, 0x80, 0x89]); // RSV1 only on the first; none on the ping.
});

test("small messages and messages sent with compress: false go out uncompressed", async () => {
  const { server, client } = await pair({ threshold: 100 });
  server.send("short");
  server.send(json(500), { compress: false });
  server.send(json(500));
  const { events, bytes } = deliver(server, client);
  assert.deepEqual(messages(events), ["short", json(500), json(500)]);
  assert.deepEqual(readFrames(bytes).map((f) => f.first), [0x81, 0x81, 0xc1]);
});

test("context takeover shrinks repeated messages; no context takeover makes each message stand alone", async () => {
  const message = json(2000, 9);
  const sizes = async (serverOptions: PerMessageDeflateOptions) => {
    const { server, client } = await pair(serverOptions);
    const out: number[] = [];
    for (let i = 0; i < 3; i++) {
      server.send(message);
      const { events, bytes } = deliver(server, client);
      assert.deepEqual(messages(events), [message]);
      out.push(bytes.length);
    }
    return out;
  };
  const kept = await sizes({});
  assert.ok(kept[1] < kept[0] / 4, `with context: ${kept}`);
  const fresh = await sizes({ serverNoContextTakeover: true });
  assert.equal(fresh[0], fresh[1]);
  assert.equal(fresh[1], fresh[2]);
});

test("every window size from 8 to 15 works both ways, with and without context takeover", async () => {
  for (let bits = 8; bits <= 15; bits++) {
    for (const noContext of [false, true]) {
      const options = {
        serverMaxWindowBits: bits,
        clientMaxWindowBits: bits,
        serverNoContextTakeover: noContext,
        clientNoContextTakeover: noContext,
      };
      const { server, client } = await pair(options, options);
      for (let i = 0; i < 8; i++) {
        const message = json(1500 + i * 700, i % 3);
        client.send(message);
        assert.deepEqual(messages(deliver(client, server).events), [message], `bits ${bits}, message ${i}`);
        server.send(message);
        assert.deepEqual(messages(deliver(server, client).events), [message], `bits ${bits}, message ${i}`);
      }
    }
  }
});

test("a fragmented compressed message decodes when cut at every offset", async () => {
  const text = json(1200, 4);
  const { server, client } = await pair();
  client.send(text.slice(0, 400), { fin: false });
  client.send(text.slice(400, 800), { fin: false });
  client.send(text.slice(800));
  const wire = sent(client);
  for (const split of splits(wire)) {
    const { server: fresh } = await pair({}, {}, { random: RFC_RANDOM });
    for (const chunk of split.chunks) fresh.receiveData(chunk);
    assert.deepEqual(messages(fresh.events() as ProtocolEvent[]), [text], split.label);
  }
  server.receiveData(wire);
  assert.deepEqual(messages(server.events() as ProtocolEvent[]), [text]);
});

/** A client, opened by hand, that agreed to permessage-deflate, for frames written byte by byte. */
function deflateClient(answer = "permessage-deflate", options: Partial<ClientProtocolOptions> = {}) {
  const client = new ClientProtocol({
    url: "ws://example.com/",
    extensions: [new PerMessageDeflateClient()],
    random: RFC_RANDOM,
    ...options,
  });
  client.sendRequest();
  const key = /\r\nSec-WebSocket-Key: ([^\r]+)\r\n/i.exec(latin1Text(client.dataToSend()))![1];
  client.receiveData(
    latin1Bytes(acceptResponseText(acceptToken(key), [`Sec-WebSocket-Extensions: ${answer}`])),
  );
  assert.equal(client.events()[0]?.type, "accepted");
  return client;
}

test("the RFC 7692 §7.2.3 frames decode to their messages", async () => {
  const { hello, helloAgain, stored, final, twoBlocks } = RFC7692;
  const cases: [string, Uint8Array[], string[]][] = [
    ["§7.2.3.1 one frame", [buildFrame(0xc1, hello)], ["Hello"]],
    ["§7.2.3.1 fragmented", [buildFrame(0x41, hello.subarray(0, 3)), buildFrame(0x80, hello.subarray(3))], [
      "Hello",
    ]],
    ["§7.2.3.2 shared window", [buildFrame(0xc1, hello), buildFrame(0xc1, helloAgain)], ["Hello", "Hello"]],
    ["§7.2.3.3 stored block", [buildFrame(0xc1, stored)], ["Hello"]],
    ["§7.2.3.4 BFINAL set", [buildFrame(0xc1, final)], ["Hello"]],
    ["§7.2.3.5 two blocks", [buildFrame(0xc1, twoBlocks)], ["Hello"]],
    [
      "a message after one that ended in a final block, sharing its window",
      [buildFrame(0xc1, final), buildFrame(0xc1, helloAgain)],
      ["Hello", "Hello"],
    ],
  ];
  for (const [label, frames, expected] of cases) {
    for (const split of splits(joinBytes(frames))) {
      const client = await deflateClient();
      for (const chunk of split.chunks) client.receiveData(chunk);
      assert.deepEqual(messages(client.events() as ProtocolEvent[]), expected, `${label}, ${split.label}`);
    }
  }
});

test("zlib's raw deflate with context takeover and a 32 KiB window decodes, sync flush per message", async () => {
  const client = await deflateClient();
  const deflate = zlib.createDeflateRaw({ windowBits: 15 });
  const chunks: Uint8Array[] = [];
  deflate.on("data", (chunk: Uint8Array) => chunks.push(chunk));
  for (let i = 0; i < 20; i++) {
    const message = json(3000 + i * 1000, i % 4);
    deflate.write(message);
    await new Promise<void>((resolve) => deflate.flush(zlib.constants.Z_SYNC_FLUSH, () => resolve()));
    const payload = joinBytes(chunks.splice(0));
    client.receiveData(buildFrame(0xc1, payload.subarray(0, payload.length - 4)));
    assert.deepEqual(messages(client.events() as ProtocolEvent[]), [message], `message ${i}`);
  }
  deflate.close();
});

function failure(events: ProtocolEvent[]): number | undefined {
  const failed = events.find((e) => e.type === "failed");
  return failed?.type === "failed" ? failed.error.code : undefined;
}

test("corrupt and truncated compressed messages fail with 1007; RSV1 on a control frame with 1002", async () => {
  const cases: [string, number[], number][] = [
    ["reserved block type", [0xc1, 0x01, 0x07], 1007],
    ["message ends inside a block", [0xc1, 0x03, 0xf2, 0x48, 0xcd], 1007],
    ["distance before the start", [0xc1, 0x03, 0x02, 0x02, 0x00], 1007],
    ["RSV1 on a ping", [0xc9, 0x00], 1002],
    ["RSV1 on a continuation", [0x41, 0x03, 0xf2, 0x48, 0xcd, 0xc0, 0x04, 0xc9, 0xc9, 0x07, 0x00], 1002],
  ];
  for (const [label, frame, code] of cases) {
    const client = await deflateClient();
    client.receiveData(new Uint8Array(frame));
    const events = client.events() as ProtocolEvent[];
    assert.equal(failure(events), code, label);
    const close = readFrames(sent(client)).at(-1)!;
    assert.equal(close.first, 0x88, label);
    assert.equal((close.payload[0] << 8) | close.payload[1], code, label);
  }
});

test("an RSV1 message without permessage-deflate agreed fails with 1002", () => {
  const client = new ClientProtocol({ url: "ws://example.com/", random: RFC_RANDOM });
  client.sendRequest();
  const key = /\r\nSec-WebSocket-Key: ([^\r]+)\r\n/i.exec(latin1Text(client.dataToSend()))![1];
  client.receiveData(latin1Bytes(acceptResponseText(acceptToken(key))));
  client.events();
  client.receiveData(buildFrame(0xc1, RFC7692.hello));
  assert.equal(failure(client.events() as ProtocolEvent[]), 1002);
});

test("a compressed message that inflates past maxMessageSize fails with 1009, in one frame or many", async () => {
  // 1 MiB of zeros compresses to about 1 KiB.
  const payload = new Uint8Array(
    zlib.deflateRawSync(new Uint8Array(1 << 20), { finishFlush: zlib.constants.Z_SYNC_FLUSH }),
  );
  const body = payload.subarray(0, payload.length - 4);
  assert.ok(body.length < 2048);
  for (const fragments of [1, 4]) {
    const client = await deflateClient("permessage-deflate", { maxMessageSize: 64 * 1024 });
    const size = Math.ceil(body.length / fragments);
    for (let i = 0; i < fragments; i++) {
      const first = (i === fragments - 1 ? 0x80 : 0) | (i === 0 ? 0x41 : 0x00);
      client.receiveData(buildFrame(first, body.subarray(i * size, (i + 1) * size)));
    }
    assert.equal(failure(client.events() as ProtocolEvent[]), 1009, `${fragments} fragments`);
  }
});

test("streamMessages delivers a compressed message in pieces as its frames inflate", async () => {
  const { server, client } = await pair({}, {}, { streamMessages: true });
  const text = json(6000, 6);
  server.send(text.slice(0, 3000), { fin: false });
  server.send(text.slice(3000));
  const events = deliver(server, client).events.filter((e) => e.type === "text");
  assert.ok(events.length >= 2);
  assert.equal(events.map((e) => e.type === "text" ? e.data : "").join(""), text);
  assert.equal(events.at(-1)?.type === "text" && events.at(-1)?.final, true);
});

test("the extension's agreed settings are per connection: two connections do not share windows", async () => {
  const a = await pair(), b = await pair();
  const texts = [json(3000, 1), json(3000, 2), json(3000, 3), json(3000, 4)];
  // Interleave frames of the two connections so their decoders alternate mid-message.
  a.client.send(texts[0], { fin: false });
  b.client.send(texts[1], { fin: false });
  a.client.send(texts[2]);
  b.client.send(texts[3]);
  const wa = sent(a.client), wb = sent(b.client);
  const cut = (
    bytes: Uint8Array,
  ) => [bytes.subarray(0, 200), bytes.subarray(200, 1500), bytes.subarray(1500)];
  const [a1, a2, a3] = cut(wa), [b1, b2, b3] = cut(wb);
  for (const [protocol, chunk] of [[a, a1], [b, b1], [a, a2], [b, b2], [a, a3], [b, b3]] as const) {
    protocol.server.receiveData(chunk);
  }
  assert.deepEqual(messages(a.server.events() as ProtocolEvent[]), [texts[0] + texts[2]]);
  assert.deepEqual(messages(b.server.events() as ProtocolEvent[]), [texts[1] + texts[3]]);
});

test("an Extension made by the factories reports its name and RSV1", () => {
  const agreed = negotiateExtensions([new PerMessageDeflateServer()], parseExtensions("permessage-deflate"));
  const extension: Extension = agreed.extensions[0];
  assert.equal(extension.name, "permessage-deflate");
  assert.equal(extension.rsv, 0x40);
});
