// The connect storm's load client: storm.mjs <url> <connections> <concurrency>
// Opens <connections> Engine.IO WebSockets, each followed by a Socket.IO CONNECT to the main
// namespace, <concurrency> at a time (a sliding window: the next starts as soon as one is
// connected), answering pings meanwhile. Prints one JSON line: the seconds until all were
// connected, each connect's latency p50 and p99 (WebSocket opened to CONNECT answered), and the
// client's own CPU seconds. Then closes them all.
import WebSocket from "ws";

const [url, total, concurrency] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const endpoint = `${url.replace(/^http/, "ws")}/socket.io/?EIO=4&transport=websocket`;
const latencies = [];
const sockets = [];

function connect() {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    // no permessage-deflate: servers that accept it (uvicorn's) would compress every frame both ways
    const ws = new WebSocket(endpoint, { perMessageDeflate: false });
    ws.on("message", (data) => {
      const frame = data.toString();
      if (frame[0] === "0") ws.send("40");
      else if (frame.startsWith("40")) {
        latencies.push(performance.now() - started);
        sockets.push(ws);
        resolve();
      } else if (frame === "2") ws.send("3");
    });
    ws.on("error", reject);
  });
}

let started = 0;
async function lane() {
  while (started < total) {
    started++;
    await connect();
  }
}

const cpuBefore = process.cpuUsage();
const begun = performance.now();
await Promise.all(Array.from({ length: Math.min(concurrency, total) }, lane));
const seconds = (performance.now() - begun) / 1000;
const cpu = process.cpuUsage(cpuBefore);
latencies.sort((a, b) => a - b);
const quantile = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
console.log(
  JSON.stringify({
    connections: latencies.length,
    seconds,
    p50_ms: quantile(0.5),
    p99_ms: quantile(0.99),
    client_cpu_seconds: (cpu.user + cpu.system) / 1e6,
  }),
);
for (const ws of sockets) ws.terminate();
process.exit(0);
