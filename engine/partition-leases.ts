// Which worker serves which conversation partition (docs/decisions/0006, partition ownership).
// Each partition has a lease `p.<n>` in a LeaseStore; a worker serves `lantern.conv.<n>` only
// while it holds that lease, so each partition has one writer. Every round a worker renews what
// it holds, keeps a heartbeat `w.<id>` so workers can count each other, hands back what exceeds
// its fair share ceil(P / live workers) and claims free partitions up to it: load spreads as
// workers join and flows back when they leave. A worker that cannot renew stops serving before
// its lease can expire at the store and be claimed by another (see LeaseStore's contract).
import { randomUUID } from 'node:crypto';
import { conversationSubject } from './bus-engine.ts';
import { silentLogger, type Bus, type BusSubscription, type LeaseStore, type Logger } from './ports.ts';

export const PARTITION_LEASE_PREFIX = 'p.';
export const WORKER_LEASE_PREFIX = 'w.';
export const partitionLeaseKey = (partition: number): string => `${PARTITION_LEASE_PREFIX}${partition}`;
export const workerLeaseKey = (workerId: string): string => `${WORKER_LEASE_PREFIX}${workerId}`;

/** Renew this many times per ttl, so one slow or failed renew does not lose a lease. */
export const DEFAULT_RENEWS_PER_TTL = 3;
/** Stop serving this fraction of the ttl before a lease could expire: room for clock-rate drift and unsubscribing. */
export const DEFAULT_SAFETY_FRACTION = 0.1;

export interface PartitionOwnershipOptions {
  leases: LeaseStore;
  /** Flushed after unsubscribing a partition and before releasing its lease, so the next owner never overlaps with us. */
  bus: Pick<Bus, 'flush'>;
  /** This worker's name, one key token (letters, digits, `-`, `_`, `=`); unique among live workers. */
  workerId: string;
  /** Number of conversation partitions; every worker and gateway must agree on it. */
  partitions: number;
  /** Start answering one partition's subject, e.g. `(s) => serveEngine(bus, engine, [s], log)`. */
  serve: (subject: string) => BusSubscription;
  /** Default ttl / 3. */
  renewEveryMs?: number;
  /** How long before a lease could expire this worker stops serving it. Default ttl / 10. */
  safetyMarginMs?: number;
  /** Called before the worker starts serving a partition (e.g. to drop cached state of its conversations). */
  onAcquire?: (partition: number) => void;
  /** Called after the worker stopped serving a partition. */
  onRelease?: (partition: number) => void;
  /** Called after every round with the partitions served (tests, metrics). */
  onRound?: (owned: readonly number[]) => void;
  log?: Logger;
}

interface Held {
  revision: number;
  /** When the last successful claim/renew was sent: the lease is ours until sentAt + ttl at the earliest. */
  sentAt: number;
  subscription: BusSubscription;
  /** Fires at the deadline if no renew succeeded before it. */
  deadline: NodeJS.Timeout | undefined;
}

/** Monotonic: lease arithmetic must not jump with the wall clock. */
const now = (): number => performance.now();
const WORKER_ID = /^[-=\w]+$/;

export class PartitionOwnership {
  private readonly options: Readonly<Required<Pick<PartitionOwnershipOptions, 'renewEveryMs' | 'safetyMarginMs' | 'log'>> & PartitionOwnershipOptions>;
  /** Written into every lease: the worker id plus an incarnation, so a restarted worker never mistakes its predecessor's leases for its own. */
  private readonly owner: string;
  private readonly held = new Map<number, Held>();
  private heartbeat: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> = Promise.resolve();
  private running = false;
  private stopping = false;

  constructor(options: PartitionOwnershipOptions) {
    const ttl = options.leases.ttlMs;
    const renewEveryMs = options.renewEveryMs ?? Math.floor(ttl / DEFAULT_RENEWS_PER_TTL);
    const safetyMarginMs = options.safetyMarginMs ?? Math.floor(ttl * DEFAULT_SAFETY_FRACTION);
    if (!WORKER_ID.test(options.workerId)) throw new TypeError(`workerId ${JSON.stringify(options.workerId)} must be one key token: letters, digits, - _ =`);
    if (!Number.isInteger(options.partitions) || options.partitions < 1) throw new RangeError(`partitions must be a positive integer, got ${options.partitions}`);
    if (!(safetyMarginMs >= 0)) throw new RangeError(`safetyMarginMs must be >= 0, got ${safetyMarginMs}`);
    if (!(renewEveryMs > 0) || renewEveryMs + safetyMarginMs >= ttl) {
      throw new RangeError(`renewEveryMs (${renewEveryMs}) plus safetyMarginMs (${safetyMarginMs}) must be positive and below the lease ttl (${ttl} ms)`);
    }
    this.options = Object.freeze({ ...options, renewEveryMs, safetyMarginMs, log: options.log ?? silentLogger });
    this.owner = `${options.workerId}#${randomUUID().slice(0, 8)}`;
  }

