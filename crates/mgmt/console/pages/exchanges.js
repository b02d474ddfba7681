// Exchanges: list and "add a new exchange"; one exchange: bindings from
// and to it (bind, unbind), publish a message, delete.

import { del, enc, get, post, put } from '../api.js';
import { area, check, choice, danger, features, field, form, h, link, parseArgs, rate, say, table } from '../ui.js';

export const xname = (n) => (n === '' ? '(AMQP default)' : n);
const xpath = (n) => enc(n === '' ? 'amq.default' : n);

export async function renderList(view, ctx) {
  const box = h('div');
  const vhosts = (await get('/vhosts?columns=name')).map((v) => v.name);
  const ov = await get('/overview?columns=exchange_types');
  const types = (ov.exchange_types || []).map((t) => t.name);
  view.append(h('h1', 'Exchanges'), box, h('h2', 'Add a new exchange'),
    form('Add a new exchange', [
      choice('Virtual host', 'vhost', vhosts, ctx.vhost || vhosts[0]),
      field('Name', 'name', { required: true }),
      choice('Type', 'type', types.length ? types : ['direct', 'fanout', 'topic', 'headers'], 'direct'),
      check('Durable', 'durable', true), check('Auto delete', 'auto_delete'), check('Internal', 'internal'),
      area('Arguments (key=value lines or JSON)', 'arguments', { placeholder: 'alternate-exchange=my-ae' }),
    ], async (v, f) => {
      await put(`/exchanges/${enc(v.vhost)}/${enc(v.name)}`, { type: v.type, durable: v.durable, auto_delete: v.auto_delete, internal: v.internal, arguments: parseArgs(v.arguments) });
      say(`Exchange ${v.name} created.`); f.name.value = ''; await refresh();
    }, 'Add exchange'));
  async function refresh() {
    const list = await get(ctx.vhost ? `/exchanges/${enc(ctx.vhost)}` : '/exchanges');
    box.replaceChildren(table([
      { label: 'Virtual host', get: (x) => x.vhost, key: 'vhost' },
      { label: 'Name', get: (x) => link(`#/exchange/${enc(x.vhost)}/${enc(x.name)}`, xname(x.name)), key: 'name' },
      { label: 'Type', get: (x) => x.type, key: 'type' },
      { label: 'Features', get: features },
      { label: 'Message rate in', get: (x) => rate(x.message_stats, 'publish_in'), num: true },
      { label: 'Message rate out', get: (x) => rate(x.message_stats, 'publish_out'), num: true },
    ], list, { label: 'Exchanges' }));
  }
  await refresh();
  return refresh;
}

/** Bindings table with an Unbind button each. */
export function bindingsTable(list, after) {
  return table([
    { label: 'From', get: (b) => xname(b.source) },
    { label: 'To', get: (b) => (b.destination_type === 'queue' ? link(`#/queue/${enc(b.vhost)}/${enc(b.destination)}`, b.destination) : link(`#/exchange/${enc(b.vhost)}/${enc(b.destination)}`, b.destination)) },
    { label: 'Type', get: (b) => b.destination_type },
    { label: 'Routing key', get: (b) => b.routing_key },
    { label: 'Arguments', get: (b) => (Object.keys(b.arguments || {}).length ? JSON.stringify(b.arguments) : '') },
    { label: '', get: (b) => (b.source === '' ? '' : danger('Unbind', `Remove this binding of ${b.destination}?`, async () => {
      await del(`/bindings/${enc(b.vhost)}/e/${enc(b.source)}/${b.destination_type === 'queue' ? 'q' : 'e'}/${enc(b.destination)}/${enc(b.properties_key)}`);
      say('Binding removed.'); await after();
    })) },
  ], list, { label: 'Bindings', empty: 'No bindings.' });
}

/** The publish form (exchange page; the queue page publishes through the default exchange). */
export function publishForm(vhost, exchange, routingKey = '') {
  return form('Publish message', [
    field('Routing key', 'routing_key', { value: routingKey }),
    choice('Delivery mode', 'delivery_mode', [['1', '1 - Non-persistent'], ['2', '2 - Persistent']], '1'),
    area('Headers (key=value lines or JSON)', 'headers'),
    area('Properties (key=value lines or JSON: content_type, correlation_id, …)', 'props'),
    area('Payload', 'payload'),
    choice('Payload encoding', 'payload_encoding', [['string', 'String'], ['base64', 'Base64']], 'string'),
  ], async (v) => {
    const properties = { ...parseArgs(v.props), delivery_mode: Number(v.delivery_mode) };
    const headers = parseArgs(v.headers);
    if (Object.keys(headers).length) properties.headers = headers;
    const r = await post(`/exchanges/${enc(vhost)}/${xpath(exchange)}/publish`, { properties, routing_key: v.routing_key, payload: v.payload, payload_encoding: v.payload_encoding });
    say(r && r.routed ? 'Message published.' : 'Message published, but not routed.', !(r && r.routed));
  }, 'Publish message');
}

export async function renderOne(view, ctx, vhost, name) {
  const x = await get(`/exchanges/${enc(vhost)}/${xpath(name)}`);
  const from = h('div'), to = h('div');
  view.append(h('h1', `Exchange ${xname(name)}`),
    h('p', `Virtual host ${vhost} · type ${x.type} · `, features(x)),
    h('h2', 'Bindings from this exchange'), from);
  if (name !== '') {
    view.append(form('Add binding from this exchange', [
      choice('Destination type', 'kind', [['q', 'To queue'], ['e', 'To exchange']], 'q'),
      field('Destination', 'destination', { required: true }),
      field('Routing key', 'routing_key'),
      area('Arguments (key=value lines or JSON)', 'arguments'),
    ], async (v, f) => {
      await post(`/bindings/${enc(vhost)}/e/${enc(name)}/${v.kind}/${enc(v.destination)}`, { routing_key: v.routing_key, arguments: parseArgs(v.arguments) });
      say('Binding added.'); f.destination.value = ''; await refresh();
    }, 'Bind'), h('h2', 'Bindings to this exchange'), to);
  }
  view.append(h('h2', 'Publish message'), publishForm(vhost, name));
  if (name !== '' && !name.startsWith('amq.')) {
    view.append(h('h2', 'Delete this exchange'), h('div', danger('Delete', `Delete exchange ${name}?`, async () => {
      await del(`/exchanges/${enc(vhost)}/${enc(name)}`);
      say(`Exchange ${name} deleted.`); location.hash = '#/exchanges';
    })));
  }
  async function refresh() {
    const [s, d] = await Promise.all([get(`/exchanges/${enc(vhost)}/${xpath(name)}/bindings/source`),
      name === '' ? [] : get(`/exchanges/${enc(vhost)}/${xpath(name)}/bindings/destination`)]);
    from.replaceChildren(bindingsTable(s, refresh));
    to.replaceChildren(bindingsTable(d, refresh));
  }
  await refresh();
  return refresh;
}
