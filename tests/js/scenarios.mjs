// Scenarios the sioless tests drive with the stock socket.io-client under Node.
// Usage: [SIOLESS_TRANSPORTS=websocket|default|polling] [SIOLESS_PARSER=default|msgpack]
//        node scenarios.mjs <scenario> <url> [<url> ...]
// Prints one JSON line with what the scenario saw; pytest asserts on it.
import { io } from "socket.io-client";
import * as msgpackParser from "socket.io-msgpack-parser";

const TIMEOUT = 5000;
// The clients' transports: WebSocket only, socket.io-client's defaults (polling, then the
// upgrade to WebSocket), or polling only.
const TRANSPORTS = process.env.SIOLESS_TRANSPORTS ?? "websocket";
const TRANSPORT_OPTIONS = {
  websocket: { transports: ["websocket"] },
  default: {},
  polling: { transports: ["polling"] },
}[TRANSPORTS];
// The Socket.IO parser: socket.io's default one, or socket.io-msgpack-parser (the server's must match).
const PARSER_OPTIONS = process.env.SIOLESS_PARSER === "msgpack" ? { parser: msgpackParser } : {};

function connect(url, { namespace = "/", auth = {}, query = {} } = {}) {
  const socket = io(url + namespace, {
    ...TRANSPORT_OPTIONS,
    ...PARSER_OPTIONS,
    auth,
    query,
    reconnection: false,
    forceNew: true,
  });
  return new Promise((resolve, reject) => {
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (err) => {
      socket.close();
      reject(err);
    });
  });
}

async function refusal(url, options) {
  try {
    const socket = await connect(url, options);
    socket.close();
    return { connected: true };
  } catch (err) {
    return { message: err.message, data: err.data ?? null };
  }
}

function askAll(socket, event, ...args) {
  // Every argument of the ack (emitWithAck resolves with the first only).
  return new Promise((resolve, reject) => {
    socket.timeout(TIMEOUT).emit(event, ...args, (err, ...ackArgs) => (err ? reject(err) : resolve(ackArgs)));
  });
}

async function ask(socket, event, ...args) {
  return (await askAll(socket, event, ...args))[0];
}

function next(socket, event, ms = TIMEOUT) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms);
    socket.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

/** The transport a socket ends up on: with the default options, once the upgrade is done. */
async function settledTransport(socket) {
  const engine = socket.io.engine;
  if (TRANSPORTS === "default" && engine.transport.name !== "websocket") {
    await new Promise((resolve) => {
      engine.once("upgrade", resolve);
      setTimeout(resolve, TIMEOUT);
    });
  }
  return engine.transport.name;
}

