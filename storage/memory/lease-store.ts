// The in-process LeaseStore: the contract of engine/ports.ts over a Map, for embedded mode and
// unit tests. Expiry is computed on read from an injectable clock, so tests can move time by hand.
import type { Clock, LeaseStore } from '../../engine/ports.ts';

/** Durations only: a monotonic clock, immune to wall-clock jumps. */
const monotonicClock: Clock = { now: () => performance.now() };

/** The keys a NATS KV bucket accepts, so a key that works here works there too. */
const KEY = /^[-/=\w]+(\.[-/=\w]+)*$/;

interface Entry { owner: string; revision: number; writtenAt: number }

export interface MemoryLeaseStoreOptions {
  ttlMs: number;
  clock?: Clock;
}

export class MemoryLeaseStore implements LeaseStore {
  readonly ttlMs: number;
  private readonly clock: Clock;
  private readonly entries = new Map<string, Entry>();
  /** One counter for the whole store, like a stream sequence: revisions never repeat. */
  private lastRevision = 0;

  constructor(options: MemoryLeaseStoreOptions) {
    if (!Number.isFinite(options.ttlMs) || options.ttlMs <= 0) throw new RangeError(`ttlMs must be a positive number of milliseconds, got ${options.ttlMs}`);
    this.ttlMs = options.ttlMs;
    this.clock = options.clock ?? monotonicClock;
  }

  async claim(key: string, owner: string): Promise<number | undefined> {
    check(key, owner);
    if (this.live(key)) return undefined;
    return this.write(key, owner);
  }

  async renew(key: string, owner: string, revision: number): Promise<number | undefined> {
    check(key, owner);
    if (this.live(key)?.revision !== revision) return undefined;
    return this.write(key, owner);
  }

  async release(key: string, owner: string, revision: number): Promise<boolean> {
    check(key, owner);
    if (this.live(key)?.revision !== revision) return false;
    this.entries.delete(key);
    return true;
  }

  async holders(prefix: string): Promise<Map<string, string>> {
    checkPrefix(prefix);
    const out = new Map<string, string>();
    for (const key of [...this.entries.keys()].sort()) {
      if (!key.startsWith(prefix)) continue;
      const entry = this.live(key);
      if (entry) out.set(key, entry.owner);
    }
    return out;
  }

  /** The entry if it has not expired; drops it if it has. */
  private live(key: string): Entry | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (this.clock.now() - entry.writtenAt >= this.ttlMs) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }

  private write(key: string, owner: string): number {
    const revision = ++this.lastRevision;
    this.entries.set(key, { owner, revision, writtenAt: this.clock.now() });
    return revision;
  }
}

function check(key: string, owner: string): void {
  if (!KEY.test(key)) throw new TypeError(`invalid lease key ${JSON.stringify(key)}: dot-separated tokens of A-Z a-z 0-9 - _ = /`);
  if (owner === '') throw new TypeError(`lease owner for ${key} must not be empty`);
}

function checkPrefix(prefix: string): void {
  if (!prefix.endsWith('.') || !KEY.test(prefix.slice(0, -1))) {
    throw new TypeError(`invalid lease prefix ${JSON.stringify(prefix)}: key tokens ending with a dot, e.g. "p."`);
  }
}
