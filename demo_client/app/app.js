// The sioless demo: a chat with rooms and a shared canvas over the stock socket.io-client.
import { io } from "/static/vendor/socket.io-client/socket.io.esm.min.js";

const $ = (id) => document.getElementById(id);
const LATENCY_EVERY_MS = 2000;
const TYPING_IDLE_MS = 1500;
const POINTER_EVERY_MS = 40;

const name = new URLSearchParams(location.search).get("name") ?? localStorage.getItem("sioless-demo-name") ?? "";
// socket.io-client's default options: long-polling first, then the upgrade to WebSocket.
const socket = io({ auth: { name } });
window.demo = { socket }; // to play with from the browser's console
let room = null;
let reconnects = 0;

function colorOf(text) {
  let hash = 0;
  for (const char of text) hash = (hash * 31 + char.codePointAt(0)) >>> 0;
  return `hsl(${hash % 360} 65% 42%)`;
}

// Status panel ---------------------------------------------------------------

function showState(state) {
  $("state").textContent = state;
  $("state").className = state;
}

let connects = 0;
socket.on("connect", () => {
  showState("connected");
  // connection state recovery: the same socket again (rooms, data), sent what it missed meanwhile
  if (connects++) $("recovered").textContent = socket.recovered ? "yes" : "no";
  $("transport").textContent = socket.io.engine.transport.name;
  socket.io.engine.once("upgrade", (transport) => ($("transport").textContent = transport.name));
  if (room) join(room);
});
socket.on("disconnect", () => {
  showState("disconnected");
  $("latency").textContent = "–"; // no round trip without a connection
  enableChat(false); // until the room is joined again
});
socket.io.on("reconnect_attempt", () => showState("reconnecting"));
// Leaving the page leaves the rooms at once: a lost connection would be kept for a recovery.
addEventListener("pagehide", () => socket.disconnect());
socket.io.on("reconnect", () => $("reconnects").textContent = String(++reconnects));

async function measureLatency() {
  if (!socket.connected) return;
  const sent = performance.now();
  try {
    await socket.timeout(5000).emitWithAck("latency");
    $("latency").textContent = `${Math.round(performance.now() - sent)} ms`;
  } catch {
    $("latency").textContent = "timed out";
  }
}
setInterval(measureLatency, LATENCY_EVERY_MS);
socket.on("connect", measureLatency);

// Chat -------------------------------------------------------------------------

function addMessage(who, text, kind = "said") {
  const item = document.createElement("li");
  item.className = kind;
  if (who) {
    const author = document.createElement("b");
    author.textContent = who;
    author.style.color = colorOf(who);
    item.append(author);
  }
  item.append(text);
  $("messages").append(item);
  item.scrollIntoView({ block: "end" });
}

function enableChat(enabled) {
  $("text").disabled = $("say").querySelector("button").disabled = !enabled;
}

async function join(wanted) {
  const answer = await socket.emitWithAck("join", wanted);
  if (answer.error) return addMessage(null, answer.error, "event");
  const changed = room !== answer.room;
  room = answer.room;
  $("messages").replaceChildren(); // the room's last messages, including any said while away
  answer.history.forEach((message) => addMessage(message.name, message.text));
  if (changed) addMessage(null, `You joined ${answer.room}.`, "event");
  showPresence(presences.get(room) ?? answer);
  enableChat(socket.connected);
  $("text").focus();
}

$("join").addEventListener("submit", (event) => {
  event.preventDefault();
  join($("room").value);
});

$("say").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = $("text").value.trim();
  if (!text || !room) return;
  $("text").value = "";
  stopTyping();
  await socket.emitWithAck("say", room, text);
});

socket.on("said", (message) => message.room === room && addMessage(message.name, message.text));

// The last presence list heard of each room: one that comes while our join is answered is newer
// than the list in the answer (computed when we joined).
const presences = new Map();

