// The dashboard, end to end in a real browser: playwright-core driving Debian's chromium (headless)
// against a running control plane and gateway whose provider is a mock OpenAI-compatible upstream.
// Started by tests/tests/dashboard.rs, which passes:
//   TO11_API (dashboard URL), TO11_ADMIN_TOKEN, TO11_MOCK_BASE (the mock's /v1 URL),
//   TO11_MOCK_KEY (the key the mock accepts), TO11_SHOTS (screenshot folder), CHROMIUM (binary).
// Every step asserts what a user would see; a failure exits non-zero with the step's name.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const env = (k) => { const v = process.env[k]; if (!v) throw new Error(`${k} is not set`); return v; };
const API = env('TO11_API');
const TOKEN = env('TO11_ADMIN_TOKEN');
const MOCK_BASE = env('TO11_MOCK_BASE');
const MOCK_KEY = env('TO11_MOCK_KEY');
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
const shot = (name) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
function check(cond, what) { if (!cond) throw new Error(`${step}: ${what}`); }
async function run(name, fn) {
  step = name;
  await fn();
  console.log(`ok   ${name}`);
}

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
    await page.getByRole('heading', { name: 'No routes yet' }).waitFor();
  });

  await run('an operator creates a second project and switches between them', async () => {
    await page.getByRole('button', { name: '+ New project' }).click();
    await page.getByRole('dialog', { name: 'New project' }).getByLabel('Name').fill('Beta');
    await page.getByRole('dialog', { name: 'New project' }).getByRole('button', { name: 'Create project' }).click();
    await page.getByRole('heading', { name: 'Connect your first provider' }).waitFor();
    await page.locator('#project-picker').selectOption('acme');
    await page.getByRole('link', { name: 'OpenAI-compatible' }).waitFor();
    await shot('14-providers');
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
