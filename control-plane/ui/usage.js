// The Usage page (a project's requests, tokens, cost, errors and latency over time, with
// breakdowns), the operator's view across projects, and the usage figures other pages show (each
// key's spend this month, each provider's error rate today). Everything here reads the usage API's
// aggregated series and groups, never the raw request log.

import { h, api, P, state, header, errorNotice } from './app.js';
import { loadCharts, timeChart, forgetCharts, COLOURS } from './charts.js';

// ---------------------------------------------------------------- formatting

const numberFmt = new Intl.NumberFormat();

/** A count with thousands separators. */
export const count = (n) => numberFmt.format(Number(n) || 0);

/** Micro-units of currency as money: cents for amounts from 1, up to six decimals below. */
export function money(micros, currency = 'USD') {
  if (micros === null || micros === undefined) return '—';
  const v = Number(micros) / 1e6;
  const small = v !== 0 && Math.abs(v) < 1;
  return new Intl.NumberFormat(undefined, {
    style: 'currency', currency, minimumFractionDigits: 2, maximumFractionDigits: small ? 6 : 2,
  }).format(v);
}

/** Milliseconds with separators (one decimal below 10). */
export const ms = (v) => {
  if (v === null || v === undefined) return '—';
  return v < 10 && !Number.isInteger(v) ? `${v.toFixed(1)} ms` : `${count(Math.round(v))} ms`;
};

/** A share (0..1) as a percentage. */
export const pct = (r) => (r === null || r === undefined ? '—' : `${(r * 100).toFixed(r > 0 && r < 0.001 ? 3 : 1)}%`);

/** A big count in short (12.3k, 4.5M) for axes. */
const compact = new Intl.NumberFormat(undefined, { notation: 'compact', maximumFractionDigits: 1 });

// ---------------------------------------------------------------- ranges

const HOUR = 3600;
const DAY = 86400;
export const RANGES = [['24h', 'Last 24 hours', 1], ['7d', 'Last 7 days', 7], ['30d', 'Last 30 days', 30], ['90d', 'Last 90 days', 90], ['custom', 'Custom…', 0]];

/** `{from, to}` (Dates) of a range choice; hourly ranges end at the next whole hour. */
export function span(choice, custom = {}) {
  if (choice === 'custom') {
    const from = new Date(`${custom.from}T00:00:00Z`);
    const to = new Date(new Date(`${custom.to}T00:00:00Z`).getTime() + DAY * 1000);
    return { from, to };
  }
  const days = (RANGES.find(([id]) => id === choice) || RANGES[0])[2];
  const to = new Date(Math.ceil(Date.now() / (HOUR * 1000)) * HOUR * 1000);
  return { from: new Date(to.getTime() - days * DAY * 1000), to };
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, v instanceof Date ? v.toISOString() : v);
  return q.toString();
}

const startOfUtcDay = () => { const d = new Date(); d.setUTCHours(0, 0, 0, 0); return d; };
const startOfUtcMonth = () => { const d = startOfUtcDay(); d.setUTCDate(1); return d; };

/** A report's series as one value per bucket from `from` to `to` (buckets without requests included). */
export function buckets(report) {
  const step = report.interval === 'day' ? DAY : report.interval === 'minute' ? 60 : HOUR;
  const first = Math.floor(Date.parse(report.from) / 1000 / step) * step;
  const end = Date.parse(report.to) / 1000;
  const n = Math.max(0, Math.ceil((end - first) / step));
  const xs = new Array(n);
  for (let i = 0; i < n; i++) xs[i] = first + i * step;
  const at = new Array(n).fill(null);
  for (const p of report.series) {
    const i = Math.round((Date.parse(p.time) / 1000 - first) / step);
    if (i >= 0 && i < n) at[i] = p;
  }
  const col = (f, empty) => at.map((p) => (p ? f(p) : empty));
  return {
    xs,
    requests: col((p) => p.requests, 0),
    errors: col((p) => p.errors, 0),
    input: col((p) => p.tokens.input, 0),
    output: col((p) => p.tokens.output, 0),
    cached: col((p) => p.tokens.cache_read + p.tokens.cache_write, 0),
    cost: col((p) => p.cost_micros / 1e6, 0),
    errorRate: col((p) => (p.requests ? p.error_rate : null), null),
    p50: col((p) => p.latency_ms.p50, null),
    p95: col((p) => p.latency_ms.p95, null),
  };
}