function showPresence(presence) {
  if (presence.room === room) $("presence").textContent = `In ${presence.room}: ${presence.members.join(", ")}`;
}
socket.on("presence", (presence) => {
  presences.set(presence.room, presence);
  showPresence(presence);
});

let typingTimer = null;
function stopTyping() {
  if (typingTimer === null) return;
  clearTimeout(typingTimer);
  typingTimer = null;
  socket.emit("typing", room, false);
}
$("text").addEventListener("input", () => {
  if (!room) return;
  if (typingTimer === null) socket.emit("typing", room, true);
  clearTimeout(typingTimer);
  typingTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
});

const typists = new Set();
socket.on("typing", (typing) => {
  if (typing.room !== room) return;
  typing.active ? typists.add(typing.name) : typists.delete(typing.name);
  const names = [...typists];
  $("typing").textContent = names.length ? `${names.join(", ")} ${names.length > 1 ? "are" : "is"} typing…` : "";
});

// Shared canvas -------------------------------------------------------------

const canvas = $("canvas");
const pen = canvas.getContext("2d");

function drawStroke({ color, points }) {
  if (points.length === 0) return;
  pen.strokeStyle = color;
  pen.lineWidth = 6;
  pen.lineCap = pen.lineJoin = "round";
  pen.beginPath();
  points.forEach(([x, y], n) => {
    const [px, py] = [x * canvas.width, y * canvas.height];
    n === 0 ? pen.moveTo(px, py) : pen.lineTo(px, py);
  });
  if (points.length === 1) pen.lineTo(points[0][0] * canvas.width + 0.1, points[0][1] * canvas.height);
  pen.stroke();
}

function relative(event) {
  const box = canvas.getBoundingClientRect();
  const clamp = (value) => Math.min(1, Math.max(0, value));
  return [clamp((event.clientX - box.left) / box.width), clamp((event.clientY - box.top) / box.height)];
}

let stroke = null;
let pointerSentAt = 0;
canvas.addEventListener("pointerdown", (event) => {
  canvas.setPointerCapture(event.pointerId);
  stroke = { color: colorOf($("me").textContent), points: [relative(event)] };
});
canvas.addEventListener("pointermove", (event) => {
  const point = relative(event);
  if (stroke) {
    stroke.points.push(point);
    drawStroke({ color: stroke.color, points: stroke.points.slice(-2) });
  }
  if (performance.now() - pointerSentAt > POINTER_EVERY_MS) {
    pointerSentAt = performance.now();
    socket.volatile.emit("pointer", ...point);
  }
});
function endStroke() {
  if (!stroke) return;
  drawStroke(stroke);
  socket.emit("stroke", stroke);
  stroke = null;
}
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);

socket.on("stroke", drawStroke);
socket.on("cleared", () => pen.clearRect(0, 0, canvas.width, canvas.height));
$("clear").addEventListener("click", () => socket.emit("clear"));
socket.on("connect", async () => {
  const strokes = await socket.emitWithAck("canvas");
  pen.clearRect(0, 0, canvas.width, canvas.height);
  strokes.forEach(drawStroke);
});

const pointers = new Map();
socket.on("pointer", ({ id, name: who, x, y }) => {
  let marker = pointers.get(id);
  if (!marker) {
    marker = document.createElement("span");
    marker.className = "pointer";
    marker.textContent = who;
    marker.style.setProperty("--color", colorOf(who));
    $("pointers").append(marker);
    pointers.set(id, marker);
  }
  marker.style.left = `${x * 100}%`;
  marker.style.top = `${y * 100}%`;
});
socket.on("pointer_gone", ({ id }) => {
  pointers.get(id)?.remove();
  pointers.delete(id);
});

// Who am I: the server names the socket (the Django user, the ?name= asked for, or a guest).
socket.on("connect", async () => {
  const me = await socket.emitWithAck("whoami");
  $("me").textContent = me;
  if (!name) localStorage.setItem("sioless-demo-name", me);
});
