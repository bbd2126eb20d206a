// The identity module checked by independent implementations (issue #12): openid-client
// runs discovery and the client_credentials, password and refresh_token grants against a
// real `cleave serve`, and jose verifies the access tokens against our /oauth2/jwks.
//
// usage: node oidc_e2e.mjs CLEAVE_BINARY MIGRATIONS_DIR
// It makes a throwaway data directory, listens on a free 127.0.0.1 port, and stops the
// server it started (by its pid) whatever happens.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as client from 'openid-client';
import * as jose from 'jose';
import { Agent, setGlobalDispatcher } from 'undici';

const [cleave, migrations] = process.argv.slice(2);

// civetweb closes a keep-alive connection after 500 ms idle (its keep_alive_timeout_ms
// default, which the platform keeps), while Node's fetch keeps one for 4 s. A POST sent as
// the server closes fails with "other side closed", and fetch never retries a POST. So
// this client opens a connection per request (pipelining 0: no keep-alive). Reported to
// the platform: any client with a longer idle timeout meets the same race.
setGlobalDispatcher(new Agent({ pipelining: 0 }));
const DEADLINE_MS = 20000;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

function check(cond, what) {
  if (!cond) throw new Error(`FAILED: ${what}`);
  console.log(`ok - ${what}`);
}

async function expectRejects(promise, code, what) {
  try {
    await promise;
  } catch (e) {
    const got = e.error ?? e.code ?? e.message;
    check(got === code, `${what} (got ${got})`);
    return;
  }
  throw new Error(`FAILED: ${what}: it succeeded`);
}

const dir = mkdtempSync(join(tmpdir(), 'cleave-oidc-'));
const port = await freePort();
const issuer = `http://127.0.0.1:${port}`;
const env = {
  ...process.env,
  CLEAVE_DATA_DIR: dir,
  CLEAVE_LISTEN: `127.0.0.1:${port}`,
  CLEAVE_MIGRATIONS_DIR: migrations,
  CLEAVE_IDENTITY_ISSUER: issuer,
  // Low enough that the end of the run reaches it from one address.
  CLEAVE_IDENTITY_TOKEN_RATE: '25',
};
// Every secret and token of the run: none may appear in the server's logs.
const secrets = ['alice-customer-pw', 'cleave-demo-secret-for-make-run-only'];
let logs = '';
let server = null;

