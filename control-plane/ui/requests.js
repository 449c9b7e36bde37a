// The Requests page: the project's request log (newest first, filtered, in cursor pages) and a
// drawer per request with what its record holds: resolution, attempts and why each failed,
// timings, tokens by kind, cost, and the headers that matter.

import { h, api, P, header, errorNotice, busy, field, modalDrawer } from './app.js';
import { count, money, ms } from './usage.js';

const TIMES = [['1h', 'Last hour', 1], ['24h', 'Last 24 hours', 24], ['7d', 'Last 7 days', 168], ['30d', 'Last 30 days', 720], ['all', 'Any time', 0]];
const STATUSES = [['', 'Any status'], ['2xx', '2xx (served)'], ['error', 'Failed (4xx and 5xx)'], ['4xx', '4xx'], ['5xx', '5xx']];

const filters = { status: '', model: '', key: '', user: '', tag: '', time: '24h' };

const statusPill = (s) => h('span', { class: `pill ${s < 400 ? 'ok' : s < 500 ? 'warn' : 'bad'}` }, String(s));

/** A record's time, short: "Nov 30, 22:44:21". */
const when = (iso) => new Date(iso).toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit' });

const tokensOf = (u) => (u ? u.input + u.output + u.cache_read + u.cache_write + u.cache_write_1h : null);

function logQuery(cursor) {
  const q = new URLSearchParams({ limit: '50' });
  for (const k of ['status', 'model', 'key', 'user', 'tag']) if (filters[k]) q.set(k, filters[k]);
  const hours = (TIMES.find(([id]) => id === filters.time) || TIMES[1])[2];
  if (hours) q.set('from', new Date(Date.now() - hours * 3600e3).toISOString());
  if (cursor) q.set('cursor', cursor);
  return q.toString();
}

