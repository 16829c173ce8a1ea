// Node's socket.io server, the behavioural reference: the handlers tests/test_conformance.py
// drives sioless with, written the Node way.
// Usage: node reference_server.mjs <port> <pingInterval ms> <pingTimeout ms> <connectTimeout ms> <upgradeTimeout ms> [recovery]
import { Server } from "socket.io";

const [port, pingInterval, pingTimeout, connectTimeout, upgradeTimeout] = process.argv.slice(2, 7).map(Number);
const connectionStateRecovery = process.argv[7] === "recovery" ? {} : undefined; // Node's defaults: 2 minutes
const io = new Server(port, {
  pingInterval,
  pingTimeout,
  connectTimeout,
  upgradeTimeout,
  connectionStateRecovery,
  serveClient: false,
});

io.use((socket, next) => {
  const { refuse } = socket.handshake.auth;
  next(refuse ? Object.assign(new Error("refused"), { data: { reason: refuse } }) : undefined);
});

io.on("connection", (socket) => {
  if (socket.handshake.auth.greet) {
    socket.emit("welcome", 1);
    socket.emit("welcome", 2);
  }
  socket.on("echo", (...args) => args.pop()(...args));
  socket.on("later", (value, ack) => setTimeout(() => ack(value), 200));
  socket.on("never", () => {});
  socket.on("remind_me", (delay, value, ack) => {
    setTimeout(() => socket.emit("reminder", value), delay * 1000);
    ack("later");
  });
});
console.log(`listening on ${port}`);
