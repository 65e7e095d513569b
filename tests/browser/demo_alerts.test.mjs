// tests/browser/demo_alerts.test.mjs — the demo's two alerts in a real
// browser: `scripts/demo_story.py --short --keep` (the shortened story of
// tests/python/test_demo_story.py: the demo Django shop under gunicorn, commit
// B's slower score_similarity(), the personalised_ranking flag's dearer
// rank_for_user()) keeps its server running at the end; Debian's Chromium,
// driven by playwright-core, opens the two alert URLs the demo printed and
// sees each alert's culprit, and the rollout's profile diff.
//
//   CPULEDGER=build/cpuledger node --test tests/browser/demo_alerts.test.mjs
//
// Every wait is for an event (a line of the demo's output, a page's
// aria-busy turning false, a selector); bounded by node's --test-timeout.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const ROOT = resolve(import.meta.dirname, "../..");
const CLI = resolve(ROOT, process.env.CPULEDGER ?? "build/cpuledger");
const PYTHON = resolve(ROOT, process.env.PYTHON ?? ".venv/bin/python");
const SHOTS = resolve(ROOT, process.env.SCREENSHOTS ?? "build/browser-screenshots");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const STEP_MS = 20_000;
const STORY_MS = 330_000; // the --short story is bounded at 270 s of load, plus set-up and listings

let demo, browser, context;
const alerts = {}; // endpoint -> the alert's dashboard URL, as the demo printed it

// The demo's closing lines: "  http://127.0.0.1:PORT/?page=alerts&id=N   /endpoint/: cause",
// then "Still serving: ..." once it keeps serving.
function runDemo() {
  demo = spawn(PYTHON, ["scripts/demo_story.py", "--cpuledger", CLI, "--short", "--keep"], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const output = [];
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error("the demo did not finish:\n" + output.join("\n"))), STORY_MS);
    demo.once("exit", (code) => fail(new Error(`the demo exited ${code}:\n` + output.join("\n"))));
    createInterface({ input: demo.stdout }).on("line", (line) => {
      output.push(line);
      const m = line.match(/^\s+(http:\/\/127\.0\.0\.1:\d+\/\?page=alerts&id=\d+)\s+(\S+): /);
      if (m) alerts[m[2]] = m[1];
      if (line.startsWith("Still serving")) {
        clearTimeout(timer);
        ok();
      }
    });
  });
}

before(async () => {
  mkdirSync(SHOTS, { recursive: true });
  await runDemo();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
    timeout: 30_000,
  });
  context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  context.setDefaultTimeout(STEP_MS);
});

after(async () => {
  await browser?.close();
  if (demo && demo.exitCode === null) {
    demo.kill("SIGINT"); // --keep stops everything it started on Ctrl-C
    await new Promise((r) => demo.once("exit", r));
  }
});

async function open(url) {
  const page = await context.newPage();
  const errors = [];
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url);
  await page.waitForSelector('#page[aria-busy="false"]');
  return { page, errors };
}

test("the rollout alert names score_similarity, and its diff shows it grew", async () => {
  assert.ok(alerts["/item/<int:id>/"], JSON.stringify(alerts));
  const { page, errors } = await open(alerts["/item/<int:id>/"]);
  assert.match(await page.locator("#alert-facts").textContent(), /3f2a9c1 → 7be04d2/);
  const first = await page.locator("#culprits tbody tr").first().textContent();
  assert.match(first, /score_similarity/);
  await page.screenshot({ path: join(SHOTS, "demo-alert-rollout.png"), fullPage: true });
  await page.getByText("Profile diff 3f2a9c1 → 7be04d2").click();
  await page.waitForURL(/mode=diff/);
  await page.waitForSelector('#page[aria-busy="false"]');
  await page.waitForSelector(".flame svg g.frame");
  assert.match(await page.locator("#deltas tbody tr").first().textContent(), /score_similarity/);
  await page.screenshot({ path: join(SHOTS, "demo-alert-rollout-diff.png"), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});

test("the flag alert names rank_for_user, its series split by the flag", async () => {
  assert.ok(alerts["/shop/"], JSON.stringify(alerts));
  const { page, errors } = await open(alerts["/shop/"]);
  assert.match(await page.locator("#alert-facts").textContent(), /flag personalised_ranking=on vs off/);
  assert.match(await page.locator("#culprits tbody tr").first().textContent(), /rank_for_user/);
  assert.equal(await page.locator(".u-legend .u-series", { hasText: "flag:personalised_ranking=on" }).count(), 1);
  await page.screenshot({ path: join(SHOTS, "demo-alert-flag.png"), fullPage: true });
  assert.deepEqual(errors, []);
  await page.close();
});
