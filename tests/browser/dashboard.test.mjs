// tests/browser/dashboard.test.mjs — the dashboard in a real browser: Debian's
// Chromium driven by playwright-core, against a real `cpuledger serve` on
// loopback holding a simulated shop (profiles, the shop-web rollout that
// makes /checkout/'s checkout_render costlier, the new_search flag) and the
// alerts one detector run opened on it.
//
//   CPULEDGER=build/cpuledger SCREENSHOTS=build/browser node --test tests/browser/
//
// Screenshots of every page go to $SCREENSHOTS. Every wait is for an event
// (a page's aria-busy turning false, a selector); the whole run is bounded by
// node's --test-timeout and each step's own timeout.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

const ROOT = resolve(import.meta.dirname, "../..");
const CLI = resolve(ROOT, process.env.CPULEDGER ?? "build/cpuledger");
const SHOTS = resolve(ROOT, process.env.SCREENSHOTS ?? "build/browser-screenshots");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const TOKEN = "browser-test-token";
const STEP_MS = 20_000;

// The simulated traffic: 13:00-15:00 UTC of the latest day that has passed
// 15:00, so the 14:00 rollout lies inside it, and within the last 48 h.
const END = (() => {
  const d = new Date();
  d.setUTCHours(15, 0, 0, 0);
  if (d.getTime() > Date.now()) d.setUTCDate(d.getUTCDate() - 1);
  return Math.floor(d.getTime() / 1000);
})();
// Pages are opened on the simulated hours (minute buckets): a pinned range.
const RANGE = `from=${END - 7200}&to=${END}`;

let server, dataDir, base, browser, context;
const extraServers = [];

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
    s.on("error", fail);
  });
}

async function waitHealthy(proc, url) {
  for (let i = 0; i < 200; i++) {
    if (proc.exitCode !== null) throw new Error(`cpuledger serve exited ${proc.exitCode}`);
    try {
      if ((await fetch(url + "/healthz")).ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 50)); // polling a port that is not open yet
  }
  throw new Error("cpuledger serve did not come up");
}

// startServer() — `cpuledger serve` on a free loopback port and a fresh data
// directory, holding `hours` of the simulated shop (extra simulate flags too;
// 0 hours: empty).
async function startServer(hours, extra = []) {
  const dir = mkdtempSync(join(tmpdir(), "cpuledger-browser-"));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = spawn(CLI, ["serve", "--port", String(port), "--data-dir", dir, "--detect-every", "off"], {
    env: { ...process.env, CPULEDGER_TOKEN: TOKEN },
    stdio: ["ignore", "ignore", "inherit"],
  });
  await waitHealthy(proc, url);
  if (hours === 0) return { proc, dir, url };
  const sim = spawnSync(
    CLI,
    ["simulate", "--server", url, "--token", TOKEN, "--hours", String(hours), "--seed", "42", "--profile-rate", "0.2",
     "--sample-rate", "0.5", "--end", String(END), ...extra],
    { stdio: ["ignore", "ignore", "inherit"], timeout: 240_000 },
  );
  assert.equal(sim.status, 0, "cpuledger simulate failed");
  return { proc, dir, url };
}

async function stopServer(s) {
  if (s.proc.exitCode === null) {
    s.proc.kill("SIGTERM");
    await new Promise((r) => s.proc.once("exit", r));
  }
  rmSync(s.dir, { recursive: true, force: true });
}

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  const main = await startServer(2);
  ({ proc: server, dir: dataDir, url: base } = main);
  const detect = await fetch(`${base}/v1/detect?since=2h&at=${END}`, {
    method: "POST",
    headers: { Authorization: `Bearer ${TOKEN}` },
  });
  assert.equal(detect.status, 200, await detect.text());
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // launch() runs Chromium on a fresh temporary profile (its --user-data-dir).
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
    timeout: 30_000,
  });
  context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  context.setDefaultTimeout(STEP_MS);
});

