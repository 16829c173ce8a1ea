// Holds idle stock socket.io-client connections open and reports how many dropped.
// Usage: node idle.mjs <connections> <hold seconds> <url> [<url> ...]
// Prints {"ready": true, ...} once every connection is up, then, after the hold, one JSON
// line: how many stayed connected, the pings they answered, and every disconnect reason.
import { io } from "socket.io-client";

const CONCURRENT_CONNECTS = 50;

function connect(url) {
  const socket = io(url, { transports: ["websocket"], reconnection: false, forceNew: true });
  return new Promise((resolve, reject) => {
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", reject);
  });
}

const [count, holdSeconds, ...urls] = process.argv.slice(2);
const sockets = [];
const disconnects = {};
let pings = 0;
const started = Date.now();
for (let first = 0; first < Number(count); first += CONCURRENT_CONNECTS) {
  const batch = [];
  for (let n = first; n < Math.min(first + CONCURRENT_CONNECTS, Number(count)); n++) {
    batch.push(connect(urls[n % urls.length]));
  }
  sockets.push(...(await Promise.all(batch)));
}
for (const socket of sockets) {
  socket.io.on("ping", () => pings++);
  socket.on("disconnect", (reason) => (disconnects[reason] = (disconnects[reason] ?? 0) + 1));
}
console.log(JSON.stringify({ ready: true, connectSeconds: (Date.now() - started) / 1000 }));
await new Promise((resolve) => setTimeout(resolve, Number(holdSeconds) * 1000));
const connected = sockets.filter((socket) => socket.connected).length;
console.log(JSON.stringify({ connected, pings, disconnects }));
for (const socket of sockets) socket.close();
