// The dashboard, end to end in a real browser: playwright-core driving Debian's chromium (headless)
// against a running control plane and gateway whose provider is a mock OpenAI-compatible upstream.
// Started by tests/tests/dashboard.rs, which passes:
//   TO11_API (dashboard URL), TO11_ADMIN_TOKEN, TO11_MOCK_BASE (the mock's /v1 URL),
//   TO11_MOCK_KEY (the key the mock accepts), TO11_FLAKY_BASE (a second mock that answers every
//   chat request with 503), TO11_SHOTS (screenshot folder), CHROMIUM (binary).
// Every step asserts what a user would see; a failure exits non-zero with the step's name.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const env = (k) => { const v = process.env[k]; if (!v) throw new Error(`${k} is not set`); return v; };
const API = env('TO11_API');
const TOKEN = env('TO11_ADMIN_TOKEN');
const MOCK_BASE = env('TO11_MOCK_BASE');
const MOCK_KEY = env('TO11_MOCK_KEY');
const FLAKY_BASE = env('TO11_FLAKY_BASE');
const SHOTS = env('TO11_SHOTS');
mkdirSync(SHOTS, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox'],
});
const context = await browser.newContext({ viewport: { width: 1360, height: 900 } });
const page = await context.newPage();
const consoleErrors = [];
// Refused calls (401 before sign-in, 400 for a bad credential) are expected: the browser logs
// them as "Failed to load resource". Anything else logged as an error is a fault of the page.
page.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) consoleErrors.push(m.text()); });
page.on('pageerror', (e) => consoleErrors.push(String(e)));
page.setDefaultTimeout(10_000);

let step = 'start';
// A full-page screenshot of a long page takes a while on a busy machine: more than the steps' 10 s.
async function shot(name) {
  const started = Date.now();
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true, timeout: 60_000 });
  if (Date.now() - started > 3000) console.log(`     screenshot ${name} took ${Date.now() - started} ms`);
}
function check(cond, what) { if (!cond) throw new Error(`${step}: ${what}`); }
async function run(name, fn) {
  step = name;
  await fn();
  console.log(`ok   ${name}`);
}

/** Polls `probe` until it returns a truthy value, for at most `ms`; returns the last value. */
async function until(what, probe, ms = 20_000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    last = await probe();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`${step}: timed out waiting for ${what}`);
    await page.waitForTimeout(200);
  }
}

/** A call to the control plane's API with the page's session (and its CSRF token). */
const apiCall = (method, path, body) => page.evaluate(async ([m, p, b]) => {
  const s = await (await fetch('/api/v1/session')).json();
  const r = await fetch(`/api/v1${p}`, {
    method: m, headers: { 'content-type': 'application/json', 'x-to11-csrf': s.csrf },
    body: b === null ? undefined : JSON.stringify(b),
  });
  return { status: r.status, body: await r.json().catch(() => null) };
}, [method, path, body ?? null]);

/** A chat request through the gateway, as an application sends it: {status, id}. */
const chat = (key, model, { stream = false, user, tags } = {}) => page.evaluate(async ([k, m, st, u, t]) => {
  const gw = (await (await fetch('/api/v1/session')).json()).gateway_url;
  const headers = { 'content-type': 'application/json', 'x-to11-authorization': `Bearer ${k}` };
  if (t) headers['x-to11-tags'] = JSON.stringify(t);
  const body = { model: m, stream: st, max_tokens: 16, messages: [{ role: 'user', content: 'Say hello.' }] };
  if (u) body.user = u;
  const r = await fetch(`${gw}/v1/chat/completions`, { method: 'POST', headers, body: JSON.stringify(body) });
  await r.text();
  return { status: r.status, id: r.headers.get('x-to11-request-id') };
}, [key, model, stream, user ?? null, tags ?? null]);

/** What the page's charts hold and drew: name → {x, values, nonZero, inked}. */
const charts = () => page.evaluate(() => Object.fromEntries(Object.entries(window.to11Charts || {})
  .filter(([, c]) => c.shown())
  .map(([n, c]) => [n, { x: c.x, values: c.values, nonZero: c.nonZero, inked: c.inked(), drawn: c.drawn }])));

/** Fails unless every named chart holds data and drew it (pixels of its series' colours). */
async function chartsDrawn(names, xCount) {
  const c = await until('the charts to be drawn', async () => {
    const got = await charts();
    return names.every((n) => got[n] && got[n].drawn > 0) && got;
  });
  for (const n of names) {
    check(c[n].nonZero > 0, `chart ${n} holds data (${JSON.stringify(c[n])})`);
    check(c[n].inked > 0, `chart ${n} drew its data (${JSON.stringify(c[n])})`);
    if (xCount) check(c[n].x === xCount, `chart ${n} has ${xCount} buckets (${c[n].x})`);
  }
  return c;
}
const CHARTS = ['requests', 'tokens', 'cost', 'error_rate', 'latency'];

