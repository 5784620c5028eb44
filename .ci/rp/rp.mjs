// Relying-party conformance run of cells' OpenID provider with openid-client v6 (panva, a
// certified RP). run.sh starts the server with the clients `rp-app` (confidential, code + PKCE)
// and `rp-device` (public, device grant) and passes ISSUER, ADMIN and PASSWORD.
//
// The browser is played with plain fetch (redirect: 'manual') and a small cookie jar. Each step
// prints `✓ step` or `✗ step: reason`; the last line is `rp: N passed, M failed`, and the exit
// status is non-zero when a step failed.

import { webcrypto } from 'node:crypto';

// Node 18 (Debian's nodejs) has WebCrypto only behind a flag; openid-client needs the globals.
if (!globalThis.crypto?.subtle) globalThis.crypto = webcrypto;
if (!globalThis.CryptoKey) globalThis.CryptoKey = webcrypto.CryptoKey;
const client = await import('openid-client');

const ISSUER = process.env.ISSUER;
const ADMIN = process.env.ADMIN;
const PASSWORD = process.env.PASSWORD;
if (!ISSUER || !ADMIN || !PASSWORD) {
  console.error('rp.mjs: set ISSUER, ADMIN and PASSWORD (run.sh does)');
  process.exit(2);
}
const issuer = new URL(ISSUER);
const BASE = issuer.origin; // the server's external URL (the issuer is <base>/oidc)
const REDIRECT_URI = `${BASE}/rp/callback`;
const POST_LOGOUT_URI = `${BASE}/rp/logged-out`;
const APP_ID = 'rp-app';
const APP_SECRET = 'rp-app-secret-value';
const DEVICE_ID = 'rp-device';
const HTTP_TIMEOUT_MS = 15_000;
const insecure = { execute: [client.allowInsecureRequests] };

// ---------------------------------------------------------------------------------------------
// Reporting

let passed = 0;
let failed = 0;

class StepError extends Error {}
/** Fail the current step with `message` unless `condition` holds. */
function check(condition, message) {
  if (!condition) throw new StepError(message);
}

/** Failures noted in the current step that do not stop it (reported with the step). */
let notes = [];
function expect(condition, message) {
  if (!condition) notes.push(message);
}

/** A readable reason from an openid-client / oauth4webapi / fetch error. */
function describe(error) {
  if (error instanceof StepError) return error.message;
  const parts = [];
  if (error?.code) parts.push(error.code);
  parts.push(error?.message ?? String(error));
  if (error?.error) {
    parts.push(`error=${error.error}${error.error_description ? ` (${error.error_description})` : ''}`);
  }
  if (error?.status) parts.push(`HTTP ${error.status}`);
  const cause = error?.cause;
  if (cause instanceof Response) {
    parts.push(`HTTP ${cause.status} from ${cause.url}`);
  } else if (cause && typeof cause === 'object') {
    if (cause.error) {
      parts.push(`cause: error=${cause.error}${cause.error_description ? ` (${cause.error_description})` : ''}`);
    } else if (cause.message) {
      parts.push(`cause: ${cause.message}`);
    } else {
      try {
        parts.push(`cause: ${JSON.stringify(cause).slice(0, 300)}`);
      } catch {
        /* not serializable */
      }
    }
  }
  return parts.join(': ');
}

/** Run one step; returns its value, or undefined when it failed. Never throws. */
async function step(name, fn) {
  notes = [];
  let value;
  try {
    value = await fn();
  } catch (error) {
    notes.push(describe(error));
    value = undefined;
  }
  if (notes.length === 0) {
    passed += 1;
    console.log(`✓ ${name}`);
    return value;
  }
  failed += 1;
  console.log(`✗ ${name}: ${notes.join('; ')}`);
  return undefined;
}

function needs(value, what) {
  check(value !== undefined && value !== null, `skipped: ${what} failed`);
  return value;
}

// ---------------------------------------------------------------------------------------------
// A minimal browser: cookie jar (name, path, expiry) and manual redirects.

class Browser {
  constructor() {
    this.cookies = new Map(); // `${name} ${path}` -> { name, value, path, expires } (one host)
  }

