// End-to-end test of the web console in Debian's headless Chromium (playwright-core), as
// issue 8 asks: sign in as admin, create a user, open People → that user → Personal Access
// Tokens, create an Auto Refresh token with a folder scope, read its value from the page, use
// it with curl on REST and WebDAV, revoke it in the page and see it refused; sign in as the
// user, upload a file with the browser, find it over WebDAV. Every page is also shown at a
// phone width. Screenshots go to $SCREENSHOTS; each page's warm load time is printed.
//
// Env: BASE (server URL), ADMIN, PASSWORD, SCREENSHOTS (folder), CHROMIUM (binary).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const base = process.env.BASE;
const admin = process.env.ADMIN || 'admin';
const adminPassword = process.env.PASSWORD;
const shots = process.env.SCREENSHOTS;
mkdirSync(shots, { recursive: true });

let failures = 0;
function check(ok, what) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures++;
}

function curl(...args) {
  // -s: quiet; -w: the status on the last line.
  const out = execFileSync('curl', ['-s', '-w', '\n%{http_code}', ...args], { encoding: 'utf8' });
  const cut = out.lastIndexOf('\n');
  return { body: out.slice(0, cut), status: Number(out.slice(cut + 1)) };
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1'],
});

const problems = [];
let expectRefusal = false; // a page we open to see it refused (its 403 is no problem)

async function newPage(viewport, label) {
  const context = await browser.newContext({ viewport, acceptDownloads: true });
  // Loopback only: anything else is aborted (the pages load nothing from elsewhere anyway).
  await context.route((url) => !/^https?:\/\/(127\.0\.0\.1|localhost)[:/]/.test(url.href), (route) => route.abort());
  const page = await context.newPage();
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    if (expectRefusal && message.text().startsWith('Failed to load resource')) return;
    problems.push(`${label}: console error: ${message.text()}`);
  });
  page.on('pageerror', (error) => problems.push(`${label}: script error: ${error.message}`));
  return page;
}

// Screenshot the page, and check that nothing sticks out sideways.
async function shoot(page, name) {
  await page.waitForLoadState('load');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `${name}: no horizontal overflow (${overflow} px)`);
  await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
}

async function signIn(page, login, password, label) {
  await page.goto(`${base}/`);
  check(page.url().includes('/login'), `${label}: / without a session asks to sign in`);
  await shoot(page, `${label}-login`);
  await page.fill('#login', login);
  await page.fill('#password', password);
  await Promise.all([page.waitForURL('**/files/'), page.click('button[type=submit]')]);
}

// 1. The administrator signs in and creates a user in People.
const desk = await newPage({ width: 1280, height: 800 }, 'desktop');
await signIn(desk, admin, adminPassword, 'desktop');
await shoot(desk, 'desktop-files');
await desk.getByRole('link', { name: 'People', exact: true }).click();
await desk.waitForURL('**/admin/people');
await shoot(desk, 'desktop-people');
const userPassword = `carol-${Date.now()}`;
await desk.fill('#new-login', 'carol');
await desk.fill('#new-password', userPassword);
await desk.fill('#new-display-name', 'Carol <b>C</b>');
await desk.fill('#new-email', 'carol@example.org');
await Promise.all([desk.waitForURL('**/admin/people/carol?done=created'), desk.click('#new-user button[type=submit]')]);
await shoot(desk, 'desktop-person');
check((await desk.textContent('.notice.ok')).includes('created'), 'user created in People');

// The user's folder to scope a token to (made over REST with the user's password).
const carol = ['-u', `carol:${userPassword}`];
check(curl(...carol, '-X', 'POST', `${base}/a/tree/create`, '-d',
  '{"Nodes":[{"Path":"personal-files/projects","Type":"COLLECTION"}]}').status === 200, 'folder for the scope');
for (const [path, text] of [['projects/plan.txt', 'the plan'], ['other.txt', 'elsewhere']]) {
  const put = curl(...carol, '-X', 'PUT', '--data-binary', text, `${base}/a/content/personal-files/${path}`);
  check(put.status === 201, `carol's ${path} (${put.status})`);
}

