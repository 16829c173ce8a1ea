// The benchmark's load client: lean Socket.IO v5 connections over raw WebSockets (the `ws`
// package), speaking just what the benchmark needs, so that it costs far less CPU per event than
// the cheapest server it drives (the stock socket.io-client costs more than python-socketio does).
// Correctness with the stock clients is the tests' business, not this client's.
// Usage: node load.mjs <phase> <url>[,<url>...] [<arguments>]   (connections spread over the urls in turn)
//   storm <connections> <hold seconds>   open the connections (100 at a time); then hold them idle
//   echo <clients> <events> [<per second>] each client sends <events> acked echoes: one after
//                                        another (closed loop), or each paced at <per second>
//   broadcast <receivers> <events>       receivers connect and join a room (a step); one client broadcasts
//                                        to it <events> times (a step)
//   reconnect <connections>              open the connections (a step); then (the runner has taken a server
//                                        down) wait until each one lost is back, reconnecting as
//                                        socket.io-client does by default (a step)
// Before each step it prints "ready" (what the step needs is set up: connections opened, rooms
// joined), then waits for a line on stdin (the runner lets the servers settle and reads their
// counters in between), runs the step and prints one JSON line with what it measured.
import { createInterface } from "node:readline";
import WebSocket from "ws";

const CONCURRENT_CONNECTS = 100;
const ACK_TIMEOUT_MS = 10000; // an ack that never comes is counted as lost, not waited for forever
// socket.io-client's defaults: the first attempt after 1 s ± 50%, the delay doubled to 5 s at most
const RECONNECTION_DELAY_MS = 1000;
const RECONNECTION_DELAY_MAX_MS = 5000;
const RECONNECTED_WITHIN_MS = 60000; // a connection lost and not back by then is counted as not back
const LOSSES_NOTICED_MS = 2000; // how long the reconnect step waits for the connections a fault drops
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function step(result) {
  console.log("ready");
  await lines.next();
  const started = performance.now();
  const measured = await result();
  console.log(JSON.stringify({ seconds: (performance.now() - started) / 1000, ...measured }));
}

/** One Engine.IO + Socket.IO connection to the main namespace: pings answered, acks matched. */
class Connection {
  constructor(url, resolve, reject) {
    this.acks = new Map();
    this.nextId = 0;
    this.connected = false;
    this.pings = 0;
    this.onEvent = null;
    this.onLost = null;
    this.disconnectReason = null;
    // no permessage-deflate: servers that accept it (uvicorn's) would compress every frame both ways
    const endpoint = `${url.replace(/^http/, "ws")}/socket.io/?EIO=4&transport=websocket`;
    this.ws = new WebSocket(endpoint, { perMessageDeflate: false });
    this.ws.on("message", (data) => this.receive(data.toString()));
    this.ws.on("close", () => this.closed("transport close"));
    this.ws.on("error", reject);
    this.ready = [resolve, reject];
  }

  receive(frame) {
    if (frame === "2") {
      this.pings++;
      this.ws.send("3");
    } else if (frame[0] === "0") {
      this.ws.send("40"); // Engine.IO open: connect the main namespace
    } else if (frame.startsWith("40")) {
      this.connected = true;
      this.ready[0](this);
    } else if (frame.startsWith("43")) {
      const open = frame.indexOf("[");
      const id = Number(frame.slice(2, open));
      this.acks.get(id)?.(JSON.parse(frame.slice(open)));
      this.acks.delete(id);
    } else if (frame.startsWith("42")) {
      this.onEvent?.(JSON.parse(frame.slice(2)));
    } else if (frame.startsWith("44")) {
      this.ready[1](new Error(frame));
    } else if (frame === "1" || frame.startsWith("41")) {
      this.closed(frame === "1" ? "transport close" : "io server disconnect");
    }
  }

  closed(reason) {
    const lost = this.connected;
    if (lost) this.disconnectReason = reason;
    this.connected = false;
    if (lost) this.onLost?.();
    else this.ready[1](new Error(`closed before it connected: ${reason}`));
    for (const answer of this.acks.values()) answer(null);
    this.acks.clear();
  }

  /** Emit ``event`` with an ack id; resolves with the ack's arguments, null when it never comes. */
  call(event, ...args) {
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.acks.delete(id) && resolve(null), ACK_TIMEOUT_MS);
      this.acks.set(id, (answer) => {
        clearTimeout(timer);
        resolve(answer);
      });
      this.ws.send(`42${id}${JSON.stringify([event, ...args])}`);
    });
  }

  close() {
    this.ws.terminate();
  }
}

const connect = (url) => new Promise((resolve, reject) => new Connection(url, resolve, reject));

/** ``count`` connections, spread in turn over the servers of ``url`` (one, or several joined by commas). */
async function connectMany(url, count) {
  const urls = url.split(",");
  const connections = [];
  for (let first = 0; first < count; first += CONCURRENT_CONNECTS) {
    const size = Math.min(CONCURRENT_CONNECTS, count - first);
    const batch = Array.from({ length: size }, (_, n) => connect(urls[(first + n) % urls.length]));
    connections.push(...(await Promise.all(batch)));
  }
  return connections;
}

