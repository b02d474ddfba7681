// Connections and channels, each closable (a connection by DELETE with an
// X-Reason; a channel through its connection, as RabbitMQ's console does).

import { del, enc, get } from '../api.js';
import { danger, fmt, h, rate, say, table } from '../ui.js';

const base = (ctx, what) => (ctx.vhost ? `/vhosts/${enc(ctx.vhost)}/${what}` : `/${what}`);

export async function renderConnections(view, ctx) {
  const box = h('div');
  view.append(h('h1', 'Connections'), box);
  const close = (c) => danger('Close', `Close connection ${c.name}?`, async () => {
    const reason = prompt('Reason sent to the client', 'Closed via management plugin');
    if (reason === null) return;
    await del(`/connections/${enc(c.name)}`, { 'X-Reason': reason });
    say(`Connection ${c.name} closed.`);
    await refresh();
  });
  async function refresh() {
    const list = await get(base(ctx, 'connections'));
    box.replaceChildren(table([
      { label: 'Virtual host', get: (c) => c.vhost, key: 'vhost' },
      { label: 'Name', get: (c) => [c.name, c.client_properties?.connection_name ? h('div', `(${c.client_properties.connection_name})`) : null], key: 'name' },
      { label: 'User', get: (c) => c.user, key: 'user' },
      { label: 'State', get: (c) => c.state || '' },
      { label: 'TLS', get: (c) => (c.ssl ? 'yes' : 'no') },
      { label: 'Protocol', get: (c) => c.protocol },
      { label: 'Channels', get: (c) => fmt(c.channels), num: true, key: 'channels' },
      { label: 'Client', get: (c) => [c.client_properties?.product, c.client_properties?.version].filter(Boolean).join(' ') },
      { label: 'From client', get: (c) => rate(c, 'recv_oct'), num: true },
      { label: 'To client', get: (c) => rate(c, 'send_oct'), num: true },
      { label: '', get: close },
    ], list, { label: 'Connections', empty: 'No connections.' }));
  }
  await refresh();
  return refresh;
}

export async function renderChannels(view, ctx) {
  const box = h('div');
  view.append(h('h1', 'Channels'), box);
  async function refresh() {
    const list = await get(base(ctx, 'channels'));
    box.replaceChildren(table([
      { label: 'Channel', get: (c) => c.name, key: 'name' },
      { label: 'Virtual host', get: (c) => c.vhost, key: 'vhost' },
      { label: 'User', get: (c) => c.user },
      { label: 'Mode', get: (c) => [c.confirm ? 'C' : '', c.transactional ? 'T' : ''].join('') },
      { label: 'State', get: (c) => c.state },
      { label: 'Consumers', get: (c) => fmt(c.consumer_count), num: true, key: 'consumer_count' },
      { label: 'Prefetch', get: (c) => fmt(c.prefetch_count), num: true },
      { label: 'Unacked', get: (c) => fmt(c.messages_unacknowledged), num: true, key: 'messages_unacknowledged' },
      { label: 'Unconfirmed', get: (c) => fmt(c.messages_unconfirmed), num: true },
      { label: 'Publish', get: (c) => rate(c.message_stats, 'publish'), num: true },
      { label: '', get: (c) => danger('Close connection', `Close the connection of ${c.name}? (AMQP closes channels only from the client side)`, async () => {
        await del(`/connections/${enc(c.connection_details.name)}`, { 'X-Reason': 'Closed via management plugin' });
        say('Connection closed.'); await refresh();
      }) },
    ], list, { label: 'Channels', empty: 'No channels.' }));
  }
  await refresh();
  return refresh;
}
