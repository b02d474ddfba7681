// Spawns warren (WARREN_BIN or target/debug/warren) on free ports with a
// short statistics period, and Debian's Chromium through playwright-core.
// CONSOLE_API=rabbitmq sends the console's /api requests to RabbitMQ 3.10's
// management on 127.0.0.1:15672 instead (the pages are still warren's):
// the pages are checked against RabbitMQ's own API shapes.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(import.meta.dirname, '../..');
export const SHOTS = path.join(ROOT, 'target/console-screenshots');
export const RABBIT = process.env.CONSOLE_API === 'rabbitmq';
export const RABBIT_API = 'http://127.0.0.1:15672';

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
    s.on('error', reject);
  });
}

/** A running warren: { base, amqpPort, stop() }. */
export async function startWarren(bootstrap) {
  const bin = process.env.WARREN_BIN || path.join(ROOT, 'target/debug/warren');
  if (!fs.existsSync(bin)) throw new Error(`${bin} missing: cargo build --workspace --bins first`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-console-'));
  const boot = path.join(dir, 'bootstrap.txt');
  fs.writeFileSync(boot, bootstrap);
  const [amqpPort, mgmtPort] = [await freePort(), await freePort()];
  const child = spawn(bin, ['serve', '--bind', '127.0.0.1', '--port', String(amqpPort), '--data-dir', path.join(dir, 'data'),
    '--management-port', String(mgmtPort), '--prometheus-port', '0', '--management-tls-port', '0', '--collect-statistics-interval-ms', '250', '--definitions', boot], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (d) => { log += d; if (log.length > 100000) log = log.slice(-50000); });
  const base = `http://127.0.0.1:${mgmtPort}`;
  const deadline = Date.now() + 15000;
  for (;;) {
    try { if ((await fetch(base + '/')).ok) break; } catch { /* not yet */ }
    if (child.exitCode !== null || Date.now() > deadline) throw new Error('warren did not start:\n' + log);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    base, amqpPort: RABBIT ? 5672 : amqpPort, log: () => log,
    stop: () => { child.kill('SIGTERM'); fs.rmSync(dir, { recursive: true, force: true }); },
  };
}

/** Chromium headless with the flags the suite uses, and a fresh profile. */
export async function startBrowser() {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'warren-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
    acceptDownloads: true,
  });
  return { context, stop: async () => { await context.close(); fs.rmSync(profile, { recursive: true, force: true }); } };
}

/** In RabbitMQ mode, forwards the page's /api requests to RabbitMQ. */
export async function routeApi(page, base) {
  if (!RABBIT) return;
  await page.route(`${base}/api/**`, async (route) => {
    const req = route.request();
    const url = req.url().replace(base, RABBIT_API);
    if (url.endsWith('/api/index.html')) return route.continue();
    const res = await route.fetch({ url });
    await route.fulfill({ response: res });
  });
}

/** Basic-auth API call (outside the browser) for setup and checks. */
export async function api(base, method, p, body, user = 'guest', pass = 'guest') {
  const url = (RABBIT ? RABBIT_API : base) + '/api' + p;
  const res = await fetch(url, {
    method, body: body === undefined ? undefined : JSON.stringify(body),
    headers: { Authorization: 'Basic ' + Buffer.from(`${user}:${pass}`).toString('base64'), 'Content-Type': 'application/json' },
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** A Python publisher (pika from the repo's .venv) sending for `seconds`. */
export function publisher(amqpPort, queue, seconds) {
  const py = fs.existsSync(path.join(ROOT, '.venv/bin/python')) ? path.join(ROOT, '.venv/bin/python') : 'python3';
  const code = `
import pika, time, sys
c = pika.BlockingConnection(pika.ConnectionParameters('127.0.0.1', ${amqpPort}, credentials=pika.PlainCredentials('guest', 'guest'), client_properties={'connection_name': ${JSON.stringify(queue)}}))
ch = c.channel()
ch.queue_declare(${JSON.stringify(queue)}, durable=False, auto_delete=True)
end = time.time() + ${seconds}
n = 0
while time.time() < end:
    ch.basic_publish('', ${JSON.stringify(queue)}, b'tick')
    n += 1
    if n % 50 == 0:
        c.sleep(0.01)
print(n)
c.close()
`;
  const child = spawn(py, ['-c', code], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { out += d; });
  return new Promise((resolve) => child.on('exit', (codeNo) => resolve({ code: codeNo, out })));
}
