// Browser tests of the tandem dashboard: Debian's chromium, headless, driven
// by playwright-core against `tandem serve` on a demo database. Run by
// .ci/e2e, which sets up the server and passes everything in the environment:
//   TANDEM_URL, TANDEM_BIN, TANDEM_DB, TANDEM_PLAYBOOK, TOKEN_SALES,
//   TOKEN_VIEWER, TOKEN_ADMIN, AS_OF, ARTIFACTS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set; run the tests through .ci/e2e`);
  return v;
};
const BASE = env('TANDEM_URL');
const AS_OF = env('AS_OF');
const ARTIFACTS = env('ARTIFACTS');
const TOKENS = { sales: env('TOKEN_SALES'), viewer: env('TOKEN_VIEWER'), admin: env('TOKEN_ADMIN') };

let browser;
let profile;
const problems = [];

before(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  profile = fs.mkdtempSync(path.join(os.tmpdir(), 'tandem-e2e-chromium-'));
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
});

after(async () => {
  await browser?.close();
  if (profile) fs.rmSync(profile, { recursive: true, force: true });
});

/** A page signed in with a role's token (the profile's cookies are
 * cleared first, so one role's session never leaks into another's test). */
async function signIn(role) {
  await browser.clearCookies();
  const page = await browser.newPage();
  page.on('console', (m) => {
    // The one 403 the tests ask for is not a problem.
    const expected = page.url().endsWith('/playbook') && /status of 403/.test(m.text());
    if (m.type() === 'error' && !expected) problems.push(`${role} ${page.url()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`${role} ${page.url()}: ${e.message}`));
  await page.goto(`${BASE}/login`);
  await page.fill('input[name=token]', TOKENS[role]);
  await Promise.all([page.waitForURL(`${BASE}/`), page.click('button[type=submit]')]);
  return { page, close: () => page.close() };
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}

function cli(...args) {
  return execFileSync(env('TANDEM_BIN'), [
    '--playbook', env('TANDEM_PLAYBOOK'), '--database-url', env('TANDEM_DB'), ...args,
  ], { encoding: 'utf8' });
}

async function api(pathname, token) {
  const res = await fetch(`${BASE}${pathname}`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200, `${pathname}: ${res.status}`);
  return res.json();
}

test('a wrong token is refused and a right one signs in', async () => {
  const page = await browser.newPage();
  await page.goto(`${BASE}/`);
  assert.match(page.url(), /\/login\?next=/);
  await page.fill('input[name=token]', 'tdm_not_a_token');
  await page.click('button[type=submit]');
  await page.waitForSelector('.flash.error');
  assert.match(await page.textContent('.flash.error'), /unknown or revoked/);
  await shot(page, 'login');
  await page.close();
});

test('the overview shows the same scorecard as `tandem scorecard`', async () => {
  const { page, close } = await signIn('viewer');
  await page.goto(`${BASE}/?as_of=${encodeURIComponent(AS_OF)}`);
  const tiles = await page.$$eval('#scorecard li[data-goal]', (els) => els.map((e) => ({
    goal: e.dataset.goal, actual: e.dataset.actual, target: e.dataset.target,
  })));
  const goals = JSON.parse(cli('scorecard', '--format', 'json', '--as-of', AS_OF))
    .filter((r) => r.kind === 'goal');
  assert.ok(goals.length > 0, 'the demo playbook has goals');
  assert.equal(tiles.length, goals.length);
  goals.forEach((g, i) => {
    assert.equal(tiles[i].goal, g.name);
    assert.equal(Number(tiles[i].actual), Number(g.actual), `${g.name} actual`);
    assert.equal(Number(tiles[i].target), Number(g.target), `${g.name} target`);
  });
  // The theme toggle flips and remembers the theme.
  const before = await page.evaluate(() => document.documentElement.dataset.theme || '');
  await page.click('#theme-toggle');
  const after = await page.evaluate(() => document.documentElement.dataset.theme);
  assert.ok(after === 'dark' || after === 'light');
  assert.notEqual(after, before);
  await page.click('#theme-toggle');
  await shot(page, 'overview');
  // Laptop and phone widths of the top of the page, for the README.
  await page.screenshot({ path: path.join(ARTIFACTS, 'overview-laptop.png') });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: path.join(ARTIFACTS, 'overview-phone.png') });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the overview is ${overflow}px wider than a phone`);
  await close();
});

test('filtering the waterfall changes its numbers', async () => {
  const { page, close } = await signIn('viewer');
  await page.goto(`${BASE}/waterfall`);
  const all = await page.textContent('#funnel-table tbody');
  const first = await page.$eval('#funnel-table tbody tr td:nth-child(2)', (td) => td.textContent);
  const source = await page.$eval('select[name=source] option:nth-child(2)', (o) => o.value);
  await page.selectOption('select[name=source]', source);
  await Promise.all([page.waitForURL(/source=/), page.click('form.filters button[type=submit]')]);
  assert.match(page.url(), new RegExp(`source=${encodeURIComponent(source)}`));
  const filtered = await page.textContent('#funnel-table tbody');
  const firstFiltered = await page.$eval('#funnel-table tbody tr td:nth-child(2)', (td) => td.textContent);
  assert.notEqual(filtered, all);
  const n = (s) => Number(s.replace(/,/g, ''));
  assert.ok(n(firstFiltered) < n(first), `${firstFiltered} < ${first}`);
  assert.match(await page.textContent('#funnel-section .note'), new RegExp(`source ${source}`));
  await shot(page, 'waterfall');
  await close();
});

test('sales accepts one MQL and rejects another in place, and both land in history', async () => {
  const { page, close } = await signIn('sales');
  await page.goto(`${BASE}/sla`);
  const ids = await page.$$eval('#inbox article.lead', (els) => els.slice(0, 2).map((e) => e.dataset.person));
  assert.equal(ids.length, 2, 'two MQLs are waiting');
  await shot(page, 'sla');
  const url = page.url();
  const card = (id) => page.locator(`#inbox article.lead[data-person="${id}"]`);

  await card(ids[0]).locator('button[value=accept]').click();
  await card(ids[0]).locator('.flash.ok').waitFor();
  assert.match(await card(ids[0]).textContent(), /Accepted by sales: now in sal/);

  const reject = card(ids[1]).locator('form.reject');
  await reject.locator('select[name=reason]').selectOption('not_icp');
  await reject.locator('input[name=note]').fill('a student project');
  await reject.locator('button[value=reject]').click();
  await card(ids[1]).locator('.flash.ok').waitFor();
  assert.match(await card(ids[1]).textContent(), /Rejected by sales: now in disqualified/);
  assert.equal(page.url(), url, 'the page did not reload');
  await shot(page, 'sla-after-moves');

  const a = (await api(`/api/v1/people/${encodeURIComponent(ids[0])}`, TOKENS.viewer)).history.at(-1);
  assert.equal(a.to, 'sal');
  assert.equal(a.actor, 'sales');
  const r = (await api(`/api/v1/people/${encodeURIComponent(ids[1])}`, TOKENS.viewer)).history.at(-1);
  assert.equal(r.to, 'disqualified');
  assert.equal(r.reason, 'not_icp');
  assert.equal(r.note, 'a student project');
  // The CLI reads the same history.
  const hist = cli('history', ids[1]);
  assert.match(hist, /disqualified/);
  assert.match(hist, /not_icp/);
  await close();
});

test('a viewer is offered no moves', async () => {
  const { page, close } = await signIn('viewer');
  await page.goto(`${BASE}/sla`);
  assert.ok(await page.locator('#inbox article.lead').count() > 0);
  assert.equal(await page.locator('#inbox button[value=accept]').count(), 0);
  await close();
});

test('a sales token cannot open the playbook page', async () => {
  const { page, close } = await signIn('sales');
  assert.equal(await page.locator('nav a', { hasText: 'Playbook' }).count(), 0);
  const res = await page.goto(`${BASE}/playbook`);
  assert.equal(res.status(), 403);
  assert.match(await page.textContent('main'), /sales role cannot see the playbook/);
  await shot(page, 'playbook-403-sales');
  await close();
});

test('every page renders for admin, with charts and their tables', async () => {
  const { page, close } = await signIn('admin');
  for (const [p, name] of [['/stalled', 'stalled'], ['/attribution', 'attribution'], ['/plan', 'plan'], ['/gaps', 'gaps'], ['/playbook', 'playbook']]) {
    const res = await page.goto(`${BASE}${p}`);
    assert.equal(res.status(), 200, p);
    if (p !== '/playbook') {
      assert.ok(await page.locator('main svg.chart').count() > 0, `${p} has a chart`);
      assert.ok(await page.locator('main table').count() > 0, `${p} has a table`);
    }
    await shot(page, name);
  }
  await close();
});

/** Fails when the page is wider than a phone. */
async function fitsPhone(page, what) {
  const size = page.viewportSize();
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `${what} is ${overflow}px wider than a phone`);
  await page.screenshot({ path: path.join(ARTIFACTS, `${what}-phone.png`) });
  await page.setViewportSize(size);
}

