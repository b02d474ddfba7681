// The web console in a real browser (Chromium headless via playwright-core):
// login and its three failure messages, the overview chart moving under a
// publisher, admin (vhost, user, permissions), queue + binding, publish from
// the exchange page and get from the queue page, definitions import, the
// API reference, 10,000 queues paged server-side, keyboard use, phone width.
// Screenshots of each main page go to target/console-screenshots/.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { RABBIT, SHOTS, api, publisher, routeApi, startBrowser, startWarren } from './harness.mjs';

const U = `c${Date.now().toString(36)}`; // unique names (RabbitMQ mode shares a broker)
let warren, browser, page;

const shot = (name) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
const go = async (hash) => { await page.evaluate((h) => { location.hash = h; }, hash); await page.waitForLoadState('networkidle'); };
/** The form with this accessible name. */
const formOf = (name) => page.getByRole('form', { name });

async function login(user, pass) {
  await page.goto(warren.base + '/');
  await page.getByLabel('Username').fill(user);
  await page.getByLabel('Password').fill(pass);
  await page.getByLabel('Password').press('Enter'); // keyboard submit
}

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  warren = await startWarren(`add_user ${U}-nomgmt secret\n`);
  if (RABBIT) await api(warren.base, 'PUT', `/users/${U}-nomgmt`, { password: 'secret', tags: '' });
  browser = await startBrowser();
  page = await browser.context.newPage();
  page.on('dialog', (d) => d.accept());
  page.on('pageerror', (e) => { throw e; });
  await routeApi(page, warren.base);
});

after(async () => {
  if (RABBIT) {
    for (const p of [`/users/${U}-nomgmt`, `/users/${U}-user`, `/vhosts/${U}-vh`, `/queues/%2F/${U}-q`, `/queues/%2F/${U}-pub`, `/queues/%2F/${U}-imported`, `/exchanges/%2F/${U}-x`, `/exchanges/%2F/${U}-imported-x`]) await api(warren.base, 'DELETE', p);
  }
  await browser?.stop();
  warren?.stop();
});

test('login: a wrong password shows "Login failed"', async () => {
  await login('guest', 'wrong');
  await page.getByRole('alert').filter({ hasText: /Login failed/ }).waitFor();
  await shot('login-error');
});

test('login: a user without a management tag is refused with a clear message', async (t) => {
  const who = await api(warren.base, 'GET', '/whoami', undefined, `${U}-nomgmt`, 'secret');
  if (who.status === 200 && (who.body.tags || []).includes('administrator')) {
    t.skip('the API reports every user as administrator (whoami tags land with the admin endpoints)');
    return;
  }
  await login(`${U}-nomgmt`, 'secret');
  await page.getByRole('alert').filter({ hasText: /no management tag|may not use the console/ }).waitFor();
  assert.equal(await page.locator('#top').isHidden(), true, 'no menu for that user');
});

test('login: guest logs in (keyboard submit) and sees the overview and the menu', async () => {
  await login('guest', 'guest');
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  assert.equal(await page.getByRole('link', { name: 'Queues' }).count(), 1);
  assert.equal(await page.locator('#whoami').textContent(), 'User guest');
});

test('overview: the message-rates chart moves while a publisher runs', async () => {
  await page.getByLabel('Refresh').selectOption('1000');
  const canvas = page.locator('#chart-rates canvas');
  const lastPublish = async () => JSON.parse((await canvas.getAttribute('data-last')) || '{}').Publish || 0;
  const before = Number(await canvas.getAttribute('data-newest'));
  const run = publisher(warren.amqpPort, `${U}-pub`, 8);
  await page.waitForFunction(() => {
    const c = document.querySelector('#chart-rates canvas');
    return c && (JSON.parse(c.dataset.last || '{}').Publish || 0) > 0;
  }, null, { timeout: 20000 });
  assert.ok((await lastPublish()) > 0);
  await page.waitForFunction(() => {
    const c = document.querySelector('#chart-queued canvas');
    return c && (JSON.parse(c.dataset.last || '{}').Total || 0) > 0;
  }, null, { timeout: 20000 });
  await page.waitForFunction((b) => Number(document.querySelector('#chart-rates canvas').dataset.newest) > b, before, { timeout: 10000 });
  // Enough points for a line (4 series of at least 3 points) before the screenshot.
  await page.waitForFunction(() => Number(document.querySelector('#chart-rates canvas').dataset.points) >= 12, null, { timeout: 10000 });
  await shot('overview');
  const res = await run;
  assert.equal(res.code, 0, res.out);
  await page.getByLabel('Refresh').selectOption('5000');
});

