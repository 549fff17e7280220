// The web console in a real browser (Debian's headless Chromium through
// playwright-core): log in, see a queue's count and the rate chart move
// when the CLI publishes, upload plugin versions, activate one, roll back.
// Run by the Rust test e2e_console, which starts the broker and passes:
// CONSOLE_URL, SWITCHYARD (the binary), SWITCHYARD_URL, SWITCHYARD_CA,
// PROBE (a plugin component whose version its config sets), and
// SCREENSHOT (where to save a picture of the overview).
// It also closes a connection from the page: a `switchyard consume` the
// test starts, which must end.
import { chromium } from "playwright-core";
import { execFileSync, spawn } from "node:child_process";
import assert from "node:assert/strict";

const { CONSOLE_URL, SWITCHYARD, SWITCHYARD_URL, SWITCHYARD_CA, PROBE } = process.env;
const TIMEOUT = 60_000;

function cli(...args) {
  return execFileSync(SWITCHYARD, args, {
    env: { ...process.env, SWITCHYARD_URL, SWITCHYARD_CA },
    encoding: "utf8",
  });
}

// Processes this test starts, stopped however it ends.
const children = [];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(TIMEOUT);
  await page.goto(CONSOLE_URL);

  // A wrong password is refused on the page.
  await page.fill("input[name=user]", "guest");
  await page.fill("input[name=password]", "wrong");
  await page.click("#login button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#login-error").textContent.length > 0);

  await page.fill("input[name=password]", "guest");
  await page.click("#login button[type=submit]");
  await page.waitForSelector("#app:not([hidden])");
  assert.equal(await page.isVisible("#login"), false, "the login form is gone");
  assert.match(await page.textContent("#who"), /guest @ \//);

  // The queue's count follows what the CLI publishes; the chart shows a rate.
  cli("declare", "queue", "console-q", "--durable");
  await page.click("nav button[data-tab=queues]");
  await page.waitForSelector("#queues tr[data-name=console-q]");
  cli("publish", "--routing-key", "console-q", "--count", "500", "--size", "64", "--confirm");
  await page.waitForFunction(() => {
    const row = document.querySelector("#queues tr[data-name=console-q]");
    return row && row.cells[1].textContent === "500";
  });
  await page.click("nav button[data-tab=overview]");
  await page.waitForFunction(() => Number(document.querySelector("#rates").dataset.peakPublishRate) > 0);
  assert.equal(await page.textContent("[data-total=ready]"), "500");
  if (process.env.SCREENSHOT) await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });

  // Close a connection from the page: a consumer that would run forever ends.
  const consumer = spawn(SWITCHYARD, ["consume", "--queue", "console-q", "--prefetch", "1"], {
    env: { ...process.env, SWITCHYARD_URL, SWITCHYARD_CA },
    stdio: ["ignore", "ignore", "pipe"],
  });
  children.push(consumer);
  const ended = new Promise((resolve) => consumer.on("exit", (code) => resolve(code)));
  await page.click("nav button[data-tab=connections]");
  // The consumer's is the only connection that stays: close what is
  // listed until it ends (a CLI command's connection may linger a moment).
  let code = "still running";
  const deadline = Date.now() + TIMEOUT;
  while (code === "still running" && Date.now() < deadline) {
    const close = await page.$("#connections tbody tr button:text('close')");
    if (close) await close.click();
    code = await Promise.race([ended, new Promise((r) => setTimeout(() => r("still running"), 1000))]);
  }
  assert.notEqual(code, "still running", "the consumer's connection was closed from the page");

  // Purge from the page.
  await page.click("nav button[data-tab=queues]");
  await page.click("#queues tr[data-name=console-q] button:text('purge')");
  await page.waitForFunction(() => {
    const row = document.querySelector("#queues tr[data-name=console-q]");
    return row && row.cells[1].textContent === "0";
  });

  // Plugins: upload two versions, activate the first again, roll back.
  await page.click("nav button[data-tab=plugins]");
  const activeOf = () =>
    page.evaluate(() => document.querySelector("#plugins tr[data-name=console-probe]")?.cells[2].textContent);
  for (const version of ["1.0.0", "2.0.0"]) {
    await page.setInputFiles("#upload input[name=component]", PROBE);
    await page.fill("#upload input[name=name]", "console-probe");
    await page.fill("#upload input[name=config]", `version=${version}`);
    await page.click("#upload button[type=submit]");
    await page.waitForFunction(
      (v) => document.querySelector("#plugins tr[data-name=console-probe]")?.cells[2].textContent === v,
      version,
    );
  }
  await page.selectOption("#plugins tr[data-name=console-probe] select", "1.0.0");
  await page.click("#plugins tr[data-name=console-probe] button:text('activate')");
  await page.waitForFunction(() => document.querySelector("#plugins tr[data-name=console-probe]").cells[2].textContent === "1.0.0");
  await page.click("#plugins tr[data-name=console-probe] button:text('roll back')");
  await page.waitForFunction(() => document.querySelector("#plugins tr[data-name=console-probe]").cells[2].textContent === "2.0.0");
  // The broker agrees.
  assert.match(cli("plugin", "list"), /console-probe\s+exchange\s+2\.0\.0/);
  assert.equal(await activeOf(), "2.0.0");
  console.log("console test passed");
} finally {
  for (const child of children) if (child.exitCode === null) child.kill();
  await browser.close();
}
