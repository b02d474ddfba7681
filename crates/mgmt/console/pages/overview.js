// Overview: queued-messages and message-rates charts from the overview's
// samples, totals, node health, alarms, listeners.

import { get } from '../api.js';
import { chart, fromSamples, toRates } from '../chart.js';
import { fmt, h, table } from '../ui.js';

/** Chart ranges: label, age and increment in seconds (sent as *_age/*_incr). */
const RANGES = [['Last minute', 60, 1], ['Last 10 minutes', 600, 5], ['Last hour', 3600, 60]];

export async function render(view, ctx) {
  const range = h('select', { id: 'chart-range' }, RANGES.map(([l, a], i) => h('option', { value: i, selected: i === (ctx.rangeIx || 0) || null }, l)));
  range.addEventListener('change', () => { ctx.rangeIx = Number(range.value); refresh(); });
  const queued = chart('Queued messages');
  const rates = chart('Message rates', '/s');
  queued.id = 'chart-queued'; rates.id = 'chart-rates';
  const alarms = h('div', { id: 'alarms', 'aria-live': 'polite' });
  const totals = h('div.cards', { id: 'totals' });
  const nodes = h('div', { id: 'nodes' });
  const listeners = h('div', { id: 'listeners' });
  view.append(h('h1', 'Overview'), alarms,
    h('h2', 'Totals'), h('label', 'Chart range ', range), h('div.charts', queued, rates), totals,
    h('h2', 'Nodes'), nodes, h('h2', 'Ports and contexts'), listeners);

  async function refresh() {
    const [age, incr] = RANGES[ctx.rangeIx || 0].slice(1);
    const q = `?lengths_age=${age}&lengths_incr=${incr}&msg_rates_age=${age}&msg_rates_incr=${incr}`;
    const [ov, ns] = await Promise.all([get('/overview' + q), get('/nodes').catch(() => [])]);
    const qt = ov.queue_totals || {}, ms = ov.message_stats || {};
    queued.update([
      { label: 'Ready', points: fromSamples(qt.messages_ready_details) },
      { label: 'Unacked', points: fromSamples(qt.messages_unacknowledged_details) },
      { label: 'Total', points: fromSamples(qt.messages_details) },
    ]);
    rates.update([
      { label: 'Publish', points: toRates(fromSamples(ms.publish_details)) },
      { label: 'Deliver / get', points: toRates(fromSamples(ms.deliver_get_details)) },
      { label: 'Consumer ack', points: toRates(fromSamples(ms.ack_details)) },
      { label: 'Redelivered', points: toRates(fromSamples(ms.redeliver_details)) },
    ]);
    const ot = ov.object_totals || {};
    totals.replaceChildren(...[['Connections', ot.connections], ['Channels', ot.channels], ['Exchanges', ot.exchanges],
      ['Queues', ot.queues], ['Consumers', ot.consumers], ['Messages', qt.messages], ['Ready', qt.messages_ready], ['Unacked', qt.messages_unacknowledged]]
      .map(([l, v]) => h('div.card', h('b', fmt(v ?? 0)), l)));
    const active = ns.flatMap((n) => [n.mem_alarm ? `Memory alarm on ${n.name}: publishers are blocked` : null,
      n.disk_free_alarm ? `Disk space alarm on ${n.name}: publishers are blocked` : null]).filter(Boolean);
    alarms.replaceChildren(...active.map((a) => h('p.alarm', { role: 'alert' }, a)));
    nodes.replaceChildren(table([
      { label: 'Name', get: (n) => n.name },
      { label: 'Running', get: (n) => (n.running === false ? 'no' : 'yes') },
      { label: 'Memory alarm', get: (n) => (n.mem_alarm ? h('span.error', 'ALARM') : 'ok') },
      { label: 'Disk alarm', get: (n) => (n.disk_free_alarm ? h('span.error', 'ALARM') : 'ok') },
      { label: 'Uptime', get: (n) => uptime(n.uptime) },
      { label: 'Processors', get: (n) => fmt(n.processors), num: true },
      { label: 'Rates mode', get: (n) => n.rates_mode },
    ], ns, { label: 'Nodes' }));
    listeners.replaceChildren(table([
      { label: 'Protocol', get: (l) => l.protocol, key: 'protocol' },
      { label: 'Bound to', get: (l) => l.ip_address },
      { label: 'Port', get: (l) => String(l.port), num: true, key: 'port' },
      { label: 'TLS', get: (l) => (l.tls ? 'yes' : 'no') },
    ], ov.listeners || [], { label: 'Listeners' }));
  }
  await refresh();
  return refresh;
}

function uptime(ms) {
  if (typeof ms !== 'number') return '';
  const s = Math.floor(ms / 1000), d = Math.floor(s / 86400), hh = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  return d ? `${d}d ${hh}h` : hh ? `${hh}h ${m}m` : `${m}m ${s % 60}s`;
}
