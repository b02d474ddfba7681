// Queues: one server-side page at a time (page, page_size, name filter,
// regex, sort) so 10,000 queues cost one page of rows; "add a new queue".

import { enc, get, put } from '../api.js';
import { area, check, choice, features, field, fmt, form, h, link, pager, parseArgs, rate, say, table } from '../ui.js';

/** Rows per page offered (the API allows up to 500). */
const PAGE_SIZES = [20, 50, 100, 500];
const COLUMNS = 'name,vhost,type,durable,auto_delete,exclusive,arguments,policy,state,messages_ready,messages_unacknowledged,messages,consumers,message_stats.publish_details.rate,message_stats.deliver_get_details.rate,message_stats.ack_details.rate';

export async function render(view, ctx) {
  const st = ctx.queueList || (ctx.queueList = { page: 1, page_size: 20, name: '', regex: false, sort: 'name', reverse: false });
  const filter = h('input', { id: 'queue-filter', type: 'search', value: st.name, 'aria-label': 'Filter queues by name' });
  const regex = h('input', { type: 'checkbox', id: 'queue-regex', checked: st.regex || null });
  const size = h('select', { 'aria-label': 'Queues per page' }, PAGE_SIZES.map((n) => h('option', { value: n, selected: n === st.page_size || null }, `${n} per page`)));
  const box = h('div', { id: 'queue-list' });
  let debounce;
  filter.addEventListener('input', () => { clearTimeout(debounce); debounce = setTimeout(() => { st.name = filter.value; st.page = 1; refresh(); }, 250); });
  regex.addEventListener('change', () => { st.regex = regex.checked; st.page = 1; refresh(); });
  size.addEventListener('change', () => { st.page_size = Number(size.value); st.page = 1; refresh(); });
  const vhosts = (await get('/vhosts?columns=name')).map((v) => v.name);
  view.append(h('h1', 'Queues'),
    h('div.pager', h('label', 'Filter ', filter), h('label.check', regex, 'Regex'), size), box,
    h('h2', 'Add a new queue'),
    form('Add a new queue', [
      choice('Virtual host', 'vhost', vhosts, ctx.vhost || vhosts[0]),
      choice('Type', 'type', [['classic', 'Classic'], ['quorum', 'Quorum'], ['stream', 'Stream']], 'classic'),
      field('Name', 'name', { required: true }),
      check('Durable', 'durable', true), check('Auto delete', 'auto_delete'),
      area('Arguments (key=value lines or JSON)', 'arguments', { placeholder: 'x-message-ttl=60000\nx-max-length=1000' }),
    ], async (v, f) => {
      const args = parseArgs(v.arguments);
      if (v.type !== 'classic') args['x-queue-type'] = v.type;
      await put(`/queues/${enc(v.vhost)}/${enc(v.name)}`, { durable: v.durable, auto_delete: v.auto_delete, arguments: args });
      say(`Queue ${v.name} created.`); f.name.value = ''; await refresh();
    }, 'Add queue'));

  async function refresh() {
    const q = new URLSearchParams({ page: st.page, page_size: st.page_size, name: st.name, use_regex: st.regex, pagination: true, sort: st.sort, sort_reverse: st.reverse, columns: COLUMNS });
    let env;
    try {
      env = await get(`${ctx.vhost ? `/queues/${enc(ctx.vhost)}` : '/queues'}?${q}`);
    } catch (e) {
      // A page past the end after deletions: back to the first one.
      if (st.page > 1 && /page_out_of_range|out of range/i.test(e.message)) { st.page = 1; return refresh(); }
      throw e;
    }
    box.replaceChildren(table([
      { label: 'Virtual host', get: (x) => x.vhost, key: 'vhost' },
      { label: 'Name', get: (x) => link(`#/queue/${enc(x.vhost)}/${enc(x.name)}`, x.name), key: 'name' },
      { label: 'Type', get: (x) => x.type || 'classic' },
      { label: 'Features', get: features },
      { label: 'State', get: (x) => x.state || '' },
      { label: 'Ready', get: (x) => fmt(x.messages_ready), num: true, key: 'messages_ready' },
      { label: 'Unacked', get: (x) => fmt(x.messages_unacknowledged), num: true, key: 'messages_unacknowledged' },
      { label: 'Total', get: (x) => fmt(x.messages), num: true, key: 'messages' },
      { label: 'Consumers', get: (x) => fmt(x.consumers), num: true, key: 'consumers' },
      { label: 'Incoming', get: (x) => rate(x.message_stats, 'publish'), num: true },
      { label: 'Deliver / get', get: (x) => rate(x.message_stats, 'deliver_get'), num: true },
      { label: 'Ack', get: (x) => rate(x.message_stats, 'ack'), num: true },
    ], env.items, {
      label: 'Queues', empty: st.name ? 'No queue matches the filter.' : 'No queues.',
      sort: { key: st.sort, reverse: st.reverse }, onSort: (k, r) => { st.sort = k; st.reverse = r; refresh(); },
    }), pager(env, (p) => { st.page = p; refresh(); }));
  }
  await refresh();
  return refresh;
}