after(async () => {
  await browser?.close();
  for (const s of extraServers) await stopServer(s);
  if (server) await stopServer({ proc: server, dir: dataDir });
});

// open() — a page at `query` (signed in through the #token= fragment) with
// its console errors collected; resolves once the page has drawn.
async function open(query, { token = true, at = base } = {}) {
  const page = await context.newPage();
  const errors = [];
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${at}/${query}${token ? "#token=" + TOKEN : ""}`);
  await drawn(page);
  return { page, errors };
}

async function drawn(page) {
  await page.waitForSelector('#page[aria-busy="false"]');
}

// blankCanvases() — how many of the page's canvases hold fewer than two
// colours (uPlot draws its axes, grid and series on one canvas each chart).
function blankCanvases(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll("canvas")].filter((c) => {
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      const colours = new Set();
      for (let i = 0; i < d.length; i += 4 * 7) if (d[i + 3] > 0) colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
      return colours.size < 3;
    }).length,
  );
}

async function shot(page, name) {
  // d3-flame-graph grows new frames' rects in a short transition: the picture
  // waits until every rect has its frame's final width.
  await page.waitForFunction(() =>
    [...document.querySelectorAll(".flame svg g.frame")].every(
      (g) => Math.abs(Number(g.querySelector("rect").getAttribute("width")) - Number(g.getAttribute("width"))) < 0.5,
    ),
  );
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
}

// frames() — the flame graph's frames: depth, name, drawn width, fill.
function frames(page) {
  return page.evaluate(() =>
    [...document.querySelectorAll(".flame svg g.frame")].map((g) => ({
      depth: g.__data__.depth,
      name: g.getAttribute("name"),
      width: Number(g.getAttribute("width")),
      fill: g.querySelector("rect").getAttribute("fill"),
    })),
  );
}

test("without the token the page asks for it, and with it the overview draws", async () => {
  const { page, errors } = await open("", { token: false });
  await page.waitForSelector("form.token");
  await page.fill("#token", TOKEN);
  await page.click("form.token button");
  await page.waitForSelector("#top-endpoints");
  // The 401 before the token is the browser's own network line, nothing else.
  assert.deepEqual(errors.filter((e) => !e.includes("401")), []);
  await page.close();
});

test("every page loads without console errors and its charts draw", async () => {
  const pages = {
    overview: `?${RANGE}`,
    endpoint: `?page=endpoint&service=shop-web&endpoint=%2Fcheckout%2F&${RANGE}`,
    "endpoint-by-flag": `?page=endpoint&service=shop-web&endpoint=%2Fsearch%2F&by=flag%3Anew_search&${RANGE}`,
    explorer: `?page=explorer&group=service,endpoint&${RANGE}`,
    alerts: `?page=alerts`,
    profiles: `?page=profiles&service=shop-web&${RANGE}`,
    "profiles-diff": `?page=profiles&mode=diff&service=shop-web&endpoint=%2Fcheckout%2F&base=9f3c2a1&target=b7e41d0&${RANGE}`,
  };
  for (const [name, query] of Object.entries(pages)) {
    const { page, errors } = await open(query);
    assert.equal(await page.locator(".card.error").count(), 0, `${name}: ${await page.locator(".card.error").allTextContents()}`);
    const canvases = await page.locator("canvas").count();
    if (["overview", "endpoint", "endpoint-by-flag", "explorer"].includes(name)) assert.ok(canvases > 0, `${name} has no chart`);
    assert.equal(await blankCanvases(page), 0, `${name} has a blank chart`);
    await shot(page, name);
    assert.deepEqual(errors, [], `${name}: console errors`);
    await page.close();
  }
});

test("the overview names the unit and lists the top endpoints", async () => {
  const { page } = await open(`?${RANGE}`);
  const top = await page.locator("#top-endpoints tbody tr").allTextContents();
  assert.ok(top.length >= 5, "top endpoints");
  assert.match(await page.locator("#unit-note").textContent(), /unit: CPU/);
  assert.match(await page.locator("#efficiency").textContent(), /shop-web/);
  await page.close();
  // The last simulated hour against the hour before it: the metric's trend.
  const { page: lastHour } = await open(`?from=${END - 3600}&to=${END}`);
  const change = await lastHour.locator("#efficiency tbody tr td:nth-child(3)").allTextContents();
  assert.equal(change.length, 3);
  for (const c of change) assert.match(c, /^[+-]\d+\.\d %$/);
  await lastHour.close();
});

test("a filter changes the chart and the URL, and a reload restores it", async () => {
  const { page, errors } = await open(`?page=explorer&group=service&${RANGE}`);
  const before = await page.locator("#groups tbody tr").count();
  assert.ok(before >= 3, "three services before the filter");
  const legendBefore = await page.locator(".u-legend .u-series").count();
  await page.selectOption("#filter-dim", "service");
  await page.fill("#filter-value", "shop-api");
  await page.click("#add-filter button");
  await page.waitForURL(/where=service%3Dshop-api/);
  await drawn(page);
  const rows = await page.locator("#groups tbody tr").allTextContents();
  assert.equal(rows.length, 1);
  assert.match(rows[0], /shop-api/);
  // The chart now has one group (x series + 1) where it had three.
  assert.equal(await page.locator(".u-legend .u-series").count(), 2);
  assert.ok(legendBefore > 2);
  await page.selectOption("#stat", "p90");
  await page.waitForURL(/stat=p90/);
  await drawn(page);
  await page.reload();
  await drawn(page);
  assert.equal(await page.locator('[data-filter="service=shop-api"]').count(), 1);
  assert.equal(await page.locator("#stat").inputValue(), "p90");
  assert.equal(await page.locator("#groups tbody tr").count(), 1);
  assert.equal(await blankCanvases(page), 0);
  await shot(page, "explorer-filtered");
  // history: back returns to the unfiltered view
  await page.goBack();
  await page.goBack();
  await drawn(page);
  assert.equal(await page.locator("#groups tbody tr").count(), before);
  assert.deepEqual(errors, []);
  await page.close();
});

test("an alert opens its detail and its diff", async () => {
  const { page, errors } = await open("?page=alerts&state=all");
  const rollout = page.locator("#alerts tbody tr", { hasText: "/checkout/" }).first();
  await rollout.locator("a").click();
  await page.waitForURL(/id=\d+/);
  await drawn(page);
  const facts = await page.locator("#alert-facts").textContent();
  assert.match(facts, /9f3c2a1 → b7e41d0/);
  assert.match(facts, /Threshold/);
  assert.match(await page.locator("#culprits").textContent(), /checkout_render/);
  assert.equal(await blankCanvases(page), 0);
  await shot(page, "alert-detail");
  await page.getByText("Profile diff 9f3c2a1 → b7e41d0").click();
  await page.waitForURL(/mode=diff/);
  await drawn(page);
  await page.waitForSelector(".flame svg g.frame");
  const first = await page.locator("#deltas tbody tr").first().textContent();
  assert.match(first, /checkout_render/);
  await shot(page, "alert-diff");
  // The flag alert: its series split by the flag, search_load as the culprit.
  await page.goto(`${base}/?page=alerts&state=all`);
  await drawn(page);
  await page.locator("#alerts tbody tr", { hasText: "/search/" }).first().locator("a").click();
  await page.waitForURL(/id=\d+/);
  await drawn(page);
  assert.match(await page.locator("#alert-facts").textContent(), /flag new_search=on vs off/);
  assert.match(await page.locator("#culprits").textContent(), /search_load/);
  assert.equal(await page.locator(".u-legend .u-series", { hasText: "flag:new_search=on" }).count(), 1);
  assert.equal(await blankCanvases(page), 0);
  await shot(page, "alert-flag");
  assert.deepEqual(errors, []);
  await page.close();
});

test("an alert is acknowledged and resolved in the browser, and the state filter finds it", async () => {
  const { page, errors } = await open("?page=alerts&state=open");
  await page.locator("#alerts tbody tr", { hasText: "/checkout/" }).first().locator("a").click();
  await page.waitForURL(/id=\d+/);
  await drawn(page);
  const id = new URL(page.url()).searchParams.get("id");
  assert.equal(await page.locator("#alert-state").textContent(), "open");
  assert.equal(await page.locator("#alert-events tbody tr").count(), 1);
  await page.fill("#alert-note", "looking at checkout_render");
  await page.click("#acknowledge");
  await page.waitForSelector('#page[aria-busy="false"] #alert-state.state-acknowledged');
  assert.equal(await page.locator("#acknowledge").count(), 0, "an acknowledged alert cannot be acknowledged again");
  await page.click("#resolve");
  await page.waitForSelector('#page[aria-busy="false"] #alert-state.state-resolved');
  const events = await page.locator("#alert-events tbody tr").allTextContents();
  assert.equal(events.length, 3);
  assert.match(events[0], /open.*detector/);
  assert.match(events[1], /acknowledged.*dashboard.*looking at checkout_render/);
  assert.match(events[2], /resolved.*dashboard/);
  assert.equal(await page.locator("#resolve").count(), 0);
  await shot(page, "alert-resolved");
  // The server agrees, and the list's state filter shows it under resolved only.
  const res = await fetch(`${base}/v1/alerts/${id}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  assert.equal((await res.json()).alert.state, "resolved");
  await page.goto(`${base}/?page=alerts&state=open`);
  await drawn(page);
  assert.equal(await page.locator(`#alerts a[href*="id=${id}"]`).count(), 0);
  await page.selectOption("#state", "resolved");
  await page.waitForURL(/state=resolved/);
  await drawn(page);
  assert.equal(await page.locator(`#alerts a[href*="id=${id}"]`).count(), 1);
  assert.deepEqual(errors, []);
  await page.close();
});

