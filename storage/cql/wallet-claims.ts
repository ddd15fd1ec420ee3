// Claims on red envelopes, the grab hot path of CqlWalletStore. A claim commits by one
// conditional batch on the envelope's partition:
//   INSERT (envelope, 'i', <index>) IF NOT EXISTS   -- the share is free
//   INSERT (envelope, 'u', <user>)  IF NOT EXISTS   -- the user has no claim
//   UPDATE envelope SET grabbed_at IF closed_at = null   -- not refunded
// Claims on one envelope that meet in this process go in one batch (group commit): a burst of
// grabs costs a few LWTs per process instead of one Paxos round each, all contending for the
// same partition. What a batch learns is kept per envelope, and it never goes stale: a taken
// share stays taken, a user's claim stays theirs, a closed envelope stays closed. So a losing
// claim is answered without an LWT (one point read first checks the user has no claim of their own).
import type { Client, QueryOptions, types } from 'cassandra-driver';
import { StoreUnavailableError } from '../../engine/ports.ts';
import { EnvelopeClosedError, ShareTakenError, type Applied, type Claim, type Envelope } from '../../engine/wallet/ports.ts';
import { toStoreError } from './client.ts';
import { claimOf } from './wallet-rows.ts';
import type { WalletStatements } from './wallet-statements.ts';

/** Envelopes whose claim knowledge is kept (idle ones are evicted first). */
const ENVELOPES_TRACKED = 1_000;
/** Failed batches in a row that taught nothing before the claims waiting give up (retryable). */
const FRUITLESS_ROUNDS = 3;

interface Waiter {
  user: string;
  index: number;
  ts: number;
  resolve: (claimed: Applied<Claim>) => void;
  reject: (error: unknown) => void;
}

interface Known {
  claim: Claim;
  /** The claim's grab txn posted (roll-forward done, or running). */
  settled: Promise<void> | undefined;
}

interface EnvelopeState {
  byUser: Map<string, Known>;
  byIndex: Map<number, string>;
  closed: boolean;
  queue: Waiter[];
  running: boolean;
}

export interface ClaimOptions {
  client: Client;
  q: WalletStatements;
  paxos: QueryOptions;
  read: QueryOptions;
  /** For the fallback read after a batch that failed without saying why. */
  serialRead: QueryOptions;
  /** Claims per conditional batch (two rows each). */
  batchSize: number;
  /** Posts a committed claim's grab txn (idempotent). `fresh`: just committed by this process. */
  settle: (envelope: Envelope, claim: Claim, fresh: boolean) => Promise<void>;
}

export class ClaimCommitter {
  private readonly states = new Map<string, EnvelopeState>();

  constructor(private readonly o: ClaimOptions) {}

  /** See WalletStore.claimShare; the envelope exists and `index` is in range. */
  claim(envelope: Envelope, user: string, index: number, ts: number): Promise<Applied<Claim>> {
    const state = this.stateOf(envelope.id);
    return new Promise((resolve, reject) => {
      state.queue.push({ user, index, ts, resolve, reject });
      if (!state.running) void this.drain(envelope, state);
    });
  }

  /** The envelope was closed (refunded): later claims here are answered without an LWT. */
  closed(envelopeId: string): void {
    const state = this.states.get(envelopeId);
    if (state) state.closed = true;
  }

  private stateOf(id: string): EnvelopeState {
    let state = this.states.get(id);
    if (state) {
      this.states.delete(id);
      this.states.set(id, state);
      return state;
    }
    state = { byUser: new Map(), byIndex: new Map(), closed: false, queue: [], running: false };
    this.states.set(id, state);
    if (this.states.size > ENVELOPES_TRACKED) {
      for (const [key, s] of this.states) if (!s.running && s.queue.length === 0) { this.states.delete(key); break; }
    }
    return state;
  }

  private async drain(envelope: Envelope, state: EnvelopeState): Promise<void> {
    state.running = true;
    let fruitless = 0;
    try {
      while (state.queue.length > 0) {
        // A batch holds each user and each index once: two inserts of one row in one batch would
        // both pass their IF NOT EXISTS (conditions see the state before the batch).
        const group: Waiter[] = [], rest: Waiter[] = [];
        const users = new Set<string>(), indices = new Set<number>();
        for (const w of state.queue) {
          if (this.answerFromKnowledge(envelope, state, w)) continue;
          if (group.length < this.o.batchSize && !users.has(w.user) && !indices.has(w.index)) {
            group.push(w);
            users.add(w.user);
            indices.add(w.index);
          } else {
            rest.push(w);
          }
        }
        state.queue = rest;
        if (group.length === 0) continue;
        let rs: types.ResultSet;
        try {
          rs = await this.o.client.batch(this.statements(envelope, group), this.o.paxos);
        } catch (error) {
          for (const w of group) w.reject(toStoreError(error, `claimShare ${envelope.id}`));
          continue;
        }
        if (rs.wasApplied()) {
          fruitless = 0;
          for (const w of group) this.committed(envelope, state, w);
          continue;
        }
        // The failed batch returns the rows whose condition failed: learn from them, then the
        // waiters are answered from what was learned or go again in the next batch.
        let learned = this.learn(state, rs.rows);
        if (!learned) {
          try {
            learned = this.learn(state, await this.readAll(envelope.id));
          } catch (error) {
            for (const w of group) w.reject(toStoreError(error, `claimShare ${envelope.id}`));
            continue;
          }
        }
        if (!learned && ++fruitless >= FRUITLESS_ROUNDS) {
          for (const w of group) w.reject(new StoreUnavailableError(`cql: claimShare ${envelope.id}: the claim batch keeps failing without a reason`));
          continue;
        }
        state.queue.unshift(...group);
      }
    } finally {
      state.running = false;
    }
  }

