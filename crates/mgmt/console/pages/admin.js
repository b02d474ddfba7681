// Admin: users (tags, permissions per vhost), virtual hosts (limits),
// policies. RabbitMQ's API shapes: PUT /users/{u} {password, tags},
// PUT /permissions/{vh}/{u} {configure, write, read}, PUT /vhosts/{vh}
// {description, tags, default_queue_type}, /vhost-limits, /policies.

import { del, enc, get, put } from '../api.js';
import { area, choice, danger, field, fmt, form, h, link, parseArgs, say, table } from '../ui.js';

const TAG_SHORTCUTS = ['administrator', 'monitoring', 'policymaker', 'management', 'impersonator'];
const tagList = (t) => (Array.isArray(t) ? t : String(t || '').split(',').filter(Boolean));

export async function renderUsers(view) {
  const box = h('div');
  const tags = h('input', { name: 'tags', id: 'user-tags', placeholder: 'management' });
  view.append(h('h1', 'Users'), box, h('h2', 'Add a user'),
    form('Add a user', [
      field('Username', 'name', { required: true, autocomplete: 'off' }),
      field('Password', 'password', { type: 'password', autocomplete: 'new-password' }),
      h('label', 'Tags (comma-separated)', tags),
      h('div', { role: 'group', 'aria-label': 'Tag shortcuts' }, 'Set: ', TAG_SHORTCUTS.map((t) => h('button', { type: 'button', onclick: () => {
        const cur = tagList(tags.value); if (!cur.includes(t)) cur.push(t); tags.value = cur.join(',');
      } }, t))),
    ], async (v, f) => {
      const body = { tags: v.tags };
      if (v.password) body.password = v.password; else body.password_hash = '';
      await put(`/users/${enc(v.name)}`, body);
      say(`User ${v.name} added.`); f.reset(); await refresh();
    }, 'Add user'));
  async function refresh() {
    const [users, perms] = await Promise.all([get('/users'), get('/permissions').catch(() => [])]);
    box.replaceChildren(table([
      { label: 'Name', get: (u) => link(`#/admin/user/${enc(u.name)}`, u.name), key: 'name' },
      { label: 'Tags', get: (u) => tagList(u.tags).join(', ') },
      { label: 'Can access virtual hosts', get: (u) => perms.filter((p) => p.user === u.name).map((p) => p.vhost).join(', ') || 'No access' },
      { label: 'Has password', get: (u) => (u.password_hash ? '●' : '○') },
    ], users, { label: 'Users' }));
  }
  await refresh();
  return refresh;
}

export async function renderUser(view, ctx, name) {
  const u = await get(`/users/${enc(name)}`);
  const vhosts = (await get('/vhosts?columns=name')).map((v) => v.name);
  const perms = h('div');
  view.append(h('h1', `User ${name}`), h('p', `Tags: ${tagList(u.tags).join(', ') || '(none)'}`),
    h('h2', 'Permissions'), perms,
    form('Set permission', [
      choice('Virtual host', 'vhost', vhosts, ctx.vhost || vhosts[0]),
      field('Configure regexp', 'configure', { value: '.*' }), field('Write regexp', 'write', { value: '.*' }), field('Read regexp', 'read', { value: '.*' }),
    ], async (v) => {
      await put(`/permissions/${enc(v.vhost)}/${enc(name)}`, { configure: v.configure, write: v.write, read: v.read });
      say(`Permissions of ${name} on ${v.vhost} set.`); await refresh();
    }, 'Set permission'),
    h('h2', 'Update this user'),
    form('Update this user', [
      field('New password (empty: keep)', 'password', { type: 'password', autocomplete: 'new-password' }),
      field('Tags (comma-separated)', 'tags', { value: tagList(u.tags).join(',') }),
    ], async (v) => {
      const body = { tags: v.tags };
      if (v.password) body.password = v.password; else if (u.password_hash !== undefined) { body.password_hash = u.password_hash; if (u.hashing_algorithm) body.hashing_algorithm = u.hashing_algorithm; }
      await put(`/users/${enc(name)}`, body); say(`User ${name} updated.`);
    }, 'Update user'),
    h('h2', 'Delete this user'), h('div', danger('Delete', `Delete user ${name}?`, async () => {
      await del(`/users/${enc(name)}`); say(`User ${name} deleted.`); location.hash = '#/admin/users';
    })));
  async function refresh() {
    const list = await get(`/users/${enc(name)}/permissions`);
    perms.replaceChildren(table([
      { label: 'Virtual host', get: (p) => p.vhost }, { label: 'Configure', get: (p) => p.configure },
      { label: 'Write', get: (p) => p.write }, { label: 'Read', get: (p) => p.read },
      { label: '', get: (p) => danger('Clear', `Clear the permissions of ${name} on ${p.vhost}?`, async () => { await del(`/permissions/${enc(p.vhost)}/${enc(name)}`); await refresh(); }) },
    ], list, { label: 'Permissions', empty: 'No permissions.' }));
  }
  await refresh();
  return refresh;
}

