// Console page-load times with many queues (issue 11), run by scripts/bench-console.sh (not part of
// the test suite). Starts warren (WARREN_BIN), declares BENCH_QUEUES queues through
// /api/definitions and measures in Chromium headless, LOADS times each, from a fresh login:
//   overview  - from submitting the login form to the overview's totals rendered
//   queues    - from navigating to #/queues to the first page of rows rendered
//   next page - from clicking "Next" to page 2's first row rendered
//   filter    - from typing a name filter to the 10 matching rows rendered (includes the page's
//               input debounce: 250 ms in warren's console; RabbitMQ's filters on Enter, no debounce)
// With BENCH_RABBITMQ=1 the same against RabbitMQ's own management console on 127.0.0.1:15672
// (guest/guest; its queues are named with a unique prefix and deleted afterwards).
// Prints a Markdown table (p50 / p95 / max ms per measurement).

import { RABBIT_API, api, startBrowser, startWarren } from './harness.mjs';

const QUEUES = Number(process.env.BENCH_QUEUES || 10000);
const LOADS = Number(process.env.BENCH_LOADS || 5);
const RABBIT = process.env.BENCH_RABBITMQ === '1';
// Longest wait for one page state, ms.
const STEP_TIMEOUT_MS = 60000;

const pad = (i) => String(i).padStart(5, '0');
const quantile = (xs, q) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(q * s.length))]; };

async function timed(fn) { const t = performance.now(); await fn(); return performance.now() - t; }

/** One fresh load of warren's console: login → overview → queues → next → filter. */
async function warrenLoad(context, base, prefix) {
  const page = await context.newPage();
  try {
    await page.goto(base + '/');
    await page.evaluate(() => { sessionStorage.clear(); });
    await page.goto(base + '/#/');
    await page.getByLabel('Username').fill('guest');
    await page.getByLabel('Password').fill('guest');
    const overview = await timed(async () => {
      await page.getByLabel('Password').press('Enter');
      await page.getByRole('heading', { name: 'Overview' }).waitFor({ timeout: STEP_TIMEOUT_MS });
      // The totals are filled from /api/overview: wait until the queue count shows.
      await page.waitForFunction((n) => [...document.querySelectorAll('#totals .card')].some((c) =>
        c.lastChild.textContent === 'Queues' && c.querySelector('b').textContent.replace(/\D/g, '') === String(n)),
      QUEUES, { timeout: STEP_TIMEOUT_MS });
    });
    const queues = await timed(async () => {
      await page.evaluate(() => { location.hash = '#/queues'; });
      await page.getByRole('link', { name: `${prefix}${pad(0)}`, exact: true }).waitFor({ timeout: STEP_TIMEOUT_MS });
    });
    const rowsPerPage = await page.locator('#queue-list tbody tr').count();
    const next = await timed(async () => {
      await page.getByRole('button', { name: 'Next ›' }).click();
      await page.getByRole('link', { name: `${prefix}${pad(rowsPerPage)}`, exact: true }).waitFor({ timeout: STEP_TIMEOUT_MS });
    });
    const filter = await timed(async () => {
      await page.getByLabel('Filter queues by name').fill(`${prefix}${pad(QUEUES - 1).slice(0, 4)}`);
      await page.getByRole('link', { name: `${prefix}${pad(QUEUES - 1)}`, exact: true }).waitFor({ timeout: STEP_TIMEOUT_MS });
    });
    return { overview, queues, next, filter };
  } finally {
    await page.close();
  }
}

