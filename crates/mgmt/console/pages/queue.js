// One queue: state, depth and rate charts (points collected while the
// page is open: the API keeps sample histories for the overview only),
// consumers, bindings (add, remove), publish, get messages, purge, delete.

import { del, enc, get, post } from '../api.js';
import { chart, History } from '../chart.js';
import { area, check, choice, danger, features, field, fmt, form, h, parseArgs, say, table } from '../ui.js';
import { bindingsTable, publishForm } from './exchanges.js';

export async function render(view, ctx, vhost, name) {
  const path = `/queues/${enc(vhost)}/${enc(name)}`;
  const info = h('div', { id: 'queue-info' });
  const queued = chart('Queued messages'); const rates = chart('Message rates', '/s');
  queued.id = 'queue-chart-queued'; rates.id = 'queue-chart-rates';
  const hist = new History();
  const consumers = h('div'), bindings = h('div'), got = h('div', { id: 'got-messages', 'aria-live': 'polite' });
  view.append(h('h1', `Queue ${name}`), info, h('div.charts', queued, rates),
    h('h2', 'Consumers'), consumers, h('h2', 'Bindings'), bindings,
    form('Add binding to this queue', [
      field('From exchange', 'source', { required: true }), field('Routing key', 'routing_key'),
      area('Arguments (key=value lines or JSON)', 'arguments'),
    ], async (v, f) => {
      await post(`/bindings/${enc(vhost)}/e/${enc(v.source)}/q/${enc(name)}`, { routing_key: v.routing_key, arguments: parseArgs(v.arguments) });
      say('Binding added.'); f.source.value = ''; await refresh();
    }, 'Bind'),
    h('h2', 'Publish message'), h('p', 'Published through the default exchange with the queue name as the routing key.'),
    publishForm(vhost, '', name),
    h('h2', 'Get messages'), h('p', 'Getting messages is destructive unless they are requeued.'),
    form('Get messages', [
      choice('Ack mode', 'ackmode', [['ack_requeue_true', 'Nack message requeue true'], ['ack_requeue_false', 'Ack message requeue false'],
        ['reject_requeue_true', 'Reject requeue true'], ['reject_requeue_false', 'Reject requeue false']], 'ack_requeue_true'),
      choice('Encoding', 'encoding', [['auto', 'Automatic string/base64'], ['base64', 'base64']], 'auto'),
      field('Messages', 'count', { type: 'number', min: 1, value: 1 }),
      field('Truncate at (bytes)', 'truncate', { type: 'number', min: 1, value: 50000 }),
    ], async (v) => {
      const msgs = await post(`${path}/get`, { count: Number(v.count), ackmode: v.ackmode, encoding: v.encoding, truncate: Number(v.truncate) });
      got.replaceChildren(msgs.length ? h('div', msgs.map((m, i) => h('div.box', { 'aria-label': `Message ${i + 1}` },
        h('div', h('b', `Message ${i + 1}`), ` · exchange ${m.exchange === '' ? '(AMQP default)' : m.exchange} · routing key ${m.routing_key} · redelivered ${m.redelivered} · ${m.message_count} left in queue`),
        h('div', 'Properties: ', h('code', JSON.stringify(m.properties))),
        h('div', `Payload (${m.payload_bytes} bytes, ${m.payload_encoding}):`, h('pre.payload', m.payload))))) : h('p', 'Queue is empty.'));
      await refresh();
    }, 'Get messages'), got,
    h('h2', 'Purge'), h('div', danger('Purge messages', `Remove every ready message of ${name}?`, async () => {
      await del(`${path}/contents`); say(`Queue ${name} purged.`); await refresh();
    })),
    h('h2', 'Delete'), form('Delete this queue', [check('Only if empty', 'if_empty'), check('Only if unused', 'if_unused')], async (v) => {
      if (!confirm(`Delete queue ${name}?`)) return;
      const q = new URLSearchParams(); if (v.if_empty) q.set('if-empty', 'true'); if (v.if_unused) q.set('if-unused', 'true');
      await del(`${path}?${q}`); say(`Queue ${name} deleted.`); location.hash = '#/queues';
    }, 'Delete queue'));

  const last = {};
  async function refresh() {
    const [q, b, cs] = await Promise.all([get(path), get(`${path}/bindings`), get(`/consumers/${enc(vhost)}`)]);
    const t = Date.now();
    queued.update(['messages_ready', 'messages_unacknowledged', 'messages'].map((k, i) => ({ label: ['Ready', 'Unacked', 'Total'][i], points: hist.add(k, t, q[k] || 0) })));
    const ms = q.message_stats || {};
    rates.update([['publish', 'Publish'], ['deliver_get', 'Deliver / get'], ['ack', 'Ack']].map(([k, l]) => {
      const d = ms[k + '_details'];
      return { label: l, points: hist.add(k, t, d ? d.rate : 0) };
    }));
    last.q = q;
    info.replaceChildren(table([
      { label: 'Virtual host', get: (x) => x.vhost }, { label: 'Type', get: (x) => x.type || 'classic' },
      { label: 'Features', get: features }, { label: 'State', get: (x) => x.state || '' },
      { label: 'Ready', get: (x) => fmt(x.messages_ready), num: true },
      { label: 'Unacked', get: (x) => fmt(x.messages_unacknowledged), num: true },
      { label: 'Total', get: (x) => fmt(x.messages), num: true },
      { label: 'Consumers', get: (x) => fmt(x.consumers), num: true },
      { label: 'Policy', get: (x) => x.policy || '' },
    ], [q], { label: 'Queue' }));
    bindings.replaceChildren(bindingsTable(b, refresh));
    consumers.replaceChildren(table([
      { label: 'Channel', get: (c) => c.channel_details?.name || '' },
      { label: 'Consumer tag', get: (c) => c.consumer_tag },
      { label: 'Ack required', get: (c) => String(c.ack_required) },
      { label: 'Exclusive', get: (c) => String(c.exclusive) },
      { label: 'Prefetch', get: (c) => fmt(c.prefetch_count), num: true },
      { label: 'Active', get: (c) => String(c.active) },
    ], cs.filter((c) => c.queue && c.queue.name === name), { label: 'Consumers', empty: 'No consumers.' }));
  }
  await refresh();
  return refresh;
}
