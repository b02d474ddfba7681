// The console's shell: login, the header (cluster, vhost selector,
// refresh period, user), hash routing to the pages, the refresh timer.

import { ApiError, MGMT_TAGS, clearCredentials, get, hasCredentials, setCredentials } from './api.js';
import { h, say } from './ui.js';
import * as overview from './pages/overview.js';
import * as connections from './pages/connections.js';
import * as exchanges from './pages/exchanges.js';
import * as queues from './pages/queues.js';
import * as queue from './pages/queue.js';
import * as admin from './pages/admin.js';
import * as definitions from './pages/definitions.js';

/** Menu entries: hash, label, who sees it. */
const NAV = [
  ['#/', 'Overview', 'any'], ['#/connections', 'Connections', 'any'], ['#/channels', 'Channels', 'any'],
  ['#/exchanges', 'Exchanges', 'any'], ['#/queues', 'Queues', 'any'],
  ['#/admin/users', 'Users', 'admin'], ['#/admin/vhosts', 'Virtual hosts', 'admin'],
  ['#/admin/policies', 'Policies', 'any'], ['#/definitions', 'Definitions', 'admin'],
];

/** Hash pattern → page renderer. */
const ROUTES = [
  [/^#\/?$/, overview.render], [/^#\/connections$/, connections.renderConnections],
  [/^#\/channels$/, connections.renderChannels], [/^#\/exchanges$/, exchanges.renderList],
  [/^#\/exchange\/([^/]+)\/([^/]*)$/, exchanges.renderOne], [/^#\/queues$/, queues.render],
  [/^#\/queue\/([^/]+)\/([^/]+)$/, queue.render], [/^#\/admin\/users$/, admin.renderUsers],
  [/^#\/admin\/user\/([^/]+)$/, admin.renderUser], [/^#\/admin\/vhosts$/, admin.renderVhosts],
  [/^#\/admin\/policies$/, admin.renderPolicies], [/^#\/definitions$/, definitions.render],
];

const ctx = { user: null, tags: [], admin: false, vhost: '', refresh: null };
let timer = null;

const $ = (id) => document.getElementById(id);

function showLogin(message) {
  $('top').hidden = true; $('foot').hidden = true;
  const view = $('view');
  view.replaceChildren($('login') || loginSection());
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  $('login-form').username.focus();
}

let loginEl = null;
function loginSection() { return loginEl; }

/** Logs in with the stored credentials; a clear message on each failure. */
async function start() {
  try {
    const me = await get('/whoami');
    const tags = Array.isArray(me.tags) ? me.tags : String(me.tags || '').split(',').filter(Boolean);
    if (!tags.some((t) => MGMT_TAGS.includes(t))) {
      clearCredentials();
      return showLogin(`User "${me.name}" has no management tag: the console needs one of ${MGMT_TAGS.join(', ')}.`);
    }
    Object.assign(ctx, { user: me.name, tags, admin: tags.includes('administrator') });
  } catch (e) {
    clearCredentials();
    if (e instanceof ApiError && e.status === 401) {
      const notMgmt = /management|not_authorised/i.test(e.message);
      return showLogin(notMgmt ? `This user may not use the console: ${e.message}.` : `Login failed: wrong user name or password (${e.message}).`);
    }
    return showLogin(`The management API answered with an error: ${e.message}`);
  }
  $('top').hidden = false; $('foot').hidden = false;
  $('whoami').textContent = `User ${ctx.user}`;
  try {
    const ov = await get('/overview');
    $('cluster').textContent = `${ov.cluster_name} · ${ov.product_name} ${ov.product_version} compatible`;
  } catch (e) { say(e.message, true); }
  await loadVhosts();
  route();
}

async function loadVhosts() {
  const sel = $('vhost-select');
  try {
    const vs = await get('/vhosts?columns=name');
    sel.replaceChildren(h('option', { value: '' }, 'All'), ...vs.map((v) => h('option', { value: v.name, selected: v.name === ctx.vhost || null }, v.name)));
  } catch (e) { say(e.message, true); }
}
ctx.reloadVhosts = loadVhosts;

async function route() {
  if (!ctx.user) return;
  const hash = location.hash || '#/';
  const nav = $('nav');
  nav.replaceChildren(...NAV.filter((n) => n[2] === 'any' || ctx.admin).map(([href, label]) => {
    const cur = hash === href || (href !== '#/' && hash.startsWith(href.replace(/s$/, '')));
    return h('a', { href, 'aria-current': cur ? 'page' : null }, label);
  }));
  ctx.refresh = null;
  const view = $('view');
  view.replaceChildren();
  const found = ROUTES.find(([re]) => re.test(hash));
  if (!found) { view.append(h('h1', 'Not found'), h('p', `No page at ${hash}.`)); return; }
  const args = hash.match(found[0]).slice(1).map(decodeURIComponent);
  try {
    ctx.refresh = (await found[1](view, ctx, ...args)) || null;
  } catch (e) {
    view.append(h('p.error', { role: 'alert' }, e.message));
  }
  view.focus({ preventScroll: true });
  schedule();
}
ctx.route = route;

function schedule() {
  clearInterval(timer);
  const ms = Number($('refresh-select').value);
  if (!ms) return;
  timer = setInterval(async () => {
    if (!ctx.refresh || document.hidden) return;
    try { await ctx.refresh(); } catch (e) { say(e.message, true); }
  }, ms);
}

window.addEventListener('DOMContentLoaded', () => {
  loginEl = $('login');
  const saved = localStorage.getItem('warren.refresh');
  if (saved) $('refresh-select').value = saved;
  $('refresh-select').addEventListener('change', (e) => { localStorage.setItem('warren.refresh', e.target.value); schedule(); });
  $('vhost-select').addEventListener('change', (e) => { ctx.vhost = e.target.value; route(); });
  $('logout').addEventListener('click', () => { clearCredentials(); ctx.user = null; clearInterval(timer); location.hash = '#/'; showLogin('Logged out.'); });
  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const f = e.target;
    setCredentials(f.username.value, f.password.value);
    f.password.value = '';
    start();
  });
  window.addEventListener('hashchange', route);
  if (hasCredentials()) start(); else showLogin();
});
