// One stock socket.io-client, driven line by line over stdin by a test, reporting over stdout.
// Usage: node recovering_client.mjs <url> <transports: websocket|polling> [<auth JSON>]
// It does not reconnect by itself: the test says when ({"op": "connect"}), so that what happens
// while it is away is the test's to decide. Commands: {"op": "connect"}, {"op": "emit", "event",
// "args"} (answered with {"type": "ack", "args"}), {"op": "close"}. Reports: {"type": "connect",
// "id", "recovered", "transport"}, {"type": "disconnect", "reason"}, {"type": "event", "event",
// "args"} (the offset socket.io appends included), {"type": "connect_error", "message"}.
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const [url, transports, auth] = process.argv.slice(2);
const socket = io(url, {
  transports: [transports],
  auth: auth ? JSON.parse(auth) : {},
  reconnection: false,
  forceNew: true,
});
const report = (line) => process.stdout.write(JSON.stringify(line) + "\n");

socket.on("connect", () =>
  report({ type: "connect", id: socket.id, recovered: socket.recovered, transport: socket.io.engine.transport.name }),
);
socket.on("disconnect", (reason) => report({ type: "disconnect", reason }));
socket.on("connect_error", (err) => report({ type: "connect_error", message: err.message }));
socket.onAny((event, ...args) => report({ type: "event", event, args }));

for await (const line of createInterface({ input: process.stdin })) {
  const command = JSON.parse(line);
  if (command.op === "connect") {
    socket.connect();
  } else if (command.op === "emit") {
    socket.emit(command.event, ...command.args, (...args) => report({ type: "ack", args }));
  } else if (command.op === "close") {
    socket.close();
    break;
  }
}
process.exit(0);
