// A person signing in to a page that Apache's mod_auth_openidc protects, with cells as the
// OpenID provider. apache-oidc.sh passes:
//   APP       the protected page (http://127.0.0.1:APACHEPORT/protected/)
//   ISSUER    cells' issuer (https://127.0.0.1:PORT/oidc)
//   ADMIN, PASSWORD  the credentials to type
//   SPKI      base64 SHA-256 of the self-signed certificate's public key: Chromium trusts that
//             one certificate and still verifies everything else (no blanket ignoreHTTPSErrors)
// Prints the page's text, then `ok: ...` or `FAIL: ...` (exit status 1).

import { chromium } from 'playwright-core';

const { APP, ISSUER, ADMIN, PASSWORD, SPKI } = process.env;
if (!APP || !ISSUER || !ADMIN || !PASSWORD || !SPKI) {
  console.error('login.mjs: set APP, ISSUER, ADMIN, PASSWORD and SPKI (apache-oidc.sh does)');
  process.exit(2);
}
const issuerOrigin = new URL(ISSUER).origin;
const TIMEOUT_MS = 20_000;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
    `--ignore-certificate-errors-spki-list=${SPKI}`],
});
let status = 0;
try {
  const context = await browser.newContext();
  // Loopback only: anything else is aborted.
  await context.route((url) => !/^https?:\/\/(127\.0\.0\.1|localhost)[:/]/.test(url.href), (route) => route.abort());
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT_MS);

  // Apache answers 302 to cells' authorization endpoint, which sends the browser to its login page.
  await page.goto(APP);
  const login = new URL(page.url());
  if (login.origin !== issuerOrigin || login.pathname !== '/oauth2/login') {
    throw new Error(`expected cells' login page at ${issuerOrigin}/oauth2/login, landed on ${page.url()}`);
  }
  console.log(`ok: ${APP} redirected to cells' login page over verified HTTPS`);

  await page.fill('input[name=login]', ADMIN);
  await page.fill('input[name=password]', PASSWORD);
  // Submit; cells redirects to Apache's redirect_uri, which swaps the code and returns to APP.
  await Promise.all([page.waitForURL(APP), page.click('button[type=submit]')]);
  const text = await page.innerText('body');
  console.log(text.trim().replace(/^/gm, '  | '));
  const claims = Object.fromEntries(text.trim().split('\n').map((l) => l.split('=', 2)));
  if (claims.preferred_username !== ADMIN || claims.remote_user !== ADMIN || !claims.sub) {
    throw new Error(`the page does not show ${ADMIN} as preferred_username and REMOTE_USER with a sub`);
  }
  console.log(`ok: signed in through mod_auth_openidc as ${ADMIN} (sub ${claims.sub})`);
} catch (error) {
  console.log(`FAIL: browser login: ${error.message.split('\n')[0]}`);
  status = 1;
} finally {
  await browser.close();
}
process.exitCode = status;
