// Token verification for `hello`. Each configured key is pinned to one algorithm: the
// shared secret only verifies HS256, the Ed25519 public key only EdDSA; `none` and every
// other alg are refused before any key is chosen. `aud`, `exp` and `sub` are required.
import { createPublicKey, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SignJWT, decodeProtectedHeader, errors as joseErrors, jwtVerify } from 'jose';
import { isId } from '../protocol/schema.ts';
import type { Logger } from '../engine/ports.ts';

export type VerifyResult =
  | { ok: true; user: string }
  /** 'expired' → close 4200 (fetch a new token); 'invalid' → close 4001. `detail` is for logs only. */
  | { ok: false; reason: 'expired' | 'invalid'; detail: string };

export interface AuthConfig {
  /** HS256 shared secret. */
  secret?: string | undefined;
  /** Ed25519 public key, PEM (SPKI) or JWK JSON. */
  publicKey?: string | undefined;
  audience: string;
  clockToleranceSec: number;
}

export interface TokenVerifier {
  verify(token: string): Promise<VerifyResult>;
  /** Algorithms this verifier accepts, e.g. ['HS256', 'EdDSA']. */
  readonly algorithms: readonly string[];
}

export function parseEd25519PublicKey(text: string): KeyObject {
  const trimmed = text.trim();
  const key = trimmed.startsWith('{')
    ? createPublicKey({ key: JSON.parse(trimmed) as import('node:crypto').JsonWebKey, format: 'jwk' })
    : createPublicKey(trimmed);
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`expected an Ed25519 key, got ${key.asymmetricKeyType}`);
  return key;
}

export function createTokenVerifier(config: AuthConfig): TokenVerifier {
  const keys = new Map<string, KeyObject>();
  if (config.secret) keys.set('HS256', createSecretKey(Buffer.from(config.secret, 'utf8')));
  if (config.publicKey) keys.set('EdDSA', parseEd25519PublicKey(config.publicKey));
  if (keys.size === 0) throw new Error('createTokenVerifier: no key configured (jwtSecret or jwtPublicKey)');
  const algorithms = [...keys.keys()];

  async function verify(token: string): Promise<VerifyResult> {
    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch (err) {
      return { ok: false, reason: 'invalid', detail: `unreadable token header: ${(err as Error).message}` };
    }
    const key = typeof alg === 'string' ? keys.get(alg) : undefined;
    if (!key) return { ok: false, reason: 'invalid', detail: `algorithm ${String(alg)} not accepted (accepting ${algorithms.join(', ')})` };
    try {
      const { payload } = await jwtVerify(token, key, {
        algorithms: [alg as string],
        audience: config.audience,
        clockTolerance: config.clockToleranceSec,
        requiredClaims: ['exp', 'sub'],
      });
      if (!isId(payload.sub)) return { ok: false, reason: 'invalid', detail: 'sub must be a user id of 1..128 characters' };
      return { ok: true, user: payload.sub };
    } catch (err) {
      if (err instanceof joseErrors.JWTExpired) return { ok: false, reason: 'expired', detail: err.message };
      if (err instanceof joseErrors.JOSEError) return { ok: false, reason: 'invalid', detail: `${err.code}: ${err.message}` };
      throw err; // not a verdict on the token: a bug or a runtime failure, let the caller log it
    }
  }
  return { verify, algorithms };
}

export interface MintOptions {
  secret: string;
  user: string;
  ttlSec: number;
  audience?: string;
}

/** An HS256 token for `user`, valid for ttlSec (for the CLI, tests and dev setups). */
export async function mintToken({ secret, user, ttlSec, audience = 'lantern' }: MintOptions): Promise<string> {
  if (!isId(user)) throw new Error('mintToken: user must be 1..128 characters');
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(user)
    .setAudience(audience)
    .setIssuedAt(now)
    .setExpirationTime(now + ttlSec)
    .sign(createSecretKey(Buffer.from(secret, 'utf8')));
}

export const DEV_SECRET_FILE = 'dev-secret';

/**
 * The development secret in `<dataDir>/dev-secret`, created (32 random bytes, base64url,
 * mode 0600) on first use. Only used when no jwtSecret/jwtPublicKey is configured.
 */
export async function loadOrCreateDevSecret(dataDir: string): Promise<{ secret: string; path: string; created: boolean }> {
  const path = join(dataDir, DEV_SECRET_FILE);
  try {
    const secret = (await readFile(path, 'utf8')).trim();
    if (secret.length < 32) throw new Error(`${path}: dev secret is shorter than 32 characters; delete the file to make a new one`);
    return { secret, path, created: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(dataDir, { recursive: true });
  const secret = randomBytes(32).toString('base64url');
  try {
    // 'wx': never overwrite a secret another process created in the meantime.
    await writeFile(path, secret + '\n', { mode: 0o600, flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateDevSecret(dataDir);
    throw err;
  }
  return { secret, path, created: true };
}

export function warnDevAuth(log: Logger, path: string, dataDir: string): void {
  log.warn(
    { devSecret: path },
    `DEV AUTH IN USE: no jwtSecret/jwtPublicKey configured, tokens are signed with the dev secret in ${path}. ` +
      `Mint one with \`npx lantern token --user alice${dataDir === '.lantern' ? '' : ` --data-dir ${dataDir}`}\`. Do not use this in production.`,
  );
}
