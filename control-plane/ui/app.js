// to11 dashboard: plain ES modules, no build step. Views are functions that return DOM nodes
// built with `h`; `render()` redraws the current route from `state`. The page talks to /api/v1
// with its session cookie (changes carry the CSRF token) and, in the playground, to the gateway
// with a gateway key. The Usage, Requests and operator pages live in usage.js and requests.js
// (they import the helpers exported at the end of this file); charts.js draws their charts with
// the vendored uPlot (ui/vendor/), the only third-party code.

import { usagePage, operatorPage, spendByKey, errorsByProvider, money, pct, count } from './usage.js';
import { requestsPage } from './requests.js';

const state = {
  session: null, // {principal, project, csrf, gateway_url}
  projects: [],
  project: null, // the selected project (view from the API)
  catalog: [],
  lastKey: null, // the key created last in this tab, offered to the playground
};

// ---------------------------------------------------------------- helpers

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    // Through the CSSOM: the CSP refuses style attributes, not styles set by this script.
    else if (k === 'style') el.style.cssText = v;
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

let uid = 0;
const nextId = (p) => `${p}-${++uid}`;

/** A labelled form field; `input` is the control (its id is set here). */
function field(label, input, help, error) {
  const id = input.id || nextId('f');
  input.id = id;
  const parts = [h('label', { for: id }, label), input];
  if (help) {
    const hid = `${id}-help`;
    input.setAttribute('aria-describedby', hid);
    parts.push(h('div', { class: 'help', id: hid }, help));
  }
  const err = h('div', { class: 'err', role: 'alert' }, error || '');
  parts.push(err);
  return h('div', { class: 'field' }, parts);
}

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.code = body?.error?.code;
    this.details = body?.error?.details;
  }
}