  /** Partitions this worker serves right now, ascending. */
  owned(): number[] {
    return [...this.held.keys()].sort((a, b) => a - b);
  }

  /** Run the first round (resolves when it is done), then keep going every renewEveryMs until stop(). */
  async start(): Promise<void> {
    if (this.running || this.stopping) throw new Error('partition ownership was already started (or stopped); make a new one');
    this.running = true;
    this.inFlight = this.runRound();
    await this.inFlight;
  }

  /**
   * Stop serving every partition and hand the leases back so others take over at once. Waits for
   * the round in flight (a store call that hangs holds it up until the adapter's own timeout).
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    clearTimeout(this.timer);
    await this.inFlight;
    await Promise.all(this.owned().map((p) => this.handBack(p)));
    if (this.heartbeat !== undefined) {
      const revision = this.heartbeat;
      this.heartbeat = undefined;
      await this.options.leases.release(workerLeaseKey(this.options.workerId), this.owner, revision)
        .catch((err: unknown) => this.options.log.warn({ err, worker: this.options.workerId }, 'could not release the worker heartbeat; it will expire'));
    }
  }

  private async runRound(): Promise<void> {
    const started = now();
    try {
      await this.round();
    } catch (err) {
      this.options.log.error({ err, worker: this.options.workerId }, 'partition ownership round failed');
    }
    if (this.stopping) return;
    this.options.onRound?.(this.owned());
    const delay = Math.max(0, this.options.renewEveryMs - (now() - started));
    this.timer = setTimeout(() => { this.inFlight = this.runRound(); }, delay);
    // Serving is kept alive by the bus connection, not by this bookkeeping.
    this.timer.unref();
  }

  private async round(): Promise<void> {
    const { leases, partitions, log, workerId } = this.options;
    await Promise.all([this.beat(), ...[...this.held].map(([p, h]) => this.renew(p, h))]);
    if (this.stopping) return;

    let taken: Map<string, string>, workers: Map<string, string>;
    try {
      // Bounded: a listing that hangs must not hold up the next round's renewals (that would lose
      // every lease this worker holds). A late answer is simply ignored.
      [taken, workers] = await within(this.options.renewEveryMs, 'listing the leases',
        Promise.all([leases.holders(PARTITION_LEASE_PREFIX), leases.holders(WORKER_LEASE_PREFIX)]));
    } catch (err) {
      log.warn({ err, worker: workerId }, 'could not list leases; keeping the partitions held, claiming none this round');
      return;
    }
    if (this.stopping) return;
    const live = new Set(workers.keys()).add(workerLeaseKey(workerId)).size;
    const share = Math.ceil(partitions / live);

    const extra = this.owned().slice(share);
    if (extra.length > 0) {
      log.info({ worker: workerId, partitions: extra, share, live }, 'handing back partitions above the fair share');
      await Promise.all(extra.map((p) => this.handBack(p)));
    }
    const want = share - this.held.size;
    if (want <= 0) return;
    const free: number[] = [];
    for (let p = 0; p < partitions; p++) if (!this.held.has(p) && !taken.has(partitionLeaseKey(p))) free.push(p);
    // Random picks so workers claiming at the same moment mostly try different partitions.
    shuffle(free);
    await Promise.all(free.slice(0, want).map((p) => this.claim(p)));
  }

  /** Keep the heartbeat that counts this worker as live; take it again if it lapsed. */
  private async beat(): Promise<void> {
    const { leases, workerId, log } = this.options;
    const key = workerLeaseKey(workerId);
    try {
      const renewed = this.heartbeat === undefined ? undefined : await leases.renew(key, this.owner, this.heartbeat);
      this.heartbeat = renewed ?? await leases.claim(key, this.owner);
      if (this.heartbeat === undefined) log.warn({ worker: workerId, key }, 'another live worker has this worker id; waiting for its heartbeat to expire');
    } catch (err) {
      log.warn({ err, worker: workerId }, 'could not write the worker heartbeat');
    }
  }