// 2. People → carol → Personal Access Tokens: an Auto Refresh token scoped to the folder.
await desk.getByRole('link', { name: 'Personal Access Tokens' }).click();
await desk.waitForURL('**/admin/people/carol/tokens');
await shoot(desk, 'desktop-person-tokens');
await desk.fill('#label', 'e2e sync');
await desk.check('input[name=model][value=auto]');
await desk.fill('#amount', '10');
await desk.selectOption('#unit', 'm');
await desk.fill('#scope', 'personal-files/projects');
await desk.selectOption('#rights', 'rw');
await Promise.all([desk.waitForLoadState('load'), desk.click('#new-token button[type=submit]')]);
await shoot(desk, 'desktop-token-created');
const token = await desk.inputValue('#token-value');
check(token.startsWith('cpat_'), 'the token value is on the page');
check(!desk.url().includes(token), 'the token value is not in the URL');

// 3. The token on REST and WebDAV, inside its folder only.
let r = curl('-H', `Authorization: Bearer ${token}`, `${base}/a/content/personal-files/projects/plan.txt`);
check(r.status === 200 && r.body === 'the plan', `REST with the token reads inside the folder (${r.status})`);
r = curl('-H', `Authorization: Bearer ${token}`, `${base}/a/content/personal-files/other.txt`);
check(r.status === 404, `REST with the token cannot read outside the folder (${r.status})`);
r = curl('-u', `carol:${token}`, '-X', 'PROPFIND', '-H', 'Depth: 1', `${base}/dav/personal-files/projects/`);
check(r.status === 207 && r.body.includes('plan.txt'), `WebDAV with the token lists the folder (${r.status})`);
r = curl('-u', `admin:${token}`, '-X', 'PROPFIND', '-H', 'Depth: 0', `${base}/dav/personal-files/projects/`);
check(r.status === 401, `WebDAV with the token under another login is refused (${r.status})`);

// 4. Revoke it in the page (with its confirmation); it is refused at once.
await desk.getByRole('link', { name: 'Done' }).click();
await desk.waitForURL('**/admin/people/carol/tokens');
await shoot(desk, 'desktop-person-tokens-list');
const row = desk.locator('tr', { hasText: 'e2e sync' });
check((await row.textContent()).includes('personal-files/projects (read and write)'), 'the scope is shown as a path');
check((await row.textContent()).includes('Auto refresh'), 'the expiration model is shown');
await row.getByRole('link', { name: /Revoke/ }).click();
await desk.waitForURL('**/revoke');
await shoot(desk, 'desktop-revoke-confirm');
await Promise.all([desk.waitForURL('**/tokens?done=revoked'), desk.click('button.danger')]);
await shoot(desk, 'desktop-revoked');
r = curl('-H', `Authorization: Bearer ${token}`, `${base}/a/content/personal-files/projects/plan.txt`);
check(r.status === 401, `the revoked token is refused on REST (${r.status})`);
r = curl('-u', `carol:${token}`, '-X', 'PROPFIND', '-H', 'Depth: 0', `${base}/dav/personal-files/projects/`);
check(r.status === 401, `the revoked token is refused on WebDAV (${r.status})`);

await desk.getByRole('link', { name: 'OAuth clients' }).click();
await desk.waitForURL('**/admin/clients');
await shoot(desk, 'desktop-clients');
await desk.getByRole('link', { name: 'My tokens' }).click();
await shoot(desk, 'desktop-my-tokens');
await Promise.all([desk.waitForURL('**/login'), desk.getByRole('button', { name: 'Sign out' }).click()]);