// ---------------------------------------------------------------- figures for other pages

/** Each key's spend this month (UTC): key id → group figures. Throws the API's error. */
export async function spendByKey() {
  const r = await api('GET', `${P()}/usage?${query({ from: startOfUtcMonth(), group_by: 'key', series: 'false', limit: 10000 })}`);
  return new Map(r.groups.map((g) => [g.group.key, g]));
}

/** Each provider's requests and errors today (UTC): provider slug → group figures. */
export async function errorsByProvider() {
  const r = await api('GET', `${P()}/usage?${query({ from: startOfUtcDay(), group_by: 'provider', series: 'false', limit: 10000 })}`);
  return new Map(r.groups.map((g) => [g.group.provider, g]));
}

// ---------------------------------------------------------------- shared pieces

function tiles(t, currency) {
  const tile = (label, value, note) => h('div', { class: 'tile', role: 'group', 'aria-label': label },
    h('div', { class: 'tile-label' }, label), h('div', { class: 'tile-value' }, value), note ? h('div', { class: 'muted small' }, note) : null);
  return h('div', { class: 'tiles' },
    tile('Requests', count(t.requests), `${count(t.errors)} failed`),
    tile('Tokens', count(t.tokens.total), `${count(t.tokens.input)} in · ${count(t.tokens.output)} out`),
    tile('Cost', money(t.cost_micros, currency), t.unpriced_requests ? `${count(t.unpriced_requests)} requests without a price` : 'every request priced'),
    tile('Error rate', pct(t.error_rate), `${count(t.errors)} of ${count(t.requests)}`),
    tile('Latency p50 / p95', `${ms(t.latency_ms.p50)} / ${ms(t.latency_ms.p95)}`, t.estimated_requests ? `${count(t.estimated_requests)} with estimated usage` : null));
}

function rangeControls(s, onChange, { intervals = true } = {}) {
  const range = h('select', { 'aria-label': 'Range' }, RANGES.map(([id, label]) => h('option', { value: id, selected: s.range === id }, label)));
  const interval = h('select', { 'aria-label': 'Interval' },
    h('option', { value: 'hour', selected: s.interval === 'hour' }, 'Hourly'),
    h('option', { value: 'day', selected: s.interval === 'day' }, 'Daily'));
  const today = new Date().toISOString().slice(0, 10);
  const from = h('input', { type: 'date', 'aria-label': 'From (UTC)', value: s.from || today, max: today });
  const to = h('input', { type: 'date', 'aria-label': 'To (UTC, inclusive)', value: s.to || today, max: today });
  const custom = h('span', { class: 'row custom', hidden: s.range !== 'custom' }, from, '–', to);
  const changed = () => {
    s.range = range.value;
    s.interval = interval.value;
    s.from = from.value;
    s.to = to.value;
    custom.hidden = s.range !== 'custom';
    if (s.range === 'custom' && (!s.from || !s.to || s.from > s.to)) return;
    onChange();
  };
  for (const el of [range, interval, from, to]) el.addEventListener('change', changed);
  return h('div', { class: 'row controls' }, range, custom, intervals ? interval : null);
}

const saved = (name, fallback) => {
  try { return { ...fallback, ...JSON.parse(localStorage.getItem(name) || '{}') }; } catch { return { ...fallback }; }
};

// ---------------------------------------------------------------- the Usage page

const DIMENSIONS = [['model', 'Model'], ['key', 'Key'], ['provider', 'Provider'], ['route', 'Route'], ['user', 'End user'], ['tag', 'Tag']];

