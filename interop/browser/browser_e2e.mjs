// Headless Chromium (Debian's /usr/bin/chromium) through callgate's pages,
// driven by playwright-core. Run by cmd/callgate's TestBrowserJoinAndAdmin,
// which starts the gateway and passes, in the environment:
//   BASE            the gateway's base URL
//   LIVE_URL        the join link of a live call
//   ENDED_URL       the join link of an ended call
//   PROVIDER_ORIGIN the (fake, loopback) provider's origin
//   ADMIN_TOKEN     the admin secret
//   ROSTER_NAME     the name the test's provider webhook adds to the roster
//   DEAD_CALL       the call whose card delivery is dead
//   OUT             a directory for screenshots
//   USER_DATA_DIR   a fresh Chromium profile directory
// It prints "WEBHOOK?" when the admin page is open and waits for a line on
// stdin (the test sent the webhook), "END?" when the live call should end
// (the test ends it), and "OK" at the end.
import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';
import { join } from 'node:path';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set`);
  return v;
};
const BASE = env('BASE');
const OUT = env('OUT');
const PROVIDER = env('PROVIDER_ORIGIN');
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const step = (msg) => console.log(`step: ${msg}`);
const expect = (cond, msg) => { if (!cond) throw new Error(msg); };

const ctx = await chromium.launchPersistentContext(env('USER_DATA_DIR'), {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream'],
  viewport: { width: 1100, height: 800 },
  locale: 'en-US',
});
const errors = [];
try {
  const page = ctx.pages()[0] || await ctx.newPage();
  page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  // The provider is intercepted: arriving there is the proof of joining.
  let arrivals = 0;
  await page.route(`${PROVIDER}/**`, (route) => {
    arrivals++;
    return route.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>Provider</title><h1>In the call at the provider</h1>' });
  });

  // 1. A live call: the page checks the browser and continues by itself.
  step('join a live call');
  const res = await page.goto(env('LIVE_URL'), { waitUntil: 'commit' });
  expect(res.status() === 200, `join page answered ${res.status()}`);
  expect((res.headers()['content-security-policy'] || '').includes("script-src 'nonce-"), 'join page has no nonce CSP');
  await page.waitForURL((u) => u.href.startsWith(PROVIDER), { timeout: 15000 });
  await page.screenshot({ path: join(OUT, 'join-live-arrived-at-provider.png') });
  // A reload of the join page (back) resumes the call from sessionStorage.
  step('back to the join page resumes the call');
  await page.goBack({ waitUntil: 'commit' });
  await page.waitForURL((u) => u.href.startsWith(PROVIDER), { timeout: 15000 });
  expect(arrivals >= 2, `provider reached ${arrivals} times, want 2`);

  // 2. An ended call: the page says so with the summary, and never joins.
  step('open an ended call');
  const ended = await page.goto(env('ENDED_URL'));
  expect(ended.status() === 410, `ended page answered ${ended.status()}`);
  const h1 = await page.textContent('h1');
  const summary = await page.textContent('#summary');
  const people = await page.textContent('#people');
  expect(/ended/i.test(h1) && /Call ended/.test(summary) && /1 person/.test(summary), `ended page: ${h1} / ${summary}`);
  expect(/Who was there: ada/.test(people), `ended page people: ${people}`);
  await page.waitForTimeout(300);
  expect(page.url() === env('ENDED_URL'), `ended page navigated to ${page.url()}`);
  await page.screenshot({ path: join(OUT, 'join-ended-summary.png') });
  console.log(`ended: ${h1.trim()} | ${summary.trim()} | ${people.trim()}`);

  // 2b. A browser that refuses the camera, in French: the page shows the
  // seed's NO_CAMERA_ACCESS in French and stays, with a Join button.
  step('join without camera access, in French');
  const denied = await ctx.newPage();
  // The context's locale is en-US: this page's requests say French.
  await denied.route('**/join/**', (route) => route.continue({ headers: { ...route.request().headers(), 'accept-language': 'fr-FR,fr;q=0.9' } }));
  await denied.addInitScript(() => {
    navigator.mediaDevices.getUserMedia = () => Promise.reject(new DOMException('denied', 'NotAllowedError'));
  });
  await denied.goto(env('LIVE_URL') + '&fresh=1');
  const err = denied.locator('[data-error="NO_CAMERA_ACCESS"]');
  await err.waitFor({ state: 'visible', timeout: 10000 });
  const errText = await err.textContent();
  expect(/caméra/.test(errText), `error text: ${errText}`);
  expect(!denied.url().startsWith(PROVIDER), 'joined despite the refused camera');
  expect(await denied.getByRole('link', { name: 'Rejoindre' }).isVisible(), 'no Join button');
  await denied.screenshot({ path: join(OUT, 'join-no-camera-fr.png') });
  await denied.close();

  // 3. The admin page: sign in, watch a roster change arrive live.
  step('admin: sign in');
  const login = await page.goto(`${BASE}/admin`);
  expect(login.status() === 401, `admin without a session answered ${login.status()}`);
  await page.getByLabel('Admin token').fill(env('ADMIN_TOKEN'));
  await Promise.all([page.waitForURL(`${BASE}/admin`), page.getByRole('button', { name: 'Sign in' }).click()]);
  await page.getByRole('heading', { name: 'Live calls' }).waitFor();
  await page.locator('#live-status', { hasText: /Live: (connected|updated)/ }).waitFor({ timeout: 10000 });
  await page.screenshot({ path: join(OUT, 'admin-before-webhook.png'), fullPage: true });
  const name = env('ROSTER_NAME');
  expect(!(await page.textContent('#live')).includes(name), 'the roster already names the newcomer');
  console.log('WEBHOOK?');
  await lines.next();
  step('admin: roster change arrives by server-sent event');
  // Locators, not waitForFunction: the page's CSP forbids eval.
  await page.locator('#live', { hasText: name }).waitFor({ timeout: 15000 });
  const updates = Number(await page.getAttribute('body', 'data-updates'));
  expect(updates >= 1, 'the roster changed without a live update');
  await page.screenshot({ path: join(OUT, 'admin-roster-updated-live.png'), fullPage: true });

  // 4. Retry the dead delivery with the keyboard.
  step('admin: retry a dead delivery');
  const dead = page.locator(`#outbox tr[data-status="dead"][data-call="${env('DEAD_CALL')}"]`);
  await dead.waitFor({ timeout: 15000 });
  await page.screenshot({ path: join(OUT, 'admin-dead-delivery.png'), fullPage: true });
  const button = dead.getByRole('button', { name: /Retry/ });
  await button.focus();
  await Promise.all([page.waitForURL(/\/admin/), page.keyboard.press('Enter')]);
  await dead.waitFor({ state: 'detached', timeout: 15000 });
  await page.screenshot({ path: join(OUT, 'admin-after-retry.png'), fullPage: true });

  // 5. The call this tab was in ends: back on its join page, the tab
  // remembers it was in the call and says the other side disconnected.
  step('the call this tab was in ends');
  console.log('END?');
  await lines.next();
  const over = await page.goto(env('LIVE_URL'));
  expect(over.status() === 410, `join page of the call that ended answered ${over.status()}`);
  await page.locator('[data-error="AGENT_DISCONNECTED"]').waitFor({ state: 'visible', timeout: 10000 });
  await page.screenshot({ path: join(OUT, 'join-counterpart-disconnected.png') });
  // Once said, it is forgotten: a second visit is a plain ended page.
  await page.reload();
  expect(!(await page.locator('[data-error="AGENT_DISCONNECTED"]').isVisible()), 'disconnected shown twice');

  expect(errors.length === 0, `browser errors: ${errors.join('; ')}`);
  console.log('OK');
} finally {
  await ctx.close();
}
process.exit(0);
