// The in-process GrabDecider (embedded mode, docs/decisions/0007 "The grab path"): per envelope,
// the free share indices in hand-out order and the user → index decisions. Every method runs
// without an await, so on Node's one thread each is atomic under any number of concurrent grabs.
//
// Memory is bounded by expiry: an envelope is dropped `retainAfterExpiryMs` after it expires
// (counted from its load if it was loaded already expired). The retention exists because decisions
// still count after expiry: the expiry sweep claims them before the refund. Dropped envelopes are
// swept lazily, at most once a second, on load and decide; a dropped one answers 'unknown' and is
// rebuilt from the store if anyone asks again.
import type { Clock } from '../../engine/ports.ts';
import { systemClock } from '../../engine/ports.ts';
import type { GrabDecider, GrabDecision } from '../../engine/wallet/ports.ts';

export const DEFAULT_GRAB_RETENTION_MS = 3600_000;
const SWEEP_EVERY_MS = 1_000;

export type GrabEnvelope = { id: string; count: number; expiresAt: number };
export type GrabClaim = { user: string; index: number };

/** Refuses what no store could hold (a bug in the caller): both adapters check the same way. */
export function checkGrabLoad(envelope: GrabEnvelope, claimed: ReadonlyArray<GrabClaim>): void {
  const { id, count, expiresAt } = envelope;
  if (!Number.isSafeInteger(count) || count < 1) throw new RangeError(`envelope ${id}: count must be an integer >= 1 (got ${count})`);
  if (!Number.isSafeInteger(expiresAt)) throw new RangeError(`envelope ${id}: expiresAt must be an integer of ms (got ${expiresAt})`);
  const users = new Set<string>();
  const indices = new Set<number>();
  for (const { user, index } of claimed) {
    if (!Number.isSafeInteger(index) || index < 0 || index >= count) throw new RangeError(`envelope ${id}: claimed index ${index} is outside [0, ${count})`);
    if (indices.has(index)) throw new RangeError(`envelope ${id}: index ${index} claimed twice`);
    if (users.has(user)) throw new RangeError(`envelope ${id}: user ${user} claims twice`);
    indices.add(index);
    users.add(user);
  }
}

export function checkRetention(name: string, ms: number): void {
  if (!Number.isSafeInteger(ms) || ms < 0) throw new RangeError(`${name} must be an integer >= 0 of ms (got ${ms})`);
}

interface EnvelopeState {
  expiresAt: number;
  /** When the state may go (wall clock). */
  dropAt: number;
  /** Free indices in hand-out order; those before `next` are handed out. */
  free: number[];
  next: number;
  decided: Map<string, number>;
  /** Loaded from the store after a loss (see GrabDecision). */
  rebuilt: boolean;
}

export interface MemoryGrabDeciderOptions {
  /** How long an envelope is kept after it expires (ms). Default DEFAULT_GRAB_RETENTION_MS. */
  retainAfterExpiryMs?: number;
  /** The clock of retention only; expiry itself is decided by decide()'s `now`. */
  clock?: Clock;
}

export class MemoryGrabDecider implements GrabDecider {
  readonly retainAfterExpiryMs: number;
  private readonly clock: Clock;
  private readonly envelopes = new Map<string, EnvelopeState>();
  private nextSweepAt = -Infinity;

  constructor(options: MemoryGrabDeciderOptions = {}) {
    this.retainAfterExpiryMs = options.retainAfterExpiryMs ?? DEFAULT_GRAB_RETENTION_MS;
    checkRetention('MemoryGrabDecider retainAfterExpiryMs', this.retainAfterExpiryMs);
    this.clock = options.clock ?? systemClock;
  }

  /** Envelopes held (for tests and metrics). */
  get size(): number {
    return this.envelopes.size;
  }

  async load(envelope: GrabEnvelope, claimed: ReadonlyArray<GrabClaim>, options: { rebuild?: boolean } = {}): Promise<void> {
    checkGrabLoad(envelope, claimed);
    const now = this.clock.now();
    this.sweep(now);
    if (this.envelopes.has(envelope.id)) return;
    const decided = new Map(claimed.map(({ user, index }) => [user, index]));
    const taken = new Set(decided.values());
    const free: number[] = [];
    for (let i = 0; i < envelope.count; i++) if (!taken.has(i)) free.push(i);
    const dropAt = Math.max(envelope.expiresAt, now) + this.retainAfterExpiryMs;
    this.envelopes.set(envelope.id, { expiresAt: envelope.expiresAt, dropAt, free, next: 0, decided, rebuilt: options.rebuild === true });
  }

  async decide(envelopeId: string, user: string, now: number): Promise<GrabDecision> {
    this.sweep(this.clock.now());
    const state = this.envelopes.get(envelopeId);
    if (!state) return { outcome: 'unknown' };
    const earlier = state.decided.get(user);
    if (earlier !== undefined) return { outcome: 'share', index: earlier };
    if (now >= state.expiresAt) return state.rebuilt ? { outcome: 'expired', rebuilt: true } : { outcome: 'expired' };
    const index = state.free[state.next];
    if (index === undefined) return state.rebuilt ? { outcome: 'empty', rebuilt: true } : { outcome: 'empty' };
    state.next++;
    state.decided.set(user, index);
    return { outcome: 'share', index };
  }

  async forget(envelopeId: string, user: string): Promise<void> {
    this.envelopes.get(envelopeId)?.decided.delete(user);
  }

  async reassign(envelopeId: string, user: string, decided: number, held: number): Promise<void> {
    const state = this.envelopes.get(envelopeId);
    if (!state || state.decided.get(user) !== decided || decided === held) return;
    state.decided.set(user, held);
    const waiting = state.free.indexOf(held, state.next);
    if (waiting >= 0) state.free.splice(waiting, 1);
    // Back at the front of what is still free: handed out next.
    if (state.next > 0) state.free[--state.next] = decided;
    else state.free.unshift(decided);
  }

  async drop(envelopeId: string): Promise<void> {
    this.envelopes.delete(envelopeId);
  }

  private sweep(now: number): void {
    if (now < this.nextSweepAt) return;
    this.nextSweepAt = now + SWEEP_EVERY_MS;
    for (const [id, state] of this.envelopes) if (state.dropAt <= now) this.envelopes.delete(id);
  }
}
