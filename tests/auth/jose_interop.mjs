// cleave_auth checked by an independent JOSE implementation, jose (panva/jose):
//  1. tokens and the JWKS our C code makes (jwt_tool issue) verify in jose with the
//     right issuer and audience, and jose reads their claims;
//  2. tokens jose signs with keys it makes (ES256 and RS256), and jose's JWKS and PKCS#8
//     PEMs of those keys, are accepted by our verifier and key loader (jwt_tool check);
//     tokens we sign with the keys loaded from jose's PEMs verify in jose again;
//  3. hostile tokens jose makes (alg none through UnsecuredJWT, HS256 keyed with the
//     public key's bytes, an RS256 token naming the ES256 key, expired, wrong audience,
//     tampered) are refused by ours, each for its reason.
//
// usage: node jose_interop.mjs JWT_TOOL NODE_DIR   (NODE_DIR holds node_modules/jose)
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [tool, nodeDir] = process.argv.slice(2);
if (!tool || !nodeDir) {
  console.error('usage: node jose_interop.mjs JWT_TOOL NODE_DIR');
  process.exit(2);
}
// The tools live in the build tree, not beside this script: resolve jose from there.
const require = createRequire(path.join(nodeDir, 'package.json'));
const jose = await import(pathToFileURL(require.resolve('jose')).href);

const ISS = 'https://issuer.test';
const AUD = 'cleave-api';
let failures = 0;
function check(cond, what) {
  console.log(`${cond ? 'ok' : 'FAIL'} ${what}`);
  if (!cond) failures++;
}

// 1. Ours, verified by jose.
const issued = JSON.parse(execFileSync(tool, ['issue', ISS, AUD], { encoding: 'utf8' }));
check(issued.jwks.keys.length === 2, 'our JWKS has both keys');
const ourKeys = jose.createLocalJWKSet(issued.jwks);
for (const { kid, token } of issued.tokens) {
  try {
    const { payload, protectedHeader } = await jose.jwtVerify(token, ourKeys, {
      issuer: ISS, audience: AUD, algorithms: ['ES256', 'RS256'],
    });
    check(protectedHeader.kid === kid && protectedHeader.typ === 'JWT',
      `jose reads our header for ${kid} (${protectedHeader.alg})`);
    check(typeof payload.sub === 'string' && payload.sub.startsWith('c-user-') &&
      payload.scope === 'orders:read orders:write' && payload.roles.length === 2 &&
      payload.jti === 'jti-1' && payload.exp - payload.iat === 600,
    `jose reads our claims for ${kid}`);
  } catch (e) {
    check(false, `jose verifies our ${kid} token: ${e.code ?? ''} ${e.message}`);
  }
  // jose must hold us to our audience as well: it is the same check on its side.
  await jose.jwtVerify(token, ourKeys, { issuer: ISS, audience: 'other' }).then(
    () => check(false, `jose refuses our ${kid} token for another audience`),
    () => check(true, `jose refuses our ${kid} token for another audience`));
}

// 2. jose's keys and tokens, checked by ours.
const keys = {};
const pems = [];
const jwks = { keys: [] };
for (const alg of ['ES256', 'RS256']) {
  const kid = `j-${alg.toLowerCase()}`;
  const pair = await jose.generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await jose.exportJWK(pair.publicKey)), kid, alg, use: 'sig' };
  keys[alg] = { kid, ...pair };
  jwks.keys.push(jwk);
  pems.push({ kid: `${kid}-pem`, pem: await jose.exportPKCS8(pair.privateKey), jwk });
}
const now = Math.floor(Date.now() / 1000);
async function sign(alg, { kid = keys[alg].kid, claims = {}, exp = now + 600, aud = AUD } = {}) {
  return new jose.SignJWT({ scope: 'orders:read', roles: ['customer'], ...claims })
    .setProtectedHeader({ alg, kid, typ: 'JWT' })
    .setIssuer(ISS).setAudience(aud).setSubject(claims.sub ?? `jose-${alg}`)
    .setIssuedAt(now).setNotBefore(now).setExpirationTime(exp).setJti('j-1')
    .sign(keys[alg].privateKey);
}
const accept = [
  { name: 'jose ES256', token: await sign('ES256'), sub: 'jose-ES256' },
  { name: 'jose RS256', token: await sign('RS256'), sub: 'jose-RS256' },
  { name: 'jose ES256, aud list', token: await sign('ES256', { aud: ['x', AUD] }), sub: 'jose-ES256' },
];
const spki = await jose.exportSPKI(keys.RS256.publicKey);
const hs = (secret) => new jose.SignJWT({ sub: 'attacker' })
  .setProtectedHeader({ alg: 'HS256', kid: keys.RS256.kid, typ: 'JWT' })
  .setIssuer(ISS).setAudience(AUD).setIssuedAt(now).setExpirationTime(now + 600)
  .sign(new TextEncoder().encode(secret));
