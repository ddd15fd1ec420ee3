// Request checks and derived identifiers shared by the wallet services. Amounts are integer
// cents; the protocol schema already refused floats, negatives and unsafe integers, so these
// checks are the per-operation limits (named settings) and the currency list.
import { createHash } from 'node:crypto';
import { LanternError } from '../../protocol/errors.ts';
import type { EngineSettings } from '../api.ts';

export function currencies(settings: EngineSettings): string[] {
  return settings.currencies.split(',');
}

/** The requested currency, or the default (the first configured). */
export function currencyOf(settings: EngineSettings, requested: string | undefined): string {
  const known = currencies(settings);
  if (requested === undefined) return known[0]!;
  if (!known.includes(requested)) throw new LanternError('invalid_field', `currency ${requested} is not one of ${known.join(', ')}`, { field: 'currency' });
  return requested;
}

/** A positive safe integer of cents at most `max` (the setting named in the message). */
export function requireCents(value: unknown, max: number, field: string, setting: string): number {
  if (!Number.isSafeInteger(value) || (value as number) <= 0) {
    throw new LanternError('invalid_field', `${field} must be a positive integer of cents`, { field });
  }
  if ((value as number) > max) throw new LanternError('too_large', `${field} ${String(value)} is above ${setting} (${max} cents)`, { field });
  return value as number;
}

export function requireText(value: string | undefined, max: number, field: string): string {
  const v = value ?? '';
  if (v.length > max) throw new LanternError('too_large', `${field} is longer than ${max} characters`, { field });
  return v;
}

/**
 * An id derived from who asked and their idempotency key: a retry names the same envelope or
 * transfer, and no one can guess or collide with another user's. `prefix` says what it is.
 */
export function derivedId(prefix: string, user: string, key: string): string {
  return prefix + createHash('sha256').update(`${user}\u0000${key}`).digest('base64url').slice(0, 22);
}

/** Hash of what a request asked for: the same key with a different request is refused, not replayed. */
export function fingerprint(fields: Record<string, string | number>): string {
  const canonical = Object.keys(fields).sort().map((k) => `${k}=${fields[k]}`).join('\u0000');
  return createHash('sha256').update(canonical).digest('hex').slice(0, 32);
}