try {
  await run('sign-in page, and a wrong token is refused where the user typed it', async () => {
    await page.goto(API);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await shot('01-sign-in');
    await page.getByLabel('Operator token or management key').fill('to11_op_wrong');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'Sign-in failed' }).waitFor();
    check(!page.url().includes('to11_op'), 'no token in the URL');
  });

  await run('sign in as the operator and create a project', async () => {
    await page.getByLabel('Operator token or management key').fill(TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'No project yet' }).waitFor();
    check(!page.url().includes(TOKEN), 'no token in the URL');
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === 'to11_session');
    check(session && session.httpOnly && session.sameSite === 'Strict', `an HttpOnly, SameSite=Strict session cookie (${JSON.stringify(cookies)})`);
    await page.getByRole('button', { name: 'Create a project' }).click();
    await page.getByLabel('Name').fill('Acme Support');
    await page.getByLabel('Slug').fill('acme');
    await page.getByRole('button', { name: 'Create project' }).click();
    await page.getByRole('heading', { name: 'Connect your first provider' }).waitFor();
    check(await page.locator('#project-picker').inputValue() === 'acme', 'the new project is selected');
    await shot('02-providers-empty');
  });

  await run('the connect drawer: search the catalog, and Escape closes it', async () => {
    await page.getByRole('button', { name: '+ Connect provider' }).click();
    const drawer = page.getByRole('dialog', { name: 'Connect a provider' });
    await drawer.waitFor();
    check(await drawer.locator('.catalog button').count() >= 20, 'the whole catalog is offered');
    await drawer.getByLabel('Search providers').fill('groq');
    check(await drawer.locator('.catalog button').count() === 1, 'search narrows the catalog');
    await shot('03-drawer-catalog');
    await page.keyboard.press('Escape');
    await drawer.waitFor({ state: 'detached' });
  });

  await run('connect an OpenAI-compatible provider: a bad key is shown where to fix it', async () => {
    await page.getByRole('button', { name: '+ Connect provider' }).click();
    const drawer = page.getByRole('dialog');
    await drawer.getByLabel('Search providers').fill('compatible');
    await drawer.locator('.catalog button[data-kind="openai-compatible"]').click();
    await drawer.getByLabel(/^Base URL/).fill(MOCK_BASE);
    await drawer.getByLabel(/^API key/).fill('sk-not-the-right-one');
    await drawer.getByRole('button', { name: 'Validate and discover' }).click();
    await drawer.getByRole('alert').filter({ hasText: 'refused this credential' }).waitFor();
    check(await drawer.getByLabel(/^API key/).getAttribute('aria-invalid') === 'true', 'the key field is marked');
    await shot('04-drawer-invalid-key');
  });

  await run('validate and discover, choose models (search, select all, counts), save', async () => {
    const drawer = page.getByRole('dialog');
    await drawer.getByLabel(/^API key/).fill(MOCK_KEY);
    await drawer.getByRole('button', { name: 'Validate and discover' }).click();
    await drawer.getByText('Credential valid').waitFor();
    await drawer.getByText('2 of 2 selected').waitFor();
    await shot('05-drawer-models');
    await drawer.getByLabel('Search models').fill('mini');
    await drawer.getByLabel('Select all shown').uncheck();
    await drawer.getByText('1 of 2 selected').waitFor();
    await drawer.getByLabel('Search models').fill('');
    await drawer.getByLabel('Select all shown').check();
    await drawer.getByText('2 of 2 selected').waitFor();
    await drawer.getByRole('button', { name: 'Save connection' }).click();
    await page.getByRole('heading', { name: 'OpenAI-compatible' }).waitFor();
    await page.getByText('2 of 2 exposed').waitFor();
    await shot('06-provider-detail');
  });

  await run('provider detail: hide a model, refresh discovery', async () => {
    await page.getByLabel('Expose gpt-4o-mini').uncheck();
    await page.getByText('1 of 2 exposed').waitFor();
    await page.getByRole('button', { name: 'Save exposed models' }).click();
    await page.getByText('Exposed models saved').waitFor();
    await page.getByRole('button', { name: '↻ Refresh discovery' }).click();
    await page.getByText('Discovery refreshed').waitFor();
    await page.getByLabel('Expose gpt-4o-mini').check();
    await page.getByRole('button', { name: 'Save exposed models' }).click();
    await page.getByText('2 of 2 exposed').waitFor();
  });

  await run('credentials: rotate (validated first), add a second, delete it', async () => {
    await page.getByRole('row', { name: /default/ }).getByRole('button', { name: 'Rotate' }).click();
    let dialog = page.getByRole('dialog', { name: 'Rotate default' });
    await dialog.getByLabel(/^API key/).fill('sk-wrong');
    await dialog.getByRole('button', { name: 'Validate and rotate' }).click();
    await dialog.getByRole('alert').filter({ hasText: 'refused this credential' }).waitFor();
    await dialog.getByLabel(/^API key/).fill(MOCK_KEY);
    await dialog.getByRole('button', { name: 'Validate and rotate' }).click();
    await page.getByText('Credential default rotated').waitFor();
    await page.getByRole('button', { name: '+ Add credential' }).click();
    dialog = page.getByRole('dialog', { name: 'Add a credential' });
    await dialog.getByLabel('Identifier').fill('backup');
    await dialog.getByLabel('Name (optional)').fill('Backup key');
    await dialog.getByLabel(/^API key/).fill(MOCK_KEY);
    await dialog.getByRole('button', { name: 'Validate and add' }).click();
    await page.getByRole('row', { name: /Backup key/ }).waitFor();
    await shot('06b-credentials');
    await page.getByRole('row', { name: /Backup key/ }).getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('dialog', { name: 'Delete credential Backup key?' }).getByRole('button', { name: 'Delete' }).click();
    await page.getByText('Credential deleted').waitFor();
    await page.getByRole('row', { name: /Backup key/ }).waitFor({ state: 'detached' });
  });

  let key;
  await run('create a key: shown once, with a copy button', async () => {
    await page.getByRole('link', { name: 'Keys' }).click();
    await page.getByRole('heading', { name: 'New gateway key' }).waitFor();
    await page.getByLabel('Name').fill('support-bot');
    await page.getByRole('button', { name: 'Create key' }).click();
    const dialog = page.getByRole('dialog', { name: 'Key support-bot created' });
    await dialog.waitFor();
    key = await dialog.getByLabel('The new key').inputValue();
    check(key.startsWith('to11_gk_'), `a gateway key (${key.slice(0, 8)}…)`);
    await dialog.getByRole('button', { name: 'Copy' }).waitFor();
    await shot('07-key-created');
    await dialog.getByRole('button', { name: 'Done' }).click();
    await page.getByRole('cell', { name: 'support-bot' }).waitFor();
    check(!(await page.content()).includes(key), 'the key is not shown again');
    await shot('08-keys');
  });

  await run('the playground streams an answer through the gateway, with the resolution headers', async () => {
    await page.getByRole('link', { name: 'Playground' }).click();
    await page.getByRole('heading', { name: 'Playground' }).waitFor();
    check(await page.getByLabel('Gateway key').inputValue() === key, 'the new key is offered');
    await page.getByLabel('Model').selectOption('openai-compatible/gpt-4o');
    await page.getByRole('button', { name: 'Send' }).click();
    await page.locator('.answer').filter({ hasText: /\S/ }).waitFor();
    await page.locator('dd', { hasText: 'openai-compatible' }).first().waitFor();
    const headers = await page.locator('.headers').innerText();
    check(headers.includes('x-to11-layer') && headers.includes('x-to11-provider'), `resolution headers shown: ${headers}`);
    check(headers.includes('x-to11-request-id'), 'the request id is shown');
    await shot('09-playground');
  });

  await run('create a route with the target editor, and explain it', async () => {
    await page.getByRole('link', { name: 'Routes' }).click();
    await page.getByRole('link', { name: '+ New route' }).click();
    const editor = page.getByRole('form', { name: 'Route editor' });
    await editor.getByLabel('Name').fill('support-chat');
    await editor.getByLabel('Strategy').selectOption('fallback');
    await editor.getByLabel('Target 1 model').fill('gpt-4o');
    await editor.getByRole('button', { name: '+ Add target' }).click();
    await editor.getByLabel('Target 2 model').fill('gpt-4o-mini');
    await shot('10-route-editor');
    await editor.getByRole('button', { name: 'Create route' }).click();
    await page.getByRole('cell', { name: 'support-chat' }).waitFor();
    await page.getByText('openai-compatible/gpt-4o → openai-compatible/gpt-4o-mini').waitFor();
    await shot('11-routes');
    await page.getByRole('row', { name: /support-chat/ }).getByRole('link', { name: 'Explain' }).click();
    await page.getByText('Targets, in order').waitFor();
    await page.getByText('openai-compatible/gpt-4o-mini').waitFor();
    await shot('12-explain');
  });

  await run('a function over the route, and every callable name on the Models page', async () => {
    await page.getByRole('link', { name: 'Functions' }).click();
    await page.getByRole('link', { name: '+ New function' }).click();
    const editor = page.getByRole('form', { name: 'Function editor' });
    await editor.getByLabel('Name').fill('answer-ticket');
    await editor.getByLabel('Route').selectOption('support-chat');
    await editor.getByLabel('Defaults (JSON)').fill('{"temperature": 0.2}');
    await editor.getByRole('button', { name: 'Create function' }).click();
    await page.getByRole('cell', { name: 'answer-ticket' }).waitFor();
    await page.getByRole('link', { name: 'Models' }).click();
    for (const name of ['answer-ticket', 'support-chat', 'openai-compatible/gpt-4o', 'gpt-4o-mini']) {
      await page.getByRole('cell', { name, exact: true }).waitFor();
    }
    await shot('13-models');
  });

  await run('the playground through the function', async () => {
    await page.getByRole('link', { name: 'Playground' }).click();
    await page.getByLabel('Model').selectOption('answer-ticket');
    await page.getByLabel('Stream the answer').uncheck();
    await page.getByRole('button', { name: 'Send' }).click();
    await page.locator('dd', { hasText: 'answer-ticket' }).waitFor();
    await page.locator('.answer').filter({ hasText: /\S/ }).waitFor();
  });

  await run('limits: set the project\'s, and see a request counted against them', async () => {
    await page.getByRole('link', { name: 'Limits' }).click();
    await page.getByRole('heading', { name: 'Limits', exact: true }).waitFor();
    const card = page.getByRole('form', { name: 'Project limits' });
    await card.getByText('Edit').click();
    await card.getByLabel('Project limits JSON').fill('{"requests_per_minute": 1000, "budget": {"amount": "5.00", "period": "month", "alert_at_percent": 80}}');
    await card.getByRole('button', { name: 'Save limits' }).click();
    await page.getByText('Project limits saved').waitFor();
    await page.getByRole('form', { name: 'Plan' }).waitFor();
    const gateway = await page.evaluate(() => fetch('/api/v1/session').then((r) => r.json()).then((s) => s.gateway_url));
    const status = await page.evaluate(async ([gw, k]) => (await fetch(`${gw}/v1/chat/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json', 'x-to11-authorization': `Bearer ${k}` },
      body: JSON.stringify({ model: 'openai-compatible/gpt-4o', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] }),
    })).status, [gateway, key]);
    check(status === 200, `a request within the limits is served (got ${status})`);
    // The replica reports what was used within a second; the page shows it once reloaded.
    let shown = '';
    for (let i = 0; i < 30 && !/\b1 of 1000\b/.test(shown); i++) {
      if (i > 0) await page.waitForTimeout(300);
      await page.getByRole('link', { name: 'Keys' }).click();
      await page.getByRole('heading', { name: 'New gateway key' }).waitFor();
      await page.getByRole('link', { name: 'Limits' }).click();
      const group = page.getByRole('form', { name: 'Project limits' }).getByRole('group', { name: 'Requests per minute' });
      await group.waitFor();
      shown = await group.innerText();
    }
    check(/\b1 of 1000\b/.test(shown), `the request is counted (shows: ${shown})`);
    await page.getByRole('form', { name: 'Project limits' }).getByRole('group', { name: 'Budget per month' }).waitFor();
    await shot('16-limits');
  });

  let routed; // the request that went through the route whose first target fails
  let sent = 0;
  await run('traffic through the gateway: tags, end users, streams, errors and a failed attempt', async () => {
    // Negotiated rates for the mock's models, so that requests have a cost.
    const prices = { currency: 'USD', unit: 'per 1M tokens', rows: [
      { kind: 'openai-compatible', model: 'gpt-4o', input: '2.50', output: '10.00', source: 'test', date: '2026-11-30' },
      { kind: 'openai-compatible', model: 'gpt-4o-mini', input: '0.15', output: '0.60', source: 'test', date: '2026-11-30' }] };
    let r = await apiCall('PUT', '/projects/acme/prices', prices);
    check(r.status === 200, `prices set (${JSON.stringify(r)})`);
    // A second provider whose every answer is 503, first in a fallback route.
    r = await apiCall('POST', '/projects/acme/providers', { kind: 'openai-compatible', slug: 'flaky', base_url: FLAKY_BASE, credential: { api_key: MOCK_KEY } });
    check(r.status === 201, `the flaky provider is connected (${JSON.stringify(r)})`);
    r = await apiCall('POST', '/projects/acme/routes', { name: 'resilient', strategy: 'fallback',
      targets: [{ provider: 'flaky', model: 'gpt-4o' }, { provider: 'openai-compatible', model: 'gpt-4o' }],
      policy: { max_retries: 0, cooldown_failures: 0 } });
    check(r.status === 201, `the route is created (${JSON.stringify(r)})`);
    const ids = [];
    const send = async (model, opts, want) => {
      const a = await chat(key, model, opts);
      check(want(a.status), `${model}: unexpected status ${a.status}`);
      if (a.id) ids.push(a.id);
      sent++;
      return a;
    };
    const plenty = [];
    for (let i = 0; i < 48; i++) {
      plenty.push(send(i % 4 === 3 ? 'openai-compatible/gpt-4o-mini' : 'openai-compatible/gpt-4o', {
        stream: i % 3 === 1, user: i % 2 ? 'alice' : 'bob', tags: { team: i % 3 ? 'search' : 'support' },
      }, (s) => s === 200));
      if (plenty.length === 8) await Promise.all(plenty.splice(0));
    }
    await Promise.all(plenty);
    await send('nope', {}, (s) => s === 404);
    await send('flaky/gpt-4o', { user: 'carol' }, (s) => s >= 500);
    // The route reaches the replica within moments: the first calls may not know it yet.
    routed = await until('the route to be served', async () => {
      const a = await chat(key, 'resilient', { user: 'dave', tags: { team: 'search' } });
      sent++;
      if (a.id) ids.push(a.id);
      return a.status === 200 && a;
    });
    check(routed.id, 'the gateway answered with x-to11-request-id');
    // The records reach the usage store in batches, off the request path.
    await until('every request to be recorded', async () => {
      for (const id of ids) {
        const got = await apiCall('GET', `/projects/acme/requests/${id}`);
        if (got.status !== 200) return false;
      }
      return true;
    });
    const rec = await apiCall('GET', `/projects/acme/requests/${routed.id}`);
    check(rec.body.failed.length === 1 && rec.body.attempts === 2, `the routed request failed once, then was answered (${JSON.stringify(rec.body)})`);
  });

  await run('Usage: totals and five charts drawn from the records, 24 hours by hour', async () => {
    await page.getByRole('link', { name: 'Usage' }).click();
    await page.getByRole('heading', { name: 'Usage', exact: true }).waitFor();
    await page.getByLabel('Range').selectOption('24h');
    await page.getByLabel('Interval').selectOption('hour');
    const tile = page.getByRole('group', { name: 'Requests', exact: true });
    await tile.waitFor();
    const total = Number((await tile.locator('.tile-value').innerText()).replace(/\D/g, ''));
    check(total >= sent, `the Requests tile counts every request sent (${total} < ${sent})`);
    const cost = await page.getByRole('group', { name: 'Cost' }).locator('.tile-value').innerText();
    check(/\$0\.0\d*[1-9]/.test(cost), `a cost in dollars (${cost})`);
    const tokens = await page.getByRole('group', { name: 'Tokens' }).locator('.tile-value').innerText();
    check(/^\d{1,3}(,\d{3})*$/.test(tokens) && Number(tokens.replace(/,/g, '')) > 0, `tokens with thousands separators (${tokens})`);
    check(/\d ms/.test(await page.getByRole('group', { name: 'Latency p50 / p95' }).innerText()), 'latency in ms');
    await chartsDrawn(CHARTS, 24);
    const widths = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    check(widths[0] <= widths[1], `the charts fit the window (page ${widths[0]} px wide in ${widths[1]})`);
    await shot('17-usage');
  });

  await run('Usage: 7 days by day, 90 days by hour (2,160 points a series), a custom range', async () => {
    await page.getByLabel('Range').selectOption('7d');
    await page.getByLabel('Interval').selectOption('day');
    await until('daily buckets', async () => (await charts()).requests?.x <= 8);
    await chartsDrawn(CHARTS);
    await shot('18-usage-7d-daily');
    await page.getByLabel('Range').selectOption('90d');
    await page.getByLabel('Interval').selectOption('hour');
    const started = Date.now();
    await until('hourly buckets over 90 days', async () => (await charts()).requests?.x === 2160);
    await chartsDrawn(CHARTS, 2160);
    console.log(`     90 days by hour drawn in ${Date.now() - started} ms`);
    await shot('19-usage-90d-hourly');
    // A custom range of UTC days: yesterday and today, by hour.
    const day = (ms) => new Date(ms).toISOString().slice(0, 10);
    await page.getByLabel('Range').selectOption('custom');
    await page.getByLabel('From (UTC)').fill(day(Date.now() - 86_400_000));
    await page.getByLabel('To (UTC, inclusive)').fill(day(Date.now()));
    await until('hourly buckets over two days', async () => (await charts()).requests?.x === 48);
    await chartsDrawn(CHARTS, 48);
    await page.getByLabel('Range').selectOption('24h');
    await until('hourly buckets over 24 hours', async () => (await charts()).requests?.x === 24);
  });

  await run('Usage: breakdowns by model, key and a tag', async () => {
    await page.getByLabel('Break down by').selectOption('model');
    let table = page.getByRole('table', { name: 'Usage by model' });
    await table.getByRole('cell', { name: 'gpt-4o-mini', exact: true }).waitFor();
    await table.getByRole('cell', { name: 'gpt-4o', exact: true }).waitFor();
    await page.getByLabel('Break down by').selectOption('key');
    table = page.getByRole('table', { name: 'Usage by key' });
    await table.getByRole('cell', { name: 'support-bot', exact: true }).waitFor();
    await page.getByLabel('Break down by').selectOption('tag');
    await page.getByLabel('Tag name').fill('team');
    await page.getByLabel('Tag name').press('Enter');
    await page.getByLabel('Tag name').blur();
    table = page.getByRole('table', { name: 'Usage by tag team' });
    for (const v of ['search', 'support']) await table.getByRole('cell', { name: v, exact: true }).waitFor();
    await table.scrollIntoViewIfNeeded();
    await shot('20-usage-breakdown-tag');
    // A group links to its requests in the log.
    await table.getByRole('link', { name: 'support', exact: true }).click();
    const log = page.getByRole('table', { name: 'Request log' });
    await log.waitFor();
    check(await page.getByLabel('Tag').inputValue() === 'team:support', 'the log is filtered on the tag');
    const tags = await log.locator('tbody tr td:nth-child(6) .small').allInnerTexts();
    check(tags.length > 0 && tags.every((t) => t === 'team=support'), `only the tag's requests (${tags.join(', ')})`);
    await page.getByRole('link', { name: 'Usage' }).click();
    await page.getByLabel('Break down by').selectOption('model');
  });

  await run('Requests: newest first, cursor pages, filters', async () => {
    await page.getByRole('link', { name: 'Requests' }).click();
    const log = page.getByRole('table', { name: 'Request log' });
    await log.waitFor();
    // The filters stay as the link from the Usage page set them: cleared here.
    await page.getByLabel('Tag').fill('');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await until('a first page of 50', async () => (await log.locator('tbody tr').count()) === 50);
    const firstTime = await log.locator('tbody tr').first().locator('td').first().getAttribute('title');
    const lastTime = await log.locator('tbody tr').last().locator('td').first().getAttribute('title');
    check(firstTime >= lastTime, `newest first (${firstTime} then ${lastTime})`);
    await page.getByRole('button', { name: 'Load more' }).click();
    await until('the next page', async () => (await log.locator('tbody tr').count()) > 50);
    const labels = await log.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.getAttribute('aria-label')));
    check(new Set(labels).size === labels.length, 'no request twice across pages');
    await page.getByLabel('Status').selectOption('error');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await until('only failed requests', async () => {
      const st = await log.locator('tbody tr td:nth-child(2) .pill').allInnerTexts();
      return st.length >= 2 && st.every((x) => Number(x) >= 400) && st;
    });
    await log.getByRole('cell', { name: /^404/ }).first().waitFor();
    await page.getByLabel('Status').selectOption('');
    await page.getByLabel('Tag').fill('team:support');
    await page.getByLabel('End user').fill('bob');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await until('only bob\'s support requests', async () => {
      const users = await log.locator('tbody tr td:nth-child(6)').allInnerTexts();
      return users.length > 0 && users.length < 50 && users.every((u) => u === 'bob\nteam=support') && users;
    });
    await shot('21-requests-filtered');
    await page.getByLabel('Tag').fill('team:nobody');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await page.getByRole('heading', { name: 'No request matches these filters' }).waitFor();
    await page.getByLabel('Tag').fill('');
    await page.getByLabel('End user').fill('dave');
    await page.getByRole('button', { name: 'Apply filters' }).click();
    await log.getByRole('row', { name: `Request ${routed.id}` }).waitFor();
  });

  await run('the request drawer: resolution, attempts with their failure, timings, tokens, cost, headers', async () => {
    await page.getByRole('table', { name: 'Request log' }).getByRole('row', { name: `Request ${routed.id}` }).click();
    const drawer = page.getByRole('dialog', { name: 'Request' });
    const attempts = drawer.getByRole('table', { name: 'Attempts' });
    await attempts.waitFor();
    const rows = await attempts.locator('tbody tr').allInnerTexts();
    check(rows.length === 2, `two attempts (${rows.join(' | ')})`);
    check(rows[0].includes('flaky/gpt-4o') && rows[0].includes('the upstream answered 503'), `the first attempt failed with 503 (${rows[0]})`);
    check(rows[1].includes('openai-compatible/gpt-4o') && rows[1].includes('answered'), `the second answered (${rows[1]})`);
    const text = await drawer.innerText();
    for (const want of ['route', 'resilient', 'Time to first byte', 'reported by the provider', 'x-to11-request-id', routed.id, 'x-to11-route', '"team":"search"', 'dave']) {
      check(text.includes(want), `the drawer shows ${want}`);
    }
    check(/Cost\s+\$0\.0\d*[1-9]/.test(text), 'the drawer shows the cost');
    await shot('22-request-drawer');
    await drawer.getByRole('region', { name: 'Headers' }).scrollIntoViewIfNeeded();
    await shot('22b-request-drawer-headers');
    await page.keyboard.press('Escape');
    await drawer.waitFor({ state: 'detached' });
  });

  await run('Keys: each key\'s spend this month; Providers: each provider\'s error rate today', async () => {
    await page.getByRole('link', { name: 'Keys' }).click();
    const row = page.getByRole('table', { name: 'Keys' }).getByRole('row', { name: /support-bot/ });
    await row.waitFor();
    const spend = await row.locator('td.num').innerText();
    check(/\$0\.0\d*[1-9]/.test(spend), `support-bot has spent something this month (${spend})`);
    await shot('23-keys-spend');
    await page.getByRole('link', { name: 'Providers' }).click();
    const flaky = page.getByRole('row').filter({ has: page.getByText('flaky', { exact: true }) });
    await flaky.waitFor();
    check((await flaky.innerText()).includes('100.0%'), `flaky failed every request it answered (${await flaky.innerText()})`);
    const good = page.getByRole('row').filter({ has: page.getByText('openai-compatible', { exact: true }) });
    check(/\b0\.0%/.test(await good.innerText()), `the mock served its requests (${await good.innerText()})`);
    await shot('24-providers-errors');
  });

  await run('the operator\'s view: top projects by spend and by errors', async () => {
    await page.getByRole('link', { name: 'All projects' }).click();
    await page.getByRole('heading', { name: 'All projects' }).waitFor();
    for (const t of ['Top projects by spend', 'Top projects by errors']) {
      await page.getByRole('table', { name: t }).getByRole('cell', { name: 'Acme Support' }).waitFor();
    }
    await chartsDrawn(['operator']);
    await shot('25-operator');
  });

  await run('revoke the key: the gateway refuses it', async () => {
    await page.getByRole('link', { name: 'Keys' }).click();
    await page.getByRole('row', { name: /support-bot/ }).getByRole('button', { name: 'Revoke' }).click();
    await page.getByRole('dialog', { name: 'Revoke support-bot?' }).getByRole('button', { name: 'Revoke key' }).click();
    await page.getByText('Key support-bot revoked').waitFor();
    await page.getByText('No keys yet.').waitFor();
    // The gateway applies the revocation within moments.
    const gateway = await page.evaluate(() => fetch('/api/v1/session').then((r) => r.json()).then((s) => s.gateway_url));
    let status = 0;
    for (let i = 0; i < 50 && status !== 401; i++) {
      status = await page.evaluate(async ([gw, k]) => (await fetch(`${gw}/v1/chat/completions`, {
        method: 'POST', headers: { 'content-type': 'application/json', 'x-to11-authorization': `Bearer ${k}` },
        body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }),
      })).status, [gateway, key]);
      if (status !== 401) await page.waitForTimeout(100);
    }
    check(status === 401, `a revoked key is refused (got ${status})`);
  });

  await run('a cross-site change without the CSRF token is refused', async () => {
    const status = await page.evaluate(async () => (await fetch('/api/v1/projects', {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'Forged' }),
    })).status);
    check(status === 403, `403 without x-to11-csrf (got ${status})`);
  });

  await run('delete the function, then the route, from their editors', async () => {
    await page.getByRole('link', { name: 'Functions' }).click();
    await page.getByRole('row', { name: /answer-ticket/ }).getByRole('link', { name: 'Edit' }).click();
    await page.getByRole('button', { name: 'Delete function' }).click();
    await page.getByRole('dialog', { name: 'Delete function answer-ticket?' }).getByRole('button', { name: 'Delete' }).click();
    await page.getByRole('heading', { name: 'No functions yet' }).waitFor();
    await page.getByRole('link', { name: 'Routes' }).click();
    await page.getByRole('row', { name: /support-chat/ }).getByRole('link', { name: 'Edit' }).click();
    await page.getByRole('button', { name: 'Delete route' }).click();
    await page.getByRole('dialog', { name: 'Delete route support-chat?' }).getByRole('button', { name: 'Delete' }).click();
    // The route of the usage steps stays.
    await page.getByRole('cell', { name: 'resilient', exact: true }).waitFor();
    await page.getByRole('cell', { name: 'support-chat', exact: true }).waitFor({ state: 'detached' });
  });

  await run('an operator creates a second project and switches between them', async () => {
    await page.getByRole('button', { name: '+ New project' }).click();
    await page.getByRole('dialog', { name: 'New project' }).getByLabel('Name').fill('Beta');
    await page.getByRole('dialog', { name: 'New project' }).getByRole('button', { name: 'Create project' }).click();
    await page.getByRole('heading', { name: 'Connect your first provider' }).waitFor();
    await page.getByRole('link', { name: 'Usage' }).click();
    await page.getByRole('heading', { name: 'No requests in this range' }).waitFor();
    await page.getByRole('link', { name: 'Open the playground' }).waitFor();
    await shot('26-usage-empty');
    await page.getByRole('link', { name: 'Providers' }).click();
    await page.locator('#project-picker').selectOption('acme');
    await page.getByRole('link', { name: 'OpenAI-compatible' }).first().waitFor();
    await shot('14-providers');
  });

  await run('with many projects the picker is searched on the server', async () => {
    for (let i = 0; i < 9; i++) {
      const r = await apiCall('POST', '/projects', { name: `Tenant ${String(i).padStart(2, '0')}` });
      check(r.status === 201, `project ${i} created (${r.status})`);
    }
    const paged = await apiCall('GET', '/projects?limit=3', null);
    check(paged.body.data.length === 3 && paged.body.total >= 11, `a bounded page: ${JSON.stringify(paged.body.total)}`);
    await page.getByRole('link', { name: 'Keys' }).click();
    const search = page.locator('#project-search');
    await search.waitFor();
    await search.fill('tenant 07');
    // Refilled from the server: the match and the current project, nothing else.
    await until('the picker holds the match only', async () => {
      const options = await page.locator('#project-picker option').allTextContents();
      return options.includes('Tenant 07') && !options.includes('Tenant 03') && options.length === 2;
    });
    await page.locator('#project-picker').selectOption('tenant-07');
    await until('Tenant 07 is selected', async () => (await page.locator('#project-picker').inputValue()) === 'tenant-07');
    await shot('27-project-search');
    await search.fill('');
    await page.locator('#project-picker').selectOption('acme');
    await until('acme again', async () => (await page.locator('#project-picker').inputValue()) === 'acme');
  });

  await run('the audit log lists the changes made here', async () => {
    await page.getByRole('link', { name: 'Audit log' }).click();
    const log = page.getByRole('table', { name: 'Audit log' });
    await log.waitFor();
    for (const action of ['RevokeGatewayKey', 'IssueGatewayKey', 'CreateRoute', 'DeleteRoute', 'ConnectProvider']) {
      check(await log.getByRole('cell', { name: action, exact: true }).count() > 0, `the audit log shows ${action}`);
    }
    check(!(await log.textContent()).includes(TOKEN), 'no token in the audit log');
    await page.getByLabel('Every project and failed sign-ins').check();
    const all = page.getByRole('table', { name: 'Audit log' });
    await all.getByRole('cell', { name: 'sign_in_failed', exact: true }).first().waitFor();
    check(await all.getByRole('cell', { name: 'sign_in', exact: true }).count() > 0, 'the operator sees the sign-ins');
    await shot('15-audit');
  });

  await run('sign out', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    const status = await page.evaluate(async () => (await fetch('/api/v1/projects')).status);
    check(status === 401, `signed out: the API refuses the old session (got ${status})`);
  });

  check(consoleErrors.length === 0, `no errors in the browser console: ${consoleErrors.join(' | ')}`);
  console.log('all dashboard checks passed');
} catch (e) {
  console.error(`FAIL ${e.message}`);
  await shot('failure').catch(() => {});
  console.error(`console: ${consoleErrors.join(' | ')}`);
  await browser.close();
  process.exit(1);
}
await browser.close();