/** `arg`, from a link (`#/requests/model%3Dgpt-4o`), replaces the filters. */
export async function requestsPage(arg) {
  if (arg) {
    const q = new URLSearchParams(arg);
    Object.assign(filters, { status: '', model: '', key: '', user: '', tag: '', time: '24h' });
    for (const k of Object.keys(filters)) if (q.has(k)) filters[k] = q.get(k);
  }
  const keys = (await api('GET', `${P()}/keys`)).data;
  const keyName = (id) => keys.find((k) => k.id === id)?.name || `${id.slice(0, 8)}…`;
  const status = h('select', {}, STATUSES.map(([v, l]) => h('option', { value: v, selected: filters.status === v }, l)));
  const model = h('input', { value: filters.model, placeholder: 'upstream model, e.g. gpt-4o' });
  const key = h('select', {}, h('option', { value: '' }, 'Any key'), keys.map((k) => h('option', { value: k.id, selected: filters.key === k.id }, k.name)));
  const user = h('input', { value: filters.user, placeholder: 'end user id' });
  const tag = h('input', { value: filters.tag, placeholder: 'NAME:VALUE, e.g. team:search' });
  const time = h('select', {}, TIMES.map(([v, l]) => h('option', { value: v, selected: filters.time === v }, l)));
  const apply = h('button', { class: 'primary', type: 'submit' }, 'Apply filters');
  const form = h('form', {
    class: 'card filters', 'aria-label': 'Filters',
    onsubmit: (ev) => {
      ev.preventDefault();
      Object.assign(filters, { status: status.value, model: model.value.trim(), key: key.value, user: user.value.trim(), tag: tag.value.trim(), time: time.value });
      busy(apply, 'Loading…', () => reload());
    },
  },
  h('div', { class: 'grid3' }, field('Status', status), field('Model', model), field('Key', key), field('End user', user), field('Tag', tag), field('Time', time)),
  h('div', { class: 'row end' }, apply));

  const out = h('div');
  const body = h('tbody');
  const table = h('div', { class: 'table' }, h('table', { class: 'log', 'aria-label': 'Request log' },
    h('thead', {}, h('tr', {}, ['Time', 'Status', 'Model', 'Provider', 'Key', 'End user and tags', 'Tokens', 'Cost', 'Latency'].map((c, i) => h('th', { class: i >= 6 ? 'num' : '' }, c)))),
    body));
  const more = h('button', { hidden: true }, 'Load more');
  const empty = h('div', { class: 'card empty', hidden: true });
  let next = null;

  const row = (r) => h('tr', {
    class: 'clickable', tabindex: '0', 'aria-label': `Request ${r.id}`,
    onclick: () => requestDrawer(r.id, keyName),
    onkeydown: (ev) => { if (ev.key === 'Enter') requestDrawer(r.id, keyName); },
  },
  h('td', { class: 'muted nowrap', title: r.time }, when(r.time)),
  h('td', {}, statusPill(r.status), r.error ? h('div', { class: 'muted small mono' }, r.error) : null),
  h('td', {}, r.requested_model, r.model && r.model !== r.requested_model ? h('div', { class: 'muted small' }, `→ ${r.model}`) : null),
  h('td', { class: 'mono nowrap' }, r.provider || '—'),
  h('td', { class: 'nowrap' }, keyName(r.key)),
  h('td', {}, r.user || h('span', { class: 'muted' }, '—'),
    Object.keys(r.tags || {}).length ? h('div', { class: 'muted small' }, Object.entries(r.tags).map(([k, v]) => `${k}=${v}`).join(', ')) : null),
  h('td', { class: 'num' }, r.usage ? count(tokensOf(r.usage)) : '—', r.usage_source === 'estimated' ? h('div', { class: 'muted small' }, 'estimated') : null),
  h('td', { class: 'num' }, r.usage ? money(r.cost_micros, r.currency) : '—'),
  h('td', { class: 'num nowrap' }, ms(r.latency_us / 1000)));

  async function page(cursor) {
    const r = await api('GET', `${P()}/requests?${logQuery(cursor)}`);
    body.append(...r.data.map(row));
    next = r.next_cursor;
    more.hidden = !next;
    return r.data.length;
  }

  async function reload() {
    out.replaceChildren();
    body.replaceChildren();
    next = null;
    try {
      const n = await page(null);
      const filtered = ['status', 'model', 'key', 'user', 'tag'].some((k) => filters[k]);
      table.hidden = n === 0;
      empty.hidden = n > 0;
      empty.replaceChildren(
        h('h2', {}, filtered ? 'No request matches these filters' : 'No requests yet'),
        h('p', { class: 'muted' }, filtered
          ? 'Clear a filter or choose a longer time.'
          : 'Requests sent through the gateway with this project\'s keys are listed here within seconds, newest first. Try the Playground.'));
    } catch (e) {
      table.hidden = true;
      empty.hidden = true;
      more.hidden = true;
      out.replaceChildren(errorNotice(e, 'Could not load the request log'));
    }
  }
  more.addEventListener('click', () => busy(more, 'Loading…', async () => {
    try { await page(next); } catch (e) { out.replaceChildren(errorNotice(e, 'Could not load more')); }
  }));
  await reload();
  return h('div', {},
    header('Requests', 'Every request of this project, newest first: how it resolved, what it used and cost, and why it failed.'),
    form, out, empty, table,
    h('div', { class: 'row end', style: 'margin-top:1rem' }, more));
}

// ---------------------------------------------------------------- the detail drawer

function kv(pairs) {
  return h('dl', { class: 'kv' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v === null || v === undefined || v === '' ? h('span', { class: 'muted' }, '—') : v)]));
}

/** The response headers the gateway sent (resolution) and the request headers it read, as the record keeps them. */
function headersOf(r) {
  const out = [
    ['x-to11-request-id', r.id],
    ['x-to11-layer', r.layer],
    ['x-to11-function', r.function],
    ['x-to11-route', r.route],
    ['x-to11-provider', r.provider],
    ['x-to11-upstream-model', r.model],
    ['x-to11-attempts', String(r.attempts)],
    ['x-to11-user', r.user],
    ['x-to11-tags', Object.keys(r.tags || {}).length ? JSON.stringify(r.tags) : null],
  ];
  return out.filter(([, v]) => v !== null && v !== undefined);
}

