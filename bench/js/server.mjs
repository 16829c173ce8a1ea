// Node's socket.io server with the benchmark's handlers (those of tests/handlers.py that the
// benchmark uses), for comparison. Usage: node server.mjs <port> <ping interval ms> <ping timeout ms>
import { Server } from "socket.io";

const [port, pingInterval, pingTimeout] = process.argv.slice(2).map(Number);
const io = new Server(port, { pingInterval, pingTimeout, serveClient: false });

io.on("connection", (socket) => {
  socket.on("echo", (...args) => args.pop()(...args));
  socket.on("join", (room, ack) => {
    socket.join(room);
    ack([...socket.rooms].filter((name) => name !== socket.id).sort());
  });
  socket.on("broadcast", (to, payload, options, ack) => {
    io.to(to).emit("news", payload);
    ack("sent");
  });
});
console.log(`listening on ${port}`);