// 5. Carol signs in and uploads a file with the browser; it is there over WebDAV.
const user = await newPage({ width: 1280, height: 800 }, 'carol');
await signIn(user, 'carol', userPassword, 'carol');
await user.goto(`${base}/files/personal-files/`);
await shoot(user, 'carol-files');
check((await user.textContent('.who')).includes('Carol <b>C</b>'), 'the display name is shown as text');
const content = `uploaded by the browser at ${new Date().toISOString()}\n`;
const longName = `${'a-rather-long-file-name-'.repeat(9)}end.txt`;
await user.setInputFiles('#file', [
  { name: 'from browser é.txt', mimeType: 'text/plain', buffer: Buffer.from(content) },
  { name: longName, mimeType: 'text/plain', buffer: Buffer.from('long') },
]);
await Promise.all([user.waitForEvent('load'), user.click('form[data-upload] button[type=submit]')]);
await user.waitForSelector('text=from browser é.txt');
await shoot(user, 'carol-uploaded');
await user.getByRole('link', { name: 'Details of from browser é.txt' }).click();
await shoot(user, 'carol-details');
const uuid = (await user.textContent('#node-uuid')).trim();
r = curl('-u', `carol:${userPassword}`, `${base}/dav/personal-files/${encodeURIComponent('from browser é.txt')}`);
check(r.status === 200 && r.body === content, `the upload is there over WebDAV (${r.status})`);
r = curl('-u', `carol:${userPassword}`, '-X', 'PROPFIND', '-H', 'Depth: 0', `${base}/dav/personal-files/${encodeURIComponent('from browser é.txt')}`,
  '--data', '<propfind xmlns="DAV:" xmlns:oc="http://owncloud.org/ns"><prop><oc:id/></prop></propfind>');
check(r.body.includes(uuid), 'the details panel shows the UUID WebDAV reports');
// Carol registers an SSH key for SFTP by pasting its line.
execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'carol@laptop', '-f', `${shots}/carol_key`]);
const keyLine = readFileSync(`${shots}/carol_key.pub`, 'utf8');
rmSync(`${shots}/carol_key`);
await user.getByRole('link', { name: 'SSH keys' }).click();
await user.waitForURL('**/keys');
await user.fill('#key', keyLine);
await Promise.all([user.waitForURL('**/keys?done=added'), user.click('#new-key button[type=submit]')]);
check((await user.textContent('table.keys')).includes('carol@laptop'), 'the SSH key is listed');
await shoot(user, 'carol-keys');

expectRefusal = true;
const adminPage = await user.goto(`${base}/admin/people`);
check(adminPage.status() === 403, `a standard user gets 403 on People (${adminPage.status()})`);
await shoot(user, 'carol-admin-forbidden');
expectRefusal = false;

// 5b. Workspaces and groups (issue 34): the admin makes group `design` with carol in it and
// a workspace granted to it with a quota; carol finds it in Files with its quota and uploads
// into it; the admin, who has no grant, does not see it.
const ws = await newPage({ width: 1280, height: 800 }, 'workspaces');
await signIn(ws, admin, adminPassword, 'workspaces');
await ws.goto(`${base}/admin/groups`);
await ws.fill('#new-name', 'design');
await Promise.all([ws.waitForURL('**/admin/groups/design?done=created'), ws.click('#new-group button[type=submit]')]);
await ws.selectOption('#add-login', 'carol');
await Promise.all([ws.waitForURL('**?done=added'), ws.click('form:has(#add-login) button[type=submit]')]);
check((await ws.textContent('table.people')).includes('carol'), 'carol is listed as a member of design');
await shoot(ws, 'desktop-group');
await ws.goto(`${base}/admin/workspaces`);
await ws.fill('#new-slug', 'design');
await ws.fill('#new-label', 'Design team');
await ws.fill('#new-quota', '1M');
await Promise.all([ws.waitForURL('**/admin/workspaces/design?done=created'), ws.click('#new-workspace button[type=submit]')]);
await ws.selectOption('#grant-group', 'design');
await Promise.all([ws.waitForURL('**?done=granted'), ws.click('form:has(#grant-group) button[type=submit]')]);
check((await ws.textContent('table.people')).includes('design'), 'the grant to the group is listed');
await shoot(ws, 'desktop-workspace');
await ws.goto(`${base}/admin/workspaces`);
check((await ws.textContent('table.people')).includes('Design team'), 'the workspace is listed with its label');
await shoot(ws, 'desktop-workspaces');
await ws.goto(`${base}/files/`);
check(!(await ws.textContent('table.files')).includes('design'), 'the admin, without a grant, does not see it in Files');
await user.goto(`${base}/files/`);
check((await user.textContent('table.files')).includes('design'), 'carol sees the workspace in Files');
await user.goto(`${base}/files/design/`);
check((await user.textContent('#usage')).includes('quota'), 'carol sees the quota of the workspace');
await user.setInputFiles('#file', [{ name: 'brief.txt', mimeType: 'text/plain', buffer: Buffer.from('the brief') }]);
await Promise.all([user.waitForEvent('load'), user.click('form[data-upload] button[type=submit]')]);
await user.waitForSelector('text=brief.txt');
await shoot(user, 'carol-workspace');
r = curl('-u', `carol:${userPassword}`, `${base}/dav/design/brief.txt`);
check(r.status === 200 && r.body === 'the brief', `the upload is in the workspace over WebDAV (${r.status})`);
r = curl('-u', `${admin}:${adminPassword}`, `${base}/dav/design/brief.txt`);
check(r.status === 404, `a user without a grant gets 404 (${r.status})`);
writeFileSync(`${shots}/big.bin`, Buffer.alloc(2 * 1024 * 1024, 120));
r = curl('-u', `carol:${userPassword}`, '-T', `${shots}/big.bin`, `${base}/dav/design/big.bin`);
rmSync(`${shots}/big.bin`);
check(r.status === 507, `an upload over the quota is refused with 507 (${r.status})`);

