// LeaseStore over a NATS JetStream KV bucket (client v3). The bucket keeps one value per key
// (history 1) and its max age is the lease ttl, so the server itself expires entries ttlMs after
// their last write: a crashed owner needs no one to clean up after it. Compare-and-set is the
// KV's own: create (no live value), update and delete with the expected last revision.
// (nats-server 2.9 has no per-key TTL, hence one bucket-wide ttl for every entry.)
import { JetStreamApiCodes, JetStreamApiError, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { LeaseStore } from '../../engine/ports.ts';

export const DEFAULT_LEASE_BUCKET = 'lantern_partitions';
/** The keys a NATS KV bucket accepts (the client alone lets empty tokens through). */
const KEY = /^[-/=\w]+(\.[-/=\w]+)*$/;

export interface NatsKvLeaseStoreOptions {
  ttlMs: number;
  /** KV bucket name; every process sharing leases must use the same one (and the same ttlMs). */
  bucket?: string;
}

export class NatsKvLeaseStore implements LeaseStore {
  private constructor(private readonly kv: KV, private readonly jsm: JetStreamManager, private readonly bucket: string, readonly ttlMs: number) {}

  /**
   * Open the bucket, creating it (history 1, max age ttlMs) if absent. An existing bucket with
   * another ttl is refused: its entries would not expire when the leases' holders assume.
   * The connection (or Kvm) is the caller's and stays open after this store is dropped.
   */
  static async open(client: NatsConnection | Kvm, options: NatsKvLeaseStoreOptions): Promise<NatsKvLeaseStore> {
    const { ttlMs, bucket = DEFAULT_LEASE_BUCKET } = options;
    if (!Number.isInteger(ttlMs) || ttlMs <= 0) throw new RangeError(`ttlMs must be a positive whole number of milliseconds, got ${ttlMs}`);
    const kvm = client instanceof Kvm ? client : new Kvm(client);
    const kv = await kvm.create(bucket, { history: 1, ttl: ttlMs });
    const status = await kv.status();
    if (status.ttl !== ttlMs || status.history !== 1) {
      throw new Error(`lease bucket ${bucket} exists with ttl ${status.ttl} ms and history ${status.history}; ` +
        `the lease store needs ttlMs ${ttlMs} and history 1 (delete the bucket or use another one)`);
    }
    return new NatsKvLeaseStore(kv, await kvm.js.jetstreamManager(), bucket, ttlMs);
  }

  async claim(key: string, owner: string): Promise<number | undefined> {
    checkKey(key, owner);
    return ifCurrent(this.kv.create(key, owner));
  }

  async renew(key: string, owner: string, revision: number): Promise<number | undefined> {
    checkKey(key, owner);
    return ifCurrent(this.kv.update(key, owner, revision));
  }

  async release(key: string, owner: string, revision: number): Promise<boolean> {
    checkKey(key, owner);
    const done = await ifCurrent(this.kv.delete(key, { previousSeq: revision }).then(() => true));
    return done ?? false;
  }

  async holders(prefix: string): Promise<Map<string, string>> {
    if (!prefix.endsWith('.') || !KEY.test(prefix.slice(0, -1))) throw new TypeError(`invalid lease prefix ${JSON.stringify(prefix)}: key tokens ending with a dot, e.g. "p."`);
    // The keys come from one stream-info request (subjects with a message), not from kv.keys():
    // that one runs a consumer which waits for as many entries as were pending when it started,
    // and when entries expire in between (leases do, all the time) it hangs until an idle
    // heartbeat, 30 s, stalling the owner's renewals past every lease deadline.
    const subjectPrefix = `$KV.${this.bucket}.`;
    const info = await this.jsm.streams.info(`KV_${this.bucket}`, { subjects_filter: `${subjectPrefix}${prefix}>` });
    const keys = Object.keys(info.state.subjects ?? {}).map((s) => s.slice(subjectPrefix.length)).sort();
    // An entry may expire or be released between listing and reading it: then it is not live.
    const entries = await Promise.all(keys.map((k) => this.kv.get(k)));
    const out = new Map<string, string>();
    for (const entry of entries) {
      if (entry && entry.operation === 'PUT') out.set(entry.key, entry.string());
    }
    return out;
  }
}

/** The KV's compare-and-set refusal ("wrong last sequence") means: not yours. Anything else is a failure. */
async function ifCurrent<T>(write: Promise<T>): Promise<T | undefined> {
  try {
    return await write;
  } catch (err) {
    if (err instanceof JetStreamApiError && (err.code === JetStreamApiCodes.StreamWrongLastSequence
      || err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)) return undefined;
    throw err;
  }
}

function checkKey(key: string, owner: string): void {
  if (!KEY.test(key)) throw new TypeError(`invalid lease key ${JSON.stringify(key)}: dot-separated tokens of A-Z a-z 0-9 - _ = /`);
  if (owner === '') throw new TypeError(`lease owner for ${key} must not be empty`);
}