  private async renew(partition: number, held: Held): Promise<void> {
    const { leases, log, workerId } = this.options;
    const sentAt = now();
    let revision: number | undefined;
    try {
      revision = await leases.renew(partitionLeaseKey(partition), this.owner, held.revision);
    } catch (err) {
      // Unknown outcome: the lease stays ours until the last successful renew's deadline at least.
      log.warn({ err, worker: workerId, partition }, 'lease renew failed; serving until its deadline');
      return;
    }
    if (this.held.get(partition) !== held) {
      // The deadline passed while the renew was under way: we no longer serve it, so give it back.
      if (revision !== undefined) await this.releaseLease(partition, revision);
      return;
    }
    if (revision === undefined) {
      log.warn({ worker: workerId, partition }, 'lease lost; stopped serving the partition');
      this.drop(partition);
      return;
    }
    held.revision = revision;
    held.sentAt = sentAt;
    this.arm(partition, held);
  }

  private async claim(partition: number): Promise<void> {
    const { leases, log, workerId, serve, onAcquire } = this.options;
    const sentAt = now();
    let revision: number | undefined;
    try {
      revision = await leases.claim(partitionLeaseKey(partition), this.owner);
    } catch (err) {
      log.warn({ err, worker: workerId, partition }, 'lease claim failed');
      return;
    }
    if (revision === undefined) return; // another worker was quicker
    if (this.stopping || now() >= this.deadlineOf(sentAt)) {
      await this.releaseLease(partition, revision);
      return;
    }
    onAcquire?.(partition);
    let subscription: BusSubscription;
    try {
      subscription = serve(conversationSubject(partition));
    } catch (err) {
      await this.releaseLease(partition, revision);
      throw err;
    }
    const held: Held = { revision, sentAt, subscription, deadline: undefined };
    this.held.set(partition, held);
    this.arm(partition, held);
    log.info({ worker: workerId, partition }, 'serving partition');
  }

  /** Stop serving, make sure the bus knows, then release the lease so another worker can claim it. */
  private async handBack(partition: number): Promise<void> {
    const held = this.held.get(partition);
    if (!held) return;
    this.drop(partition);
    try {
      await this.options.bus.flush();
    } catch (err) {
      this.options.log.warn({ err, worker: this.options.workerId, partition }, 'bus flush failed; leaving the lease to expire');
      return;
    }
    await this.releaseLease(partition, held.revision);
  }

  private async releaseLease(partition: number, revision: number): Promise<void> {
    try {
      await this.options.leases.release(partitionLeaseKey(partition), this.owner, revision);
    } catch (err) {
      this.options.log.warn({ err, worker: this.options.workerId, partition }, 'lease release failed; it will expire');
    }
  }

  /** Stop serving at once (no store call: used when the store may be unreachable). */
  private drop(partition: number): void {
    const held = this.held.get(partition);
    if (!held) return;
    this.held.delete(partition);
    clearTimeout(held.deadline);
    try {
      held.subscription.unsubscribe();
    } catch (err) {
      this.options.log.error({ err, worker: this.options.workerId, partition }, 'unsubscribing a partition failed');
    }
    this.options.onRelease?.(partition);
  }

  private deadlineOf(sentAt: number): number {
    return sentAt + this.options.leases.ttlMs - this.options.safetyMarginMs;
  }

  /** Drop the partition if no renew succeeds before its deadline, whatever the round is doing. */
  private arm(partition: number, held: Held): void {
    clearTimeout(held.deadline);
    held.deadline = setTimeout(() => {
      if (this.held.get(partition) !== held) return;
      this.options.log.warn({ worker: this.options.workerId, partition }, 'lease not renewed in time; stopped serving the partition');
      this.drop(partition);
    }, Math.max(0, this.deadlineOf(held.sentAt) - now()));
    held.deadline.unref();
  }
}

/** `work`, or a rejection once `ms` have passed without an answer. */
async function within<T>(ms: number, what: string, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
    work.catch(() => undefined); // a late failure is not unhandled
  }
}

function shuffle<T>(items: T[]): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
}