// 6. Phone width: every page again.
const phone = await newPage({ width: 390, height: 844 }, 'phone');
await signIn(phone, admin, adminPassword, 'phone');
for (const [name, path] of [
  ['phone-files', '/files/'],
  ['phone-folder', '/files/personal-files/'],
  ['phone-tokens', '/tokens'],
  ['phone-people', '/admin/people'],
  ['phone-person', '/admin/people/carol'],
  ['phone-person-tokens', '/admin/people/carol/tokens'],
  ['phone-clients', '/admin/clients'],
  ['phone-workspaces', '/admin/workspaces'],
  ['phone-workspace', '/admin/workspaces/design'],
  ['phone-groups', '/admin/groups'],
  ['phone-group', '/admin/groups/design'],
]) {
  await phone.goto(`${base}${path}`);
  await shoot(phone, name);
}
const details = await newPage({ width: 390, height: 844 }, 'phone-carol');
await signIn(details, 'carol', userPassword, 'phone-carol');
await details.goto(`${base}/files/personal-files/?info=${encodeURIComponent('from browser é.txt')}`);
await shoot(details, 'phone-details');
await details.goto(`${base}/keys`);
await shoot(details, 'phone-keys');

// 7. Load times of every page, warm (the stylesheet and script cached, as in use).
const timed = await newPage({ width: 1280, height: 800 }, 'timed');
await signIn(timed, admin, adminPassword, 'timed');
const loads = [];
for (const path of ['/files/', '/files/personal-files/', '/files/common-files/', '/tokens', '/keys', '/admin/people',
  '/admin/people/carol', '/admin/people/carol/tokens', '/admin/clients', '/admin/workspaces', '/admin/workspaces/design',
  '/admin/groups', '/login']) {
  // One warm-up load, then the median of three.
  const runs = [];
  for (let run = 0; run < 4; run++) {
    await timed.goto(`${base}${path}`);
    const t = await timed.evaluate(() => {
      const [nav] = performance.getEntriesByType('navigation');
      return { server: Math.round(nav.responseEnd - nav.requestStart), load: Math.round(nav.loadEventEnd - nav.startTime) };
    });
    if (run > 0) runs.push(t);
  }
  runs.sort((a, b) => a.load - b.load);
  loads.push({ path, ...runs[1] });
}

await browser.close();

for (const problem of problems) check(false, problem);
console.log('\npage load times, warm, median of 3 (ms; request to last byte, and navigation start to load event):');
for (const { path, server, load } of loads) console.log(`  ${path.padEnd(28)} ${String(server).padStart(4)} ${String(load).padStart(5)}`);
const slowest = Math.max(...loads.map((t) => t.load));
console.log(`slowest page load: ${slowest} ms (target: under 100 ms)`);
console.log(`screenshots: ${shots}`);
if (failures) {
  console.log(`console e2e: ${failures} check(s) FAILED`);
  process.exit(1);
}
console.log('console e2e: all checks passed');