test('an API error is shown in the form: an exchange of an unknown type', async () => {
  await go('#/exchanges');
  const f = formOf('Add a new exchange');
  await f.getByLabel('Name').fill(`${U}-bad`);
  await f.getByLabel('Type').evaluate((s) => { s.append(new Option('bogus', 'bogus')); s.value = 'bogus'; });
  await f.getByRole('button', { name: 'Add exchange' }).click();
  await f.getByRole('alert').filter({ hasText: /exchange type 'bogus'.*HTTP 400/ }).waitFor();
});

test('admin: create a vhost, and a user with permissions on it', async (t) => {
  const probe = await api(warren.base, 'GET', '/users');
  if (probe.status === 404) { t.skip('the API has no /api/users yet (admin endpoints land with another change)'); return; }
  await go('#/admin/vhosts');
  const vf = formOf('Add a new virtual host');
  await vf.getByLabel('Name').fill(`${U}-vh`);
  await vf.getByLabel('Description').fill('made by the console test');
  await vf.getByRole('button', { name: 'Add virtual host' }).click();
  await page.getByRole('cell', { name: `${U}-vh`, exact: true }).waitFor();
  await shot('vhosts');
  await go('#/admin/users');
  const uf = formOf('Add a user');
  await uf.getByLabel('Username').fill(`${U}-user`);
  await uf.getByLabel('Password').fill('pw-123');
  await uf.getByRole('button', { name: 'management', exact: true }).click();
  await uf.getByRole('button', { name: 'Add user' }).click();
  await page.getByRole('link', { name: `${U}-user` }).click();
  await page.getByRole('heading', { name: `User ${U}-user` }).waitFor();
  const pf = formOf('Set permission');
  await pf.getByLabel('Virtual host').selectOption(`${U}-vh`);
  await pf.getByLabel('Write regexp').fill('^amq\\.');
  await pf.getByRole('button', { name: 'Set permission' }).click();
  await page.getByRole('cell', { name: '^amq\\.', exact: true }).waitFor();
  const perm = await api(warren.base, 'GET', `/permissions/${encodeURIComponent(`${U}-vh`)}/${U}-user`);
  assert.equal(perm.status, 200);
  assert.deepEqual([perm.body.configure, perm.body.write, perm.body.read], ['.*', '^amq\\.', '.*']);
  const who = await api(warren.base, 'GET', '/whoami', undefined, `${U}-user`, 'pw-123');
  assert.deepEqual(who.body.tags, ['management']);
  await go('#/admin/users');
  await shot('users');
});

