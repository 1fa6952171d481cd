import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { compactVerify, createLocalJWKSet, type JSONWebKeySet } from 'jose';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import type { ServicePermissions } from '../../../packages/server/dist/store/types.js';
import { ALL_RIGHTS, assertError, startHarness, type Harness } from '../../../packages/server/dist/testing/harness.js';

/*
 * The operator console end to end, in Debian's headless Chromium driven by puppeteer-core (no
 * browser download), against a real `padlock serve` (the test harness: SQLite store, real HTTP).
 * Built by `npm run build` (console/e2e/tsconfig.json), run by scripts/console-test.sh (CI: one line in .ci/run), not by run-tests.mjs: it needs the
 * browser. Screenshots of each screen go to docs/console/*.png (docs/console.md shows them).
 */

const CHROMIUM = process.env['PADLOCK_CHROMIUM'] ?? '/usr/bin/chromium';
const SHOTS = fileURLToPath(new URL('../../../docs/console/', import.meta.url));
const OPERATOR: ServicePermissions = { read: [], create: false, rotate: false, shred: true, hold: true, admin: true };
const USER = 'ann-1842';

describe('console in headless Chromium', () => {
  let h: Harness;
  let browser: Browser;
  let page: Page;
  let profile: string;
  /** What the page's own script reports: errors, CSP violations. It must stay empty. */
  const pageProblems: string[] = [];

  before(async () => {
    h = await startHarness({
      services: [
        { serviceId: 'app', permissions: ALL_RIGHTS },
        { serviceId: 'operator', permissions: OPERATOR },
      ],
      config: { console: { enabled: true } },
    });
    assert.equal((await h.call('POST', '/v1/keychains', { json: { userId: USER } })).status, 201);
    assert.equal((await h.call('POST', `/v1/keychains/${USER}/categories/profile/rotate`)).status, 201);
    profile = mkdtempSync(join(tmpdir(), 'padlock-chromium-'));
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      userDataDir: profile,
      // --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
      args: ['--no-sandbox', '--disable-dev-shm-usage', '--no-first-run', '--disable-extensions'],
    });
    page = await browser.newPage();
    await page.setViewport({ width: 1366, height: 900 });
    await browser
      .defaultBrowserContext()
      .overridePermissions(h.url, ['clipboard-read', 'clipboard-write', 'clipboard-sanitized-write']);
    page.on('pageerror', (error) => pageProblems.push(`pageerror: ${String(error)}`));
    page.on('console', (message) => {
      // The refused requests the test makes on purpose log "Failed to load resource" (403/401); anything else counts.
      if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
        pageProblems.push(`console: ${message.text()}`);
      }
    });
    mkdirSync(SHOTS, { recursive: true });
  });

  after(async () => {
    await browser?.close();
    await h?.close();
    if (profile !== undefined) rmSync(profile, { recursive: true, force: true });
  });

  const shot = (name: string): Promise<unknown> =>
    page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

  const textOf = (selector: string): Promise<string> =>
    page.$eval(selector, (element) => (element as HTMLElement).innerText);

  async function waitForText(selector: string, pattern: RegExp): Promise<string> {
    await page.waitForFunction(
      (sel: string, source: string) => {
        const element = document.querySelector(sel);
        return element !== null && new RegExp(source).test((element as HTMLElement).innerText);
      },
      { timeout: 10_000 },
      selector,
      pattern.source,
    );
    return textOf(selector);
  }

  /** One desk action with its typed confirmation; resolves to the outcome line once it matches. */
  async function act(
    action: string,
    fields: { category?: string; reason?: string; grace?: string },
    expected: RegExp,
  ): Promise<string> {
    await page.select('#action', action);
    await page.waitForSelector('#confirmation');
    if (fields.category !== undefined) await page.select('#action-category', fields.category);
    if (fields.reason !== undefined) await page.type('#action-reason', fields.reason);
    if (fields.grace !== undefined) {
      await page.$eval('#action-grace', (input) => ((input as HTMLInputElement).value = ''));
      await page.type('#action-grace', fields.grace);
    }
    assert.ok(await page.$eval('#act', (b) => (b as HTMLButtonElement).disabled), 'disabled before the confirmation');
    await page.type('#confirmation', USER.slice(0, -1));
    assert.ok(await page.$eval('#act', (b) => (b as HTMLButtonElement).disabled), 'disabled on a partial confirmation');
    await page.type('#confirmation', USER.slice(-1));
    await page.click('#act');
    return waitForText('#outcome', expected);
  }

  async function sessionCookie(): Promise<string> {
    const cookies = await browser.cookies();
    const cookie = cookies.find((c) => c.name === 'padlock-console');
    assert.ok(cookie !== undefined, 'the session cookie is set');
    return `${cookie.name}=${cookie.value}`;
  }

  it('refuses a service credential at sign-in', async () => {
    await page.goto(`${h.url}/console/`);
    await page.waitForSelector('#credential');
    await shot('sign-in');
    await page.type('#credential', h.credentials['app']!);
    await page.click('#sign-in');
    assert.match(await waitForText('#sign-in-error', /PERMISSION_DENIED/), /operator credential/);
    assert.equal((await browser.cookies()).length, 0, 'no cookie for a service credential');
  });

  it('signs in with the operator credential into an HttpOnly, SameSite=Strict session', async () => {
    await page.type('#credential', h.credentials['operator']!);
    await page.keyboard.press('Enter');
    assert.equal(await waitForText('#operator', /operator/), 'operator');
    const [cookie] = await browser.cookies();
    assert.ok(cookie !== undefined);
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Strict');
    assert.equal(await page.evaluate(() => document.cookie), '', "the page's script cannot read the session cookie");
  });

  it('finds a user: categories, versions and states', async () => {
    await page.type('#user-id', USER);
    await page.click('#look-up');
    const table = await waitForText('#categories', /advertising/);
    assert.match(table, /profile\s+active\s+v1 active, v2 active/);
    assert.match(table, /payments\s+active\s+v1 active/);
  });

  it('places a hold, sees a shred refused under it, and releases it', async () => {
    assert.match(await act('place-hold', { category: '', reason: 'case 2026-114' }, /placed/), /^Hold hold-/);
    assert.match(await waitForText('#holds', /in_force/), /case 2026-114/);
    assert.match(await act('shred-category', { category: 'profile' }, /Refused/), /LEGAL_HOLD/);
    assert.match(await textOf('#categories'), /profile\s+active/, 'nothing was shredded');
    await shot('deletion-desk');
    assert.match(await act('release-hold', {}, /released/), /Hold released/);
    await waitForText('#holds', /released/);
  });

  it('schedules a shred and cancels it', async () => {
    assert.match(await act('schedule', { category: 'payments', grace: '3600' }, /scheduled/), /scheduled for 20/);
    assert.match(await waitForText('#categories', /pending_deletion/), /payments\s+pending_deletion/);
    assert.match(await act('cancel-schedule', {}, /cancelled/), /cancelled/);
    assert.match(await waitForText('#categories', /payments\s+active/), /payments\s+active/);
    assert.match(await textOf('#schedules'), /cancelled/);
  });

  it('shreds a category and verifies its receipt in the page', async () => {
    assert.match(await act('shred-category', { category: 'profile' }, /Shredded/), /Receipt [0-9a-f]{32}/);
    const status = await waitForText('#receipt-status', /verified|NOT verify/);
    assert.match(status, /verified in this page: Ed25519 signature by key/);
    assert.match(status, /Shredded profile v1, v2 at 20[0-9-]+T[0-9:.]+Z, requested by operator\./);
    assert.match(await waitForText('#categories', /shredded/), /profile\s+shredded\s+v1 shredded, v2 shredded/);
    // The receipts table verifies the stored receipt too, fetched by id.
    await page.click('#receipts button');
    await waitForText('#receipts', /verified/);
    // And the test checks the signature itself, apart from the page.
    const metadata = await h.call('GET', `/v1/keychains/${USER}`);
    const [stored] = (metadata.body as { receipts: { id: string }[] }).receipts;
    const receipt = await h.call('GET', `/v1/receipts/${stored!.id}`);
    const jwks = (await h.call('GET', '/v1/receipts/keys', { authorization: null })).body as JSONWebKeySet;
    const { payload } = await compactVerify((receipt.body as { jws: string }).jws, createLocalJWKSet(jwks));
    assert.equal((JSON.parse(Buffer.from(payload).toString('utf8')) as { sub: string }).sub, USER);
    await shot('deletion-desk-receipt');
  });

  /** Presses Tab until the element with this id has the focus: it is reachable by keyboard. */
  async function tabTo(id: string): Promise<void> {
    for (let i = 0; i < 40; i++) {
      await page.keyboard.press('Tab');
      if ((await page.evaluate(() => document.activeElement?.id)) === id) return;
    }
    assert.fail(`#${id} is not reachable with Tab`);
  }

  it('creates a service whose credential, copied from the page, reads keys', async () => {
    // By keyboard: Tab to the Services button, Enter.
    await page.$eval('#nav-desk', (button) => (button as HTMLButtonElement).focus());
    await tabTo('nav-services');
    await page.keyboard.press('Enter');
    await waitForText('#services', /operator/);
    await page.type('#new-service-id', 'newsletter');
    await page.click('#new-right-read-payments');
    await page.click('#create');
    await page.waitForSelector('#fresh-credential');
    const credential = await page.$eval('#fresh-credential', (input) => (input as HTMLInputElement).value);
    assert.match(credential, /^pl1\.newsletter\.[0-9a-f]{16}\.[A-Za-z0-9_-]{43}$/);
    await page.click('#copy-credential');
    await waitForText('#copy-credential', /Copied/);
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), credential, 'the copy button copied it');
    assert.match(await waitForText('#services', /newsletter/), /newsletter\s+read:payments/);
    await shot('services');
    // Used from outside the browser, as a service would.
    const keys = await fetch(`${h.url}/v1/keys/${USER}?categories=payments`, {
      headers: { authorization: `Bearer ${credential}` },
    });
    assert.equal(keys.status, 200);
    const body = (await keys.json()) as { categories: { category: string; keys: { key: string }[] }[] };
    assert.equal(body.categories[0]?.category, 'payments');
    assert.match(body.categories[0]?.keys[0]?.key ?? '', /^[A-Za-z0-9_-]{43}$/);
    // Granting it admin as well is refused by the server: it reads keys.
    await page.select('#right-newsletter', 'admin');
    await page.click('#grant-newsletter');
    assert.match(await waitForText('#services-error', /INVALID_PERMISSIONS/), /return key bytes/);
  });

  it('shows live health charts from /metrics, and says when no canary is configured', async () => {
    await page.click('#nav-health');
    // Traffic for the charts: a service reading keys (L1 cache hits after the first) for a few scrapes.
    const until = Date.now() + 5000;
    while (Date.now() < until) {
      const reads = Array.from({ length: 20 }, () => h.call('GET', `/v1/keys/${USER}?categories=payments`));
      for (const reply of await Promise.all(reads)) assert.equal(reply.status, 200);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.match(await waitForText('#chart-rate', /all [1-9][0-9.]*\/s/), /Requests per second/);
    await waitForText('#chart-latency', /p50 [0-9.]+ ms/);
    assert.match(await waitForText('#chart-cache', /l1 [0-9.]+ %/), /l1 (9[0-9]|100)(\.[0-9]*)? %/);
    const drawn = await page.$eval(
      '#chart-rate polyline',
      (line) => line.getAttribute('points')?.split(' ').length ?? 0,
    );
    assert.ok(drawn >= 2, `the rate chart draws a line (${drawn} points)`);
    assert.match(await textOf('#canary'), /No canary configured/);
    await shot('health');
  });

  it('never gives a console session key bytes: the server refuses it, whatever the page does', async () => {
    const cookie = await sessionCookie();
    const direct = await h.call('GET', `/v1/keys/${USER}?categories=payments`, {
      authorization: null,
      headers: { cookie },
    });
    assertError(direct, 403, 'OPERATOR_ROUTE_DENIED');
    const csrf = await h.call('GET', '/console/api/session', { authorization: null, headers: { cookie } });
    const token = (csrf.body as { csrfToken: string }).csrfToken;
    const batch = await h.call('POST', '/v1/keys/batch-get', {
      authorization: null,
      headers: { cookie, 'x-padlock-csrf': token },
      json: { userIds: [USER] },
    });
    assertError(batch, 403, 'OPERATOR_ROUTE_DENIED');
    const fromPage = await page.evaluate(async (user: string) => {
      const reply = await fetch(`/v1/keys/${user}`, { credentials: 'same-origin' });
      return { status: reply.status, text: await reply.text() };
    }, USER);
    assert.equal(fromPage.status, 403);
    assert.match(fromPage.text, /OPERATOR_ROUTE_DENIED/);
    assert.doesNotMatch(fromPage.text, /[A-Za-z0-9_-]{43}/);
  });

  it('refuses a state-changing request without the CSRF token', async () => {
    const cookie = await sessionCookie();
    const hold = await h.call('POST', `/v1/keychains/${USER}/holds`, {
      authorization: null,
      headers: { cookie },
      json: { reason: 'forged' },
    });
    assertError(hold, 403, 'CSRF_TOKEN_INVALID');
    const fromPage = await page.evaluate(async (user: string) => {
      const reply = await fetch(`/v1/keychains/${user}/categories/payments`, {
        method: 'DELETE',
        credentials: 'same-origin',
      });
      return reply.status;
    }, USER);
    assert.equal(fromPage, 403);
    const metadata = await h.call('GET', `/v1/keychains/${USER}`);
    const categories = (metadata.body as { categories: { category: string; state: string }[] }).categories;
    assert.equal(categories.find((c) => c.category === 'payments')?.state, 'active', 'nothing was shredded');
  });

  it('signs out, and the cookie opens nothing after', async () => {
    const cookie = await sessionCookie();
    await page.click('#sign-out');
    await page.waitForSelector('#credential');
    assertError(
      await h.call('GET', `/v1/keychains/${USER}`, { authorization: null, headers: { cookie } }),
      401,
      'UNAUTHENTICATED',
    );
    assert.deepEqual(pageProblems, [], 'no script error or CSP violation in the page');
  });
});