function run(args, input) {
  const r = spawnSync(cleave, args, { env, input, encoding: 'utf8', timeout: DEADLINE_MS });
  if (r.status !== 0) throw new Error(`cleave ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

try {
  run(['migrate']);
  run(['seed']);
  const added = run(['clients', 'add', 'reports', '--grant', 'client_credentials',
                     '--audience', 'payments']);
  const secret = /client_secret=(\S+)/.exec(added)[1];
  check(secret.length >= 32, 'cleave clients add prints the secret once');
  secrets.push(secret);
  server = spawn(cleave, ['serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  server.stdout.on('data', (d) => { logs += d; });
  server.stderr.on('data', (d) => { logs += d; process.stderr.write(d); });
  // Ready when discovery answers (polled against a deadline, never a fixed sleep).
  const until = Date.now() + DEADLINE_MS;
  for (;;) {
    try {
      const r = await fetch(`${issuer}/.well-known/openid-configuration`);
      if (r.ok) break;
    } catch { /* not listening yet */ }
    if (Date.now() > until) throw new Error('cleave serve did not become ready');
    await new Promise((res) => setTimeout(res, 50));
  }

  const opts = { execute: [client.allowInsecureRequests] };
  // Discovery, then client_credentials with HTTP Basic (openid-client's default).
  const svc = await client.discovery(new URL(issuer), 'reports', secret, undefined, opts);
  check(svc.serverMetadata().issuer === issuer, 'discovery: issuer');
  const jwks = jose.createRemoteJWKSet(new URL(svc.serverMetadata().jwks_uri));
  const cc = await client.clientCredentialsGrant(svc);
  secrets.push(cc.access_token);
  check(cc.token_type.toLowerCase() === 'bearer' && !cc.refresh_token,
        'client_credentials: a bearer token and no refresh token');
  const { payload: p1, protectedHeader: h1 } = await jose.jwtVerify(cc.access_token, jwks, {
    issuer, audience: 'payments', algorithms: ['ES256'],
  });
  check(p1.sub === 'service:reports' && typeof h1.kid === 'string' && p1.jti && p1.nbf,
        'jose verifies the client_credentials token against /oauth2/jwks');
  check(p1.exp - p1.iat === 600, 'access tokens live the default 10 minutes');

  // The first-party demo client with client_secret_post: password, then refresh.
  const web = await client.discovery(new URL(issuer), 'cleave-demo',
    'cleave-demo-secret-for-make-run-only', client.ClientSecretPost(), opts);
  const pw = await client.genericGrantRequest(web, 'password',
    { username: 'alice', password: 'alice-customer-pw', scope: 'profile' });
  secrets.push(pw.access_token, pw.refresh_token);
  const { payload: p2 } = await jose.jwtVerify(pw.access_token, jwks,
    { issuer, audience: 'cleave', algorithms: ['ES256'] });
  check(p2.sub.startsWith('user:') && p2.roles[0] === 'customer' && p2.scope === 'profile',
        'password grant: the user and role in the token');
  const info = await client.fetchUserInfo(web, pw.access_token, p2.sub);
  check(info.preferred_username === 'alice', 'userinfo answers for the token holder');
  await expectRejects(client.genericGrantRequest(web, 'password',
    { username: 'alice', password: 'wrong-password' }), 'invalid_grant',
    'a wrong password is invalid_grant');

  const r1 = await client.refreshTokenGrant(web, pw.refresh_token);
  secrets.push(r1.access_token, r1.refresh_token);
  check(r1.refresh_token && r1.refresh_token !== pw.refresh_token,
        'refresh_token grant rotates the refresh token');
  await jose.jwtVerify(r1.access_token, jwks, { issuer, audience: 'cleave' });
  await expectRejects(client.refreshTokenGrant(web, pw.refresh_token), 'invalid_grant',
    'reusing a used refresh token is invalid_grant');
  await expectRejects(client.refreshTokenGrant(web, r1.refresh_token), 'invalid_grant',
    'and the reuse revoked the whole family');

  // A tampered token and a token from another key fail jose, as they must.
  const [h, p, s] = cc.access_token.split('.');
  const forged = jose.base64url.encode(JSON.stringify({ ...p1, sub: 'user:1' }));
  await expectRejects(jose.jwtVerify(`${h}.${forged}.${s}`, jwks, { issuer }),
    'ERR_JWS_SIGNATURE_VERIFICATION_FAILED', 'a tampered payload fails verification');

  // RFC 7009 through openid-client: a revoked refresh token no longer refreshes.
  const pw2 = await client.genericGrantRequest(web, 'password',
    { username: 'alice', password: 'alice-customer-pw' });
  secrets.push(pw2.access_token, pw2.refresh_token);
  await client.tokenRevocation(web, pw2.refresh_token);
  await expectRejects(client.refreshTokenGrant(web, pw2.refresh_token), 'invalid_grant',
    'a revoked refresh token is invalid_grant');

  // The wire format itself, without a client library in between.
  let r = await fetch(`${issuer}/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded',
               authorization: `Basic ${btoa('reports:wrong-secret')}` },
    body: 'grant_type=client_credentials',
  });
  let body = await r.json();
  check(r.status === 401 && body.error === 'invalid_client' &&
        r.headers.get('www-authenticate')?.startsWith('Basic'),
        'a wrong secret is 401 invalid_client with WWW-Authenticate');
  r = await fetch(`${issuer}/oauth2/userinfo`);
  check(r.status === 401 && r.headers.get('www-authenticate')?.startsWith('Bearer'),
        'userinfo without a token is 401 with WWW-Authenticate: Bearer');

  // Rotation, by the CLI against the running server's database: new tokens carry the new
  // kid, and a token of the old key still verifies against the JWKS fetched afresh.
  const rotated = run(['keys', 'rotate']);
  check(rotated.includes(h1.kid), 'cleave keys rotate names the key it replaced');
  const cc2 = await client.clientCredentialsGrant(svc);
  secrets.push(cc2.access_token);
  const fresh = jose.createRemoteJWKSet(new URL(svc.serverMetadata().jwks_uri));
  const { protectedHeader: h2 } = await jose.jwtVerify(cc2.access_token, fresh,
    { issuer, audience: 'payments' });
  check(h2.kid !== h1.kid, 'after rotation tokens are signed by the new key');
  await jose.jwtVerify(cc.access_token, fresh, { issuer, audience: 'payments' });
  check(true, 'and a token of the old key still verifies until it expires');

  // The rate limit (25 a minute per address): refused with 429 problem+json, Retry-After.
  let limited = null;
  for (let i = 0; i < 30 && limited === null; i++) {
    r = await fetch(`${issuer}/oauth2/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials&client_id=nobody&client_secret=guess',
    });
    if (r.status === 429) limited = r;
    else await r.arrayBuffer();
  }
  check(limited !== null &&
        limited.headers.get('content-type') === 'application/problem+json' &&
        Number(limited.headers.get('retry-after')) > 0,
        'over the rate limit the token endpoint answers 429 with Retry-After');
  await limited.arrayBuffer();
  console.log('all checks passed');
  server.kill('SIGTERM');
  await new Promise((res) => server.once('exit', res));
  server = null;
  // The issue's rule: no secret, password or token in any log line.
  const leaked = secrets.filter((x) => logs.includes(x));
  check(logs.length > 0 && leaked.length === 0,
        `no secret, password or token in ${logs.length} bytes of server logs`);
} finally {
  if (server !== null) {
    server.kill('SIGTERM');
    await new Promise((res) => server.once('exit', res));
  }
  rmSync(dir, { recursive: true, force: true });
}