async function keyNames() {
  try {
    const keys = (await api('GET', `${P()}/keys`)).data;
    return new Map(keys.map((k) => [k.id, k.name]));
  } catch { return new Map(); } // names are a nicety: ids are shown instead
}

export async function usagePage() {
  const s = saved('to11.usage', { range: '24h', interval: 'hour', by: 'model', tag: '' });
  const persist = () => localStorage.setItem('to11.usage', JSON.stringify(s));
  const body = h('div', { 'aria-busy': 'true' });
  const csv = h('a', { class: 'button small', download: 'usage.csv' }, 'Export CSV');
  const controls = rangeControls(s, () => { persist(); load(); });
  const names = await keyNames();
  let latest = 0; // answers to an older choice are dropped

  async function load() {
    const mine = ++latest;
    const { from, to } = span(s.range, s);
    const q = query({ from, to, interval: s.interval });
    csv.href = `/api/v1${P()}/usage?${q}&format=csv`;
    body.setAttribute('aria-busy', 'true');
    try {
      const [report] = await Promise.all([api('GET', `${P()}/usage?${q}`), loadCharts()]);
      if (mine !== latest) return;
      drawReport(report);
    } catch (e) {
      if (mine !== latest) return;
      forgetCharts();
      body.replaceChildren(errorNotice(e, 'Could not load the usage'));
    }
    body.removeAttribute('aria-busy');
  }

  function drawReport(report) {
    forgetCharts();
    if (!report.totals.requests) {
      body.replaceChildren(h('div', { class: 'card empty' },
        h('h2', {}, 'No requests in this range'),
        h('p', { class: 'muted' }, 'Send a request through the gateway with one of this project\'s keys (create one on the Keys page, or try the Playground): its usage shows here within seconds. Or choose a longer range.'),
        h('div', { class: 'row', style: 'justify-content:center' },
          h('a', { class: 'button primary', href: '#/playground' }, 'Open the playground'),
          h('a', { class: 'button', href: '#/keys' }, 'Keys'))));
      return;
    }
    const b = buckets(report);
    const cur = report.currency;
    const chartCard = (title, name, lines, fmt) => {
      const box = h('div', { class: 'chart', 'data-chart': name });
      const card = h('section', { class: 'card', 'aria-label': title }, h('h2', {}, title), box);
      timeChart(name, box, b.xs, lines, fmt, report.interval === 'day');
      return card;
    };
    const breakdown = h('section', { class: 'card', 'aria-label': 'Breakdown' });
    body.replaceChildren(
      tiles(report.totals, cur),
      h('div', { class: 'charts' },
        chartCard('Requests', 'requests', [
          { label: 'Requests', values: b.requests, zeroIsEmpty: true },
          { label: 'Errors', values: b.errors, zeroIsEmpty: true }], (v) => compact.format(v)),
        chartCard('Tokens', 'tokens', [
          { label: 'Input', values: b.input, zeroIsEmpty: true },
          { label: 'Output', values: b.output, zeroIsEmpty: true },
          { label: 'Cache', values: b.cached, zeroIsEmpty: true }], (v) => compact.format(v)),
        chartCard(`Cost (${cur})`, 'cost', [{ label: 'Cost', values: b.cost, zeroIsEmpty: true }], (v) => money(Math.round(v * 1e6), cur)),
        chartCard('Error rate', 'error_rate', [{ label: 'Error rate', values: b.errorRate }], (v) => pct(v)),
        chartCard('Latency', 'latency', [
          { label: 'p50', values: b.p50 },
          { label: 'p95', values: b.p95 }], (v) => ms(v))),
      breakdown);
    loadBreakdown(breakdown);
  }

  async function loadBreakdown(card) {
    const by = h('select', { 'aria-label': 'Break down by' }, DIMENSIONS.map(([id, label]) => h('option', { value: id, selected: s.by === id }, label)));
    const tag = h('input', { 'aria-label': 'Tag name', placeholder: 'tag name, e.g. team', value: s.tag, hidden: s.by !== 'tag', class: 'narrow' });
    const out = h('div', { 'aria-busy': 'true' }, h('p', { class: 'muted' }, 'Loading…'));
    let asked = 0;
    const apply = () => { s.by = by.value; s.tag = tag.value.trim(); tag.hidden = s.by !== 'tag'; persist(); fill(); };
    by.addEventListener('change', apply);
    tag.addEventListener('change', apply);
    card.replaceChildren(h('div', { class: 'row controls', style: 'margin-bottom:.8rem' }, h('h2', { class: 'grow', style: 'margin:0' }, 'Breakdown'), by, tag), out);

    async function fill() {
      if (s.by === 'tag' && !s.tag) {
        out.replaceChildren(h('p', { class: 'muted' }, 'Type a tag name. Clients tag requests with the x-to11-tags header, e.g. {"team": "search"}.'));
        return;
      }
      const mine = ++asked;
      const dim = s.by === 'tag' ? `tag:${s.tag}` : s.by;
      const { from, to } = span(s.range, s);
      out.setAttribute('aria-busy', 'true');
      try {
        const r = await api('GET', `${P()}/usage?${query({ from, to, interval: s.interval, group_by: dim, series: 'false', limit: 50 })}`);
        if (mine === asked) out.replaceChildren(groupTable(r, dim, s.by));
      } catch (e) {
        if (mine === asked) out.replaceChildren(errorNotice(e, 'Could not load the breakdown'));
      }
      out.removeAttribute('aria-busy');
    }

    function groupTable(r, dim, kind) {
      const rows = r.groups.filter((g) => g.requests > 0);
      if (!rows.length) return h('p', { class: 'muted' }, kind === 'tag' ? `No request in this range carries the tag "${s.tag}".` : 'Nothing in this range.');
      // A group the request log can filter on links to its requests.
      const filter = { model: 'model', key: 'key', user: 'user', tag: 'tag' }[kind];
      const time = { '24h': '24h', '7d': '7d', '30d': '30d' }[s.range] || 'all';
      const linked = (v, text) => (filter
        ? h('a', { href: `#/requests/${encodeURIComponent(new URLSearchParams({ [filter]: kind === 'tag' ? `${s.tag}:${v}` : v, time }))}`, title: 'Show these requests' }, text)
        : text);
      const label = (g) => {
        const v = g.group[dim];
        if (v === '(other)') return h('em', {}, `${r.other_groups} more`);
        if (kind === 'key') return linked(v, names.get(v) || h('span', { class: 'mono' }, `${v.slice(0, 8)}… (revoked)`));
        if (v === '') return h('span', { class: 'muted' }, kind === 'user' ? 'no end user' : kind === 'tag' ? 'untagged' : kind === 'route' ? 'no route' : 'none (refused before routing)');
        return linked(v, v);
      };
      const top = Math.max(...rows.map((g) => g.requests));
      const title = (DIMENSIONS.find(([id]) => id === kind) || ['', kind])[1];
      return h('div', { class: 'table' }, h('table', { 'aria-label': `Usage by ${kind === 'tag' ? `tag ${s.tag}` : title.toLowerCase()}` },
        h('thead', {}, h('tr', {}, [title, 'Requests', 'Errors', 'Tokens', 'Cost', 'p50', 'p95'].map((c, i) => h('th', { class: i ? 'num' : '' }, c)))),
        h('tbody', {}, rows.map((g) => h('tr', {},
          h('td', {}, h('div', {}, label(g)), h('div', { class: 'bar', 'aria-hidden': 'true' }, h('span', { style: `width:${(100 * g.requests) / top}%;background:${COLOURS[0]}` }))),
          h('td', { class: 'num' }, count(g.requests)),
          h('td', { class: 'num' }, `${count(g.errors)} (${pct(g.error_rate)})`),
          h('td', { class: 'num' }, count(g.tokens.total)),
          h('td', { class: 'num' }, money(g.cost_micros, r.currency), g.unpriced_requests ? h('div', { class: 'muted small' }, `${count(g.unpriced_requests)} unpriced`) : null),
          h('td', { class: 'num' }, ms(g.latency_ms.p50)),
          h('td', { class: 'num' }, ms(g.latency_ms.p95)))))));
    }
    fill();
  }

  load();
  return h('div', {},
    header('Usage', 'Requests, tokens, cost, errors and latency of this project, from the gateway\'s request records.', controls, csv),
    body);
}