function percentiles(latencies) {
  const sorted = Float64Array.from(latencies).sort();
  const at = (fraction) => sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))];
  return { p50: at(0.5), p99: at(0.99) };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Keep ``connections[index]`` connected: once lost, connect again (to the server of ``url`` it had)
 * as socket.io-client does; count each loss in ``losses.lost``, push the milliseconds it was away to
 * ``losses.downtimes`` and those its last attempt took (the server's part: the rest is the client's
 * delay) to ``losses.connects``. */
function keepConnected(url, connections, index, losses) {
  const urls = url.split(",");
  connections[index].onLost = async () => {
    losses.lost++;
    const lostAt = performance.now();
    for (let delay = RECONNECTION_DELAY_MS; ; delay = Math.min(2 * delay, RECONNECTION_DELAY_MAX_MS)) {
      await sleep(delay * (0.5 + Math.random()));
      const attempted = performance.now();
      try {
        connections[index] = await connect(urls[index % urls.length]);
        losses.connects.push(performance.now() - attempted);
        break;
      } catch {
        // refused or failed: the next attempt waits longer
      }
    }
    losses.downtimes.push(performance.now() - lostAt);
    keepConnected(url, connections, index, losses);
  };
}

const phases = {
  async storm(url, connections, holdSeconds) {
    let opened = [];
    await step(async () => {
      opened = await connectMany(url, Number(connections));
      return { connections: opened.length };
    });
    await step(async () => {
      const pingsBefore = opened.reduce((sum, connection) => sum + connection.pings, 0);
      await sleep(Number(holdSeconds) * 1000);
      const disconnects = {};
      for (const { disconnectReason: reason } of opened) {
        if (reason) disconnects[reason] = (disconnects[reason] ?? 0) + 1;
      }
      const pings = opened.reduce((sum, connection) => sum + connection.pings, 0) - pingsBefore;
      return { connected: opened.filter((connection) => connection.connected).length, pings, disconnects };
    });
    return opened;
  },

  async echo(url, clients, events, perSecond) {
    const opened = await connectMany(url, Number(clients));
    const pause = perSecond ? 1000 / Number(perSecond) : 0;
    await step(async () => {
      const latencies = [];
      let lost = 0;
      await Promise.all(
        opened.map(async (connection, index) => {
          if (pause) await sleep((pause * index) / opened.length); // spread the clients' beats
          for (let n = 0; n < Number(events); n++) {
            const sent = performance.now();
            const answer = await connection.call("echo", n);
            if (answer === null) {
              lost++;
              if (!connection.connected) {
                lost += Number(events) - n - 1; // the server dropped it: the rest is lost too
                break;
              }
            } else {
              latencies.push(performance.now() - sent);
            }
            if (pause) await sleep(Math.max(0, pause - (performance.now() - sent)));
          }
        }),
      );
      return { events: latencies.length, lost, ...percentiles(latencies) };
    });
    return opened;
  },

  async broadcast(url, receivers, events) {
    let opened = [];
    await step(async () => {
      opened = await connectMany(url, Number(receivers) + 1);
      await Promise.all(opened.slice(1).map((connection) => connection.call("join", "bench")));
      return { joined: opened.length - 1 };
    });
    const [sender, ...rest] = opened;
    const latencies = [];
    const expected = rest.length * Number(events);
    let allDelivered;
    const delivered = new Promise((resolve) => (allDelivered = resolve));
    for (const connection of rest) {
      connection.onEvent = ([event, sentAt]) => {
        if (event !== "news") return;
        latencies.push(performance.now() - sentAt);
        if (latencies.length === expected) allDelivered();
      };
    }
    await step(async () => {
      for (let n = 0; n < Number(events); n++) {
        await sender.call("broadcast", "bench", performance.now(), {}); // lost deliveries are counted below
      }
      await Promise.race([delivered, sleep(ACK_TIMEOUT_MS)]);
      return { deliveries: latencies.length, lost: expected - latencies.length, ...percentiles(latencies) };
    });
    return opened;
  },

  async reconnect(url, connections) {
    let opened = [];
    await step(async () => {
      opened = await connectMany(url, Number(connections));
      return { connected: opened.length };
    });
    const losses = { lost: 0, downtimes: [], connects: [] };
    opened.forEach((_, index) => keepConnected(url, opened, index, losses));
    await step(async () => {
      await sleep(LOSSES_NOTICED_MS);
      const deadline = performance.now() + RECONNECTED_WITHIN_MS;
      while (losses.downtimes.length < losses.lost && performance.now() < deadline) await sleep(100);
      const connected = opened.filter((connection) => connection.connected).length;
      const connects = percentiles(losses.connects);
      const back = losses.downtimes.length;
      return { lost: losses.lost, back, connected, ...percentiles(losses.downtimes), connect: connects };
    });
    return opened;
  },
};

const [phase, url, ...args] = process.argv.slice(2);
const opened = await phases[phase](url, ...args);
await lines.next(); // the runner read the counters: done
for (const connection of opened) connection.close();
process.exit(0);