test("the flame graph's widest child is the heaviest endpoint's view", async () => {
  // Independently of profiles: the records' estimated CPU by endpoint.
  const q = new URLSearchParams({ group_by: "endpoint", where: "service=shop-web", from: END - 7200, to: END });
  const res = await fetch(`${base}/v1/query/breakdown?${q}`, {
    headers: { Authorization: `Bearer ${TOKEN}` },
  });
  const rows = (await res.json()).rows;
  const total = (r) => (r.instructions ?? r.cpu_ns).est_total;
  const heaviest = rows.reduce((a, b) => (total(b) > total(a) ? b : a)).keys.endpoint;
  // The shop's handlers are named after the route: /search/ -> search_view.
  const view = (heaviest.split("/").filter((p) => p && !p.startsWith("<"))[0] ?? "index") + "_view";
  const { page, errors } = await open(`?page=profiles&service=shop-web&${RANGE}`);
  await page.waitForSelector(".flame svg g.frame");
  const children = (await frames(page)).filter((f) => f.depth === 1);
  assert.ok(children.length >= 5, "one view per endpoint");
  const widest = children.reduce((a, b) => (b.width > a.width ? b : a));
  assert.equal(widest.name, view);
  assert.equal(view, "search_view", "the data set's heaviest: /search/, with the new_search flag's cost");
  // The shown profile exports as a speedscope file (with the token: the page fetches it).
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.locator('[data-export="this profile:speedscope"]').click(),
  ]);
  assert.equal(download.suggestedFilename(), "profile.speedscope.json");
  const file = JSON.parse(readFileSync(await download.path(), "utf8"));
  assert.match(file.$schema, /speedscope/);
  assert.ok(file.shared.frames.some((f) => f.name === "search_view"));
  assert.deepEqual(errors, []);
  await page.close();
});

