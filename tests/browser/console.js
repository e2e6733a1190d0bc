#!/usr/bin/env node
'use strict';
/*
 * Drives the admin console (web/, served at /admin/ui/) in headless Chromium
 * through playwright-core, against a running node. tests/e2e/test_browser.py
 * starts the node, makes the data and runs the load; this script checks what
 * a browser sees.
 *
 *   node console.js ADMIN_URL TOKEN PUBLIC_URL ARTIFACTS_DIR
 *
 * or the environment: PT_ADMIN_URL, PT_ADMIN_TOKEN (better than argv: not in
 * `ps`), PT_PUBLIC_URL, PT_ARTIFACTS. Also:
 *   PT_API          the API to roll back (default "site")
 *   PT_ENV          its environment (default "dev")
 *   PT_EXPECT_BODY  the body PUBLIC_URL serves after the rollback (default:
 *                   any body other than the one before)
 *   PT_EXPECT_RESULT the body "Show result" must show for the first execution
 *                   listed (default: not checked)
 *   PT_CHROMIUM     the browser (default /usr/bin/chromium)
 *
 * PUBLIC_URL is the full URL of a route of that API. Exit code 0 when every
 * step passed; 1 with the failing step's message (and a fail-*.png) else.
 */
const fs = require('fs');
const path = require('path');
const { chromium } = require('playwright-core');

const arg = (i, name, dflt) => process.argv[2 + i] || process.env[name] || dflt;
const ADMIN = arg(0, 'PT_ADMIN_URL', '').replace(/\/+$/, '');
const TOKEN = arg(1, 'PT_ADMIN_TOKEN', '');
const PUBLIC = arg(2, 'PT_PUBLIC_URL', '');
const ARTIFACTS = arg(3, 'PT_ARTIFACTS', path.join(__dirname, '..', 'artifacts', 'browser'));
const API = process.env.PT_API || 'site';
const ENV = process.env.PT_ENV || 'dev';
const EXPECT_BODY = process.env.PT_EXPECT_BODY;
const EXPECT_RESULT = process.env.PT_EXPECT_RESULT;
const CHROMIUM = process.env.PT_CHROMIUM || '/usr/bin/chromium';
const UI = ADMIN + '/admin/ui/';

if (!ADMIN || !TOKEN || !PUBLIC) {
  console.error('usage: node console.js ADMIN_URL TOKEN PUBLIC_URL [ARTIFACTS_DIR] (or PT_ADMIN_URL, PT_ADMIN_TOKEN, PT_PUBLIC_URL, PT_ARTIFACTS)');
  process.exit(2);
}