export async function renderVhosts(view, ctx) {
  const box = h('div'), limits = h('div');
  view.append(h('h1', 'Virtual hosts'), box, h('h2', 'Add a new virtual host'),
    form('Add a new virtual host', [
      field('Name', 'name', { required: true }), field('Description', 'description'), field('Tags (comma-separated)', 'tags'),
      choice('Default queue type', 'default_queue_type', ['classic', 'quorum', 'stream'], 'classic'),
    ], async (v, f) => {
      await put(`/vhosts/${enc(v.name)}`, { description: v.description, tags: v.tags, default_queue_type: v.default_queue_type });
      say(`Virtual host ${v.name} added.`); f.reset(); await refresh(); await ctx.reloadVhosts();
    }, 'Add virtual host'),
    h('h2', 'Limits'), limits);
  async function refresh() {
    const [vs, ls] = await Promise.all([get('/vhosts'), get('/vhost-limits').catch(() => [])]);
    box.replaceChildren(table([
      { label: 'Name', get: (v) => v.name, key: 'name' },
      { label: 'Description', get: (v) => v.description || '' },
      { label: 'Tags', get: (v) => tagList(v.tags).join(', ') },
      { label: 'Default queue type', get: (v) => v.default_queue_type || '' },
      { label: 'Messages', get: (v) => fmt(v.messages ?? ''), num: true },
      { label: '', get: (v) => (v.name === '/' ? '' : danger('Delete', `Delete virtual host ${v.name} and everything in it?`, async () => {
        await del(`/vhosts/${enc(v.name)}`); say(`Virtual host ${v.name} deleted.`); await refresh(); await ctx.reloadVhosts();
      })) },
    ], vs, { label: 'Virtual hosts' }));
    limits.replaceChildren(table([
      { label: 'Virtual host', get: (l) => l.vhost },
      { label: 'Limits', get: (l) => Object.entries(l.value || {}).map(([k, n]) => `${k}=${n}`).join(', ') },
      { label: '', get: (l) => Object.keys(l.value || {}).map((k) => danger(`Clear ${k}`, `Clear ${k} of ${l.vhost}?`, async () => { await del(`/vhost-limits/${enc(l.vhost)}/${k}`); await refresh(); })) },
    ], ls, { label: 'Virtual host limits', empty: 'No limits.' }),
    form('Set a virtual host limit', [
      choice('Virtual host', 'vhost', vs.map((v) => v.name), ctx.vhost || '/'),
      choice('Limit', 'limit', ['max-connections', 'max-queues'], 'max-connections'),
      field('Value', 'value', { type: 'number', required: true }),
    ], async (v) => { await put(`/vhost-limits/${enc(v.vhost)}/${v.limit}`, { value: Number(v.value) }); say('Limit set.'); await refresh(); }, 'Set limit'));
  }
  await refresh();
  return refresh;
}

export async function renderPolicies(view, ctx) {
  const box = h('div');
  const vhosts = (await get('/vhosts?columns=name')).map((v) => v.name);
  view.append(h('h1', 'Policies'), box, h('h2', 'Add / update a policy'),
    form('Add or update a policy', [
      choice('Virtual host', 'vhost', vhosts, ctx.vhost || vhosts[0]), field('Name', 'name', { required: true }),
      field('Pattern', 'pattern', { required: true, placeholder: '^amq\\.' }),
      choice('Apply to', 'apply-to', [['all', 'Exchanges and queues'], ['queues', 'Queues'], ['exchanges', 'Exchanges'], ['classic_queues', 'Classic queues'], ['quorum_queues', 'Quorum queues'], ['streams', 'Streams']], 'all'),
      field('Priority', 'priority', { type: 'number', value: 0 }),
      area('Definition (key=value lines or JSON)', 'definition', { required: true, placeholder: 'max-length=1000' }),
    ], async (v, f) => {
      await put(`/policies/${enc(v.vhost)}/${enc(v.name)}`, { pattern: v.pattern, 'apply-to': v['apply-to'], priority: Number(v.priority || 0), definition: parseArgs(v.definition) });
      say(`Policy ${v.name} set.`); f.name.value = ''; await refresh();
    }, 'Add / update policy'));
  async function refresh() {
    const list = await get(ctx.vhost ? `/policies/${enc(ctx.vhost)}` : '/policies');
    box.replaceChildren(table([
      { label: 'Virtual host', get: (p) => p.vhost, key: 'vhost' }, { label: 'Name', get: (p) => p.name, key: 'name' },
      { label: 'Pattern', get: (p) => p.pattern }, { label: 'Apply to', get: (p) => p['apply-to'] },
      { label: 'Definition', get: (p) => JSON.stringify(p.definition) }, { label: 'Priority', get: (p) => String(p.priority), num: true, key: 'priority' },
      { label: '', get: (p) => danger('Delete', `Delete policy ${p.name}?`, async () => { await del(`/policies/${enc(p.vhost)}/${enc(p.name)}`); await refresh(); }) },
    ], list, { label: 'Policies', empty: 'No policies.' }));
  }
  await refresh();
  return refresh;
}