  store(response, url) {
    const lines =
      typeof response.headers.getSetCookie === 'function'
        ? response.headers.getSetCookie()
        : (response.headers.get('set-cookie') ?? '').split(/,(?=\s*[A-Za-z0-9_.-]+=)/).filter(Boolean);
    for (const line of lines) {
      const [pair, ...attributes] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq < 1) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      let path = new URL(url).pathname.replace(/\/[^/]*$/, '') || '/';
      let expires = Infinity;
      for (const attribute of attributes) {
        const [key, ...rest] = attribute.trim().split('=');
        const val = rest.join('=').trim();
        switch (key.toLowerCase()) {
          case 'path':
            if (val.startsWith('/')) path = val;
            break;
          case 'max-age':
            expires = Date.now() + Number(val) * 1000;
            break;
          case 'expires':
            if (expires === Infinity) expires = Date.parse(val);
            break;
          default:
        }
      }
      const key = `${name} ${path}`;
      if (expires <= Date.now()) this.cookies.delete(key);
      else this.cookies.set(key, { name, value, path, expires });
    }
  }

  /** The cookies for `url`, longer paths first (RFC 6265 §5.4). */
  matching(url) {
    const path = new URL(url).pathname;
    const now = Date.now();
    return [...this.cookies.values()]
      .filter((c) => c.expires > now)
      .filter((c) => path === c.path || path.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .sort((a, b) => b.path.length - a.path.length);
  }

  header(url) {
    return this.matching(url).map((c) => `${c.name}=${c.value}`).join('; ');
  }

  /** The value of cookie `name` that a request to `url` sends first. */
  get(name, url) {
    return this.matching(url).find((c) => c.name === name)?.value;
  }

  /** One request, no redirect following; cookies sent and stored. */
  async fetch(url, { method = 'GET', form, headers = {} } = {}) {
    url = new URL(url, BASE).href;
    const h = new Headers(headers);
    const cookie = this.header(url);
    if (cookie) h.set('cookie', cookie);
    let body;
    if (form) {
      h.set('content-type', 'application/x-www-form-urlencoded');
      body = new URLSearchParams(form).toString();
    }
    const response = await fetch(url, {
      method,
      headers: h,
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
    });
    this.store(response, url);
    const text = await response.text();
    const location = response.headers.get('location');
    return {
      status: response.status,
      headers: response.headers,
      text,
      location: location === null ? null : new URL(location, url),
    };
  }
}

const snippet = (text) =>
  text
    .replace(/<(head|style|script)\b[\s\S]*?<\/\1>/gi, ' ')
    .replace(/<[^>]*>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 200);
const describeResponse = (r) =>
  `HTTP ${r.status}${r.location ? ` → ${r.location.href}` : ''}${r.text ? ` «${snippet(r.text)}»` : ''}`;