test('a queue and a binding; publish from the exchange page, get from the queue page', async () => {
  await go('#/queues');
  const qf = formOf('Add a new queue');
  await qf.getByLabel('Virtual host').selectOption('/');
  await qf.getByLabel('Name').fill(`${U}-q`);
  await qf.getByRole('button', { name: 'Add queue' }).click();
  await page.getByLabel('Filter queues by name').fill(`${U}-q`);
  await page.getByRole('link', { name: `${U}-q`, exact: true }).waitFor();
  await shot('queues');
  await go('#/exchange/%2F/amq.direct');
  const bf = formOf('Add binding from this exchange');
  await bf.getByLabel('Destination', { exact: true }).fill(`${U}-q`);
  await bf.getByLabel('Routing key').fill(`${U}-key`);
  await bf.getByRole('button', { name: 'Bind' }).click();
  await page.getByRole('cell', { name: `${U}-key`, exact: true }).waitFor();
  const pub = formOf('Publish message');
  await pub.getByLabel('Routing key').fill(`${U}-key`);
  await pub.getByLabel('Payload', { exact: true }).fill(`hello from ${U}`);
  await pub.getByRole('button', { name: 'Publish message' }).click();
  await page.getByText('Message published.').waitFor();
  await shot('exchange');
  await go(`#/queue/%2F/${U}-q`);
  await page.getByRole('cell', { name: 'amq.direct' }).waitFor(); // the binding, seen from the queue
  const gf = formOf('Get messages');
  await gf.getByLabel('Ack mode').selectOption('ack_requeue_false');
  await gf.getByRole('button', { name: 'Get messages' }).click();
  await page.locator('#got-messages pre.payload').filter({ hasText: `hello from ${U}` }).waitFor();
  const q = await api(warren.base, 'GET', `/queues/%2F/${U}-q`);
  await shot('queue');
  // ack_requeue_false removed it: a second get finds the queue empty.
  await gf.getByRole('button', { name: 'Get messages' }).click();
  await page.locator('#got-messages').getByText('Queue is empty.').waitFor();
  assert.equal(q.status, 200);
});

test('connections and channels pages list an open connection and close it', async () => {
  const name = `${U}-conn`;
  const run = publisher(warren.amqpPort, name, 6);
  await go('#/connections');
  const row = page.getByRole('row').filter({ hasText: `(${name})` });
  await row.waitFor({ timeout: 10000 });
  await shot('connections');
  await go('#/channels');
  await page.getByRole('button', { name: 'Close connection' }).first().waitFor({ timeout: 10000 });
  await shot('channels');
  await go('#/connections');
  await row.getByRole('button', { name: 'Close' }).click();
  await page.getByText(/Connection .* closed\./).waitFor();
  const res = await run;
  assert.notEqual(res.code, 0, 'the publisher was disconnected: ' + res.out);
  if (RABBIT) await api(warren.base, 'DELETE', `/queues/%2F/${name}`);
});

test('definitions: import a RabbitMQ definitions.json', async () => {
  const file = path.join(SHOTS, '..', `console-defs-${U}.json`);
  fs.writeFileSync(file, JSON.stringify({
    rabbit_version: '3.10.0', rabbitmq_version: '3.10.0', product_name: 'RabbitMQ', product_version: '3.10.0',
    users: [], vhosts: [], permissions: [], topic_permissions: [], parameters: [], global_parameters: [], policies: [],
    queues: [{ name: `${U}-imported`, vhost: '/', durable: true, auto_delete: false, arguments: { 'x-max-length': 10 } }],
    exchanges: [{ name: `${U}-imported-x`, vhost: '/', type: 'fanout', durable: true, auto_delete: false, internal: false, arguments: {} }],
    bindings: [{ source: `${U}-imported-x`, vhost: '/', destination: `${U}-imported`, destination_type: 'queue', routing_key: '', arguments: {} }],
  }));
  await go('#/definitions');
  await page.getByLabel('Definitions file').setInputFiles(file);
  await formOf('Import definitions').getByRole('button', { name: 'Upload definitions' }).click();
  await page.locator('#import-result').filter({ hasText: /Imported/ }).waitFor();
  await shot('definitions');
  fs.rmSync(file);
  const b = await api(warren.base, 'GET', `/queues/%2F/${U}-imported/bindings`);
  assert.equal(b.status, 200);
  assert.ok(b.body.some((x) => x.source === `${U}-imported-x`), JSON.stringify(b.body));
});

