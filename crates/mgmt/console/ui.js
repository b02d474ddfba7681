// Small DOM helpers: element builder, status messages, sortable tables,
// a pager for server-side pages, forms that show the API's error text.

/** h('tag.class', {attrs}, ...children) */
export function h(spec, attrs, ...kids) {
  const [tag, ...cls] = spec.split('.');
  const el = document.createElement(tag || 'div');
  if (cls.length) el.className = cls.join(' ');
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) { kids.unshift(attrs); attrs = null; }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids.flat(Infinity)) {
    if (k === null || k === undefined || k === false) continue;
    el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  }
  return el;
}

/** A transient message in the live region; errors stay longer. */
export function say(text, isError = false) {
  const p = h('p' + (isError ? '.error' : ''), { role: isError ? 'alert' : null }, text);
  document.getElementById('status').append(p);
  setTimeout(() => p.remove(), isError ? 8000 : 3000);
}

export const fmt = (n) => (n === undefined || n === null ? '' : typeof n === 'number' ? (Number.isInteger(n) ? n.toLocaleString('en') : n.toFixed(1)) : String(n));
export const rate = (o, k) => { const d = o && o[k + '_details']; return d ? d.rate.toFixed(1) + '/s' : ''; };
export const vhostLabel = (v) => v;
export function link(hash, text) { return h('a', { href: hash }, text); }

/**
 * A table of `rows`; `cols` = [{label, get(row) → text|Node, num?, key?}].
 * Columns with a `key` sort: locally unless `onSort(key, reverse)` is given
 * (server-side sorting for paged lists).
 */
export function table(cols, rows, opts = {}) {
  const state = opts.sort || { key: null, reverse: false };
  const thead = h('thead', h('tr', cols.map((c) => {
    const th = h('th' + (c.num ? '.num' : ''), { scope: 'col' });
    if (c.key) {
      const mark = state.key === c.key ? (state.reverse ? ' ▼' : ' ▲') : '';
      th.setAttribute('aria-sort', state.key === c.key ? (state.reverse ? 'descending' : 'ascending') : 'none');
      th.append(h('button.sort', { type: 'button', onclick: () => {
        const reverse = state.key === c.key ? !state.reverse : false;
        if (opts.onSort) opts.onSort(c.key, reverse);
        else { state.key = c.key; state.reverse = reverse; t.replaceWith(table(cols, rows, { ...opts, sort: state })); }
      } }, c.label + mark));
    } else th.append(c.label);
    return th;
  })));
  let list = rows;
  if (state.key && !opts.onSort) {
    const c = cols.find((x) => x.key === state.key);
    const val = (r) => (c.sortVal ? c.sortVal(r) : r[c.key]);
    list = [...rows].sort((a, b) => { const x = val(a), y = val(b); return (x > y) - (x < y); });
    if (state.reverse) list.reverse();
  }
  const tbody = h('tbody', list.length ? list.map((r) => h('tr', cols.map((c) => h('td' + (c.num ? '.num' : ''), c.get(r))))) :
    h('tr', h('td', { colspan: cols.length }, opts.empty || 'Nothing here.')));
  const t = h('div.scroll', h('table', { 'aria-label': opts.label || null }, thead, tbody));
  return t;
}

/** Pager for a RabbitMQ page envelope; `go(page)` loads another page. */
export function pager(env, go) {
  return h('div.pager', { role: 'navigation', 'aria-label': 'Pages' },
    h('button', { type: 'button', disabled: env.page <= 1 || null, onclick: () => go(env.page - 1) }, '‹ Previous'),
    h('span', `Page ${env.page} of ${Math.max(env.page_count, 1)} · ${fmt(env.filtered_count)} shown of ${fmt(env.total_count)}`),
    h('button', { type: 'button', disabled: env.page >= env.page_count || null, onclick: () => go(env.page + 1) }, 'Next ›'));
}

/** Form field helpers. */
export function field(label, name, attrs = {}) {
  return h('label', label, h('input', { name, ...attrs }));
}
export function check(label, name, checked = false) {
  return h('label.check', h('input', { type: 'checkbox', name, checked: checked || null }), label);
}
export function choice(label, name, options, value) {
  return h('label', label, h('select', { name }, options.map((o) => {
    const [v, t] = Array.isArray(o) ? o : [o, o];
    return h('option', { value: v, selected: v === value || null }, t);
  })));
}
export function area(label, name, attrs = {}) {
  return h('label', label, h('textarea', { name, ...attrs }));
}

/**
 * A form whose submit runs `fn(values, form)`; an ApiError's text is shown
 * in the form (role=alert) and nothing else happens.
 */
export function form(title, fields, fn, submit = 'Add') {
  const err = h('p.error', { role: 'alert' });
  const f = h('form.box', { 'aria-label': title }, fields, h('div', h('button', { type: 'submit' }, submit)), err);
  f.addEventListener('submit', async (e) => {
    e.preventDefault();
    err.textContent = '';
    const v = {};
    for (const el of f.elements) {
      if (!el.name) continue;
      v[el.name] = el.type === 'checkbox' ? el.checked : el.value;
    }
    try { await fn(v, f); } catch (x) { err.textContent = x.message; }
  });
  return f;
}

/** Parses an arguments textarea: JSON object, or `key=value` lines. */
export function parseArgs(text) {
  const t = (text || '').trim();
  if (!t) return {};
  if (t.startsWith('{')) {
    try { return JSON.parse(t); } catch (e) { throw new Error('Arguments: ' + e.message); }
  }
  const out = {};
  for (const line of t.split('\n')) {
    const m = line.match(/^\s*([^=]+?)\s*=\s*(.*?)\s*$/);
    if (!m) throw new Error(`Arguments: expected key=value, got "${line}"`);
    const v = m[2];
    out[m[1]] = /^-?\d+$/.test(v) ? Number(v) : v === 'true' ? true : v === 'false' ? false : v;
  }
  return out;
}

/** A button that asks before doing something destructive. */
export function danger(label, question, fn) {
  return h('button.danger', { type: 'button', onclick: async () => {
    if (!confirm(question)) return;
    try { await fn(); } catch (e) { say(e.message, true); }
  } }, label);
}

export function features(o) {
  return [o.durable ? h('span.badge', { title: 'durable' }, 'D') : null,
    o.auto_delete ? h('span.badge', { title: 'auto-delete' }, 'AD') : null,
    o.exclusive ? h('span.badge', { title: 'exclusive' }, 'Excl') : null,
    o.internal ? h('span.badge', { title: 'internal' }, 'I') : null,
    o.arguments && Object.keys(o.arguments).length ? h('span.badge', { title: JSON.stringify(o.arguments) }, 'Args') : null,
    o.policy ? h('span.badge', { title: 'policy' }, o.policy) : null];
}
