// ui.test.mjs: the coffre web interface in a real browser (Debian's chromium, headless, driven
// by playwright-core) against a real `coffre serve`. Run by tests/integration/test_web.py, which
// makes the vault and the users and passes them in COFFRE_UI_TEST (JSON).
//
// Any Content-Security-Policy violation, console error, uncaught page error or request to
// another origin fails the run. The only console errors let through are Chromium's own
// "Failed to load resource: ... status of 4xx" lines for /v1/ calls, which the steps below
// provoke on purpose (wrong password, second factor asked for, refused uploads, ended sessions).
import { chromium } from 'playwright-core';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const cfg = JSON.parse(process.env.COFFRE_UI_TEST);
const origin = new URL(cfg.url).origin;
const require = createRequire(import.meta.url);
const axeSource = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
fs.mkdirSync(cfg.workdir, { recursive: true });

const problems = [];
const refusals = []; // [status, url] of the 4xx answers Chromium logged
let passed = 0;
const failed = [];

// ---- RFC 6238 TOTP (HMAC-SHA-1, 30 s, 6 digits), written here from the RFC ----
function base32(s) {
  const alpha = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const ch of s.toUpperCase().replace(/[\s=]/g, '')) {
    const i = alpha.indexOf(ch);
    if (i < 0) throw new Error(`not base32: ${ch}`);
    value = (value << 5) | i;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

function totp(secret, t = Date.now() / 1000) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(t / 30)));
  const mac = crypto.createHmac('sha1', base32(secret)).update(counter).digest();
  const off = mac[mac.length - 1] & 0x0f;
  const v = (mac.readUInt32BE(off) & 0x7fffffff) % 1000000;
  return String(v).padStart(6, '0');
}

// ---- helpers ----
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

function watch(page, who) {
  page.on('console', (m) => {
    const text = m.text();
    const loc = m.location().url || '';
    const refused = /^Failed to load resource: the server responded with a status of (4\d\d)/.exec(text);
    if (refused && loc.startsWith(`${origin}/v1/`)) {
      refusals.push([Number(refused[1]), loc]);
      return;
    }
    if (m.type() === 'error' || /Content.Security.Policy|integrity/i.test(text))
      problems.push(`${who}: console ${m.type()}: ${text} (${loc})`);
  });
  page.on('pageerror', (e) => problems.push(`${who}: uncaught: ${e.message}`));
  page.on('request', (req) => {
    const u = new URL(req.url());
    if (u.protocol !== 'data:' && u.protocol !== 'blob:' && u.origin !== origin)
      problems.push(`${who}: request to another origin: ${req.url()}`);
  });
}

async function newPage(browser, who) {
  const context = await browser.newContext({ acceptDownloads: true, locale: 'en-GB' });
  await context.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => {
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  const page = await context.newPage();
  watch(page, who);
  return { context, page };
}

async function cspViolations(page) {
  return page.evaluate(() => window.__csp || ['no CSP listener']);
}

async function axe(page, what) {
  await page.evaluate(axeSource);
  const bad = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')
      .map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
  });
  assert(bad.length === 0, `axe-core on ${what}: ${bad.join('; ')}`);
}

async function visible(page, sel) {
  await page.locator(sel).waitFor({ state: 'visible', timeout: 20000 });
}

async function errorText(page) {
  await visible(page, '#error');
  return (await page.locator('#error').innerText()).trim();
}

async function step(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed.push(name);
    console.log(`FAIL ${name}: ${e.stack || e}`);
    throw e; // later steps build on this one
  }
}

const files = [
  { name: 'invoice-1.pdf', mimeType: 'application/pdf', buffer: crypto.randomBytes(300 * 1024 + 7) },
  { name: 'facture été.txt', mimeType: 'text/plain', buffer: Buffer.from('Facture n° 42 — été 2026\n'.repeat(100)) },
  { name: 'empty.bin', mimeType: 'application/octet-stream', buffer: Buffer.alloc(0) },
];