export async function requestDrawer(id, keyName = (k) => k) {
  const content = h('div', { class: 'body' }, h('p', { class: 'muted' }, 'Loading…'));
  const { drawer, close, open } = modalDrawer('req-title',
    h('header', {}, h('h2', { id: 'req-title', style: 'margin:0' }, 'Request'), h('button', { class: 'link', 'aria-label': 'Close', onclick: () => close() }, '✕')),
    content);
  open();
  drawer.querySelector('button').focus();
  let r;
  try {
    r = await api('GET', `${P()}/requests/${encodeURIComponent(id)}`);
  } catch (e) {
    content.replaceChildren(errorNotice(e, 'Could not load this request'));
    return;
  }
  const u = r.usage;
  const attempts = [
    ...r.failed.map((f, i) => h('tr', {},
      h('td', {}, String(i + 1)), h('td', { class: 'mono' }, `${f.provider}/${f.model}`),
      h('td', {}, f.status ? statusPill(f.status) : h('span', { class: 'pill bad' }, 'no answer')),
      h('td', {}, f.error || (f.status ? `the upstream answered ${f.status}` : 'no answer'),
        i + 1 < r.attempts ? h('div', { class: 'muted small' }, 'the next target was tried') : null))),
  ];
  if (r.attempts > r.failed.length) {
    attempts.push(h('tr', {},
      h('td', {}, String(r.attempts)), h('td', { class: 'mono' }, r.provider ? `${r.provider}/${r.model || r.requested_model}` : '—'),
      h('td', {}, statusPill(r.status)), h('td', {}, r.status < 400 ? 'answered' : r.error || 'failed')));
  }
  content.replaceChildren(
    h('div', { class: 'row', style: 'margin-bottom:1rem' }, statusPill(r.status), r.error ? h('span', { class: 'mono' }, r.error) : null,
      r.cancelled ? h('span', { class: 'pill warn' }, 'client went away') : null, h('span', { class: 'grow' }),
      h('span', { class: 'muted', title: r.time }, new Date(r.time).toLocaleString())),
    h('section', { 'aria-label': 'Resolution' }, h('h3', {}, 'Resolution'), kv([
      ['Requested', h('span', { class: 'mono' }, r.requested_model)], ['API', `${r.surface}${r.stream ? ' (streamed)' : ''}`],
      ['Layer', r.layer], ['Function', r.function], ['Route', r.route],
      ['Provider', r.provider ? `${r.provider}${r.provider_kind ? ` (${r.provider_kind})` : ''}` : null], ['Upstream model', r.model],
      ['Key', keyName(r.key)], ['End user', r.user],
      ['Tags', Object.keys(r.tags || {}).length ? Object.entries(r.tags).map(([k, v]) => `${k}=${v}`).join(', ') : null]])),
    h('section', { 'aria-label': 'Attempts' }, h('h3', {}, `Attempts (${r.attempts})`),
      attempts.length ? h('table', { class: 'compact', 'aria-label': 'Attempts' },
        h('thead', {}, h('tr', {}, h('th', {}, '#'), h('th', {}, 'Target'), h('th', {}, 'Status'), h('th', {}, 'Outcome'))),
        h('tbody', {}, attempts))
        : h('p', { class: 'muted' }, 'No upstream was tried: the gateway answered itself.')),
    h('section', { 'aria-label': 'Timings' }, h('h3', {}, 'Timings'), kv([
      ['Latency', ms(r.latency_us / 1000)],
      ['Time to first byte', r.ttfb_us === null ? null : ms(r.ttfb_us / 1000)]])),
    h('section', { 'aria-label': 'Tokens and cost' }, h('h3', {}, 'Tokens and cost'), u ? kv([
      ['Input', count(u.input)], ['Output', count(u.output)], ['Cache read', count(u.cache_read)],
      ['Cache write', count(u.cache_write + u.cache_write_1h)], ['Reasoning (of output)', count(u.reasoning)],
      ['Usage', r.usage_source === 'estimated' ? 'estimated by the gateway' : 'reported by the provider'],
      ['Cost', r.cost_micros === null ? 'no price for this model' : money(r.cost_micros, r.currency)]])
      : h('p', { class: 'muted' }, 'No usage: no upstream answer was metered.')),
    h('section', { 'aria-label': 'Headers' }, h('h3', {}, 'Headers that matter'),
      h('p', { class: 'muted small' }, 'As the record keeps them: the resolution the gateway answered with, and the end user and tags the client sent.'),
      h('dl', { class: 'kv headers' }, headersOf(r).map(([k, v]) => [h('dt', { class: 'mono' }, k), h('dd', { class: 'mono' }, v)]))));
}