function unescapeHtml(text) {
  return text
    .replace(/&quot;/g, '"')
    .replace(/&#39;/g, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&#x([0-9a-f]+);/gi, (_, hex) => String.fromCodePoint(parseInt(hex, 16)))
    .replace(/&#(\d+);/g, (_, dec) => String.fromCodePoint(Number(dec)))
    .replace(/&amp;/g, '&');
}

function attributes(tag) {
  const out = {};
  for (const m of tag.matchAll(/([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g)) {
    out[m[1].toLowerCase()] = unescapeHtml(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return out;
}

/** The first form of an HTML page: its method, action and inputs (name -> attributes). */
function parseForm(html) {
  const form = html.match(/<form\b([^>]*)>([\s\S]*?)<\/form>/i);
  if (!form) return undefined;
  const attrs = attributes(form[1]);
  const inputs = {};
  for (const m of form[2].matchAll(/<input\b([^>]*)>/gi)) {
    const a = attributes(m[1]);
    if (a.name) inputs[a.name] = a;
  }
  return { method: (attrs.method ?? 'get').toLowerCase(), action: attrs.action ?? '', inputs };
}

/** Bearer call to the REST API; returns the HTTP status. */
async function apiStatus(accessToken) {
  const response = await fetch(`${BASE}/a/config/ctl`, {
    headers: { authorization: `Bearer ${accessToken}` },
    redirect: 'manual',
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
  });
  await response.arrayBuffer();
  return response.status;
}

const isLoginPage = (location) => location?.origin === BASE && location.pathname === '/oauth2/login';
const isCallback = (location) => location?.href.startsWith(`${REDIRECT_URI}?`);

/** Authorization request parameters with fresh PKCE, state and nonce. */
async function newAuthorization(config) {
  const pkceCodeVerifier = client.randomPKCECodeVerifier();
  const expectedState = client.randomState();
  const expectedNonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI,
    scope: 'openid email profile offline',
    code_challenge: await client.calculatePKCECodeChallenge(pkceCodeVerifier),
    code_challenge_method: 'S256',
    state: expectedState,
    nonce: expectedNonce,
  });
  return { url, checks: { pkceCodeVerifier, expectedState, expectedNonce } };
}

/**
 * A Configuration for `clientId` on the discovered metadata. `key` must be `expected` there;
 * when discovery lacks it, that is noted as a failure and the contract's URL is used, so the
 * endpoint itself is still tried.
 */
function withEndpoint(discovered, key, expected, clientId, metadata, auth) {
  const md = { ...discovered.serverMetadata() };
  expect(md[key] === expected, `discovery ${key} is ${JSON.stringify(md[key])}, expected ${expected}`);
  md[key] ??= expected;
  const configuration = new client.Configuration(md, clientId, metadata, auth);
  client.allowInsecureRequests(configuration);
  return configuration;
}

// ---------------------------------------------------------------------------------------------
// The run

const browser = new Browser();
let config; // rp-app
let first; // tokens of step 2
let refreshed; // tokens of step 5

console.log(`rp.mjs: openid-client against ${issuer.href}`);

// 1. Discovery.
config = await step('1 discovery', async () => {
  const c = await client.discovery(issuer, APP_ID, APP_SECRET, client.ClientSecretBasic(APP_SECRET), insecure);
  const md = c.serverMetadata();
  check(md.issuer === ISSUER, `issuer ${md.issuer} ≠ ${ISSUER}`);
  for (const key of ['authorization_endpoint', 'token_endpoint', 'jwks_uri', 'userinfo_endpoint']) {
    check(typeof md[key] === 'string', `${key} missing`);
  }
  check(md.code_challenge_methods_supported?.includes('S256'), 'S256 not in code_challenge_methods_supported');
  return c;
});

// 2. Authorization code + PKCE, state and nonce, login form played by hand.
first = await step('2 authorization code flow (PKCE S256, state, nonce) and ID token', async () => {
  needs(config, 'discovery');
  const { url, checks } = await newAuthorization(config);
  const authorize = await browser.fetch(url);
  check(authorize.status === 303 && isLoginPage(authorize.location),
    `authorize: expected 303 to /oauth2/login, got ${describeResponse(authorize)}`);
  const loginPage = await browser.fetch(authorize.location);
  check(loginPage.status === 200, `login page: ${describeResponse(loginPage)}`);
  const form = parseForm(loginPage.text);
  check(form, 'login page has no form');
  const challenge = form.inputs.login_challenge?.value;
  const csrf = form.inputs.csrf?.value;
  check(challenge, 'login form has no login_challenge');
  check(csrf, 'login form has no csrf');
  check(form.inputs.login && form.inputs.password, 'login form lacks login or password');
  const loginAction = new URL(form.action || '/oauth2/login', authorize.location);
  // The form's token is bound to the cells_csrf cookie (a keyed hash of it and the session):
  // the cookie must be there, and differ from the token.
  check(browser.get('cells_csrf', loginAction), 'no cells_csrf cookie for the login form');
  const submitted = await browser.fetch(loginAction, {
    method: 'POST',
    form: { login_challenge: challenge, csrf, login: ADMIN, password: PASSWORD },
  });
  check(submitted.status === 303 && isCallback(submitted.location),
    `login POST: expected 303 to ${REDIRECT_URI}, got ${describeResponse(submitted)}`);
  check(submitted.location.searchParams.get('state') === checks.expectedState, 'callback state differs');
  check(submitted.location.searchParams.get('code'), 'callback has no code');
  const tokens = await client.authorizationCodeGrant(config, submitted.location, checks);
  check(tokens.access_token, 'no access_token');
  check(tokens.id_token, 'no id_token');
  check(tokens.refresh_token, 'no refresh_token (scope offline)');
  const claims = tokens.claims();
  check(claims?.sub, 'ID token has no sub');
  check(claims.name === ADMIN, `ID token name ${JSON.stringify(claims.name)} ≠ ${JSON.stringify(ADMIN)}`);
  check(claims.nonce === checks.expectedNonce, 'ID token nonce differs');
  return tokens;
});

// 3. Userinfo.
await step('3 userinfo', async () => {
  needs(first, 'step 2');
  const sub = first.claims().sub;
  const info = await client.fetchUserInfo(config, first.access_token, sub);
  check(info.sub === sub, 'userinfo sub differs');
  check(info.name === ADMIN, `userinfo name ${JSON.stringify(info.name)} ≠ ${JSON.stringify(ADMIN)}`);
});

// 4. The access token on the REST API.
await step('4 access token accepted by GET /a/config/ctl', async () => {
  needs(first, 'step 2');
  const status = await apiStatus(first.access_token);
  check(status === 200, `HTTP ${status}`);
});

// 5. Refresh.
refreshed = await step('5 refresh token grant', async () => {
  needs(first, 'step 2');
  const tokens = await client.refreshTokenGrant(config, first.refresh_token);
  check(tokens.access_token && tokens.access_token !== first.access_token, 'no new access_token');
  check(tokens.refresh_token && tokens.refresh_token !== first.refresh_token, 'refresh token not rotated');
  if (tokens.id_token) check(tokens.claims().sub === first.claims().sub, 'refreshed ID token sub differs');
  const status = await apiStatus(tokens.access_token);
  check(status === 200, `new access token on /a/config/ctl: HTTP ${status}`);
  return tokens;
});

// 6. Introspection.
await step('6 introspection of the new access token', async () => {
  needs(refreshed, 'step 5');
  const result = await client.tokenIntrospection(config, refreshed.access_token);
  check(result.active === true, `active=${result.active}`);
  check(result.client_id === undefined || result.client_id === APP_ID, `client_id ${result.client_id}`);
  check(result.sub === undefined || result.sub === first.claims().sub, `sub ${result.sub}`);
});

// 7. Revocation of the refresh token revokes the grant.
await step('7 revocation of the refresh token', async () => {
  needs(refreshed, 'step 5');
  await client.tokenRevocation(config, refreshed.refresh_token, { token_type_hint: 'refresh_token' });
  const status = await apiStatus(refreshed.access_token);
  check(status === 401, `access token on /a/config/ctl after revocation: HTTP ${status}, expected 401`);
  const result = await client.tokenIntrospection(config, refreshed.access_token);
  check(result.active === false, `introspection after revocation: active=${result.active}`);
  const reuse = await client.refreshTokenGrant(config, refreshed.refresh_token).then(
    () => 'accepted',
    (error) => (error?.error === 'invalid_grant' ? undefined : describe(error)),
  );
  check(reuse === undefined, `revoked refresh token: expected invalid_grant, got ${reuse}`);
});

// 8. RP-initiated logout.
await step('8 RP-initiated logout', async () => {
  needs(config, 'discovery');
  const app = withEndpoint(config, 'end_session_endpoint', `${ISSUER}/oauth2/sessions/logout`,
    APP_ID, APP_SECRET, client.ClientSecretBasic(APP_SECRET));
  needs(first, 'step 2 (browser session)');
  const { url, checks } = await newAuthorization(config);
  const authorize = await browser.fetch(url);
  check(authorize.status === 303 && isCallback(authorize.location),
    `authorize with a session: expected 303 to ${REDIRECT_URI}, got ${describeResponse(authorize)}`);
  const tokens = await client.authorizationCodeGrant(config, authorize.location, checks);
  check((await apiStatus(tokens.access_token)) === 200, 'new session access token refused before logout');
  const state = client.randomState();
  const logoutUrl = client.buildEndSessionUrl(app, {
    id_token_hint: tokens.id_token,
    post_logout_redirect_uri: POST_LOGOUT_URI,
    state,
  });
  const logout = await browser.fetch(logoutUrl);
  // From here on every check is reported, so one run shows all that is missing.
  const redirected = logout.status === 303 && logout.location?.href.startsWith(POST_LOGOUT_URI);
  expect(redirected, `logout: expected 303 to ${POST_LOGOUT_URI}, got ${describeResponse(logout)}`);
  if (redirected) {
    expect(logout.location.searchParams.get('state') === state,
      `logout redirect state ${JSON.stringify(logout.location.searchParams.get('state'))} ≠ sent state`);
  }
  const status = await apiStatus(tokens.access_token);
  expect(status === 401, `access token of the logged-out session on /a/config/ctl: HTTP ${status}, expected 401`);
  const again = await browser.fetch((await newAuthorization(config)).url);
  expect(again.status === 303 && isLoginPage(again.location),
    `authorize after logout: expected 303 to /oauth2/login, got ${describeResponse(again)}`);
});

// 9. Device authorization grant (RFC 8628) for the public client rp-device.
await step('9 device authorization grant', async () => {
  needs(config, 'discovery');
  const device = withEndpoint(config, 'device_authorization_endpoint', `${ISSUER}/oauth2/device/auth`,
    DEVICE_ID, { token_endpoint_auth_method: 'none' }, client.None());
  const started = await client.initiateDeviceAuthorization(device, { scope: 'openid profile offline' });
  check(started.user_code && started.device_code, 'no user_code or device_code');
  check(started.verification_uri === `${BASE}/oauth2/device`,
    `verification_uri ${started.verification_uri} ≠ ${BASE}/oauth2/device`);
  const complete = started.verification_uri_complete ? new URL(started.verification_uri_complete) : undefined;
  check(complete && `${complete.origin}${complete.pathname}` === `${BASE}/oauth2/device`
      && complete.searchParams.get('user_code') === started.user_code,
    `verification_uri_complete ${started.verification_uri_complete} ≠ ${BASE}/oauth2/device?user_code=${started.user_code}`);

  // Poll (as the device) while the user approves (in another browser).
  const stop = new AbortController();
  const limit = Math.min(started.expires_in ?? 60, 60) * 1000;
  const timer = setTimeout(() => stop.abort(new Error(`no tokens after ${limit / 1000} s of polling`)), limit);
  const polling = client
    .pollDeviceAuthorizationGrant(device, started, undefined, { signal: stop.signal })
    .then((tokens) => ({ tokens }), (error) => ({ error }));
  try {
    const phone = new Browser();
    const page = await phone.fetch(complete);
    check(page.status === 200, `GET verification_uri_complete: ${describeResponse(page)}`);
    const form = parseForm(page.text);
    check(form, 'device page has no form');
    check(form.method === 'post', `device form method ${form.method}`);
    const action = new URL(form.action || complete.pathname, complete);
    check(action.origin === BASE && action.pathname === '/oauth2/device', `device form action ${form.action}`);
    const csrf = form.inputs.csrf?.value;
    check(csrf, 'device form has no csrf');
    check(phone.get('cells_csrf', action), 'no cells_csrf cookie for the device form');
    check(form.inputs.user_code, 'device form has no user_code');
    check(form.inputs.login && form.inputs.password, 'device form (not signed in) lacks login or password');
    const approved = await phone.fetch(action, {
      method: 'POST',
      form: { user_code: started.user_code, csrf, login: ADMIN, password: PASSWORD, decision: 'allow' },
    });
    check(approved.status === 200, `approval POST: ${describeResponse(approved)}`);
    const outcome = await polling;
    if (outcome.error) throw outcome.error;
    const { tokens } = outcome;
    check(tokens.access_token, 'no access_token');
    check(tokens.id_token, 'no id_token');
    check(tokens.refresh_token, 'no refresh_token (scope offline)');
    check(tokens.claims()?.name === ADMIN, `ID token name ${JSON.stringify(tokens.claims()?.name)} ≠ ${JSON.stringify(ADMIN)}`);
    const status = await apiStatus(tokens.access_token);
    check(status === 200, `device access token on /a/config/ctl: HTTP ${status}`);
  } finally {
    clearTimeout(timer);
    stop.abort(new Error('step over'));
    await polling;
  }
});

console.log(`rp: ${passed} passed, ${failed} failed`);
process.exitCode = failed === 0 ? 0 : 1;