// With COFFRE_UI_SCREENSHOTS=DIR, a PNG of each main page goes there (docs/ui/ is made so).
async function shot(page, name) {
  if (!process.env.COFFRE_UI_SCREENSHOTS) return;
  fs.mkdirSync(process.env.COFFRE_UI_SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(process.env.COFFRE_UI_SCREENSHOTS, `${name}.png`), fullPage: true });
}

async function rowNames(page) {
  return page.locator('#documents-body tr td:first-child').allInnerTexts();
}

async function main() {
  // the vault's self-signed certificate is trusted by its key; nothing talks to other hosts
  const browser = await chromium.launch({
    executablePath: cfg.chromium,
    headless: true,
    args: ['--no-sandbox', `--ignore-certificate-errors-spki-list=${cfg.spki}`,
      // the browser's own background calls (autofill, updates, accounts) resolve nowhere and
      // send nothing: no DNS query, no connection leaves the machine
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1', '--disable-component-update',
      '--disable-sync', '--no-pings'],
  });
  try {
    const { context, page } = await newPage(browser, 'admin');
    let secret;
    let recoveryCodes;

    await step('the login page loads with its script and style', async () => {
      const resp = await page.goto(`${origin}/`);
      assert(resp.status() === 200, `GET / ${resp.status()}`);
      await visible(page, '#page-login');
      const focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
      assert(focused === 'login-email', `focus is on ${focused}, not on the e-mail field`);
      await axe(page, 'the login page');
      await shot(page, 'login');
    });

    await step('a wrong password is a readable error', async () => {
      await page.fill('#login-email', cfg.admin.email);
      await page.fill('#login-password', 'not the password');
      await page.keyboard.press('Enter');
      const t = await errorText(page);
      assert(/Unauthorized/.test(t) && /password or code is wrong/.test(t), `error shown: ${t}`);
      assert(!t.includes('{'), `raw JSON shown: ${t}`);
    });

    await step('first login: enrolment of the second factor', async () => {
      await page.fill('#login-password', cfg.admin.password);
      await page.keyboard.press('Enter');
      await visible(page, '#page-enrol');
      secret = (await page.locator('#enrol-secret').innerText()).trim();
      assert(/^[A-Z2-7]{16,}$/.test(secret), `key shown: ${secret}`);
      const qr = await page.evaluate(() => {
        const i = document.getElementById('enrol-qr');
        return [i.complete, i.naturalWidth, i.src.slice(0, 22)];
      });
      assert(qr[0] && qr[1] > 0 && qr[2] === 'data:image/png;base64,', `QR image: ${qr}`);
      await axe(page, 'the enrolment page');
      await shot(page, 'enrolment');
      await page.fill('#enrol-code', totp(secret));
      await page.keyboard.press('Enter');
      await visible(page, '#page-recovery');
    });

    await step('recovery codes shown once and downloaded as text', async () => {
      const codes = await page.locator('#recovery-codes li').allInnerTexts();
      assert(codes.length >= 8 && codes.every((c) => /^[a-z2-7]{4}(-[a-z2-7]{4}){3}$/.test(c)), `codes: ${codes}`);
      await axe(page, 'the recovery codes page');
      recoveryCodes = codes;
      const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#recovery-download')]);
      assert(dl.suggestedFilename() === 'coffre-recovery-codes.txt', dl.suggestedFilename());
      const p = path.join(cfg.workdir, 'codes.txt');
      await dl.saveAs(p);
      const text = fs.readFileSync(p, 'utf8');
      assert(codes.every((c) => text.includes(c)), 'the text file lacks codes');
      await page.click('#recovery-done');
      await visible(page, '#page-login');
      assert(await page.locator('#recovery-codes li').count() === 0, 'the codes stay in the page');
    });

    await step('login with a TOTP code computed by the test', async () => {
      await page.fill('#login-email', cfg.admin.email);
      await page.fill('#login-password', cfg.admin.password);
      // the confirmation used this step's code: the next step's is accepted
      await page.fill('#login-totp', totp(secret, Date.now() / 1000 + 30));
      await page.keyboard.press('Enter');
      await visible(page, '#page-documents');
      assert((await page.locator('#who').innerText()).includes('(admin)'), 'who');
      await visible(page, '#upload');
      const cookies = await context.cookies();
      const c = cookies.find((k) => k.name === '__Host-coffre_session');
      assert(c && c.httpOnly && c.secure && c.sameSite === 'Strict' && c.path === '/', `cookie ${JSON.stringify(c)}`);
      const seen = await page.evaluate(() => document.cookie);
      assert(!seen.includes('coffre_session'), 'the page script can read the session cookie');
      await axe(page, 'the documents page');
    });

    await step('upload of three files with a progress bar each', async () => {
      await page.setInputFiles('#upload-files', files);
      await page.click('#upload-form button[type=submit]');
      await page.waitForFunction(() => document.querySelectorAll('#upload-list li[data-state=stored]').length === 3,
        null, { timeout: 60000 });
      const bars = await page.locator('#upload-list progress').evaluateAll((ps) => ps.map((p) => p.value));
      assert(bars.length === 3 && bars.every((v) => v === 1), `progress ${bars}`);
      await page.waitForFunction(() => document.querySelectorAll('#documents-body tr').length >= 3);
      const names = await rowNames(page);
      for (const f of files) assert(names.includes(f.name), `${f.name} not listed: ${names}`);
      await shot(page, 'documents');
    });

    await step('a file dropped on the drop zone is uploaded', async () => {
      const dt = await page.evaluateHandle(() => {
        const d = new DataTransfer();
        d.items.add(new File(['dropped bytes\n'], 'dropped.txt', { type: 'text/plain' }));
        return d;
      });
      await page.dispatchEvent('#drop-zone', 'drop', { dataTransfer: dt });
      await page.waitForFunction(() => {
        const li = document.querySelectorAll('#upload-list li');
        return li.length === 1 && li[0].dataset.state === 'stored';
      });
      await page.waitForFunction(() => [...document.querySelectorAll('#documents-body tr td:first-child')]
        .some((td) => td.textContent === 'dropped.txt'));
    });

    // before the downloads: the refused upload's connection is closed, so the first download
    // opens a new one (and checks the certificate again)
    await step('a refused file gets its own readable message', async () => {
      await page.setInputFiles('#upload-files', [{ name: 'bad-class.txt', mimeType: 'text/plain', buffer: Buffer.from('x') }]);
      await page.fill('#upload-class', 'Not A Class');
      await page.click('#upload-form button[type=submit]');
      await page.waitForFunction(() => document.querySelector('#upload-list li[data-state=refused]'));
      const row = await page.locator('#upload-list li').innerText();
      assert(row.includes('Refused: Bad request') && /class/i.test(row), `row: ${row}`);
      const t = await errorText(page);
      assert(t.startsWith('bad-class.txt: Bad request') && !t.includes('{'), `error: ${t}`);
      assert(!(await rowNames(page)).includes('bad-class.txt'), 'a refused file is listed');
    });

    await step('download gives back the same bytes', async () => {
      for (const f of files.slice(0, 2)) {
        const [dl] = await Promise.all([page.waitForEvent('download'),
          page.locator('#documents-body a', { hasText: f.name }).first().click()]);
        const p = path.join(cfg.workdir, `dl-${files.indexOf(f)}`);
        await dl.saveAs(p);
        const got = fs.readFileSync(p);
        assert(Buffer.compare(got, f.buffer) === 0, `${f.name}: ${got.length} bytes differ from ${f.buffer.length}`);
        assert(dl.suggestedFilename() === f.name, `file name ${dl.suggestedFilename()}`);
      }
    });

    await step('filters: exact name, class, dates', async () => {
      await page.fill('#filter-name', 'facture été.txt');
      await page.click('#filter-form button[type=submit]');
      await page.waitForFunction(() => /filtered/.test(document.getElementById('documents-caption').textContent));
      let names = await rowNames(page);
      assert(names.length === 1 && names[0] === 'facture été.txt', `name filter: ${names}`);
      await page.click('#filter-clear');
      await page.waitForFunction(() => !/filtered/.test(document.getElementById('documents-caption').textContent));
      await page.fill('#filter-class', 'no-such-class');
      await page.click('#filter-form button[type=submit]');
      await page.waitForFunction(() => /filtered: page 1, 0 shown/.test(document.getElementById('documents-caption').textContent));
      await page.click('#filter-clear');
      const tomorrow = new Date(Date.now() + 86400e3).toISOString().slice(0, 10);
      await page.fill('#filter-after', tomorrow);
      await page.click('#filter-form button[type=submit]');
      await page.waitForFunction(() => /filtered: page 1, 0 shown/.test(document.getElementById('documents-caption').textContent));
      await page.fill('#filter-after', '');
      await page.fill('#filter-before', tomorrow);
      await page.click('#filter-form button[type=submit]');
      await page.waitForFunction(() => /filtered: page 1, ([3-9]|[1-9]\d+) shown/.test(document.getElementById('documents-caption').textContent));
      names = await rowNames(page);
      for (const f of files) assert(names.includes(f.name), `before filter: ${names}`);
      await page.click('#filter-clear');
    });

    await step('paging: next and previous pages', async () => {
      await page.waitForFunction(() => /page 1, 20 shown/.test(document.getElementById('documents-caption').textContent));
      const first = await rowNames(page);
      assert(await page.locator('#page-prev').isDisabled(), 'previous enabled on page 1');
      await page.focus('#page-next');
      await page.keyboard.press('Enter');
      await page.waitForFunction(() => /page 2,/.test(document.getElementById('documents-caption').textContent));
      const second = await rowNames(page);
      assert(second.length >= 1 && second.every((n) => !first.includes(n)), `page 2: ${second}`);
      await page.click('#page-prev');
      await page.waitForFunction(() => /page 1,/.test(document.getElementById('documents-caption').textContent));
      assert(JSON.stringify(await rowNames(page)) === JSON.stringify(first), 'page 1 changed');
    });

    await step('logout clears the session cookie', async () => {
      await page.click('#logout');
      await visible(page, '#page-login');
      assert((await page.locator('#notice').innerText()).includes('logged out'), 'no logout notice');
      const c = (await context.cookies()).find((k) => k.name === '__Host-coffre_session');
      assert(!c, 'the cookie is still there');
      assert(!(await page.locator('#documents-body tr').count()), 'the document list stays in the page');
      assert((await cspViolations(page)).length === 0, `CSP: ${await cspViolations(page)}`);
    });

    await step('login with a recovery code, once', async () => {
      const login = async () => {
        await page.fill('#login-email', cfg.admin.email);
        await page.fill('#login-password', cfg.admin.password);
        await page.fill('#login-totp', '');
        await page.fill('#login-recovery', recoveryCodes[0]);
        await page.keyboard.press('Enter');
      };
      await page.evaluate(() => { document.getElementById('login-second').hidden = false; });
      await login();
      await visible(page, '#page-documents');
      await page.click('#logout');
      await visible(page, '#page-login');
      await page.evaluate(() => { document.getElementById('login-second').hidden = false; });
      await login();
      const t = await errorText(page);
      assert(/Unauthorized/.test(t), `a used recovery code: ${t}`);
      assert(await page.locator('#page-documents').isHidden(), 'a used recovery code let in');
    });
    await context.close();

    const v = await newPage(browser, 'viewer');
    await step('a viewer logs in with the keyboard alone and sees no upload form', async () => {
      await v.page.goto(`${origin}/`);
      await visible(v.page, '#page-login');
      await v.page.keyboard.type(cfg.viewer.email);
      await v.page.keyboard.press('Tab');
      await v.page.keyboard.type(cfg.viewer.password);
      await v.page.keyboard.press('Enter');
      await visible(v.page, '#page-documents');
      assert(await v.page.locator('#upload').isHidden(), 'a viewer sees the upload form');
      // the list loads after the page shows: wait for its rows (bounded), then check them
      await v.page.waitForFunction(() => document.querySelectorAll('#documents-body tr').length >= 3, null,
                                   { timeout: 20000 }).catch(() => {});
      assert(await v.page.locator('#documents-body tr').count() >= 3, 'the viewer sees no documents');
    });

    await step('a viewer forcing an upload gets a readable refusal', async () => {
      const before = refusals.length;
      await v.page.evaluate(() => { document.getElementById('upload').hidden = false; });
      await v.page.setInputFiles('#upload-files', [files[1]]);
      await v.page.click('#upload-form button[type=submit]');
      await v.page.waitForFunction(() => document.querySelector('#upload-list li[data-state=refused]'));
      const t = await errorText(v.page);
      assert(t.includes('Forbidden') && t.includes('may not call this route'), `error: ${t}`);
      assert(!t.includes('{'), `raw JSON: ${t}`);
      const row = await v.page.locator('#upload-list li').innerText();
      assert(row.includes('Refused: Forbidden'), `row: ${row}`);
      assert(refusals.slice(before).some(([s, u]) => s === 403 && u.includes('/v1/documents')),
        'the 403 was not seen');
    });

    await step('password change: every session ends, the new password logs in', async () => {
      const other = await newPage(browser, 'viewer-2');
      await other.page.goto(`${origin}/`);
      await other.page.fill('#login-email', cfg.viewer.email);
      await other.page.fill('#login-password', cfg.viewer.password);
      await other.page.keyboard.press('Enter');
      await visible(other.page, '#page-documents');
      const next = `new-pass-${crypto.randomBytes(8).toString('hex')}`;
      await v.page.click('#account');
      await visible(v.page, '#page-account');
      await axe(v.page, 'the account page');
      await v.page.fill('#password-current', cfg.viewer.password);
      await v.page.fill('#password-new', next);
      await v.page.fill('#password-again', next);
      await v.page.click('#password-form button[type=submit]');
      await visible(v.page, '#page-login');
      assert((await v.page.locator('#notice').innerText()).includes('password is changed'), 'no notice');
      // the other browser's session ended too
      await other.page.click('#filter-form button[type=submit]');
      await visible(other.page, '#page-login');
      assert((await errorText(other.page)).includes('Your session has ended'), 'the other session lives on');
      await other.context.close();
      await v.page.fill('#login-email', cfg.viewer.email);
      await v.page.fill('#login-password', cfg.viewer.password);
      await v.page.keyboard.press('Enter');
      assert(/Unauthorized/.test(await errorText(v.page)), 'the old password still logs in');
      await v.page.fill('#login-password', next);
      await v.page.keyboard.press('Enter');
      await visible(v.page, '#page-documents');
      cfg.viewer.password = next;
    });

    await step('log out everywhere', async () => {
      const other = await newPage(browser, 'viewer-3');
      await other.page.goto(`${origin}/`);
      await other.page.fill('#login-email', cfg.viewer.email);
      await other.page.fill('#login-password', cfg.viewer.password);
      await other.page.keyboard.press('Enter');
      await visible(other.page, '#page-documents');
      await other.page.click('#account');
      await other.page.click('#logout-all');
      await visible(other.page, '#page-login');
      assert((await other.page.locator('#notice').innerText()).includes('Every session'), 'no notice');
      await other.context.close();
    });

    await step('an ended session leads back to the login page', async () => {
      await v.context.clearCookies();
      await v.page.click('#filter-form button[type=submit]');
      await visible(v.page, '#page-login');
      const t = await errorText(v.page);
      assert(t.includes('Your session has ended'), `error: ${t}`);
      assert((await cspViolations(v.page)).length === 0, `CSP: ${await cspViolations(v.page)}`);
    });
    await v.context.close();
  } finally {
    await browser.close();
  }
}

let rc = 0;
try {
  await main();
} catch (e) {
  rc = 1;
}
for (const p of problems) console.log(`PROBLEM ${p}`);
if (problems.length) {
  failed.push('no CSP violation, console error or foreign request');
  rc = 1;
} else {
  passed++;
  console.log('ok   no CSP violation, console error or foreign request');
}
console.log(`${passed} passed, ${failed.length} failed`);
process.exit(rc);