const good = await sign('ES256');
const [h, p, s] = good.split('.');
const otherPayload = (await sign('ES256', { claims: { sub: 'admin' } })).split('.')[1];
const refuse = [
  { name: 'jose alg none (UnsecuredJWT)',
    token: new jose.UnsecuredJWT({ sub: 'attacker' }).setIssuer(ISS).setAudience(AUD)
      .setIssuedAt(now).setExpirationTime(now + 600).encode(),
    reason: 'alg none is refused' },
  { name: 'jose HS256 keyed with the SPKI PEM of the RSA key', token: await hs(spki),
    reason: 'HMAC alg HS256 is refused' },
  { name: 'jose HS256 keyed with the JWK of the RSA key',
    token: await hs(JSON.stringify(jwks.keys[1])), reason: 'HMAC alg HS256 is refused' },
  { name: 'jose RS256 naming the ES256 key', token: await sign('RS256', { kid: keys.ES256.kid }),
    reason: 'alg RS256 does not match key j-es256' },
  { name: 'jose expired an hour ago', token: await sign('ES256', { exp: now - 3600 }),
    reason: 'token expired at' },
  { name: 'jose other audience', token: await sign('ES256', { aud: 'other-api' }),
    reason: 'aud other-api is not cleave-api' },
  { name: 'jose token with another payload', token: `${h}.${otherPayload}.${s}`,
    reason: 'signature does not verify' },
  { name: 'jose unknown kid', token: await sign('ES256', { kid: 'j-gone' }),
    reason: 'no key has kid j-gone' },
];
// jose itself agrees that the hostile ones are bad (else the case would prove nothing).
for (const r of refuse) {
  await jose.jwtVerify(r.token, jose.createLocalJWKSet(jwks), { issuer: ISS, audience: AUD }).then(
    () => check(false, `jose also refuses: ${r.name}`),
    () => check(true, `jose also refuses: ${r.name}`));
}

const dir = mkdtempSync(path.join(tmpdir(), 'cleave-jose-'));
try {
  const file = path.join(dir, 'cases.json');
  writeFileSync(file, JSON.stringify({ iss: ISS, aud: AUD, jwks, pems, accept, refuse }));
  let out;
  try {
    out = execFileSync(tool, ['check', file], { encoding: 'utf8' });
  } catch (e) {
    out = e.stdout ?? '';
    check(false, `jwt_tool check exits 0 (${e.status})`);
  }
  const lines = out.trim().split('\n');
  for (const line of lines.slice(0, -1)) console.log(`  ${line}`);
  check(lines.filter((l) => l.startsWith('ok ')).length ===
    accept.length + refuse.length + pems.length, 'ours decided every case as expected');
  // 3. Tokens ours signed with the keys read from jose's PEMs, verified by jose.
  const signed = JSON.parse(lines.at(-1)).signed;
  check(signed.length === pems.length, 'ours signed with every PEM key');
  for (const { kid, token } of signed) {
    const jwk = pems.find((e) => e.kid === kid).jwk;
    try {
      const { payload } = await jose.jwtVerify(token, await jose.importJWK(jwk, jwk.alg), {
        issuer: ISS, audience: AUD,
      });
      check(payload.sub === 'jose-key-user', `jose verifies what ours signed with ${kid}`);
    } catch (e) {
      check(false, `jose verifies what ours signed with ${kid}: ${e.message}`);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
if (failures > 0) {
  console.error(`${failures} check(s) failed`);
  process.exit(1);
}
console.log('all checks passed');