  private statements(envelope: Envelope, group: Waiter[]): Array<{ query: string; params: unknown[] }> {
    const q = this.o.q, id = envelope.id;
    const statements: Array<{ query: string; params: unknown[] }> = [];
    group.forEach((w, pos) => {
      const amount = envelope.shares[w.index]!;
      statements.push({ query: q.claimInsert, params: [id, 'i', String(w.index), w.user, w.index, amount, w.ts, pos] });
      statements.push({ query: q.claimInsert, params: [id, 'u', w.user, w.user, w.index, amount, w.ts, pos] });
    });
    statements.push({ query: q.claimOpenCheck, params: [Date.now(), id] });
    return statements;
  }

  private committed(envelope: Envelope, state: EnvelopeState, w: Waiter): void {
    const claim: Claim = { user: w.user, index: w.index, amount: envelope.shares[w.index]!, ts: w.ts };
    const known: Known = { claim, settled: undefined };
    state.byUser.set(w.user, known);
    state.byIndex.set(w.index, w.user);
    this.settled(envelope, known, true).then(() => w.resolve({ value: claim, applied: true }), w.reject);
  }

  /** Answers a waiter from permanent facts; false when only a batch can tell. */
  private answerFromKnowledge(envelope: Envelope, state: EnvelopeState, w: Waiter): boolean {
    const mine = state.byUser.get(w.user);
    if (mine) {
      this.settled(envelope, mine, false).then(() => w.resolve({ value: mine.claim, applied: false }), w.reject);
      return true;
    }
    if (!state.closed && !state.byIndex.has(w.index)) return false;
    void this.refuse(envelope, state, w);
    return true;
  }

  /**
   * A claim that cannot commit (closed, or the share is another user's), unless the user already
   * has one, made through another process: that one comes first, as the port says.
   */
  private async refuse(envelope: Envelope, state: EnvelopeState, w: Waiter): Promise<void> {
    try {
      const row = (await this.o.client.execute(this.o.q.userClaim, [envelope.id, w.user], this.o.read)).first();
      if (row) {
        this.learn(state, [row]);
        const known = state.byUser.get(w.user)!;
        await this.settled(envelope, known, false);
        w.resolve({ value: known.claim, applied: false });
        return;
      }
      w.reject(state.closed ? new EnvelopeClosedError(envelope.id) : new ShareTakenError(envelope.id, w.index));
    } catch (error) {
      w.reject(toStoreError(error, `claimShare ${envelope.id}`));
    }
  }

  /** The claim's grab txn, posted once per process unless that failed (then the next caller tries again). */
  private settled(envelope: Envelope, known: Known, fresh: boolean): Promise<void> {
    known.settled ??= this.o.settle(envelope, known.claim, fresh).catch((error: unknown) => {
      known.settled = undefined;
      throw error;
    });
    return known.settled;
  }

  /** Records what rows of the partition say; true if anything was new. */
  private learn(state: EnvelopeState, rows: readonly types.Row[]): boolean {
    let learned = false;
    for (const row of rows) {
      if (row['closed_at'] !== null && row['closed_at'] !== undefined && !state.closed) { state.closed = true; learned = true; }
      if (row['kind'] !== 'i' && row['kind'] !== 'u') continue;
      const claim = claimOf(row);
      if (!state.byUser.has(claim.user)) { state.byUser.set(claim.user, { claim, settled: undefined }); learned = true; }
      if (!state.byIndex.has(claim.index)) { state.byIndex.set(claim.index, claim.user); learned = true; }
    }
    return learned;
  }

  /** Every row of the envelope at serial consistency (sees every committed claim), page by page. */
  private async readAll(id: string): Promise<types.Row[]> {
    const rows: types.Row[] = [];
    let pageState: string | undefined;
    do {
      const rs = await this.o.client.execute(this.o.q.envelopeRows, [id], { ...this.o.serialRead, ...(pageState ? { pageState } : {}) });
      rows.push(...rs.rows);
      pageState = rs.pageState ?? undefined;
    } while (pageState);
    return rows;
  }
}
