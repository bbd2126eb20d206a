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

const [cleave, migrations] = process.argv.slice(2);
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
};
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
  server = spawn(cleave, ['serve'], { env, stdio: ['ignore', 'ignore', 'inherit'] });
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
  console.log('all checks passed');
} finally {
  if (server !== null) {
    server.kill('SIGTERM');
    await new Promise((res) => server.once('exit', res));
  }
  rmSync(dir, { recursive: true, force: true });
}