function collect(socket, event) {
  const seen = [];
  socket.on(event, (...args) => seen.push(args));
  return seen;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

const scenarios = {
  // socket.io-client's own "should not emit a packet twice in the 'connect' handler": until the
  // ack of an emit made in the connect handler, the engine gets exactly OPEN, CONNECT and the ack.
  async connectHandlerEmit([url]) {
    const socket = io(url, { ...TRANSPORT_OPTIONS, forceNew: true, reconnection: false, retries: 3 });
    const sent = [];
    const received = [];
    socket.io.engine.on("packetCreate", ({ data }) => sent.push(data));
    socket.io.engine.on("packet", ({ type, data }) => received.push(type === "open" ? "open" : data ?? type));
    const acked = new Promise((resolve) => socket.on("connect", () => socket.emit("echo", null, resolve)));
    await acked;
    const result = { sent: [...sent], received: [...received] };
    socket.close();
    return result;
  },
  async basics([url]) {
    const socket = await connect(url, { auth: { token: "abc" }, query: { room: "r1" } });
    const whoami = await ask(socket, "whoami");
    const echo = await askAll(socket, "echo", 1, "two", { three: [3] });
    const echoSync = await askAll(socket, "echo_sync", "sync");
    const bytes = await askAll(socket, "echo", Buffer.from([0, 1, 2, 255]), { nested: Buffer.from("hi") });
    const caught = await ask(socket, "made-up event!", 7);
    const noAck = next(socket, "no_ack_done");
    socket.emit("no_ack");
    await noAck;
    const custom = await connect(url, { namespace: "/custom", auth: { token: "secret" } });
    const hello = await ask(custom, "hello", "node");
    const dynamic = await connect(url, { namespace: "/dyn-42" });
    const where = await ask(dynamic, "where");
    const result = {
      transport: await settledTransport(socket),
      whoami,
      echo,
      echoSync,
      bytes: [Array.from(bytes[0]), Buffer.from(bytes[1].nested).toString()],
      bytesAreBuffers: Buffer.isBuffer(bytes[0]),
      caught,
      hello,
      where,
      badToken: await refusal(url, { namespace: "/custom", auth: { token: "wrong" } }),
      refused: await refusal(url, { auth: { refuse: "go away" } }),
      unknownNamespace: await refusal(url, { namespace: "/nowhere" }),
      unknownDynamic: await refusal(url, { namespace: "/dyn-x" }),
    };
    for (const s of [socket, custom, dynamic]) s.close();
    return result;
  },

  async calls([url]) {
    const socket = await connect(url);
    socket.on("question", (n, ack) => ack(n + 1, "extra"));
    const answered = await ask(socket, "ask_me", 2);
    socket.off("question");
    socket.on("question", () => {}); // never acknowledges
    const timedOut = await ask(socket, "ask_me", 0.5);
    socket.off("question");
    socket.on("question", (n, ack) => ack("later", n));
    const laterArgs = next(socket, "answered");
    const asked = await ask(socket, "ask_me_later");
    const result = { answered, timedOut, asked, later: (await laterArgs)[0] };
    socket.close();
    return result;
  },

  async rooms([urlA, urlB]) {
    const a = await connect(urlA);
    const b = await connect(urlB);
    const c = await connect(urlB);
    const watcher = await connect(urlA, { auth: { watch: true } });
    const gone = collect(watcher, "gone");
    const ids = { a: a.id, b: b.id, c: c.id };
    const news = { a: collect(a, "news"), b: collect(b, "news"), c: collect(c, "news") };
    const joined = {
      a: await ask(a, "join", "room one"),
      b: await ask(b, "join", "room one"),
      c: await ask(c, "join", "other/room,with:odd chars ✓"),
    };
    await ask(c, "join", "room one");
    await ask(a, "broadcast", "room one", "to all");
    await ask(a, "broadcast", "room one", "not me", { skip_self: true });
    await ask(a, "broadcast", "room one", "not other", { skip_rooms: ["other/room,with:odd chars ✓"] });
    await ask(a, "broadcast", ["room one", "other/room,with:odd chars ✓"], "two rooms once");
    await ask(a, "broadcast", b.id, "to b by sid");
    const left = await ask(b, "leave", "room one");
    await ask(a, "broadcast", "room one", "after b left");
    await ask(a, "close_room", "room one");
    await sleep(300); // room changes for other sockets go through their workers
    await ask(a, "broadcast", "room one", "after close");
    await sleep(300);
    const kicked = next(c, "disconnect");
    const heard = next(watcher, "gone"); // the disconnect handler's news (over polling: at the next GET)
    c.emit("kick_me");
    const [kickReason] = await kicked;
    await heard;
    await sleep(300); // a second "gone" would show by now
    const result = { ids, joined, left, news, kickReason, gone };
    for (const s of [a, b, watcher]) s.close();
    return result;
  },

  async leaving([url]) {
    // A client that disconnects its socket: the server's handler says why.
    const watcher = await connect(url, { auth: { watch: true } });
    const gone = next(watcher, "gone");
    const leaver = await connect(url);
    const sid = leaver.id;
    leaver.disconnect();
    const [seen] = await gone;
    watcher.close();
    return { sid, seen };
  },

  async order([url]) {
    const socket = await connect(url);
    for (let n = 0; n < 1000; n++) socket.emit("seq", n);
    const report = await ask(socket, "seq_report");
    socket.close();
    return report;
  },

  async hibernate([urlA, urlB, count, durationMs, everyMs, tag]) {
    // Clients in rooms, with data, sending numbered "record" events while the
    // test stops and starts workers; prints "ready" first, then what each saw.
    const clients = [];
    for (let i = 0; i < Number(count); i++) {
      const socket = await connect(i % 2 ? urlB : urlA);
      const state = { index: i, sid: socket.id, room: i % 2 ? "odd" : "even", disconnects: [], news: [], sent: [] };
      await ask(socket, "join", state.room);
      await ask(socket, "set_data", "me", `${tag}-${i}`);
      socket.on("disconnect", (reason) => state.disconnects.push(reason));
      socket.on("news", (payload) => state.news.push(payload));
      clients.push({ socket, state });
    }
    process.stdout.write(JSON.stringify({ ready: true }) + "\n");
    const end = Date.now() + Number(durationMs);
    for (let n = 0; Date.now() < end; n++) {
      for (const { socket, state } of clients) {
        state.sent.push([n, Date.now() / 1000]);
        socket.emit("record", n);
      }
      const pause = Number(everyMs);
      if (!(pause > 0)) throw new Error(`everyMs ${everyMs} is not a positive number`);
      await sleep(pause);
    }
    for (const { socket, state } of clients) {
      // The "even" room gets one broadcast once the worker is back: wait for it.
      if (state.room === "even" && state.news.length === 0) await next(socket, "news", 60000).catch(() => {});
      state.data = await socket.timeout(30000).emitWithAck("get_data");
      socket.off("disconnect");
      socket.close();
    }
    return clients.map(({ state }) => state);
  },

  async pings([url, ms]) {
    // Stays connected for ms milliseconds; counts the server's pings (the client answers them).
    const socket = await connect(url);
    const state = { pings: 0, disconnects: [] };
    socket.io.on("ping", () => state.pings++);
    socket.on("disconnect", (reason) => state.disconnects.push(reason));
    await sleep(Number(ms));
    const seen = { ...state, disconnects: [...state.disconnects], stillConnected: socket.connected };
    socket.close();
    return seen;
  },

  async listen([url, room]) {
    // Joins a room, prints "ready", then reports the first "news" it gets.
    const socket = await connect(url);
    await ask(socket, "join", room);
    process.stdout.write(JSON.stringify({ ready: true }) + "\n");
    const [payload] = await next(socket, "news", 10000);
    socket.close();
    return { payload };
  },
};

const [name, ...urls] = process.argv.slice(2);
const scenario = scenarios[name];
if (!scenario) {
  console.error(`unknown scenario ${name}`);
  process.exit(2);
}
scenario(urls).then(
  (result) => {
    process.stdout.write(JSON.stringify(result) + "\n");
    process.exit(0);
  },
  (err) => {
    console.error(err.stack || String(err));
    process.exit(1);
  },
);