test('the API reference lists routes the server has', async (t) => {
  if (RABBIT) { t.skip('warren only'); return; }
  await page.goto(warren.base + '/api/index.html');
  const paths = await page.locator('#routes code.path').allTextContents();
  assert.ok(paths.length > 40, `${paths.length} routes`);
  const rows = await page.locator('#routes tbody tr').evaluateAll((trs) => trs.map((tr) => [tr.cells[0].textContent, tr.cells[1].textContent]));
  let probed = 0;
  for (const [methods, p] of rows) {
    if (!methods.includes('GET') || p.includes('{')) continue;
    const r = await api(warren.base, 'GET', p.replace(/^\/api/, ''));
    assert.notEqual(r.status, 404, `${p} is documented but answers 404`);
    assert.notEqual(r.status, 405, `${p} is documented but answers 405`);
    probed++;
  }
  assert.ok(probed > 15, `${probed} probed`);
  await shot('api-reference');
});

test('10,000 queues: the queues page shows one server-side page, fast', async (t) => {
  if (RABBIT) { t.skip('warren only (would load the shared RabbitMQ)'); return; }
  const queues = Array.from({ length: 10000 }, (_, i) => ({ name: `bulk-${String(i).padStart(5, '0')}`, vhost: '/', durable: false, auto_delete: false, arguments: {} }));
  const r = await api(warren.base, 'POST', '/definitions', { queues, exchanges: [], bindings: [] });
  assert.ok(r.status < 300, JSON.stringify(r));
  await page.goto(warren.base + '/#/queues');
  await page.getByRole('heading', { name: 'Queues' }).waitFor();
  const t0 = Date.now();
  await page.evaluate(() => { location.hash = '#/'; });
  await page.evaluate(() => { location.hash = '#/queues'; });
  await page.getByRole('link', { name: 'bulk-00000', exact: true }).waitFor();
  const ms = Date.now() - t0;
  console.log(`queues page with 10,000 queues: ${ms} ms`);
  assert.ok(ms < 3000, `${ms} ms`);
  assert.ok((await page.locator('#queue-list tbody tr').count()) <= 100);
  await page.getByText(/Page 1 of \d+ · [\d,]+ shown of [\d,]+/).waitFor();
  await page.getByRole('button', { name: 'Next ›' }).click();
  await page.getByText(/^Page 2 of/).waitFor();
  await page.getByLabel('Filter queues by name').fill('bulk-0999');
  await page.getByRole('link', { name: 'bulk-09990', exact: true }).waitFor();
  assert.equal(await page.locator('#queue-list tbody tr').count(), 10);
  await page.getByRole('button', { name: /^Name/ }).click(); // server-side sort, reversed
  await page.getByRole('button', { name: /^Name/ }).click();
  await page.locator('#queue-list tbody tr').first().getByRole('link', { name: 'bulk-09999' }).waitFor();
});

test('keyboard: the menu is reachable with Tab and works with Enter', async () => {
  // A fresh document: a same-document hash change keeps Chromium's sequential-focus starting point
  // wherever the previous test left it (after the menu), which made this test depend on timing.
  await page.goto('about:blank');
  await page.goto(warren.base + '/#/');
  await page.getByRole('heading', { name: 'Overview' }).waitFor();
  await page.keyboard.press('Tab'); // skip link
  let found = false;
  for (let i = 0; i < 12 && !found; i++) {
    await page.keyboard.press('Tab');
    found = (await page.evaluate(() => document.activeElement?.textContent)) === 'Exchanges';
  }
  assert.ok(found, 'Exchanges link reached with Tab');
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Exchanges' }).waitFor();
});

test('phone width: pages fit 390 px without sideways scrolling of the page', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  for (const [hash, name] of [['#/', 'phone-overview'], ['#/queues', 'phone-queues']]) {
    await go(hash);
    await page.waitForTimeout(300);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `${hash} overflows by ${overflow}px`);
    await shot(name);
  }
  await page.setViewportSize({ width: 1280, height: 900 });
});
