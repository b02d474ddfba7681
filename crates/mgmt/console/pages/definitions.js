// Definitions: export (all or one vhost, downloaded as a file) and import
// of a RabbitMQ definitions.json (uploaded, sent to POST /api/definitions).

import { enc, get, post } from '../api.js';
import { choice, field, form, h, say } from '../ui.js';

export async function render(view) {
  const vhosts = (await get('/vhosts?columns=name')).map((v) => v.name);
  const scope = [['', 'All virtual hosts'], ...vhosts.map((v) => [v, v])];
  const result = h('p', { id: 'import-result', role: 'status' });
  const file = h('input', { type: 'file', name: 'file', accept: '.json,application/json', required: true, id: 'import-file' });
  view.append(h('h1', 'Definitions'),
    h('h2', 'Export definitions'),
    form('Export definitions', [choice('Virtual host', 'vhost', scope, ''), field('File name', 'filename', { value: 'definitions.json' })], async (v) => {
      const defs = await get(v.vhost ? `/definitions/${enc(v.vhost)}` : '/definitions');
      const a = h('a', { href: URL.createObjectURL(new Blob([JSON.stringify(defs, null, 2)], { type: 'application/json' })), download: v.filename || 'definitions.json' });
      document.body.append(a); a.click(); a.remove();
      say('Definitions exported.');
    }, 'Download definitions'),
    h('h2', 'Import definitions'),
    form('Import definitions', [h('label', 'Definitions file (RabbitMQ definitions.json)', file), choice('Into virtual host', 'vhost', scope, '')], async (v) => {
      result.textContent = '';
      const f = file.files[0];
      if (!f) throw new Error('Choose a file first.');
      const text = await f.text();
      let body;
      try { body = JSON.parse(text); } catch (e) { throw new Error(`${f.name} is not JSON: ${e.message}`); }
      await post(v.vhost ? `/definitions/${enc(v.vhost)}` : '/definitions', body);
      result.className = 'ok';
      result.textContent = `Imported ${f.name}.`;
    }, 'Upload definitions'), result);
}
