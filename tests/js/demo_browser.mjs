// Drives the demo in headless Chromium (Debian's /usr/bin/chromium) with two separate browser
// contexts, as two people would: both join a room, chat, see each other's presence and typing,
// and draw on the shared canvas; a third person joins later on a phone-sized screen and finds the
// canvas as drawn so far and the room's conversation, then clears the canvas for everyone. Checks
// the page's edges too: no failed request, no blank space under the canvas, no round trip shown
// and no message box enabled while disconnected. Saves a screenshot of each page.
// Mode "restart": two people in a room while the server restarts; prints "ready" when they are
// both in, waits for a line on stdin (the server is back), and reports what their pages show.
// Usage: node demo_browser.mjs <demo url> <screenshot directory> [restart]
// Prints one JSON line with what each page showed; pytest asserts on it.
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const CHROMIUM_FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const WAIT = { timeout: 10000 };

const [url, screenshots, mode] = process.argv.slice(2);
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: CHROMIUM_FLAGS });

const failedRequests = [];

async function open(name, viewport = { width: 1100, height: 760 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.on("pageerror", (error) => console.error(`${name}: ${error}`));
  page.on("response", (response) => {
    if (response.status() >= 400) failedRequests.push(`${response.status()} ${response.url()}`);
  });
  await page.goto(`${url}/?name=${name}`);
  await page.locator("#state.connected").waitFor(WAIT);
  await page.locator("#me", { hasText: name }).waitFor(WAIT);
  return page;
}

/** How many pixels of the page's canvas are painted (run in the page). */
function paintedPixels() {
  const canvas = document.getElementById("canvas");
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let count = 0;
  for (let alpha = 3; alpha < pixels.length; alpha += 4) if (pixels[alpha] > 0) count++;
  return count;
}
const painted = (page) => page.evaluate(paintedPixels);

async function together() {
  const alice = await open("alice");
  const bob = await open("bob");
  for (const page of [alice, bob]) {
    await page.fill("#room", "lobby");
    await page.click("#join button");
  }
  await alice.locator("#presence", { hasText: "alice, bob" }).waitFor(WAIT);
  const presence = await alice.textContent("#presence");

  await alice.locator("#text").pressSequentially("hello from alice", { delay: 10 });
  await bob.locator("#typing", { hasText: "alice is typing" }).waitFor(WAIT);
  const typing = await bob.textContent("#typing");
  await alice.press("#text", "Enter");
  await bob.locator("#messages li", { hasText: "hello from alice" }).waitFor(WAIT);
  await bob.locator("#typing", { hasText: /^$/ }).waitFor(WAIT);
  const received = await bob.locator("#messages li").allTextContents();

  const paintedBefore = await painted(bob);
  const box = await alice.locator("#canvas").boundingBox();
  await alice.mouse.move(box.x + box.width * 0.2, box.y + box.height * 0.3);
  await alice.mouse.down();
  for (let step = 1; step <= 20; step++) {
    await alice.mouse.move(box.x + box.width * (0.2 + step * 0.03), box.y + box.height * (0.3 + step * 0.02));
  }
  await alice.mouse.up();
  await bob.locator(".pointer", { hasText: "alice" }).waitFor(WAIT);
  await bob.waitForFunction(`(${paintedPixels})() > ${paintedBefore}`, null, WAIT);
  const paintedAfter = await painted(bob);

  await bob.locator("#latency", { hasText: "ms" }).waitFor(WAIT);
  await bob.locator("#transport", { hasText: "websocket" }).waitFor(WAIT); // upgraded from polling
  const status = {
    transport: await bob.textContent("#transport"),
    latency: await bob.textContent("#latency"),
    state: await bob.textContent("#state"),
  };

  // the page names its icon (else browsers ask for /favicon.ico, which the project does not serve)
  const iconStatus = await alice.evaluate(async () => (await fetch(document.querySelector("link[rel=icon]").href)).status);
  const boardGap = await alice.evaluate(
    () => document.getElementById("board").getBoundingClientRect().bottom -
      document.getElementById("board-footer").getBoundingClientRect().bottom,
  );
  const whileDisconnected = await bob.evaluate(() => {
    window.demo.socket.disconnect(); // its "disconnect" handlers run before this returns
    const $ = (id) => document.getElementById(id);
    return {
      state: $("state").textContent,
      latency: $("latency").textContent,
      textDisabled: $("text").disabled,
      sendDisabled: $("say").querySelector("button").disabled,
    };
  });
  await bob.evaluate(() => window.demo.socket.connect());
  await bob.locator("#text:enabled").waitFor(WAIT); // back in the room
  const chatEnabledAgain = await bob.locator("#text").isEnabled();

  await alice.screenshot({ path: `${screenshots}/demo-alice.png` });
  await bob.screenshot({ path: `${screenshots}/demo-bob.png` });

  await alice.goto("about:blank"); // leaves the page, as closing its tab would
  await alice.context().close();
  await bob.locator("#presence", { hasText: /In lobby: bob$/ }).waitFor(WAIT);
  const presenceAfterLeaving = await bob.textContent("#presence");

  const phone = await open("carol", { width: 390, height: 844 });
  await phone.click("#join button");
  await phone.locator("#presence", { hasText: "bob, carol" }).waitFor(WAIT);
  await phone.waitForFunction(`(${paintedPixels})() > 0`, null, WAIT); // the canvas so far, from the database
  const phoneOverflow = await phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  const phonePainted = await painted(phone);
  await phone.locator("#messages li", { hasText: "hello from alice" }).waitFor(WAIT); // said before carol came
  const phoneHistory = await phone.locator("#messages li").allTextContents();
  await phone.screenshot({ path: `${screenshots}/demo-phone.png`, fullPage: true });

  await phone.click("#clear");
  await bob.waitForFunction(`(${paintedPixels})() === 0`, null, WAIT);
  const paintedAfterClear = await painted(bob);

  return {
    presence,
    typing,
    received,
    paintedBefore,
    paintedAfter,
    status,
    presenceAfterLeaving,
    phoneOverflow,
    phonePainted,
    phoneHistory,
    paintedAfterClear,
    boardGap,
    iconStatus,
    whileDisconnected,
    chatEnabledAgain,
    failedRequests,
  };
}

async function throughARestart() {
  const people = [await open("alice"), await open("bob")];
  for (const page of people) {
    await page.fill("#room", "lobby");
    await page.click("#join button");
  }
  for (const page of people) {
    await page.locator("#presence", { hasText: "alice, bob" }).waitFor(WAIT);
    await page.locator("#text:enabled").waitFor(WAIT); // its join answered
  }
  console.log("ready");
  const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  await lines.next(); // the server restarted
  for (const page of people) {
    await page.locator("#recovered", { hasText: /yes|no/ }).waitFor({ timeout: 30000 });
    await page.locator("#text:enabled").waitFor(WAIT); // back in the room
  }
  const presences = new Set(); // every presence list either page shows for 3 s
  for (let look = 0; look < 30; look++) {
    for (const page of people) presences.add(await page.textContent("#presence"));
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    recovered: await Promise.all(people.map((page) => page.textContent("#recovered"))),
    presences: [...presences],
    failedRequests,
  };
}

try {
  console.log(JSON.stringify(await (mode === "restart" ? throughARestart() : together())));
} finally {
  await browser.close();
}