/** One fresh load of RabbitMQ's console (its own pages, on 15672). */
async function rabbitLoad(context, prefix) {
  await context.clearCookies();
  const page = await context.newPage();
  try {
    await page.goto(RABBIT_API + '/');
    await page.evaluate(() => { localStorage.clear(); sessionStorage.clear(); });
    await page.goto(RABBIT_API + '/#/');
    await page.locator('input[name=username]').fill('guest');
    await page.locator('input[name=password]').fill('guest');
    const overview = await timed(async () => {
      await page.locator('input[type=submit][value=Login]').click();
      await page.locator('#main h1', { hasText: 'Overview' }).waitFor({ timeout: STEP_TIMEOUT_MS });
      // Its totals (all queues of the broker: the count cannot be checked) and the nodes table.
      await page.locator('#global-counts a[href="#/queues"] strong').waitFor({ timeout: STEP_TIMEOUT_MS });
      await page.locator('#main table.list').first().waitFor({ timeout: STEP_TIMEOUT_MS });
    });
    // Its filter and page persist in local storage: start from page 1, no filter.
    const queues = await timed(async () => {
      await page.evaluate(() => { location.hash = '#/queues'; });
      await page.locator('#queues-name').waitFor({ timeout: STEP_TIMEOUT_MS });
    });
    await page.locator('#queues-name').fill(prefix);
    const firstPage = await timed(async () => {
      await page.locator('#queues-name').press('Enter');
      await page.getByRole('link', { name: `${prefix}${pad(0)}`, exact: true }).waitFor({ timeout: STEP_TIMEOUT_MS });
    });
    const rowsPerPage = await page.locator('table.list tbody tr').count();
    const next = await timed(async () => {
      await page.locator('#queues-page').selectOption('2');
      await page.getByRole('link', { name: `${prefix}${pad(rowsPerPage)}`, exact: true }).waitFor({ timeout: STEP_TIMEOUT_MS });
    });
    const filter = await timed(async () => {
      await page.locator('#queues-name').fill(`${prefix}${pad(QUEUES - 1).slice(0, 4)}`);
      await page.locator('#queues-name').press('Enter');
      await page.getByRole('link', { name: `${prefix}${pad(QUEUES - 1)}`, exact: true }).waitFor({ timeout: STEP_TIMEOUT_MS });
    });
    await page.locator('#queues-name').fill('');
    await page.locator('#queues-name').press('Enter');
    // RabbitMQ's queues page holds every queue of the vhost (the shared broker's too), so its first
    // page is timed twice: unfiltered (queues) and filtered to this run's queues (first page).
    return { overview, queues: firstPage, 'queues (unfiltered)': queues, next, filter };
  } finally {
    await page.close();
  }
}

async function rabbitDeclare(prefix, n, del) {
  const auth = 'Basic ' + Buffer.from('guest:guest').toString('base64');
  for (let i = 0; i < n; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, n - i) }, (_, k) =>
      fetch(`${RABBIT_API}/api/queues/%2F/${encodeURIComponent(prefix + pad(i + k))}`, {
        method: del ? 'DELETE' : 'PUT', headers: { Authorization: auth, 'Content-Type': 'application/json' },
        body: del ? undefined : JSON.stringify({ durable: false, auto_delete: false }),
      })));
  }
}

function table(name, runs) {
  const keys = Object.keys(runs[0]);
  const lines = [`| ${name}: ${QUEUES.toLocaleString('en-US')} queues, ${runs.length} loads | p50 ms | p95 ms | max ms |`, '|---|---|---|---|'];
  for (const k of keys) {
    const xs = runs.map((r) => r[k]);
    lines.push(`| ${k} | ${quantile(xs, 0.5).toFixed(0)} | ${quantile(xs, 0.95).toFixed(0)} | ${Math.max(...xs).toFixed(0)} |`);
  }
  return lines.join('\n');
}

const warren = await startWarren('');
const browser = await startBrowser();
const out = [];
try {
  const prefix = 'bulk-';
  const queues = Array.from({ length: QUEUES }, (_, i) => ({ name: `${prefix}${pad(i)}`, vhost: '/', durable: false, auto_delete: false, arguments: {} }));
  const r = await api(warren.base, 'POST', '/definitions', { queues, exchanges: [], bindings: [] });
  if (r.status >= 300) throw new Error(`declaring queues: ${JSON.stringify(r)}`);
  await warrenLoad(browser.context, warren.base, prefix); // warm-up (caches, JIT), not counted
  const runs = [];
  for (let i = 0; i < LOADS; i++) runs.push(await warrenLoad(browser.context, warren.base, prefix));
  out.push(table('warren console', runs));
  if (RABBIT) {
    const rp = `benchconsole-${Date.now().toString(36)}-`;
    await rabbitDeclare(rp, QUEUES, false);
    try {
      await rabbitLoad(browser.context, rp);
      const rr = [];
      for (let i = 0; i < LOADS; i++) rr.push(await rabbitLoad(browser.context, rp));
      out.push(table('RabbitMQ 3.10 management console', rr));
    } finally {
      await rabbitDeclare(rp, QUEUES, true);
    }
  }
} finally {
  await browser.stop();
  warren.stop();
}
console.log(out.join('\n\n'));
