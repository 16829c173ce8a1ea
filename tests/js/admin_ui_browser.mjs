// The socket.io Admin UI (the npm package's own build, served by the demo at /admin-ui/) in headless
// Chromium, watching the demo: alice chats in a room on the demo's page; the UI, connected to the
// demo's /admin namespace, lists her socket (on WebSocket, once her page upgraded), her room and
// the demo's processes, and its "disconnect" button disconnects her page. With a staff user's name and password, the UI's browser logs into Django's admin first
// (the production demo only lets staff users in).
// Usage: node admin_ui_browser.mjs <demo url> <screenshot directory> [<staff username> <password>]
// Prints one JSON line with what the pages showed; pytest asserts on it.
import { chromium } from "playwright-core";

const WAIT = { timeout: 15000 };
const [url, screenshots, username, password] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
});

const alice = await (await browser.newContext()).newPage();
await alice.goto(`${url}/?name=alice`);
await alice.locator("#state.connected").waitFor(WAIT);
await alice.fill("#room", "lobby");
await alice.click("#join button");
await alice.locator("#presence", { hasText: "alice" }).waitFor(WAIT);
const sid = await alice.evaluate(() => window.demo.socket.id);

const operator = await browser.newContext({ viewport: { width: 1400, height: 900 } });
// the UI connects at once to the server its storage names: this demo's
await operator.addInitScript((server) => localStorage.setItem("server_url", server), url);
const ui = await operator.newPage();
if (username) {
  await ui.goto(`${url}/admin/login/?next=/admin-ui/`);
  await ui.fill("#id_username", username);
  await ui.fill("#id_password", password);
  await ui.click("input[type=submit]");
  await ui.waitForURL(/admin-ui/, WAIT);
} else {
  await ui.goto(`${url}/admin-ui/`);
}
await ui.goto(`${ui.url().split("#")[0]}#/sockets/`);
const row = ui.locator("tr", { hasText: sid });
await row.waitFor(WAIT);
const listed = (await row.textContent()).includes(sid);
// her page started on long-polling and upgraded: the UI shows her on WebSocket
const upgraded = await row
  .filter({ hasText: "websocket" })
  .waitFor(WAIT)
  .then(() => true, () => false);
await ui.goto(`${ui.url().split("#")[0]}#/rooms/`);
await ui.locator("tr", { hasText: "lobby" }).waitFor(WAIT);
const rooms = await ui.locator("tbody tr").allTextContents();
await ui.goto(`${ui.url().split("#")[0]}#/servers/`);
// every process is a server: the workers with their sockets, each server process with its clients
for (const kind of ["worker-", "#"]) await ui.locator("tbody tr", { hasText: kind }).first().waitFor(WAIT);
const servers = await ui.locator("tbody tr").allTextContents();
await ui.goto(`${ui.url().split("#")[0]}#/sockets/`);
await ui.screenshot({ path: `${screenshots}/admin-ui.png` });
await row.locator("button:has(.mdi-logout)").click();
await alice.waitForFunction(() => !window.demo.socket.connected, null, WAIT);
await ui.goto(`${ui.url().split("#")[0]}#/sockets/`);
const listedAfter = await ui
  .waitForFunction((id) => ![...document.querySelectorAll("tbody tr")].some((r) => r.textContent.includes(id)), sid, WAIT)
  .then(() => false, () => true);

console.log(
  JSON.stringify({ listed, upgraded, rooms, servers, aliceConnected: await alice.evaluate(() => window.demo.socket.connected), listedAfter }),
);
await browser.close();