// ---------------------------------------------------------------- the operator's view

export async function operatorPage() {
  if (state.session.principal !== 'operator') {
    return h('div', { class: 'notice info' }, 'The view across projects is the operator\'s: sign in with the operator token.');
  }
  const s = saved('to11.operator', { range: '7d', interval: 'day' });
  const body = h('div', { 'aria-busy': 'true' });
  const controls = rangeControls(s, () => { localStorage.setItem('to11.operator', JSON.stringify(s)); load(); });
  let latest = 0;
  const projectName = (id) => state.projects.find((p) => p.id === id)?.name || h('span', { class: 'mono' }, `${id.slice(0, 8)}… (deleted)`);

  async function load() {
    const mine = ++latest;
    const { from, to } = span(s.range, s);
    body.setAttribute('aria-busy', 'true');
    try {
      const [all, series] = await Promise.all([
        api('GET', `/usage?${query({ from, to, interval: s.interval, group_by: 'project', series: 'false', limit: 10000 })}`),
        api('GET', `/usage?${query({ from, to, interval: s.interval })}`),
        loadCharts(),
      ]);
      if (mine !== latest) return;
      forgetCharts();
      if (!all.totals.requests) {
        body.replaceChildren(h('div', { class: 'card empty' }, h('h2', {}, 'No requests in this range'),
          h('p', { class: 'muted' }, 'No project has sent a request through the gateway in this range. Choose a longer range, or check that the gateways ship their records (the control plane\'s usage store).')));
      } else {
        const b = buckets(series);
        const box = h('div', { class: 'chart', 'data-chart': 'operator' });
        timeChart('operator', box, b.xs, [
          { label: 'Requests', values: b.requests, zeroIsEmpty: true },
          { label: 'Errors', values: b.errors, zeroIsEmpty: true }], (v) => compact.format(v), series.interval === 'day');
        const ranked = (key, title, what) => {
          const rows = all.groups.filter((g) => g[key] > 0).sort((a, c) => c[key] - a[key] || c.requests - a.requests).slice(0, 10);
          return h('section', { class: 'card', 'aria-label': title }, h('h2', {}, title),
            rows.length ? h('table', { 'aria-label': title },
              h('thead', {}, h('tr', {}, h('th', {}, 'Project'), h('th', { class: 'num' }, 'Cost'), h('th', { class: 'num' }, 'Requests'), h('th', { class: 'num' }, 'Errors'), h('th', { class: 'num' }, 'Error rate'))),
              h('tbody', {}, rows.map((g) => h('tr', {},
                h('td', {}, projectName(g.group.project)),
                h('td', { class: 'num' }, money(g.cost_micros, all.currency)),
                h('td', { class: 'num' }, count(g.requests)),
                h('td', { class: 'num' }, count(g.errors)),
                h('td', { class: 'num' }, pct(g.error_rate))))))
              : h('p', { class: 'muted' }, what));
        };
        body.replaceChildren(
          tiles(all.totals, all.currency),
          h('section', { class: 'card', 'aria-label': 'Requests across projects' }, h('h2', {}, 'Requests across projects'), box),
          h('div', { class: 'grid2', style: 'margin-top:1rem' },
            ranked('cost_micros', 'Top projects by spend', 'No priced request in this range.'),
            ranked('errors', 'Top projects by errors', 'No failed request in this range.')));
      }
    } catch (e) {
      if (mine !== latest) return;
      forgetCharts();
      body.replaceChildren(errorNotice(e, 'Could not load the usage across projects'));
    }
    body.removeAttribute('aria-busy');
  }

  load();
  return h('div', {},
    header('All projects', 'Spend and errors across every project (the operator\'s view, for billing and support).', controls),
    body);
}
