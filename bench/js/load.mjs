// The benchmark's load client: stock socket.io-client connections over WebSocket on loopback.
// Usage: node load.mjs <phase> <url> [<arguments>]
//   storm <connections> <hold seconds>   open the connections (100 at a time); then hold them idle
//   echo <clients> <events>              each client sends <events> acked echoes, one after another
//   broadcast <receivers> <events>       receivers join a room; one client broadcasts to it <events> times
// Each step waits for a line on stdin before it runs (the runner reads the servers' counters in
// between) and prints one JSON line with what it measured.
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const CONCURRENT_CONNECTS = 100;
const ACK_TIMEOUT_MS = 10000; // an ack that never comes is counted as lost, not waited for forever
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function step(result) {
  await lines.next();
  const started = performance.now();
  const measured = await result();
  console.log(JSON.stringify({ seconds: (performance.now() - started) / 1000, ...measured }));
}

function connect(url) {
  const socket = io(url, { transports: ["websocket"], reconnection: false, forceNew: true });
  return new Promise((resolve, reject) => {
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", reject);
  });
}

async function connectMany(url, count) {
  const sockets = [];
  for (let first = 0; first < count; first += CONCURRENT_CONNECTS) {
    const batch = Array.from({ length: Math.min(CONCURRENT_CONNECTS, count - first) }, () => connect(url));
    sockets.push(...(await Promise.all(batch)));
  }
  return sockets;
}

function percentiles(latencies) {
  const sorted = Float64Array.from(latencies).sort();
  const at = (fraction) => sorted[Math.min(sorted.length - 1, Math.floor(fraction * sorted.length))];
  return { p50: at(0.5), p99: at(0.99) };
}

const phases = {
  async storm(url, connections, holdSeconds) {
    let sockets = [];
    await step(async () => {
      sockets = await connectMany(url, Number(connections));
      return { connections: sockets.length };
    });
    await step(async () => {
      const disconnects = {};
      let pings = 0;
      for (const socket of sockets) {
        socket.io.on("ping", () => pings++);
        socket.on("disconnect", (reason) => (disconnects[reason] = (disconnects[reason] ?? 0) + 1));
      }
      await new Promise((resolve) => setTimeout(resolve, Number(holdSeconds) * 1000));
      return { connected: sockets.filter((socket) => socket.connected).length, pings, disconnects };
    });
    return sockets;
  },

  async echo(url, clients, events) {
    const sockets = await connectMany(url, Number(clients));
    await step(async () => {
      const latencies = [];
      let lost = 0;
      await Promise.all(
        sockets.map(async (socket) => {
          for (let n = 0; n < Number(events); n++) {
            const sent = performance.now();
            try {
              await socket.timeout(ACK_TIMEOUT_MS).emitWithAck("echo", n);
              latencies.push(performance.now() - sent);
            } catch {
              lost++;
              if (!socket.connected) {
                lost += Number(events) - n - 1; // the server dropped it: the rest is lost too
                break;
              }
            }
          }
        }),
      );
      return { events: latencies.length, lost, ...percentiles(latencies) };
    });
    return sockets;
  },

  async broadcast(url, receivers, events) {
    const sockets = await connectMany(url, Number(receivers) + 1);
    const [sender, ...rest] = sockets;
    await Promise.all(rest.map((socket) => socket.timeout(ACK_TIMEOUT_MS).emitWithAck("join", "bench")));
    const latencies = [];
    const expected = rest.length * Number(events);
    let allDelivered;
    const delivered = new Promise((resolve) => (allDelivered = resolve));
    for (const socket of rest) {
      socket.on("news", (sentAt) => {
        latencies.push(performance.now() - sentAt);
        if (latencies.length === expected) allDelivered();
      });
    }
    await step(async () => {
      for (let n = 0; n < Number(events); n++) {
        await sender
          .timeout(ACK_TIMEOUT_MS)
          .emitWithAck("broadcast", "bench", performance.now(), {})
          .catch(() => {}); // its deliveries, if they never come, are counted as lost
      }
      await Promise.race([delivered, new Promise((resolve) => setTimeout(resolve, ACK_TIMEOUT_MS))]);
      return { deliveries: latencies.length, lost: expected - latencies.length, ...percentiles(latencies) };
    });
    return sockets;
  },
};

const [phase, url, ...args] = process.argv.slice(2);
const sockets = await phases[phase](url, ...args);
await lines.next(); // the runner read the counters: done
for (const socket of sockets) socket.close();
process.exit(0);