async function api(method, path, body) {
  const headers = {};
  if (method !== 'GET') headers['x-to11-csrf'] = state.session?.csrf || '';
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(`/api/v1${path}`, {
    method, headers, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (r.status === 204) return null;
  const data = await r.json().catch(() => ({}));
  if (r.status === 401 && state.session && path !== '/session') {
    state.session = null;
    render();
  }
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

const P = () => `/projects/${encodeURIComponent(state.project.slug)}`;

function toast(text, kind = '') {
  const t = h('div', { class: `toast ${kind}` }, text);
  const box = document.getElementById('toasts');
  box.append(t);
  while (box.children.length > 3) box.firstChild.remove();
  setTimeout(() => t.remove(), 4000);
}

function ago(iso) {
  if (!iso) return 'never';
  const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

function initials(name) {
  const words = name.replace(/[^A-Za-z0-9 ]/g, ' ').split(/\s+/).filter(Boolean);
  return (words.length > 1 ? words[0][0] + words[1][0] : (words[0] || '?').slice(0, 2)).toUpperCase();
}

function avatar(name) {
  let hash = 0;
  for (const c of name) hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
  // Dark enough for white text (contrast ≥ 4.5:1).
  const hue = hash % 360;
  return h('span', { class: 'avatar', style: `background:hsl(${hue} 55% 36%)`, 'aria-hidden': 'true' }, initials(name));
}

const entryOf = (kind) => state.catalog.find((e) => e.id === kind);

/** What an API error means for the person looking at it. */
const HINTS = {
  provider_invalid_credential: 'The provider refused this credential. Check that it is complete and active.',
  provider_permission_denied: 'The credential is valid but lacks a permission. The message says which.',
  provider_unreachable: 'The provider could not be reached at this base URL.',
  provider_bad_base_url: 'Something answered, but it does not look like this provider. Check the base URL.',
  provider_rate_limited: 'The provider is rate limiting this credential. Try again shortly.',
  provider_timeout: 'The provider took too long to answer.',
  provider_unexpected_response: 'The provider answered something unexpected.',
  upstream_url_refused: 'This base URL points at an address the gateway may not use.',
  validation_failed: 'Some values need attention.',
};

function errorNotice(e, title = 'That did not work') {
  const problems = e.details?.problems;
  return h('div', { class: 'notice error', role: 'alert' },
    h('strong', {}, HINTS[e.code] || title),
    h('div', {}, e.message),
    Array.isArray(problems) && problems.length > 1
      ? h('ul', {}, problems.map((p) => h('li', {}, typeof p === 'string' ? p : p.message || JSON.stringify(p))))
      : null,
    e.code ? h('div', { class: 'muted mono' }, e.code) : null);
}

/** Runs `fn` with `button` disabled and a busy label. */
async function busy(button, label, fn) {
  const old = button.textContent;
  button.disabled = true;
  button.textContent = label;
  try { return await fn(); } finally { button.disabled = false; button.textContent = old; }
}

function confirmDialog(title, text, action, danger = true) {
  return new Promise((resolve) => {
    const d = h('dialog', { 'aria-labelledby': 'confirm-title' },
      h('h2', { id: 'confirm-title' }, title),
      h('p', {}, text),
      h('div', { class: 'row end' },
        h('button', { onclick: () => { d.close(); resolve(false); } }, 'Cancel'),
        h('button', { class: danger ? 'danger solid' : 'primary', onclick: () => { d.close(); resolve(true); } }, action)));
    d.addEventListener('close', () => { d.remove(); resolve(false); });
    document.body.append(d);
    d.showModal();
  });
}

// ---------------------------------------------------------------- routing

const NAV = [
  ['providers', 'Providers'],
  ['models', 'Models'],
  ['routes', 'Routes'],
  ['functions', 'Functions'],
  ['explain', 'Explain a name'],
  ['keys', 'Keys'],
  ['limits', 'Limits'],
  ['playground', 'Playground'],
  ['audit', 'Audit log'],
];

// What the project did: usage and the request log; across projects for the operator.
const OBSERVE = [
  ['usage', 'Usage'],
  ['requests', 'Requests'],
];
const OPERATOR = [['operator', 'All projects']];

function route() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  return { page: parts[0] || 'providers', arg: parts[1] || null };
}

function go(hash) {
  if (location.hash === hash) render(); else location.hash = hash;
}

window.addEventListener('hashchange', () => render());

// ---------------------------------------------------------------- boot and sign-in

async function boot() {
  try {
    state.session = await api('GET', '/session');
  } catch {
    state.session = null;
  }
  await render();
}

function signIn() {
  const token = h('input', { type: 'password', autocomplete: 'current-password', required: true, name: 'token' });
  const out = h('div');
  const button = h('button', { class: 'primary', type: 'submit', style: 'width:100%;justify-content:center' }, 'Sign in');
  const form = h('form', {
    onsubmit: async (ev) => {
      ev.preventDefault();
      out.replaceChildren();
      await busy(button, 'Signing in…', async () => {
        try {
          state.session = await api('POST', '/session', { token: token.value });
          token.value = '';
          await render();
        } catch (e) {
          out.replaceChildren(errorNotice(e, 'Sign-in failed'));
          token.setAttribute('aria-invalid', 'true');
          token.focus();
        }
      });
    },
  },
  field('Operator token or management key', token, 'The operator token was printed when to11 first started; a management key manages one project.'),
  out, button);
  return h('div', { class: 'signin' },
    h('main', { class: 'card', style: 'max-width:420px' },
      h('div', { class: 'brand' }, h('img', { src: '/ui/icon.svg', alt: '' }), 'to11'),
      h('h1', { style: 'margin:1rem 0 .3rem' }, 'Sign in'),
      h('p', { class: 'muted', style: 'margin-top:0' }, 'Manage providers, routes and keys of your projects.'),
      form));
}

async function signOut() {
  try { await api('DELETE', '/session'); } catch { /* signed out anyway */ }
  state.session = null;
  state.project = null;
  location.hash = '';
  render();
}

// ---------------------------------------------------------------- shell

// The operator's picker holds a page of projects (the first ones, or those matching the search
// box), plus the one selected: a deployment of 100,000 projects is never fetched whole.
const PICKER_LIMIT = 50;

function projectsPath(q) {
  return `/projects?limit=${PICKER_LIMIT}${q ? `&q=${encodeURIComponent(q)}` : ''}`;
}

async function loadProjects() {
  const wanted = localStorage.getItem('to11.project');
  if (state.session.principal === 'operator') {
    const page = await api('GET', projectsPath(state.projectQuery));
    state.projects = page.data;
    state.projectTotal = page.total;
    if (wanted && !state.projects.some((p) => p.slug === wanted)) {
      try {
        state.projects.unshift(await api('GET', `/projects/${encodeURIComponent(wanted)}`));
      } catch { /* gone: the first project is selected instead */ }
    }
  } else {
    state.projects = [await api('GET', `/projects/${state.session.project}`)];
  }
  state.project = state.projects.find((p) => p.slug === wanted) || state.projects[0] || null;
}

// A search box above the picker once there are more projects than it lists at once (or more than
// a handful): typing refills the picker from the server, without redrawing the page.
function projectSearch(picker) {
  if ((state.projectTotal || 0) <= 8 && !state.projectQuery) return null;
  let timer;
  return h('input', {
    id: 'project-search', type: 'search', value: state.projectQuery || '',
    placeholder: `Search ${state.projectTotal} projects`, 'aria-label': 'Search projects',
    style: 'margin-bottom:.35rem',
    oninput: (ev) => {
      clearTimeout(timer);
      timer = setTimeout(async () => {
        state.projectQuery = ev.target.value.trim();
        try {
          const page = await api('GET', projectsPath(state.projectQuery));
          const keep = state.project && !page.data.some((p) => p.slug === state.project.slug) ? [state.project] : [];
          picker.replaceChildren(...[...keep, ...page.data].map((p) => h('option', { value: p.slug, selected: state.project && p.slug === state.project.slug }, p.name)));
          picker.title = `${page.total} match${page.total === 1 ? '' : 'es'}`;
        } catch (e) { toast(e.message || String(e)); }
      }, 200);
    },
  });
}

function newProjectDialog() {
  const name = h('input', { required: true });
  const slug = h('input', { pattern: '[a-z0-9][a-z0-9\\-]*', placeholder: 'derived from the name' });
  const out = h('div');
  const d = h('dialog', { 'aria-labelledby': 'np-title' });
  const form = h('form', {
    onsubmit: async (ev) => {
      ev.preventDefault();
      try {
        const body = { name: name.value };
        if (slug.value) body.slug = slug.value;
        const p = await api('POST', '/projects', body);
        localStorage.setItem('to11.project', p.slug);
        d.close();
        toast(`Project ${p.name} created`);
        go('#/providers');
      } catch (e) { out.replaceChildren(errorNotice(e)); }
    },
  },
  h('h2', { id: 'np-title' }, 'New project'),
  field('Name', name), field('Slug', slug, 'Lowercase letters, digits and dashes; used in URLs.'), out,
  h('div', { class: 'row end' }, h('button', { type: 'button', onclick: () => d.close() }, 'Cancel'), h('button', { class: 'primary', type: 'submit' }, 'Create project')));
  d.append(form);
  d.addEventListener('close', () => d.remove());
  document.body.append(d);
  d.showModal();
}

function shell(page, content) {
  const operator = state.session.principal === 'operator';
  const picker = h('select', {
    id: 'project-picker',
    onchange: (ev) => { localStorage.setItem('to11.project', ev.target.value); render(); },
  }, state.projects.map((p) => h('option', { value: p.slug, selected: state.project && p.slug === state.project.slug }, p.name)));
  return h('div', { class: 'shell' },
    h('aside', { class: 'side' },
      h('div', { class: 'brand' }, h('img', { src: '/ui/icon.svg', alt: '' }), 'to11'),
      h('div', {},
        h('label', { for: 'project-picker' }, 'Project'),
        operator ? projectSearch(picker) : null,
        picker,
        operator ? h('button', { class: 'small', style: 'margin-top:.5rem;background:transparent;color:#d7d9e4;border-color:#33374d', onclick: newProjectDialog }, '+ New project') : null),
      h('nav', { 'aria-label': 'Project' },
        h('div', { class: 'section' }, 'AI Gateway'),
        NAV.map(([id, label]) => h('a', { href: `#/${id}`, 'aria-current': page === id ? 'page' : null }, label)),
        h('div', { class: 'section' }, 'Observe'),
        OBSERVE.map(([id, label]) => h('a', { href: `#/${id}`, 'aria-current': page === id ? 'page' : null }, label)),
        operator ? [h('div', { class: 'section' }, 'Operator'),
          OPERATOR.map(([id, label]) => h('a', { href: `#/${id}`, 'aria-current': page === id ? 'page' : null }, label))] : null),
      h('div', { class: 'foot' },
        operator ? 'Signed in as operator' : 'Signed in with a management key',
        h('button', { onclick: signOut }, 'Sign out'))),
    h('main', { id: 'main' }, content));
}

function header(title, subtitle, ...actions) {
  return h('div', { class: 'head' },
    h('div', {}, h('h1', {}, title), subtitle ? h('p', { class: 'muted' }, subtitle) : null),
    h('div', { class: 'row' }, actions));
}

let rendering = 0;
async function render() {
  const app = document.getElementById('app');
  const mine = ++rendering;
  if (!state.session) {
    app.replaceChildren(signIn());
    app.querySelector('input')?.focus();
    return;
  }
  try {
    if (!state.catalog.length) state.catalog = (await api('GET', '/catalog')).data;
    await loadProjects();
  } catch (e) {
    if (!state.session) return;
    app.replaceChildren(h('main', {}, errorNotice(e, 'Could not load the projects')));
    return;
  }
  const { page, arg } = route();
  if (!state.project) {
    app.replaceChildren(shell(page, h('div', { class: 'card empty' },
      h('h1', {}, 'No project yet'),
      h('p', { class: 'muted' }, 'A project holds providers, routes and keys.'),
      h('button', { class: 'primary', onclick: newProjectDialog }, 'Create a project'))));
    return;
  }
  let content;
  try {
    const view = VIEWS[page] || VIEWS.providers;
    content = await view(arg);
  } catch (e) {
    content = errorNotice(e, 'Could not load this page');
  }
  if (mine !== rendering) return; // a newer render started meanwhile
  app.replaceChildren(shell(page, content));
  document.title = `${([...NAV, ...OBSERVE, ...OPERATOR].find(([id]) => id === page) || ['', 'to11'])[1]} · ${state.project.name} · to11`;
}

// ---------------------------------------------------------------- providers

/** Usage figures for a page that can do without them: the figures, or the API's error to show. */
async function figures(load) {
  try { return { map: await load() }; } catch (e) { return { map: new Map(), error: e }; }
}

async function providersPage() {
  const [providers, today] = await Promise.all([
    api('GET', `${P()}/providers`).then((r) => r.data),
    figures(errorsByProvider),
  ]);
  const rows = providers.map((p) => {
    const entry = entryOf(p.kind);
    const name = entry ? entry.display_name : p.kind;
    const status = p.last_error
      ? h('span', { class: 'pill bad', title: p.last_error }, '● Error')
      : h('span', { class: 'pill ok' }, '● Connected');
    return h('tr', { class: 'clickable', onclick: () => go(`#/providers/${encodeURIComponent(p.slug)}`) },
      h('td', {}, h('div', { class: 'who' }, avatar(name),
        h('div', {}, h('a', { href: `#/providers/${encodeURIComponent(p.slug)}` }, name), h('small', { class: 'mono' }, p.slug)))),
      h('td', {}, status, p.last_error ? h('div', { class: 'muted', style: 'font-size:.82rem;margin-top:.25rem' }, p.last_error) : null),
      h('td', {}, `${p.exposed.length} of ${p.discovered_count}`),
      h('td', {}, errorRate(today, p.slug)),
      h('td', {}, ago(p.validated_at)),
      h('td', { class: 'muted mono', style: 'font-size:.8rem' }, p.base_url));
  });
  const body = providers.length
    ? h('div', { class: 'table' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Provider'), h('th', {}, 'Status'), h('th', {}, 'Models exposed'), h('th', {}, 'Errors today'), h('th', {}, 'Last validated'), h('th', {}, 'Base URL'))),
      h('tbody', {}, rows)))
    : h('div', { class: 'card empty' },
      h('h2', {}, 'Connect your first provider'),
      h('p', { class: 'muted' }, 'Pick a provider, paste a credential, and choose the models this project may call.'),
      h('button', { class: 'primary', onclick: () => connectDrawer() }, 'Connect a provider'));
  return h('div', {},
    header('Providers', 'The LLM providers this project is connected to.',
      h('button', { class: 'primary', onclick: () => connectDrawer() }, '+ Connect provider')),
    today.error && providers.length ? errorNotice(today.error, 'Errors today are unavailable') : null,
    body);
}

/** A provider's error rate today (UTC), from the usage API. */
function errorRate(today, slug) {
  if (today.error) return h('span', { class: 'muted' }, '—');
  const g = today.map.get(slug);
  if (!g || !g.requests) return h('span', { class: 'muted' }, 'no requests');
  return h('span', { title: `${g.errors} of ${g.requests} requests failed today (UTC)` },
    h('span', { class: `pill ${g.error_rate >= 0.05 ? 'bad' : g.errors ? 'warn' : 'ok'}` }, pct(g.error_rate)),
    h('span', { class: 'muted small' }, ` of ${count(g.requests)}`));
}

/**
 * A modal drawer: its dialog section (labelled by the element with id `labelledBy`) over a scrim.
 * The scrim, Escape and `close()` close it and give focus back to what had it; `open()` shows it.
 */
function modalDrawer(labelledBy, ...children) {
  const opener = document.activeElement;
  const scrim = h('div', { class: 'scrim', onclick: () => close() });
  const drawer = h('section', { class: 'drawer', role: 'dialog', 'aria-modal': 'true', 'aria-labelledby': labelledBy }, ...children);
  const onKey = (ev) => { if (ev.key === 'Escape') close(); };
  function close() {
    scrim.remove(); drawer.remove();
    document.removeEventListener('keydown', onKey);
    opener?.focus?.();
  }
  document.addEventListener('keydown', onKey);
  return { drawer, close, open: () => document.body.append(scrim, drawer) };
}

/** The connect-provider drawer: choose → configure → models → save. */
function connectDrawer() {
  const s = { step: 1, entry: null, values: {}, slug: '', named: '', discovered: null, selected: new Set(), error: null, fieldErrors: {} };
  const { drawer, close, open } = modalDrawer('drawer-title');

  function body() {
    if (s.step === 1) {
      const search = h('input', { type: 'search', placeholder: 'Search providers', 'aria-label': 'Search providers' });
      const grid = h('div', { class: 'catalog' });
      const fill = () => {
        const q = search.value.toLowerCase();
        grid.replaceChildren(...state.catalog
          .filter((e) => !q || e.display_name.toLowerCase().includes(q) || e.id.includes(q) || e.description.toLowerCase().includes(q))
          .map((e) => h('button', {
            type: 'button', 'data-kind': e.id,
            onclick: () => { s.entry = e; s.slug = e.id; s.values = {}; s.step = 2; draw(); },
          }, h('div', { class: 'row' }, avatar(e.display_name), h('strong', {}, e.display_name)), h('small', {}, e.description))));
      };
      search.addEventListener('input', fill);
      fill();
      setTimeout(() => search.focus());
      return [search, grid];
    }
    if (s.step === 2) {
      const e = s.entry;
      const inputs = {};
      const groupOf = (g) => e.fields.filter((f) => f.group === g);
      const mk = (f) => {
        const input = f.name === 'service_account_json'
          ? h('textarea', { name: f.name, spellcheck: 'false', autocomplete: 'off' })
          : h('input', { name: f.name, type: f.secret ? 'password' : 'text', autocomplete: 'off', spellcheck: 'false', placeholder: f.default || (f.name === 'base_url' ? e.default_base_url || '' : '') });
        input.value = s.values[f.name] || '';
        input.addEventListener('input', () => { s.values[f.name] = input.value; });
        if (s.fieldErrors[f.name]) input.setAttribute('aria-invalid', 'true');
        inputs[f.name] = input;
        const label = `${f.label}${f.required ? '' : ' (optional)'}${f.secret ? ' · secret' : ''}`;
        return field(label, input, f.help, s.fieldErrors[f.name]);
      };
      const slug = h('input', { name: 'slug', value: s.slug, pattern: '[a-z0-9][a-z0-9\\-]*' });
      slug.addEventListener('input', () => { s.slug = slug.value; });
      const named = h('textarea', { name: 'models', placeholder: 'one model name per line', spellcheck: 'false' });
      named.value = s.named;
      named.addEventListener('input', () => { s.named = named.value; });
      const sections = [
        s.error ? errorNotice(s.error, 'Validation failed') : null,
        h('div', { class: 'who', style: 'margin-bottom:1rem' }, avatar(e.display_name),
          h('div', {}, h('strong', {}, e.display_name), h('div', { class: 'muted', style: 'font-size:.85rem' }, e.description))),
        // A base URL the entry has no default for is asked up front; otherwise it is an override.
        e.default_base_url ? null : groupOf('base_url').map(mk),
        groupOf('account').length ? h('fieldset', { class: 'card', style: 'margin-bottom:1rem' }, h('legend', {}, 'Account'), groupOf('account').map(mk)) : null,
        h('fieldset', { class: 'card', style: 'margin-bottom:1rem' }, h('legend', {}, 'Credential'),
          h('p', { class: 'muted', style: 'margin-top:0;font-size:.85rem' }, 'Stored encrypted; only a hint is ever shown again.'),
          groupOf('credential').map(mk)),
        e.named_models ? field('Models to check', named, 'This provider has no complete model list: name the models (or deployments) to check, one per line.') : null,
        h('details', { open: s.fieldErrors.base_url && e.default_base_url ? true : null }, h('summary', {}, 'Advanced'), h('div', { style: 'margin-top:.8rem' },
          field('Connection name (slug)', slug, 'Callers write models as slug/model. Use another slug to connect a second account.'),
          e.default_base_url ? groupOf('base_url').map(mk) : null)),
      ];
      setTimeout(() => drawer.querySelector('.body input, .body textarea')?.focus());
      return sections;
    }
    // Step 3: models.
    const models = s.discovered.models;
    const search = h('input', { type: 'search', placeholder: `Search ${models.length} models`, 'aria-label': 'Search models' });
    const list = h('div', { class: 'models', role: 'group', 'aria-label': 'Discovered models' });
    const count = h('span', { class: 'muted', 'aria-live': 'polite' });
    const all = h('input', { type: 'checkbox', id: 'select-all' });
    const visible = () => models.filter((m) => !search.value || m.id.toLowerCase().includes(search.value.toLowerCase()));
    const fill = () => {
      const shown = visible();
      list.replaceChildren(...shown.map((m) => {
        const box = h('input', { type: 'checkbox', value: m.id, checked: s.selected.has(m.id) });
        box.addEventListener('change', () => { if (box.checked) s.selected.add(m.id); else s.selected.delete(m.id); counts(); });
        return h('label', {}, box, h('span', { class: 'mono' }, m.id), m.owned_by ? h('small', {}, m.owned_by) : null);
      }));
      counts();
    };
    const counts = () => {
      const shown = visible();
      count.textContent = `${s.selected.size} of ${models.length} selected`;
      all.checked = shown.length > 0 && shown.every((m) => s.selected.has(m.id));
    };
    all.addEventListener('change', () => {
      for (const m of visible()) { if (all.checked) s.selected.add(m.id); else s.selected.delete(m.id); }
      fill();
    });
    search.addEventListener('input', fill);
    fill();
    return [
      s.error ? errorNotice(s.error, 'Could not save') : null,
      h('div', { class: 'notice ok' }, h('strong', {}, 'Credential valid'), `${models.length} models discovered at ${s.discovered.base_url}. Choose the ones this project may call.`),
      h('div', { class: 'row', style: 'margin-bottom:.6rem' }, h('div', { class: 'grow' }, search)),
      h('div', { class: 'row', style: 'margin-bottom:.6rem' }, h('label', { for: 'select-all', style: 'display:flex;gap:.5rem;align-items:center;margin:0' }, all, 'Select all shown'), h('span', { class: 'grow' }), count),
      list,
    ];
  }

  function requestBody() {
    const e = s.entry;
    const body = { kind: e.id, account: {}, credential: {} };
    for (const f of e.fields) {
      const v = (s.values[f.name] || '').trim();
      if (!v) continue;
      if (f.group === 'account') body.account[f.name] = v;
      else if (f.group === 'credential') body.credential[f.name] = v;
      else if (f.name === 'base_url') body.base_url = v;
    }
    if (e.named_models) {
      const names = s.named.split(/[\n,]/).map((x) => x.trim()).filter(Boolean);
      if (names.length) body.models = names;
    }
    return body;
  }

  function footer() {
    if (s.step === 1) return [h('span'), h('button', { type: 'button', onclick: close }, 'Cancel')];
    if (s.step === 2) {
      const go2 = h('button', { class: 'primary', type: 'button' }, 'Validate and discover');
      go2.addEventListener('click', () => busy(go2, 'Validating…', async () => {
        s.error = null; s.fieldErrors = {};
        const missing = s.entry.fields.filter((f) => f.required && !(s.values[f.name] || '').trim());
        if (missing.length) {
          for (const f of missing) s.fieldErrors[f.name] = `${f.label} is required.`;
          draw();
          return;
        }
        try {
          s.discovered = await api('POST', `${P()}/providers/discover`, requestBody());
          s.selected = new Set(s.discovered.models.map((m) => m.id));
          s.step = 3;
        } catch (e) {
          s.error = e;
          // Point at the field the provider refused.
          if (e.code === 'provider_invalid_credential') for (const f of s.entry.fields.filter((x) => x.group === 'credential' && s.values[x.name])) s.fieldErrors[f.name] = 'Refused by the provider.';
          if (e.code === 'provider_unreachable' || e.code === 'provider_bad_base_url' || e.code === 'upstream_url_refused') s.fieldErrors.base_url = 'Check this URL.';
        }
        draw();
      }));
      return [h('button', { type: 'button', onclick: () => { s.step = 1; s.error = null; draw(); } }, '← Back'), go2];
    }
    const save = h('button', { class: 'primary', type: 'button' }, 'Save connection');
    save.addEventListener('click', () => busy(save, 'Saving…', async () => {
      s.error = null;
      if (!s.selected.size) { s.error = new ApiError(400, { error: { message: 'Choose at least one model to expose.' } }); draw(); return; }
      try {
        const body = requestBody();
        body.slug = s.slug || s.entry.id;
        body.models = [...s.selected];
        const p = await api('POST', `${P()}/providers`, body);
        close();
        toast(`${s.entry.display_name} connected with ${p.exposed.length} models`);
        go(`#/providers/${encodeURIComponent(p.slug)}`);
      } catch (e) { s.error = e; draw(); }
    }));
    return [h('button', { type: 'button', onclick: () => { s.step = 2; s.error = null; draw(); } }, '← Back'), save];
  }

  function draw() {
    const labels = ['Choose provider', 'Credential', 'Models'];
    drawer.replaceChildren(
      h('header', {}, h('h2', { id: 'drawer-title', style: 'margin:0' }, s.entry ? `Connect ${s.entry.display_name}` : 'Connect a provider'),
        h('button', { class: 'link', 'aria-label': 'Close', onclick: close }, '✕')),
      h('ol', { class: 'steps' }, labels.map((l, i) => h('li', { 'aria-current': s.step === i + 1 ? 'step' : null, class: s.step > i + 1 ? 'done' : '' }, `${i + 1}. ${l}`))),
      h('div', { class: 'body' }, body()),
      h('footer', {}, footer()));
  }
  draw();
  open();
}

async function providerPage(slug) {
  const p = await api('GET', `${P()}/providers/${encodeURIComponent(slug)}`);
  const entry = entryOf(p.kind);
  const name = entry ? entry.display_name : p.kind;
  const notice = h('div');

  // Exposed models, toggled and saved together.
  const exposed = new Set(p.exposed);
  const search = h('input', { type: 'search', placeholder: 'Search models', 'aria-label': 'Search models' });
  const list = h('div', { class: 'models' });
  const count = h('span', { class: 'muted' });
  const save = h('button', { class: 'primary', disabled: true }, 'Save exposed models');
  const dirty = () => {
    const same = exposed.size === p.exposed.length && p.exposed.every((m) => exposed.has(m));
    save.disabled = same;
    count.textContent = `${exposed.size} of ${p.discovered_count} exposed`;
  };
  const fill = () => {
    const q = search.value.toLowerCase();
    list.replaceChildren(...p.discovered.filter((m) => !q || m.id.toLowerCase().includes(q)).map((m) => {
      const box = h('input', { type: 'checkbox', role: 'switch', checked: exposed.has(m.id), 'aria-label': `Expose ${m.id}` });
      box.addEventListener('change', () => { if (box.checked) exposed.add(m.id); else exposed.delete(m.id); dirty(); });
      return h('label', {}, h('span', { class: 'switch' }, box, h('span')), h('span', { class: 'mono' }, m.id), m.owned_by ? h('small', {}, m.owned_by) : null);
    }));
    dirty();
  };
  search.addEventListener('input', fill);
  fill();
  save.addEventListener('click', () => busy(save, 'Saving…', async () => {
    try {
      await api('PUT', `${P()}/providers/${encodeURIComponent(slug)}/models`, { exposed: [...exposed] });
      toast('Exposed models saved');
      render();
    } catch (e) { notice.replaceChildren(errorNotice(e)); }
  }));

  const refresh = h('button', {}, '↻ Refresh discovery');
  refresh.addEventListener('click', () => busy(refresh, 'Refreshing…', async () => {
    try {
      const r = await api('POST', `${P()}/providers/${encodeURIComponent(slug)}/refresh`, {});
      const parts = [];
      if (r.added.length) parts.push(`Added: ${r.added.join(', ')}`);
      if (r.removed.length) parts.push(`Removed: ${r.removed.join(', ')}`);
      if (r.exposed_missing?.length) parts.push(`Exposed but no longer offered: ${r.exposed_missing.join(', ')}`);
      await render();
      document.getElementById('provider-notice')?.replaceChildren(h('div', { class: 'notice info', role: 'status' },
        h('strong', {}, 'Discovery refreshed'), parts.length ? parts.map((x) => h('div', {}, x)) : 'No models were added or removed.'));
    } catch (e) { notice.replaceChildren(errorNotice(e, 'Refresh failed')); }
  }));
  const disconnect = h('button', { class: 'danger' }, 'Disconnect');
  disconnect.addEventListener('click', async () => {
    if (!await confirmDialog(`Disconnect ${name}?`, `Calls to ${p.slug}/… stop resolving, and its stored credentials are deleted. Routes that use it must be changed first.`, 'Disconnect')) return;
    try {
      await api('DELETE', `${P()}/providers/${encodeURIComponent(slug)}`);
      toast(`${name} disconnected`);
      go('#/providers');
    } catch (e) { notice.replaceChildren(errorNotice(e, 'Could not disconnect')); }
  });

  return h('div', {},
    h('div', { class: 'crumbs' }, h('a', { href: '#/providers' }, 'Providers'), ' / ', p.slug),
    header(name, null, refresh, disconnect),
    h('div', { id: 'provider-notice' }), notice,
    h('div', { class: 'grid2' },
      h('section', { class: 'card' }, h('h2', {}, 'Status'),
        h('dl', { class: 'kv' },
          h('dt', {}, 'Status'), h('dd', {}, p.last_error ? h('span', { class: 'pill bad' }, 'Error') : h('span', { class: 'pill ok' }, 'Connected')),
          p.last_error ? [h('dt', {}, 'Last error'), h('dd', {}, p.last_error)] : null,
          h('dt', {}, 'Connection'), h('dd', { class: 'mono' }, p.slug),
          h('dt', {}, 'Base URL'), h('dd', { class: 'mono' }, p.base_url),
          Object.entries(p.account || {}).map(([k, v]) => [h('dt', {}, k), h('dd', { class: 'mono' }, String(v))]),
          h('dt', {}, 'Last validated'), h('dd', {}, ago(p.validated_at)),
          h('dt', {}, 'Last discovery'), h('dd', {}, ago(p.discovered_at)))),
      credentialsCard(p, entry)),
    h('section', { class: 'card', style: 'margin-top:1rem' },
      h('div', { class: 'row', style: 'margin-bottom:.8rem' }, h('h2', { style: 'margin:0' }, 'Models'), h('span', { class: 'grow' }), count, save),
      h('div', { style: 'margin-bottom:.6rem' }, search), list));
}

function credentialFields(entry) {
  return entry ? entry.fields.filter((f) => f.group === 'credential') : [{ name: 'api_key', label: 'API key', secret: true }];
}

function credentialForm(entry, onSubmit, submitLabel) {
  const inputs = credentialFields(entry).map((f) => {
    const i = f.name === 'service_account_json'
      ? h('textarea', { name: f.name, autocomplete: 'off', spellcheck: 'false' })
      : h('input', { name: f.name, type: f.secret ? 'password' : 'text', autocomplete: 'off' });
    return [f, i];
  });
  const out = h('div');
  const button = h('button', { class: 'primary', type: 'submit' }, submitLabel);
  return {
    out,
    form: h('form', {
      onsubmit: (ev) => {
        ev.preventDefault();
        const credential = {};
        for (const [f, i] of inputs) if (i.value.trim()) credential[f.name] = i.value.trim();
        busy(button, 'Validating…', () => onSubmit(credential, out));
      },
    }, inputs.map(([f, i]) => field(`${f.label}${f.required === false ? ' (optional)' : ''}`, i)), out, h('div', { class: 'row end' }, button)),
  };
}

function credentialsCard(p, entry) {
  const card = h('section', { class: 'card' });
  const rows = p.credentials.map((c) => {
    const rotate = h('button', { class: 'small' }, 'Rotate');
    const del = h('button', { class: 'small danger' }, 'Delete');
    rotate.addEventListener('click', () => {
      const d = h('dialog', { 'aria-labelledby': 'rot-title' });
      const { form } = credentialForm(entry, async (credential, out) => {
        try {
          await api('PUT', `${P()}/credentials/${encodeURIComponent(p.slug)}/${encodeURIComponent(c.id)}`, { credential });
          d.close(); toast(`Credential ${c.name || c.id} rotated`); render();
        } catch (e) { out.replaceChildren(errorNotice(e)); }
      }, 'Validate and rotate');
      d.append(h('h2', { id: 'rot-title' }, `Rotate ${c.name || c.id}`), h('p', { class: 'muted' }, 'The new secret is validated with the provider before it replaces the old one.'), form,
        h('button', { class: 'link', onclick: () => d.close() }, 'Cancel'));
      d.addEventListener('close', () => d.remove());
      document.body.append(d); d.showModal();
    });
    del.addEventListener('click', async () => {
      if (!await confirmDialog(`Delete credential ${c.name || c.id}?`, 'Targets that name it stop working. The default credential cannot be deleted.', 'Delete')) return;
      try { await api('DELETE', `${P()}/credentials/${encodeURIComponent(p.slug)}/${encodeURIComponent(c.id)}`); toast('Credential deleted'); render(); }
      catch (e) { card.prepend(errorNotice(e, 'Could not delete')); }
    });
    return h('tr', {},
      h('td', {}, h('strong', {}, c.name || c.id), c.id === p.default_credential ? [' ', h('span', { class: 'pill info' }, 'default')] : null, h('div', { class: 'muted mono', style: 'font-size:.8rem' }, c.id)),
      h('td', { class: 'mono' }, c.hint),
      h('td', {}, h('div', { class: 'row' }, rotate, del)));
  });
  const add = h('button', { class: 'small' }, '+ Add credential');
  add.addEventListener('click', () => {
    const d = h('dialog', { 'aria-labelledby': 'add-title' });
    const id = h('input', { required: true, pattern: '[a-z0-9][a-z0-9\\-]*' });
    const nm = h('input');
    const { form } = credentialForm(entry, async (credential, out) => {
      try {
        await api('POST', `${P()}/credentials`, { provider: p.slug, id: id.value, name: nm.value || undefined, credential });
        d.close(); toast('Credential added'); render();
      } catch (e) { out.replaceChildren(errorNotice(e)); }
    }, 'Validate and add');
    form.prepend(field('Identifier', id, 'Routes name a credential by this identifier.'), field('Name (optional)', nm));
    d.append(h('h2', { id: 'add-title' }, 'Add a credential'), form, h('button', { class: 'link', onclick: () => d.close() }, 'Cancel'));
    d.addEventListener('close', () => d.remove());
    document.body.append(d); d.showModal();
  });
  card.append(
    h('div', { class: 'row', style: 'margin-bottom:.6rem' }, h('h2', { style: 'margin:0' }, 'Credentials'), h('span', { class: 'grow' }), add),
    h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Hint'), h('th', {}, ''))), h('tbody', {}, rows)));
  return card;
}

// ---------------------------------------------------------------- models

async function callableNames() {
  const [providers, routes, functions] = await Promise.all([
    api('GET', `${P()}/providers`), api('GET', `${P()}/routes`), api('GET', `${P()}/functions`)]);
  const rows = [];
  for (const f of functions.data) rows.push({ name: f.name, layer: 'function', to: f.route ? `route ${f.route}` : f.model });
  for (const r of routes.data) rows.push({ name: r.name, layer: 'route', to: `${r.strategy}: ${r.targets.map((t) => `${t.provider}/${t.model}`).join(', ')}` });
  const bare = new Set();
  for (const p of providers.data) {
    for (const m of p.exposed) {
      rows.push({ name: `${p.slug}/${m}`, layer: 'provider', to: `${p.slug} · ${m}` });
      if (!bare.has(m)) { bare.add(m); rows.push({ name: m, layer: 'provider', to: `${p.slug} · ${m} (first provider exposing it)` }); }
    }
  }
  return { rows, providers: providers.data, routes: routes.data, functions: functions.data };
}

async function modelsPage() {
  const { rows } = await callableNames();
  const search = h('input', { type: 'search', placeholder: 'Filter names', 'aria-label': 'Filter names' });
  const tbody = h('tbody');
  const pill = { function: 'warn', route: 'info', provider: 'ok' };
  const fill = () => {
    const q = search.value.toLowerCase();
    tbody.replaceChildren(...rows.filter((r) => !q || r.name.toLowerCase().includes(q)).map((r) => h('tr', {},
      h('td', { class: 'mono' }, r.name), h('td', {}, h('span', { class: `pill ${pill[r.layer]}` }, r.layer)), h('td', { class: 'muted' }, r.to),
      h('td', {}, h('a', { href: `#/explain/${encodeURIComponent(r.name)}` }, 'Explain')))));
  };
  search.addEventListener('input', fill);
  fill();
  return h('div', {},
    header('Models', 'Every name callers can send as "model", and the layer it resolves through (function → route → provider).'),
    h('div', { style: 'margin-bottom:.8rem;max-width:360px' }, search),
    rows.length ? h('div', { class: 'table' }, h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Layer'), h('th', {}, 'Resolves to'), h('th', {}, ''))), tbody))
      : h('div', { class: 'card empty' }, h('p', {}, 'Nothing to call yet: connect a provider first.')));
}

async function explainPage(name) {
  const input = h('input', { value: name || '', placeholder: 'e.g. gpt-4o, openai/gpt-4o or a route name', required: true });
  const out = h('div');
  const show = async (n) => {
    try {
      const r = await api('GET', `${P()}/resolve?model=${encodeURIComponent(n)}`);
      out.replaceChildren(h('section', { class: 'card' },
        h('dl', { class: 'kv' },
          h('dt', {}, 'Name'), h('dd', { class: 'mono' }, r.model),
          h('dt', {}, 'Layer'), h('dd', {}, h('span', { class: 'pill info' }, r.layer)),
          r.function ? [h('dt', {}, 'Function'), h('dd', {}, r.function)] : null,
          r.route ? [h('dt', {}, 'Route'), h('dd', {}, r.route)] : null,
          r.strategy ? [h('dt', {}, 'Strategy'), h('dd', {}, r.strategy)] : null),
        h('h3', { style: 'margin-top:1rem' }, 'Targets, in order'),
        h('ol', {}, r.targets.map((t) => h('li', { class: 'mono' }, `${t.provider}/${t.model}`, t.credential ? ` · credential ${t.credential}` : '', r.strategy === 'loadbalance' ? ` · weight ${t.weight}` : '')))));
    } catch (e) { out.replaceChildren(errorNotice(e, 'Does not resolve')); }
  };
  if (name) show(name);
  return h('div', {},
    header('Explain a name', 'What a model name resolves to, exactly as the gateway resolves it.'),
    h('form', { class: 'card', style: 'margin-bottom:1rem', onsubmit: (ev) => { ev.preventDefault(); history.replaceState(null, '', `#/explain/${encodeURIComponent(input.value)}`); show(input.value); } },
      h('div', { class: 'row', style: 'align-items:flex-end' }, h('div', { class: 'grow' }, field('Model name', input)), h('button', { class: 'primary', type: 'submit', style: 'margin-bottom:1rem' }, 'Explain'))),
    out);
}

// ---------------------------------------------------------------- routes and functions

/** An editor's delete button: confirms, deletes `path`, then goes back to `back`. */
function deleteButton(kind, name, consequence, path, back, out) {
  const b = h('button', { class: 'danger', type: 'button' }, `Delete ${kind}`);
  b.addEventListener('click', async () => {
    if (!await confirmDialog(`Delete ${kind} ${name}?`, consequence, 'Delete')) return;
    try { await api('DELETE', path); toast(`The ${kind} ${name} was deleted`); go(back); }
    catch (e) { out.replaceChildren(errorNotice(e)); }
  });
  return b;
}

/** The JSON in `textarea` (`{}` when empty), or `undefined` after saying what is wrong in `out`. */
function jsonOf(textarea, what, out) {
  try { return JSON.parse(textarea.value || '{}'); } catch (e) {
    textarea.setAttribute('aria-invalid', 'true');
    out.replaceChildren(errorNotice({ message: `${what} is not valid JSON (${e.message}).` }));
    return undefined;
  }
}

async function routesPage(name) {
  const { providers, routes } = await callableNames();
  const editing = name === 'new' ? { name: '', strategy: 'fallback', targets: [], policy: {} } : routes.find((r) => r.name === name);
  const list = routes.length
    ? h('div', { class: 'table' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Strategy'), h('th', {}, 'Targets'), h('th', {}, ''))),
      h('tbody', {}, routes.map((r) => h('tr', {},
        h('td', { class: 'mono' }, r.name), h('td', {}, h('span', { class: 'pill info' }, r.strategy)),
        h('td', { class: 'muted mono', style: 'font-size:.85rem' }, r.targets.map((t) => `${t.provider}/${t.model}${r.strategy === 'loadbalance' ? ` (weight ${t.weight ?? 1})` : ''}`).join(r.strategy === 'fallback' ? ' → ' : ', ')),
        h('td', {}, h('div', { class: 'row end' }, h('a', { class: 'button small', href: `#/routes/${encodeURIComponent(r.name)}` }, 'Edit'),
          h('a', { class: 'button small', href: `#/explain/${encodeURIComponent(r.name)}` }, 'Explain'))))))))
    : h('div', { class: 'card empty' }, h('h2', {}, 'No routes yet'), h('p', { class: 'muted' }, 'A route spreads one name over several targets: fallback when a provider fails, weighted load balancing, or the fastest target.'));
  return h('div', {},
    header('Routes', 'Names that try several targets, with retries and fallback.', h('a', { class: 'button primary', href: '#/routes/new' }, '+ New route')),
    editing ? routeEditor(editing, name === 'new', providers) : null,
    list);
}

function routeEditor(r, isNew, providers) {
  const out = h('div');
  const nameI = h('input', { value: r.name, required: true, disabled: !isNew });
  const strategy = h('select', {}, [['fallback', 'Fallback — in order'], ['loadbalance', 'Load balance — by weight'], ['least-latency', 'Least latency']].map(([v, l]) => h('option', { value: v, selected: r.strategy === v }, l)));
  const targets = h('div', { class: 'targets' });
  const rowsState = r.targets.length ? r.targets.map((t) => ({ ...t })) : [{ provider: providers[0]?.slug || '', model: '', credential: '', weight: 1 }];
  const drawTargets = () => {
    targets.replaceChildren(...rowsState.map((t, i) => {
      const prov = h('select', { 'aria-label': `Target ${i + 1} provider` }, providers.map((p) => h('option', { value: p.slug, selected: p.slug === t.provider }, p.slug)));
      const p = () => providers.find((x) => x.slug === t.provider);
      const dl = nextId('models');
      const model = h('input', { value: t.model, list: dl, 'aria-label': `Target ${i + 1} model`, required: true, placeholder: 'model' });
      const data = h('datalist', { id: dl }, (p()?.discovered || []).map((m) => h('option', { value: m.id })));
      const cred = h('select', { 'aria-label': `Target ${i + 1} credential` }, h('option', { value: '' }, 'default credential'), (p()?.credentials || []).map((c) => h('option', { value: c.id, selected: c.id === t.credential }, c.name || c.id)));
      // Weights matter only when load balancing.
      const weight = h('input', { type: 'number', min: '0', value: t.weight ?? 1, 'aria-label': `Target ${i + 1} weight`, disabled: strategy.value !== 'loadbalance', title: 'Used by the load-balance strategy' });
      prov.addEventListener('change', () => { t.provider = prov.value; t.credential = ''; drawTargets(); });
      model.addEventListener('input', () => { t.model = model.value; });
      cred.addEventListener('change', () => { t.credential = cred.value; });
      weight.addEventListener('input', () => { t.weight = Number(weight.value); });
      const remove = h('button', { type: 'button', class: 'small', 'aria-label': `Remove target ${i + 1}`, disabled: rowsState.length === 1, onclick: () => { rowsState.splice(i, 1); drawTargets(); } }, '✕');
      return h('div', { class: 'target' },
        h('div', {}, i === 0 ? h('label', {}, 'Provider') : null, prov),
        h('div', {}, i === 0 ? h('label', {}, 'Model') : null, model, data),
        h('div', {}, i === 0 ? h('label', {}, 'Credential') : null, cred),
        h('div', {}, i === 0 ? h('label', {}, 'Weight') : null, weight),
        remove);
    }));
  };
  drawTargets();
  strategy.addEventListener('change', drawTargets);
  const policy = h('textarea', { spellcheck: 'false', class: 'mono', style: 'min-height:5rem' });
  policy.value = JSON.stringify(r.policy || {}, null, 1);
  const save = h('button', { class: 'primary', type: 'submit' }, isNew ? 'Create route' : 'Save route');
  const del = isNew ? null : deleteButton('route', r.name, 'Calls to this name stop resolving (unless a provider serves it).', `${P()}/routes/${encodeURIComponent(r.name)}`, '#/routes', out);
  return h('form', {
    class: 'card', style: 'margin-bottom:1rem', 'aria-label': 'Route editor',
    onsubmit: (ev) => {
      ev.preventDefault();
      busy(save, 'Saving…', async () => {
        const pol = jsonOf(policy, 'The policy', out);
        if (pol === undefined) return;
        const body = {
          name: nameI.value, strategy: strategy.value, policy: pol,
          targets: rowsState.map((t) => ({ provider: t.provider, model: t.model, credential: t.credential || undefined, weight: t.weight || undefined })),
        };
        try {
          if (isNew) await api('POST', `${P()}/routes`, body); else await api('PUT', `${P()}/routes/${encodeURIComponent(r.name)}`, body);
          toast(`Route ${body.name} saved`);
          go('#/routes');
        } catch (e) { out.replaceChildren(errorNotice(e)); }
      });
    },
  },
  h('h2', {}, isNew ? 'New route' : `Edit ${r.name}`),
  h('div', { class: 'grid2' }, field('Name', nameI, 'Callers send this as "model".'), field('Strategy', strategy)),
  h('h3', {}, 'Targets'), targets,
  h('button', { type: 'button', class: 'small', onclick: () => { rowsState.push({ provider: providers[0]?.slug || '', model: '', credential: '', weight: 1 }); drawTargets(); } }, '+ Add target'),
  h('details', { style: 'margin-top:1rem' }, h('summary', {}, 'Retry and fallback policy (JSON)'), h('div', { style: 'margin-top:.6rem' }, field('Policy', policy, 'e.g. {"max_retries": 2, "first_byte_ms": 20000}. Empty: the defaults.'))),
  out,
  h('div', { class: 'row end', style: 'margin-top:1rem' }, del, h('a', { class: 'button', href: '#/routes' }, 'Cancel'), save));
}

async function functionsPage(name) {
  const { functions, routes, rows } = await callableNames();
  const editing = name === 'new' ? { name: '', route: routes[0]?.name || null, model: null, defaults: {} } : functions.find((f) => f.name === name);
  return h('div', {},
    header('Functions', 'Named purposes ("summarize", "chat-default") that point at a route or a model, with request defaults.', h('a', { class: 'button primary', href: '#/functions/new' }, '+ New function')),
    editing ? functionEditor(editing, name === 'new', routes, rows) : null,
    functions.length ? h('div', { class: 'table' }, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Points at'), h('th', {}, 'Defaults'), h('th', {}, ''))),
      h('tbody', {}, functions.map((f) => h('tr', {},
        h('td', { class: 'mono' }, f.name), h('td', {}, f.route ? `route ${f.route}` : `model ${f.model}`),
        h('td', { class: 'mono muted', style: 'font-size:.8rem' }, f.defaults && Object.keys(f.defaults).length ? JSON.stringify(f.defaults) : '—'),
        h('td', {}, h('a', { class: 'button small', href: `#/functions/${encodeURIComponent(f.name)}` }, 'Edit')))))))
      : h('div', { class: 'card empty' }, h('h2', {}, 'No functions yet'), h('p', { class: 'muted' }, 'A function lets applications ask for a purpose while you choose, and change, the model behind it.')));
}

function functionEditor(f, isNew, routes, rows) {
  const out = h('div');
  const nameI = h('input', { value: f.name, required: true, disabled: !isNew });
  const kind = h('select', {}, h('option', { value: 'route', selected: !!f.route }, 'a route'), h('option', { value: 'model', selected: !f.route }, 'a model'));
  const routeS = h('select', {}, routes.map((r) => h('option', { value: r.name, selected: r.name === f.route }, r.name)));
  const dl = nextId('names');
  const modelI = h('input', { value: f.model || '', list: dl, placeholder: 'provider/model or a model name' });
  const data = h('datalist', { id: dl }, rows.filter((r) => r.layer === 'provider').map((r) => h('option', { value: r.name })));
  const target = h('div');
  const showTarget = () => target.replaceChildren(kind.value === 'route' ? field('Route', routeS) : field('Model', modelI, null), data);
  kind.addEventListener('change', showTarget);
  showTarget();
  const defaults = h('textarea', { class: 'mono', spellcheck: 'false', style: 'min-height:5rem' });
  defaults.value = JSON.stringify(f.defaults || {}, null, 1);
  const save = h('button', { class: 'primary', type: 'submit' }, isNew ? 'Create function' : 'Save function');
  const del = isNew ? null : deleteButton('function', f.name, 'Calls to this name stop resolving.', `${P()}/functions/${encodeURIComponent(f.name)}`, '#/functions', out);
  return h('form', {
    class: 'card', style: 'margin-bottom:1rem', 'aria-label': 'Function editor',
    onsubmit: (ev) => {
      ev.preventDefault();
      busy(save, 'Saving…', async () => {
        const d = jsonOf(defaults, 'The defaults', out);
        if (d === undefined) return;
        const body = { name: nameI.value, defaults: d };
        if (kind.value === 'route') body.route = routeS.value; else body.model = modelI.value;
        try {
          if (isNew) await api('POST', `${P()}/functions`, body); else await api('PUT', `${P()}/functions/${encodeURIComponent(f.name)}`, body);
          toast(`Function ${body.name} saved`); go('#/functions');
        } catch (e) { out.replaceChildren(errorNotice(e)); }
      });
    },
  },
  h('h2', {}, isNew ? 'New function' : `Edit ${f.name}`),
  h('div', { class: 'grid2' }, field('Name', nameI), field('Points at', kind)), target,
  field('Defaults (JSON)', defaults, 'Request fields applied when a request does not set them, e.g. {"temperature": 0.2}.'),
  out, h('div', { class: 'row end' }, del, h('a', { class: 'button', href: '#/functions' }, 'Cancel'), save));
}

// ---------------------------------------------------------------- keys

function showSecret(title, secret, note) {
  const input = h('input', { value: secret, readonly: true, 'aria-label': 'The new key' });
  const copy = h('button', { class: 'primary', type: 'button' }, 'Copy');
  copy.addEventListener('click', async () => {
    try { await navigator.clipboard.writeText(secret); copy.textContent = 'Copied'; }
    catch { input.select(); document.execCommand?.('copy'); copy.textContent = 'Copied'; }
  });
  const d = h('dialog', { 'aria-labelledby': 'secret-title' },
    h('h2', { id: 'secret-title' }, title),
    h('div', { class: 'notice info' }, h('strong', {}, 'Copy it now'), note),
    h('div', { class: 'secret' }, input, copy),
    h('div', { class: 'row end', style: 'margin-top:1rem' }, h('button', { type: 'button', onclick: () => d.close() }, 'Done')));
  d.addEventListener('close', () => { d.remove(); render(); });
  document.body.append(d);
  d.showModal();
  input.select();
}

async function keysPage() {
  const [keys, spend] = await Promise.all([api('GET', `${P()}/keys`).then((r) => r.data), figures(spendByKey)]);
  const spent = (k) => {
    if (spend.error) return h('span', { class: 'muted' }, '—');
    const g = spend.map.get(k.id);
    if (!g) return h('span', { class: 'muted' }, money(0));
    return h('span', { title: `${g.requests} requests this month (UTC)` }, money(g.cost_micros),
      g.unpriced_requests ? h('div', { class: 'muted small' }, `+ ${count(g.unpriced_requests)} unpriced`) : null);
  };
  const out = h('div');
  const name = h('input', { required: true, placeholder: 'e.g. backend-prod' });
  const models = h('input', { placeholder: 'all names' });
  const expires = h('input', { type: 'date' });
  const create = h('button', { class: 'primary', type: 'submit' }, 'Create key');
  const form = h('form', {
    class: 'card', style: 'margin-bottom:1rem', 'aria-label': 'New key',
    onsubmit: (ev) => {
      ev.preventDefault();
      busy(create, 'Creating…', async () => {
        const body = { name: name.value };
        const m = models.value.split(',').map((x) => x.trim()).filter(Boolean);
        if (m.length) body.models = m;
        if (expires.value) body.expires_at = new Date(`${expires.value}T23:59:59Z`).toISOString();
        try {
          const k = await api('POST', `${P()}/keys`, body);
          state.lastKey = k.key;
          showSecret(`Key ${k.name} created`, k.key, 'This is the only time the key is shown. Applications send it as "x-to11-authorization: Bearer …".');
        } catch (e) { out.replaceChildren(errorNotice(e)); }
      });
    },
  },
  h('h2', {}, 'New gateway key'),
  h('div', { class: 'grid2' }, field('Name', name), field('Expires (optional)', expires)),
  field('Allowed models (optional)', models, 'Comma-separated names this key may call; empty: every name.'),
  out, h('div', { class: 'row end' }, create));
  const rows = keys.map((k) => {
    const revoke = h('button', { class: 'small danger' }, 'Revoke');
    revoke.addEventListener('click', async () => {
      if (!await confirmDialog(`Revoke ${k.name}?`, 'Applications using this key are refused at once, on every replica.', 'Revoke key')) return;
      try { await api('DELETE', `${P()}/keys/${k.id}`); toast(`Key ${k.name} revoked`); render(); }
      catch (e) { out.replaceChildren(errorNotice(e)); }
    });
    return h('tr', {},
      h('td', {}, h('strong', {}, k.name)), h('td', { class: 'mono' }, k.hint),
      h('td', { class: 'muted' }, k.models ? k.models.join(', ') : 'all'),
      h('td', { class: 'muted' }, k.expires_at ? new Date(k.expires_at).toLocaleDateString() : 'never'),
      h('td', { class: 'num' }, spent(k)),
      h('td', { class: 'muted' }, ago(k.created_at)), h('td', {}, revoke));
  });
  return h('div', {},
    header('Keys', 'Gateway keys applications call to11 with.'),
    form,
    spend.error && keys.length ? errorNotice(spend.error, 'Spend this month is unavailable') : null,
    keys.length ? h('div', { class: 'table' }, h('table', { 'aria-label': 'Keys' },
      h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'Key'), h('th', {}, 'Models'), h('th', {}, 'Expires'), h('th', { class: 'num' }, 'Spend this month'), h('th', {}, 'Created'), h('th', {}, ''))),
      h('tbody', {}, rows)))
      : h('div', { class: 'card empty' }, h('p', { class: 'muted' }, 'No keys yet.')));
}

// ---------------------------------------------------------------- limits

const LIMIT_NAMES = {
  requests_per_minute: 'Requests per minute',
  tokens_per_minute: 'Tokens per minute',
  input_tokens_per_minute: 'Input tokens per minute',
  output_tokens_per_minute: 'Output tokens per minute',
  concurrent: 'Requests in flight',
  budget: 'Budget',
};

/** One limit with what is used of it: a meter, the figures, when it resets. */
function limitMeter(u) {
  const used = u.used === null || u.used === undefined ? null : Number(u.used);
  const max = Number(u.max);
  const share = used === null || !max ? 0 : Math.min(1, used / max);
  const level = share >= 1 ? 'bad' : share >= 0.8 ? 'warn' : 'ok';
  const title = u.limit === 'budget' ? `Budget per ${u.window === 'total' ? 'all time' : u.window}` : LIMIT_NAMES[u.limit] || u.limit;
  return h('div', { class: 'limit', role: 'group', 'aria-label': title },
    h('div', { class: 'row' }, h('strong', {}, title),
      h('span', { class: `pill ${level}` }, used === null ? 'usage unavailable' : `${u.used} of ${u.max}`)),
    h('meter', { min: 0, max: 1, value: share, low: 0.8, high: 0.99, optimum: 0, 'aria-label': `${title} used` }),
    h('p', { class: 'muted small' }, u.resets_at ? `Resets ${new Date(u.resets_at).toLocaleString()}` : u.limit === 'concurrent' ? 'Held while requests are in flight' : 'Never resets'));
}

function limitsCard(title, subtitle, view, path, editable) {
  const out = h('div');
  const text = h('textarea', { rows: 6, class: 'mono', 'aria-label': `${title} JSON`, spellcheck: 'false' }, JSON.stringify(view.limits || {}, null, 2));
  const save = h('button', { class: 'primary', type: 'submit' }, 'Save limits');
  const meters = (view.usage || []).map(limitMeter);
  return h('form', {
    class: 'card', style: 'margin-bottom:1rem', 'aria-label': title,
    onsubmit: (ev) => {
      ev.preventDefault();
      const body = jsonOf(text, 'The limits', out);
      if (body === undefined) return;
      busy(save, 'Saving…', async () => {
        try { await api('PUT', path, body); toast(`${title} saved`); render(); }
        catch (e) { out.replaceChildren(errorNotice(e)); }
      });
    },
  },
  h('h2', {}, title), h('p', { class: 'muted' }, subtitle),
  meters.length ? h('div', { class: 'grid2' }, meters) : h('p', { class: 'muted' }, 'No limits.'),
  editable ? h('details', {}, h('summary', {}, 'Edit'),
    field('Limits (JSON)', text, 'requests_per_minute, tokens_per_minute, input_tokens_per_minute, output_tokens_per_minute, concurrent, budget {amount, period: day|week|month|total, alert_at_percent}, models, per_user {…}. {} removes them.'),
    out, h('div', { class: 'row end' }, save)) : null);
}

// What the project, the operator's plan and each key may use, and what is used now; the budget
// alerts under them.
async function limitsPage() {
  const operator = state.session.principal === 'operator';
  const [own, keys, events] = await Promise.all([
    api('GET', `${P()}/limits`),
    api('GET', `${P()}/keys`).then((r) => r.data),
    api('GET', `${P()}/limits/events`).then((r) => r.data),
  ]);
  const limited = keys.filter((k) => k.limits);
  const keyViews = await Promise.all(limited.map((k) => api('GET', `${P()}/keys/${k.id}/limits`)));
  const alerts = events.length
    ? h('div', { class: 'table' }, h('table', { 'aria-label': 'Budget alerts' },
      h('thead', {}, h('tr', {}, h('th', {}, 'When'), h('th', {}, 'Alert'), h('th', {}, 'Whose'), h('th', {}, 'Spent'), h('th', {}, 'Budget'))),
      h('tbody', {}, events.map((e) => h('tr', {},
        h('td', { class: 'muted' }, ago(e.at)),
        h('td', {}, h('span', { class: `pill ${e.type === 'budget_exhausted' ? 'bad' : 'warn'}` }, e.type === 'budget_exhausted' ? 'budget spent' : `passed ${e.threshold}`)),
        h('td', {}, `${e.owner}${e.owner === 'key' ? ` ${(keys.find((k) => k.id === e.id) || { name: e.id }).name}` : ''}${e.user ? ` · user ${e.user}` : ''}`),
        h('td', { class: 'mono' }, e.spent), h('td', { class: 'mono' }, `${e.budget} per ${e.period}`))))))
    : h('p', { class: 'muted' }, 'No budget alerts.');
  return h('div', {},
    header('Limits', 'Requests, tokens, requests in flight and spend: what may be used, and what is used now, on every replica.'),
    limitsCard('Project limits', 'Every request of the project counts.', own, `${P()}/limits`, true),
    own.plan || operator
      ? limitsCard('Plan', operator ? 'Set by you, the operator: the project cannot raise it.' : 'Set by the operator: binds besides the project\'s own limits.', own.plan || {}, `${P()}/plan`, operator)
      : null,
    limited.map((k, i) => limitsCard(`Key ${k.name}`, 'Requests with this key count.', keyViews[i], `${P()}/keys/${k.id}/limits`, true)),
    h('div', { class: 'card' }, h('h2', {}, 'Budget alerts'), alerts));
}

// ---------------------------------------------------------------- audit log

function actorOf(e) {
  if (e.actor === 'operator') return 'operator';
  if (e.actor.startsWith('project:')) return 'management key';
  return e.actor;
}

// The project's changes and sign-ins, newest first (the operator may switch to every entry);
// "Older" fetches the next page with `before`.
async function auditPage() {
  const operator = state.session.principal === 'operator';
  const everything = operator && localStorage.getItem('to11.audit.all') === '1';
  const base = everything ? '/audit' : `${P()}/audit`;
  const body = h('tbody');
  const more = h('button', { class: 'small' }, 'Older');
  let next = null;
  const load = async () => {
    const page = await api('GET', `${base}?limit=50${next ? `&before=${encodeURIComponent(next)}` : ''}`);
    for (const e of page.data) {
      const ok = e.outcome === 'ok';
      body.append(h('tr', {},
        h('td', { class: 'muted', title: e.at }, new Date(e.at).toLocaleString()),
        h('td', {}, actorOf(e)),
        h('td', { class: 'mono' }, e.action),
        h('td', { class: 'mono' }, e.target || ''),
        h('td', {}, h('span', { class: `pill ${ok ? 'ok' : 'warn'}` }, e.outcome)),
        h('td', { class: 'mono muted' }, e.source)));
    }
    next = page.next;
    more.hidden = !next;
    return page.data.length;
  };
  more.addEventListener('click', () => busy(more, 'Loading…', load));
  const shown = await load();
  const scope = operator ? h('label', { class: 'row' },
    h('input', {
      type: 'checkbox', checked: everything,
      onchange: (ev) => { localStorage.setItem('to11.audit.all', ev.target.checked ? '1' : '0'); render(); },
    }), 'Every project and failed sign-ins') : null;
  return h('div', {},
    header('Audit log', 'Who changed what, when and from where; sign-ins and failed ones.', scope),
    shown ? h('div', { class: 'table' }, h('table', { 'aria-label': 'Audit log' },
      h('thead', {}, h('tr', {}, h('th', {}, 'When'), h('th', {}, 'Who'), h('th', {}, 'Action'), h('th', {}, 'Target'), h('th', {}, 'Outcome'), h('th', {}, 'From'))),
      body)) : h('div', { class: 'card empty' }, h('p', { class: 'muted' }, 'Nothing recorded yet.')),
    h('div', { class: 'row end', style: 'margin-top:1rem' }, more));
}

// ---------------------------------------------------------------- playground

function gatewayUrl() {
  const saved = localStorage.getItem('to11.gateway');
  let u = saved || state.session.gateway_url || '';
  // A gateway listening on every interface is reached on the host the dashboard came from.
  u = u.replace('://0.0.0.0', `://${location.hostname}`).replace('://[::]', `://${location.hostname}`);
  return u.replace(/\/$/, '');
}

const SHOWN_HEADERS = ['x-to11-layer', 'x-to11-provider', 'x-to11-upstream-model', 'x-to11-route', 'x-to11-function', 'x-to11-attempts', 'x-to11-request-id'];

async function playgroundPage() {
  const { rows } = await callableNames();
  const key = h('input', { type: 'password', value: state.lastKey || '', autocomplete: 'off', placeholder: 'to11_gk_…' });
  const model = h('select', {}, rows.map((r) => h('option', { value: r.name }, `${r.name} (${r.layer})`)));
  const gw = h('input', { value: gatewayUrl(), placeholder: 'http://127.0.0.1:8080' });
  const system = h('input', { placeholder: 'optional' });
  const message = h('textarea', { required: true }, 'Say hello in five words.');
  const stream = h('input', { type: 'checkbox', id: 'pg-stream', checked: true });
  const answer = h('div', { class: 'answer', 'aria-live': 'polite', 'aria-label': 'Answer' });
  const meta = h('dl', { class: 'kv headers' });
  const out = h('div');
  const send = h('button', { class: 'primary', type: 'submit' }, 'Send');
  const form = h('form', {
    class: 'card', 'aria-label': 'Playground',
    onsubmit: (ev) => {
      ev.preventDefault();
      localStorage.setItem('to11.gateway', gw.value);
      busy(send, 'Sending…', () => runChat());
    },
  },
  h('div', { class: 'grid2' }, field('Gateway key', key, state.lastKey ? 'The key you created last in this tab.' : 'A gateway key of this project (Keys page).'), field('Model', model)),
  field('Message', message),
  h('div', { class: 'grid2' }, field('System prompt', system), field('Gateway URL', gw)),
  h('div', { class: 'row' }, h('label', { for: 'pg-stream', style: 'display:flex;gap:.5rem;align-items:center;margin:0;font-weight:500' }, stream, 'Stream the answer'), h('span', { class: 'grow' }), send));

  async function runChat() {
    answer.textContent = '';
    meta.replaceChildren();
    out.replaceChildren();
    const messages = [];
    if (system.value.trim()) messages.push({ role: 'system', content: system.value });
    messages.push({ role: 'user', content: message.value });
    let r;
    try {
      r = await fetch(`${gw.value.replace(/\/$/, '')}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-to11-authorization': `Bearer ${key.value.trim()}` },
        body: JSON.stringify({ model: model.value, messages, stream: stream.checked }),
      });
    } catch (e) {
      out.replaceChildren(errorNotice({ message: `The gateway at ${gw.value} could not be reached (${e.message}).` }, 'No answer'));
      return;
    }
    meta.append(h('dt', {}, 'status'), h('dd', { class: 'mono' }, String(r.status)));
    for (const name of SHOWN_HEADERS) {
      const v = r.headers.get(name);
      if (v) meta.append(h('dt', {}, name), h('dd', { class: 'mono' }, v));
    }
    if (!r.ok) {
      const body = await r.json().catch(() => ({}));
      out.replaceChildren(errorNotice({ message: body.error?.message || `HTTP ${r.status}`, code: body.error?.code }, 'The gateway refused the call'));
      return;
    }
    if (!stream.checked) {
      const body = await r.json();
      answer.textContent = body.choices?.[0]?.message?.content ?? JSON.stringify(body);
      return;
    }
    const reader = r.body.getReader();
    const decoder = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const event = buf.slice(0, i);
        buf = buf.slice(i + 2);
        for (const line of event.split('\n')) {
          if (!line.startsWith('data: ')) continue;
          const data = line.slice(6);
          if (data === '[DONE]') continue;
          let chunk;
          try { chunk = JSON.parse(data); } catch { continue; }
          if (chunk.error) { out.replaceChildren(errorNotice({ message: chunk.error.message, code: chunk.error.code }, 'The stream ended with an error')); continue; }
          answer.textContent += chunk.choices?.[0]?.delta?.content || '';
        }
      }
    }
  }

  return h('div', {},
    header('Playground', 'Send a chat message through the gateway, as an application would.'),
    rows.length ? null : h('div', { class: 'notice info' }, 'Connect a provider first: there is no model to call yet.'),
    form,
    h('div', { class: 'grid2', style: 'margin-top:1rem' },
      h('section', { class: 'card' }, h('h2', {}, 'Answer'), out, answer),
      h('section', { class: 'card' }, h('h2', {}, 'Resolution'), h('p', { class: 'muted', style: 'margin-top:0' }, 'Response headers: how the name resolved and who served it.'), meta)));
}

const VIEWS = {
  providers: (arg) => (arg ? providerPage(arg) : providersPage()),
  models: modelsPage,
  routes: routesPage,
  functions: functionsPage,
  explain: explainPage,
  keys: keysPage,
  limits: limitsPage,
  playground: playgroundPage,
  audit: auditPage,
  usage: usagePage,
  requests: requestsPage,
  operator: operatorPage,
};

export { h, api, P, state, field, errorNotice, header, busy, toast, go, ago, modalDrawer };

boot();
