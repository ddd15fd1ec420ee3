import t from 'tap';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { createTokenVerifier, loadOrCreateDevSecret, mintToken } from './auth.ts';

const SECRET = 'a'.repeat(16) + 'b'.repeat(16);

t.test('mintToken round-trips through the verifier; audience is enforced', async (t) => {
  const verifier = createTokenVerifier({ secret: SECRET, audience: 'lantern', clockToleranceSec: 0 });
  t.same(verifier.algorithms, ['HS256']);
  t.same(await verifier.verify(await mintToken({ secret: SECRET, user: 'alice', ttlSec: 60 })), { ok: true, user: 'alice' });
  t.match(await verifier.verify(await mintToken({ secret: SECRET, user: 'alice', ttlSec: 60, audience: 'x' })), { ok: false, reason: 'invalid' });
  t.match(await verifier.verify(await mintToken({ secret: SECRET, user: 'alice', ttlSec: -30 })), { ok: false, reason: 'expired' });
});

t.test('clock tolerance applies to exp', async (t) => {
  const lenient = createTokenVerifier({ secret: SECRET, audience: 'lantern', clockToleranceSec: 60 });
  t.match(await lenient.verify(await mintToken({ secret: SECRET, user: 'a', ttlSec: -30 })), { ok: true });
});

t.test('keys are pinned to their algorithm', async (t) => {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const jwk = JSON.stringify(publicKey.export({ format: 'jwk' }));
  const both = createTokenVerifier({ secret: SECRET, publicKey: jwk, audience: 'lantern', clockToleranceSec: 0 });
  t.same(both.algorithms, ['HS256', 'EdDSA']);
  const ed = await new SignJWT({}).setProtectedHeader({ alg: 'EdDSA' }).setSubject('bob').setAudience('lantern').setExpirationTime('1m').sign(privateKey);
  t.same(await both.verify(ed), { ok: true, user: 'bob' }, 'EdDSA with a JWK public key');
  t.same(await both.verify(await mintToken({ secret: SECRET, user: 'al', ttlSec: 60 })), { ok: true, user: 'al' });
  const hs384 = await new SignJWT({}).setProtectedHeader({ alg: 'HS384' }).setSubject('x').setAudience('lantern').setExpirationTime('1m').sign(new TextEncoder().encode(SECRET));
  t.match(await both.verify(hs384), { ok: false, reason: 'invalid', detail: /HS384 not accepted/ });
  // An EdDSA header on a token HMAC-signed with the public key bytes must not verify.
  const forged = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('x').setAudience('lantern').setExpirationTime('1m')
    .sign(new TextEncoder().encode(jwk));
  t.match(await both.verify(forged), { ok: false, reason: 'invalid' });
  t.throws(() => createTokenVerifier({ audience: 'lantern', clockToleranceSec: 0 }), /no key configured/);
});

t.test('dev secret: created once with mode 0600, then reused', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'lantern-auth-'));
  const dataDir = join(dir, 'nested');
  const first = await loadOrCreateDevSecret(dataDir);
  t.equal(first.created, true);
  t.match(first.secret, /^[A-Za-z0-9_-]{43}$/, '32 random bytes, base64url');
  t.equal((await stat(first.path)).mode & 0o777, 0o600);
  t.equal((await readFile(first.path, 'utf8')).trim(), first.secret);
  const second = await loadOrCreateDevSecret(dataDir);
  t.same({ secret: second.secret, created: second.created }, { secret: first.secret, created: false });
});