test("the diff colours the injected regression as added cost", async () => {
  const { page, errors } = await open(
    `?page=profiles&mode=diff&service=shop-web&endpoint=%2Fcheckout%2F&base=9f3c2a1&target=b7e41d0&${RANGE}`,
  );
  await page.waitForSelector(".flame svg g.frame");
  const all = await frames(page);
  const render = all.find((f) => f.name === "checkout_render");
  assert.ok(render, "checkout_render is drawn");
  assert.equal(render.fill, "#e34a33", "checkout_render painted as grown");
  // Noise stays grey: the frames the rollout did not touch are not red.
  const grown = all.filter((f) => f.fill === "#e34a33").map((f) => f.name);
  assert.ok(!grown.includes("dumps"), `grown: ${grown}`);
  // The table sorts by any column, in the URL.
  await page.locator('th[data-sort="name"] a').click();
  await page.waitForURL(/sort=name/);
  await drawn(page);
  await page.locator("#norm").selectOption("prop");
  await page.waitForURL(/norm=prop/);
  await drawn(page);
  await page.waitForSelector(".flame svg g.frame");
  assert.equal((await frames(page)).find((f) => f.name === "checkout_render").fill, "#e34a33");
  await shot(page, "profiles-diff-proportional");
  assert.deepEqual(errors, []);
  await page.close();
});