class Failure extends Error {}
function check(cond, msg) {
  if (!cond) throw new Failure(msg);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/* Polls fn() until it returns a truthy value or `ms` pass; returns the last value. */
async function until(fn, ms, every = 100) {
  const end = Date.now() + ms;
  let v;
  while (!(v = await fn()) && Date.now() < end) await sleep(every);
  return v;
}

async function publicBody() {
  const r = await fetch(PUBLIC, { cache: 'no-store' });
  return { status: r.status, body: await r.text() };
}

/* fetch() inside the page: same origin, the session cookie goes with it. */
function pageFetch(page, method, url, headers = {}, body = undefined) {
  return page.evaluate(async ([m, u, hd, b]) => {
    const r = await fetch(u, { method: m, headers: hd, body: b, credentials: 'same-origin' });
    return { status: r.status, type: r.headers.get('Content-Type') || '', text: await r.text() };
  }, [method, url, headers, body]);
}

async function main() {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
  const page = await context.newPage();
  page.setDefaultTimeout(10000);
  // Script errors, CSP violations and bad SVG attributes (reported on the
  // console) fail the run; the 401s of the session checks are expected.
  const problems = [];
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/^Failed to load resource: .* 40[13]/.test(m.text())) problems.push('console: ' + m.text());
  });
  let n = 0;
  const shot = (name) => page.screenshot({ path: path.join(ARTIFACTS, `${String(++n).padStart(2, '0')}-${name}.png`), fullPage: true });
  let current = '';
  const step = async (name, fn) => {
    current = name;
    const t = Date.now();
    await fn();
    await shot(name);
    console.log(`ok   ${name} (${Date.now() - t} ms)`);
  };

  try {
    await step('no-session', async () => {
      const r = await context.request.get(ADMIN + '/admin/dashboard/summary');
      check(r.status() === 401, `GET /admin/dashboard/summary without a session: expected 401, got ${r.status()}`);
      const res = await page.goto(UI);
      check(res && res.status() === 200, `GET ${UI}: expected 200, got ${res && res.status()}`);
      const csp = res.headers()['content-security-policy'] || '';
      check(/script-src 'self'/.test(csp) && /default-src 'self'/.test(csp), `GET ${UI}: no strict Content-Security-Policy (got "${csp}")`);
      await page.waitForURL(/#\/login$/);
      await page.locator('#token').waitFor();
    });

    await step('login', async () => {
      await page.fill('#token', 'pt_wrong_token');
      await page.click('#login-submit');
      await page.locator('#login-error').filter({ hasText: /refused/ }).waitFor();
      await page.fill('#token', TOKEN);
      await page.click('#login-submit');
      await page.waitForURL(/#\/dashboard$/);
      await page.locator('#rps-now').waitFor();
    });

    await step('csrf', async () => {
      // The session cookie alone does not allow a change: no header, a wrong header.
      const body = JSON.stringify({ name: 'csrf-probe' });
      const json = { 'Content-Type': 'application/json' };
      for (const [what, headers] of [['no X-CSRF-Token', json], ['a wrong X-CSRF-Token', { ...json, 'X-CSRF-Token': '00' }]]) {
        const r = await pageFetch(page, 'POST', '/admin/environments', headers, body);
        check(r.status === 403, `POST /admin/environments with the session cookie and ${what}: expected 403, got ${r.status} ${r.text}`);
        check(r.type.startsWith('application/problem+json') && JSON.parse(r.text).type === 'urn:portico:problem:csrf',
          `POST /admin/environments with ${what}: expected a problem of type urn:portico:problem:csrf, got ${r.type} ${r.text}`);
      }
      const envs = await pageFetch(page, 'GET', '/admin/environments');
      check(envs.status === 200, `GET /admin/environments with the session cookie: expected 200, got ${envs.status}`);
      check(!envs.text.includes('csrf-probe'), 'a POST refused for CSRF created the environment anyway');
      // a reload keeps the session (the csrf token is fetched again)
      await page.reload();
      await page.waitForURL(/#\/dashboard$/);
      await page.locator('#rps-now').waitFor();
    });

    await step('dashboard', async () => {
      const rps = page.locator('#rps-now');
      await until(async () => /^\d/.test(await rps.textContent()), 5000);
      const first = await rps.textContent();
      check(/^\d/.test(first), `#rps-now shows no number: "${first}"`);
      const changed = await until(async () => (await rps.textContent()) !== first, 3000, 50);
      check(changed, `#rps-now did not change within 3 s (stayed "${first}") while load ran`);
      const live = await until(async () => Number(await rps.textContent()) > 0, 3000);
      check(live, `#rps-now stays at 0 under load ("${await rps.textContent()}")`);
      for (const id of ['#p50-now', '#p95-now', '#p99-now', '#err-now']) await page.locator(id).waitFor();
      check(await page.locator('svg.chart path.line').count() >= 3, 'the charts drew no lines');
      // the summary (refreshed every 2 s) lists the API, the 2xx class and sorts on click
      await page.locator('#table-apis td', { hasText: API }).first().waitFor();
      await page.locator('#table-classes td', { hasText: '2xx' }).first().waitFor();
      await page.locator('#table-apis th[data-key="p99_ms"] button').click();
      const sort = await page.getAttribute('#table-apis th[data-key="p99_ms"]', 'aria-sort');
      check(sort === 'descending', `clicking the p99 header did not sort the APIs (aria-sort=${sort})`);
    });

    await step('dashboard-filters', async () => {
      // one API, one of its routes, a window of minute points: still live
      await page.selectOption('#f-api', API);
      const routes = (await page.locator('#f-route option').evaluateAll((os) => os.map((o) => o.value))).filter((v) => v);
      check(routes.length >= 1, `no route of ${API} offered in the route filter`);
      await page.selectOption('#f-route', routes[0]);
      await page.selectOption('#f-window', '1h');
      const rps = page.locator('#rps-now');
      const moved = await until(async () => Number(await rps.textContent()) > 0, 4000);
      check(moved, `#rps-now for ${API} ${routes[0]} over 1h stays at "${await rps.textContent()}" under load`);
      await page.locator('#table-routes td', { hasText: routes[0] }).first().waitFor();
      await shot('dashboard-1h');
      await page.selectOption('#f-api', '');
      await page.selectOption('#f-window', '15m');
    });

    let before;
    await step('api-page', async () => {
      await page.click('#nav a[data-page="apis"]');
      await page.locator('a.api-link', { hasText: API }).first().click();
      await page.waitForURL(new RegExp('#/apis/' + API + '$'));
      const revs = page.locator('#table-revisions tbody tr');
      await revs.first().waitFor();
      const numbers = (await page.locator('#table-revisions tbody tr td:first-child').allTextContents()).map(Number);
      check(numbers.length >= 2, `the API page lists ${numbers.length} revision(s), expected at least 2`);
      check(numbers.every((v, i) => i === 0 || numbers[i - 1] > v), `revisions not newest first: ${numbers}`);
      await page.locator(`button.rollback[data-env="${ENV}"]`).waitFor();
      before = await publicBody();
      check(before.status === 200, `GET ${PUBLIC} before the rollback: ${before.status} ${before.body}`);
    });

    await step('rollback', async () => {
      let asked = null;
      page.once('dialog', (d) => {
        asked = d.message();
        d.accept();
      });
      await page.click(`button.rollback[data-env="${ENV}"]`);
      check(asked && asked.includes(API), `no confirmation was asked before the rollback (${asked})`);
      await page.locator('#flash').waitFor({ timeout: 30000 });
      const said = await page.textContent('#flash');
      check(await page.locator('#flash.ok').count(), `the rollback failed: ${said}`);
      const want = (b) => b.status === 200 && (EXPECT_BODY !== undefined ? b.body === EXPECT_BODY : b.body !== before.body);
      let last = before;
      const ok = await until(async () => want((last = await publicBody())), 10000);
      check(ok, `${PUBLIC} after the rollback: expected ${EXPECT_BODY !== undefined ? JSON.stringify(EXPECT_BODY) : 'a body other than ' + JSON.stringify(before.body)}, got ${last.status} ${JSON.stringify(last.body)}`);
      await page.locator(`section.env[data-env="${ENV}"] .badge.ok`).waitFor();
    });

    let id;
    await step('executions', async () => {
      await page.click('#nav a[data-page="executions"]');
      const link = page.locator('a.exec-link').first();
      await link.waitFor();
      id = (await link.textContent()).trim();
      await link.click();
      await page.waitForURL(/#\/executions\/[^/]+$/);
      await page.locator('#exec-id').waitFor();
      check((await page.textContent('#exec-id')) === id, `the detail page shows id ${await page.textContent('#exec-id')}, clicked ${id}`);
      const status = (await page.textContent('#exec-status')).trim();
      check(/^[A-Z_]+$/.test(status), `no execution status shown ("${status}")`);
      await page.locator('#deliveries table').waitFor();
      const rows = await page.locator('#deliveries tbody tr').count();
      check(rows >= 1, 'no webhook deliveries table rows');
      await page.locator('#exec-members td[data-key="api"]').waitFor();
    });

    await step('result', async () => {
      await page.click('#show-result');
      await page.locator('#result-body').waitFor();
      const meta = await page.textContent('#result-meta');
      check(/status\s*\d{3}/.test(meta), `the result shows no status: ${meta}`);
      const body = await page.textContent('#result-body');
      check(EXPECT_RESULT === undefined || body === EXPECT_RESULT,
        `"Show result" (GET /admin/executions/${id}/result) shows ${JSON.stringify(body)}, expected the kept response's body ${JSON.stringify(EXPECT_RESULT)}`);
    });

    await step('nodes', async () => {
      await page.click('#nav a[data-page="nodes"]');
      await page.locator('#table-nodes tbody tr').first().waitFor();
      await page.locator('#node-status').waitFor();
    });

    await step('logout', async () => {
      await page.click('#logout');
      await page.waitForURL(/#\/login$/);
      const r = await pageFetch(page, 'GET', '/admin/dashboard/summary');
      check(r.status === 401, `GET /admin/dashboard/summary after logging out: expected 401, got ${r.status}`);
    });

    check(!problems.length, 'the page reported errors:\n  ' + problems.join('\n  '));
    console.log(`console.js: all steps passed; screenshots in ${ARTIFACTS}`);
    return 0;
  } catch (e) {
    await page.screenshot({ path: path.join(ARTIFACTS, `fail-${current}.png`), fullPage: true }).catch(() => {});
    console.error(`FAIL ${current}: ${e instanceof Failure ? e.message : e.stack || e}`);
    if (problems.length) console.error('page errors:\n  ' + problems.join('\n  '));
    return 1;
  } finally {
    await browser.close();
  }
}

main().then((rc) => process.exit(rc), (e) => {
  console.error('console.js: ' + (e.stack || e));
  process.exit(1);
});