test('sales adds a feedback item, sees it on the board and in the API, and moves it', async () => {
  const { page, close } = await signIn('sales');
  await page.goto(`${BASE}/feedback`);
  const title = `Webinar leads lack phone numbers ${Date.now()}`;
  await page.locator('#add-feedback summary').click();
  const form = page.locator('#feedback-new');
  await form.locator('select[name=kind]').selectOption('obstacle');
  await form.locator('select[name=team]').selectOption('sales');
  await form.locator('input[name=title]').fill(title);
  await form.locator('textarea[name=body]').fill('Half of last week\'s webinar MQLs have no phone.');
  await Promise.all([page.waitForURL(/\/feedback(\?[^#]*)?#fb-\d+$/), form.locator('button[type=submit]').click()]);
  const id = Number(page.url().split('#fb-')[1]);
  const card = page.locator(`#fb-${id}`);
  assert.match(await page.locator('#col-open').textContent(), new RegExp(title));
  assert.match(await card.locator('.meta').first().textContent(), /sales · sales/);
  // The API has the same item, by the signed-in token's name.
  const item = await api(`/api/v1/feedback/${id}`, TOKENS.viewer);
  assert.equal(item.title, title);
  assert.equal(item.kind, 'obstacle');
  assert.equal(item.team, 'sales');
  assert.equal(item.status, 'open');
  // Comment, then move it to in progress.
  await card.locator('details.thread summary').click();
  await card.locator('textarea[name=body]').fill('Marketing adds a phone field to the form.');
  // Each form posts and is redirected back to the board (a new GET).
  const reloaded = () => page.waitForResponse((r) => r.request().method() === 'GET' && new URL(r.url()).pathname === '/feedback');
  await Promise.all([reloaded(), card.locator('details.thread button[type=submit]').click()]);
  await page.waitForLoadState('load');
  await page.locator(`#fb-${id} details.thread summary`).click();
  assert.match(await page.locator(`#fb-${id} .comments`).textContent(), /Marketing adds a phone field/);
  await page.locator(`#fb-${id} form.move select[name=status]`).selectOption('in_progress');
  await Promise.all([reloaded(), page.locator(`#fb-${id} form.move button`).click()]);
  await page.waitForLoadState('load');
  await page.locator(`#col-in_progress #fb-${id}`).waitFor();
  assert.equal((await api(`/api/v1/feedback/${id}`, TOKENS.viewer)).status, 'in_progress');
  assert.match(cli('feedback', 'list', '--format', 'json'), new RegExp(title));
  await shot(page, 'feedback');
  await fitsPhone(page, 'feedback');
  await close();
  // A viewer sees the board without forms.
  const v = await signIn('viewer');
  await v.page.goto(`${BASE}/feedback`);
  assert.match(await v.page.locator('#col-in_progress').textContent(), new RegExp(title));
  assert.equal(await v.page.locator('#feedback-new').count(), 0);
  assert.equal(await v.page.locator('form.move').count(), 0);
  await v.close();
});

test('the weekly report page shows the numbers of `tandem report --format json`', async () => {
  const { page, close } = await signIn('viewer');
  // The page and its two framed documents each build the report: slow on a
  // debug build on a busy machine.
  await page.goto(`${BASE}/weekly?as_of=${encodeURIComponent(AS_OF)}`, { timeout: 180000 });
  const report = JSON.parse(cli('report', '--format', 'json', '--as-of', AS_OF));
  assert.equal(await page.$eval('select[name=week]', (s) => s.value), report.week);
  const mql = report.waterfall.find((r) => r.stage === 'mql');
  const row = page.locator('#weekly-flow tbody tr', { hasText: mql.name });
  const cells = await row.locator('td').allTextContents();
  const n = (s) => Number(s.replace(/,/g, ''));
  assert.equal(n(cells[1]), mql.this_week, 'MQLs this week');
  assert.equal(n(cells[2]), mql.last_week, 'MQLs last week');
  assert.ok(await page.locator('main svg.chart').count() > 0, 'the week has a chart');
  assert.equal(await page.locator('#decision-new').count(), 0, 'a viewer is offered no decision form');
  // The framed e-mail report carries the same week and number.
  const frame = page.frameLocator('#report-frame');
  await frame.locator('body').waitFor();
  const text = await frame.locator('body').textContent();
  assert.match(text, new RegExp(report.week));
  assert.match(text, new RegExp(`${mql.name}\\s*${mql.this_week}\\b`));
  const agenda = page.frameLocator('#agenda-frame');
  await agenda.locator('body').waitFor();
  assert.match(await agenda.locator('body').textContent(), /[Aa]genda/);
  await shot(page, 'weekly');
  await fitsPhone(page, 'weekly');
  await close();
});

test('sales records an action item on the weekly page, sees it listed and marks it done', async () => {
  const { page, close } = await signIn('sales');
  // Recorded now, so the page as of now (not AS_OF) lists it as open.
  await page.goto(`${BASE}/weekly`, { timeout: 180000 });
  const text = `Call every webinar lead within a day ${Date.now()}`;
  await page.locator('#add-decision summary').click();
  const form = page.locator('#decision-new');
  await form.locator('select[name=kind]').selectOption('action');
  await form.locator('textarea[name=text]').fill(text);
  await form.locator('input[name=owner]').fill('sam');
  await form.locator('input[name=due]').fill('2026-12-04');
  await Promise.all([
    page.waitForURL(/\/weekly\?[^#]*recorded=\d+#decision-\d+$/, { timeout: 180000 }),
    form.locator('button[type=submit]').click(),
  ]);
  const id = Number(page.url().split('#decision-')[1]);
  const row = page.locator(`#weekly-decisions tr#decision-${id}`);
  const cells = await row.locator('td').allTextContents();
  assert.deepEqual(cells.slice(0, 3), ['action', text, 'sam']);
  assert.match(cells[3], /^2026-12-04/);
  assert.match(await page.textContent('#decision-note'), new RegExp(`Recorded action item #${id}: ${text}`));
  // The CLI reads the same decisions log.
  const listed = JSON.parse(cli('decision', 'list', '--format', 'json')).find((d) => Number(d.id) === id);
  assert.equal(listed?.text, text);
  assert.equal(listed?.kind, 'action');
  await shot(page, 'weekly-decision');
  // Mark it done: it leaves the open list and the page says where it is listed.
  await Promise.all([
    page.waitForURL(new RegExp(`/weekly\\?[^#]*done=${id}#decisions-section$`), { timeout: 180000 }),
    row.locator('button', { hasText: 'Mark done' }).click(),
  ]);
  assert.equal(await page.locator(`#weekly-decisions tr#decision-${id}`).count(), 0);
  assert.match(await page.textContent('#decision-note'), new RegExp(`Marked action item #${id} done`));
  assert.equal(JSON.parse(cli('decision', 'list', '--format', 'json')).filter((d) => Number(d.id) === id).length, 0);
  await close();
});

test('the target accounts page lists what /api/v1/targets lists', async () => {
  const { page, close } = await signIn('admin');
  await page.goto(`${BASE}/targets`, { timeout: 120000 });
  const { targets } = await api('/api/v1/targets', TOKENS.viewer);
  assert.ok(targets.length > 0, 'the demo has a target list');
  assert.equal(await page.locator('#targets-table tbody tr').count(), targets.length);
  const tier1 = targets.filter((t) => t.tier === 1).length;
  const cells = await page.locator('#targets-tiers tbody tr', { hasText: /^\s*1/ }).first().locator('td').allTextContents();
  assert.equal(Number(cells[1].replace(/,/g, '')), tier1, 'tier-1 accounts');
  assert.ok(await page.locator('main svg.chart').count() > 0);
  assert.equal(await page.locator('#target-form').count(), 1, 'admin may edit the list');
  await shot(page, 'targets');
  await fitsPhone(page, 'targets');
  await close();
  const s = await signIn('sales');
  await s.page.goto(`${BASE}/targets`, { timeout: 120000 });
  assert.equal(await s.page.locator('#target-form').count(), 0, 'sales is offered no edit');
  await s.close();
});

test('no page logged a script or CSP error', () => {
  assert.deepEqual(problems, []);
});