test("a flag alert links to the diff of the flag's values, which colours the flag's work", async () => {
  const { page, errors } = await open("?page=alerts&state=all");
  await page.locator("#alerts tbody tr", { hasText: "/search/" }).first().locator("a").click();
  await page.waitForURL(/id=\d+/);
  await drawn(page);
  await page.getByText("Profile diff new_search=off → on").click();
  await page.waitForURL(/by=flag/);
  await drawn(page);
  await page.waitForSelector(".flame svg g.frame");
  const load = (await frames(page)).find((f) => f.name === "search_load");
  assert.ok(load, "search_load is drawn");
  assert.equal(load.fill, "#e34a33", "search_load painted as grown");
  assert.match(await page.locator("#deltas tbody tr").first().textContent(), /search_load/);
  assert.match(await page.locator("h2", { hasText: "Diff" }).first().textContent(), /new_search=off → new_search=on/);
  await shot(page, "profiles-diff-flag");
  // The flame graph of one value: only the requests that carried it.
  await page.goto(`${base}/?page=profiles&service=shop-web&endpoint=%2Fsearch%2F&flag=new_search&flag_value=on&${RANGE}`);
  await drawn(page);
  await page.waitForSelector(".flame svg g.frame");
  assert.ok((await frames(page)).some((f) => f.name === "search_load"));
  assert.deepEqual(errors, []);
  await page.close();
});

test("a fleet without a PMU is shown in CPU time, and says so", async () => {
  const nopmu = await startServer(1, ["--no-pmu"]);
  extraServers.push(nopmu);
  const { page, errors } = await open(`?${RANGE}`, { at: nopmu.url });
  await page.waitForSelector("#top-endpoints");
  assert.match(await page.locator("#unit-note").textContent(), /CPU time \(no PMU/);
  assert.match(await page.locator("#efficiency thead").textContent(), /CPU ms per active user/);
  assert.match(await page.locator("#top-endpoints tbody tr").first().textContent(), / ms/);
  assert.equal(await blankCanvases(page), 0);
  await shot(page, "overview-no-pmu");
  assert.deepEqual(errors, []);
  await page.close();
});

test("an empty server's pages say what to do", async () => {
  const emptyServer = await startServer(0);
  extraServers.push(emptyServer);
  const expect = {
    "": /No records yet[\s\S]*middleware/,
    "?page=explorer": /Nothing matches[\s\S]*middleware/,
    "?page=alerts": /No open alerts[\s\S]*cpuledger detect/,
    "?page=profiles": /No profiled requests[\s\S]*PROFILE_RATE/,
    "?page=endpoint&service=shop-web&endpoint=%2F": /No records for this endpoint/,
  };
  for (const [query, text] of Object.entries(expect)) {
    const { page, errors } = await open(query, { at: emptyServer.url });
    assert.match(await page.locator(".empty").first().textContent(), text, query);
    assert.deepEqual(errors, [], query);
    if (query === "") await shot(page, "overview-empty");
    await page.close();
  }
});
