// SPDX-License-Identifier: MIT
// Loads the service's /dashboard in headless Chromium (Debian's, driven by
// playwright-core: no browser is downloaded), waits until every chart has
// drawn, saves a full-page screenshot and prints one JSON object: the
// figures the page shows, the main document's headers, every request the
// page made, those aimed anywhere but 127.0.0.1 (aborted), and the
// console's errors. test_dashboard.c judges the result; this script only
// fails when the page cannot be loaded or rendered in time.
//
// usage: node dashboard.mjs BASE_URL SCREENSHOT.png
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [base, shot] = process.argv.slice(2);
if (!base || !shot) {
    console.error("usage: node dashboard.mjs BASE_URL SCREENSHOT.png");
    process.exit(2);
}
const exe = process.env.UC_TEST_CHROMIUM || "/usr/bin/chromium";
const profile = mkdtempSync(join(tmpdir(), "uc-chromium-"));
const out = {requests: [], offsite: [], console_errors: [], values: {}};
let context;

// Every wait below has its own bound; this one covers them all.
const guard = setTimeout(() => {
    console.error("dashboard.mjs: gave up after 90 s");
    process.exit(3);
}, 90000);

try {
    // A persistent context is how playwright takes a fresh profile
    // directory (the --user-data-dir of the command line).
    context = await chromium.launchPersistentContext(profile, {
        executablePath: exe,
        headless: true,
        timeout: 30000,
        args: ["--headless", "--no-sandbox", "--disable-gpu",
               "--disable-quic", "--no-first-run",
               "--disable-background-networking",
               "--disable-component-update", "--disable-sync",
               "--disable-default-apps", "--disable-extensions",
               "--disable-domain-reliability", "--no-pings"],
        viewport: {width: 1400, height: 1000},
        deviceScaleFactor: 1,
        serviceWorkers: "block",
    });
    // Anything not for the service on 127.0.0.1 is recorded and aborted, so
    // a page that reached out would show it here and never succeed at it.
    await context.route("**/*", (route) => {
        const url = new URL(route.request().url());
        if (url.hostname !== "127.0.0.1") {
            out.offsite.push(url.href);
            return route.abort();
        }
        return route.continue();
    });
    context.on("request", (r) => out.requests.push(r.url()));
    const page = context.pages()[0] || await context.newPage();
    page.on("console", (m) => {
        if (m.type() === "error") {
            out.console_errors.push(m.text());
        }
    });
    page.on("pageerror", (e) => out.console_errors.push(String(e)));

    const resp = await page.goto(`${base}/dashboard`,
                                 {waitUntil: "load", timeout: 30000});
    out.status = resp.status();
    out.headers = resp.headers();
    await page.waitForSelector("body[data-rendered='1']", {timeout: 30000});
    await page.waitForFunction(
        () => Number(document.body.dataset.updates || 0) >= 1,
        null, {timeout: 30000});
    // Let the page redraw with a refresh taken now, when the traffic has
    // stopped, then read what it shows.
    const before = await page.evaluate(() =>
        Number(document.body.dataset.updates));
    await page.waitForFunction(
        (n) => Number(document.body.dataset.updates) > n,
        before, {timeout: 30000});
    out.values = await page.evaluate(() => {
        const v = (id) => document.getElementById(id).dataset.value;
        return {
            hit_rate: Number(v("hit-rate")),
            hits: Number(v("hits")),
            misses: Number(v("misses")),
            saved_queries: Number(v("saved-queries")),
            saved_time_s: Number(v("saved-time")),
            benefit: document.getElementById("benefit").textContent,
            charts: document.querySelectorAll(".chart canvas").length,
            hot_rows: document.querySelectorAll("#hot tbody tr").length,
        };
    });
    await page.screenshot({path: shot, fullPage: true, timeout: 30000});
    out.screenshot = shot;
} catch (e) {
    console.error(`dashboard.mjs: ${e.message}`);
    process.exitCode = 1;
} finally {
    if (context !== undefined) {
        await context.close().catch(() => {});
    }
    rmSync(profile, {recursive: true, force: true});
    clearTimeout(guard);
}
process.stdout.write(JSON.stringify(out) + "\n");
