// The ledger half of CqlWalletStore: transaction rows (the idempotency key and the roll-forward
// record), account rows (balance, statement seq, version), changed only by compare-and-set, and
// wallet credits (wallet_credits), written plainly and folded into their account row by its next
// compare-and-set. The protocol and its failure analysis are at the top of wallet-store.ts.
import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { Client, QueryOptions } from 'cassandra-driver';
import { StoreUnavailableError } from '../../engine/ports.ts';
import {
  InsufficientFundsError, KeyReusedError, mayGoNegative,
  type LedgerEntry, type LedgerTxn, type Posting,
} from '../../engine/wallet/ports.ts';
import {
  DERIVED, bucketOf, isDeferredCredit, isEscrow, toAccountRow, toCreditRow, toEntry, toTxnMarks, toTxnRow,
  type AccountChange, type AccountRow, type CreditRow, type Intent, type TxnRow,
} from './wallet-rows.ts';
import type { WalletStatements } from './wallet-statements.ts';

/** Postings to one account decided by one compare-and-set, at most. */
const POSTINGS_PER_CAS = 32;
/** Credits folded into an account by one compare-and-set, at most. */
const CREDITS_PER_CAS = 32;
/** Fold-only compare-and-sets before a debit is decided anyway (on the credits folded so far: it may be refused, never overdraw). */
const FOLD_PASSES = 64;
/** Compare-and-set rounds on one account before giving up (retryable). */
const CAS_ROUNDS = 16;
/** Accounts whose last changes this process rolled forward, remembered to skip doing it again (bounded). */
const ROLLED_CACHE_SIZE = 100_000;
/** Possibly unfinished txns noted for repairStale() (bounded: the other repair paths remain). */
const STALE_TRACKED = 10_000;
/** Default LedgerOptions.inFlightMs: well above the client's read timeout (12 s). */
export const IN_FLIGHT_MS = 15_000;

export type PostingOutcome =
  | { status: 'applied' }
  | { status: 'refused'; balance: number; needed: number }
  /** The attempt's txn row is gone: the attempt was refused and that refusal rolled forward. */
  | { status: 'dead' }
  /** Asked not to decide, and nothing was decided yet. */
  | { status: 'undecided' };

interface Waiter<T> {
  resolve: (value: T) => void;
  reject: (error: unknown) => void;
}

/** What a statement line takes from its transaction. */
type TxnRef = Pick<LedgerTxn, 'id' | 'kind' | 'ref' | 'ts'>;

interface PostingRequest {
  txn: TxnRef;
  instance: string;
  amount: number;
  /** Refused rather than taking the balance below 0. */
  constrained: boolean;
  /** False: report what was decided, never decide (a reader must not decide an attempt in flight). */
  decide: boolean;
  waiters: Array<Waiter<PostingOutcome>>;
}

/** Work waiting for an account's next compare-and-set: postings, and readers who want its credits folded. */
interface AccountQueue {
  postings: PostingRequest[];
  folds: Array<Waiter<AccountRow | undefined>>;
}

/** Runs the side effects of a committed transaction's intent (envelope rows, due index, claim marks...). */
export type IntentEffects = (intent: Intent, row: TxnRow) => Promise<void>;

export interface LedgerOptions {
  client: Client;
  q: WalletStatements;
  bucketSize: number;
  read: QueryOptions;
  write: QueryOptions;
  paxos: QueryOptions;
  effects: IntentEffects;
  /** A pending attempt younger than this is presumed in flight: readers report it without deciding it. */
  inFlightMs: number;
}

/** The one posting of a transaction that may be refused: a debit of an account that may not go negative. */
export function constrainedDebit(txn: LedgerTxn): Posting | undefined {
  return txn.postings.find((p) => p.amount < 0 && !mayGoNegative(p.account) && !isEscrow(p.account));
}

export class Ledger {
  private readonly queues = new Map<string, AccountQueue>();
  private readonly rolled = new Map<string, number>();
  private readonly stale = new Set<string>();
  private readonly client: Client;
  private readonly q: WalletStatements;

  constructor(private readonly o: LedgerOptions) {
    this.client = o.client;
    this.q = o.q;
  }

  // ---- transactions ----------------------------------------------------------------------------

  /**
   * Takes the id with an LWT and completes the transaction. Returns the row that holds the id and
   * whether this call applied it. KeyReusedError for the id with another fingerprint;
   * InsufficientFundsError when the constrained debit is refused (the id is freed again).
   */
  async commit(txn: LedgerTxn, intent: Intent | undefined): Promise<{ row: TxnRow; applied: boolean }> {
    for (let round = 0; round < 4; round++) {
      const row: TxnRow = { txn, instance: randomUUID(), fingerprint: txn.fingerprint, intent, createdAt: Date.now(), done: false, applied: new Map() };
      const rs = await this.client.execute(this.q.txnInsert,
        [txn.id, row.instance, txn.fingerprint, JSON.stringify(txn), intent ? JSON.stringify(intent) : null, row.createdAt], this.o.paxos);
      if (rs.wasApplied()) {
        const outcome = await this.complete(row, true);
        if (outcome.status === 'applied') return { row, applied: true };
        throw await this.insufficient(txn, outcome);
      }
      const held = toTxnRow(rs.first());
      if (!held) continue; // a derived row mid-write: its id is taken by what derives it
      if (held.fingerprint !== txn.fingerprint) throw new KeyReusedError(txn.id);
      if (held.done) return { row: held, applied: false };
      // The same request is in flight or was interrupted: finish it (deciding it if need be).
      if ((await this.complete(held, true)).status === 'applied') return { row: held, applied: false };
      // That attempt was refused and its row deleted: the id is free, try as ourselves.
    }
    throw new StoreUnavailableError(`cql: txn ${txn.id}: its id kept changing hands`);
  }

  /**
   * Finishes a transaction whose row exists: its constrained debit (the decision, unless `decide`
   * is false), then the other postings and the intent's effects, then marks it done. Idempotent.
   */
  async complete(row: TxnRow, decide: boolean): Promise<PostingOutcome> {
    const { txn } = row;
    const postings = txn.postings.filter((p) => !isEscrow(p.account));
    const debit = constrainedDebit(txn);
    if (debit && !row.applied.has(debit.account)) {
      const outcome = await this.apply(debit.account, { txn, instance: row.instance, amount: debit.amount, constrained: true, decide });
      if (outcome.status !== 'applied') return outcome;
    }
    // Committed from here on: nothing below can be refused. Wallet credits are rows of
    // wallet_credits (plain, idempotent), folded into the account by its next compare-and-set.
    const rest = postings.filter((p) => p !== debit && !row.applied.has(p.account));
    const [outcomes] = await Promise.all([
      Promise.all(rest.filter((p) => !isDeferredCredit(p)).map((p) => this.apply(p.account, { txn, instance: row.instance, amount: p.amount, constrained: false, decide: true }))),
      Promise.all(rest.filter(isDeferredCredit).map((p) => this.client.execute(this.q.creditInsert,
        [p.account, txn.id, row.instance, txn.kind, p.amount, txn.ref ?? null, txn.ts], this.o.write))),
    ]);
    const odd = outcomes.find((o) => o.status !== 'applied');
    if (odd) throw new Error(`cql: committed txn ${txn.id} could not post (${odd.status}): ledger inconsistent`);
    // Effects after the postings: some of them (a claim's `settled`, a refund's `refunded`, a due
    // row's delete) tell readers the operation is complete.
    if (row.intent) await this.o.effects(row.intent, row);
    if (!row.done) await this.client.execute(this.q.txnDone, [txn.id], this.o.write);
    row.done = true;
    return { status: 'applied' };
  }

  /** Writes a derived transaction's row and completes it (its commit point was passed elsewhere). */
  async completeDerived(txn: LedgerTxn, intent: Intent): Promise<void> {
    const row: TxnRow = { txn, instance: DERIVED, fingerprint: txn.fingerprint, intent, createdAt: txn.ts, done: false, applied: new Map() };
    await Promise.all([
      this.client.execute(this.q.txnInsertDerived, [txn.id, DERIVED, txn.fingerprint, JSON.stringify(txn), JSON.stringify(intent), txn.ts], this.o.write),
      this.complete(row, true),
    ]);
  }

  async readTxn(id: string): Promise<TxnRow | undefined> {
    const row = (await this.client.execute(this.q.txnSelect, [id], this.o.read)).first();
    return row ? toTxnRow(row) : undefined;
  }

  /** The marks of a txn row, even of a derived one whose insert has not landed (its marks may have). */
  private async readMarks(id: string): Promise<ReturnType<typeof toTxnMarks> | undefined> {
    const row = (await this.client.execute(this.q.txnSelect, [id], this.o.read)).first();
    return row ? toTxnMarks(row) : undefined;
  }

  /**
   * A committed transaction, completing it if it was interrupted; undefined if it is not
   * committed. An attempt younger than inFlightMs is not decided here, only reported.
   */
  async resolve(row: TxnRow): Promise<LedgerTxn | undefined> {
    if (row.done) return row.txn;
    const decide = row.instance === DERIVED || Date.now() - row.createdAt > this.o.inFlightMs;
    return (await this.complete(row, decide)).status === 'applied' ? row.txn : undefined;
  }

  private async insufficient(txn: LedgerTxn, outcome: PostingOutcome): Promise<Error> {
    const debit = constrainedDebit(txn)!;
    const balance = outcome.status === 'refused' ? outcome.balance : await this.balance(debit.account);
    return new InsufficientFundsError(debit.account, balance, -debit.amount);
  }

  // ---- accounts --------------------------------------------------------------------------------

  async readAccount(account: string): Promise<AccountRow | undefined> {
    const row = (await this.client.execute(this.q.accountSelect, [account], this.o.read)).first();
    return row ? toAccountRow(row) : undefined;
  }

  async balance(account: string): Promise<number> {
    return (await this.fold(account))?.balance ?? 0;
  }

  /**
   * The account row with every credit written before this call folded in (a compare-and-set
   * only when there is one to fold). The credits are read before the row: a credit gone from
   * wallet_credits was deleted after the compare-and-set that folded it, so the row read
   * afterwards includes it.
   */
  async fold(account: string): Promise<AccountRow | undefined> {
    if ((await this.readCredits(account, 1)).length === 0) return this.readAccount(account);
    return new Promise((resolve, reject) => {
      this.queueOf(account).folds.push({ resolve, reject });
    });
  }

  /** The account's first `limit` credit rows: unfolded ones, and folded ones whose delete has not landed. */
  async readCredits(account: string, limit: number): Promise<CreditRow[]> {
    return (await this.client.execute(this.q.creditsSelect, [account, limit], this.o.read)).rows.map(toCreditRow);
  }

  /**
   * Applies one posting to an account, at most once per txn id (attempt). Postings to the same
   * account queue here and go in groups: one compare-and-set decides up to POSTINGS_PER_CAS of
   * them, so a busy account (ext:<cur>, a wallet many envelopes pay into) is not a Paxos duel.
   */
  apply(account: string, request: Omit<PostingRequest, 'waiters'>): Promise<PostingOutcome> {
    return new Promise((resolve, reject) => {
      const { postings } = this.queueOf(account);
      const waiter = { resolve, reject };
      const same = postings.find((r) => r.txn.id === request.txn.id && r.instance === request.instance);
      if (same) { same.decide ||= request.decide; same.waiters.push(waiter); return; }
      postings.push({ ...request, waiters: [waiter] });
    });
  }

  /** The account's queue, its drain started when new. */
  private queueOf(account: string): AccountQueue {
    let queue = this.queues.get(account);
    if (!queue) {
      queue = { postings: [], folds: [] };
      this.queues.set(account, queue);
      // Started on the next tick, so the caller's request is queued first.
      queueMicrotask(() => void this.drain(account));
    }
    return queue;
  }

  private async drain(account: string): Promise<void> {
    const queue = this.queues.get(account)!;
    while (queue.postings.length > 0 || queue.folds.length > 0) {
      // One request per txn id in a group: two attempts of one id are decided one after the other.
      const group: PostingRequest[] = [];
      const ids = new Set<string>();
      for (let i = 0; i < queue.postings.length && group.length < POSTINGS_PER_CAS;) {
        const r = queue.postings[i]!;
        if (ids.has(r.txn.id)) { i++; continue; }
        ids.add(r.txn.id);
        group.push(r);
        queue.postings.splice(i, 1);
      }
      const folds = queue.folds.splice(0);
      try {
        const { outcomes, row } = await this.round(account, group);
        group.forEach((r, i) => r.waiters.forEach((w) => w.resolve(outcomes[i]!)));
        for (const w of folds) w.resolve(row);
      } catch (error) {
        for (const r of group) for (const w of r.waiters) w.reject(error);
        for (const w of folds) w.reject(error);
      }
    }
    this.queues.delete(account);
  }

  /**
   * Decides a group of postings to one account with one compare-and-set (retried while it loses),
   * after folding the account's unfolded credits into it: they come first, so a debit is decided
   * on every credit written before it. Returns the outcomes and the account row after.
   */
  private async round(account: string, group: PostingRequest[]): Promise<{ outcomes: PostingOutcome[]; row: AccountRow | undefined }> {
    for (let lost = 0, passes = 0; lost < CAS_ROUNDS;) {
      if (lost > 0) await delay(Math.random() * 4 * lost); // another process won: let it finish
      const [row, read] = await Promise.all([this.readAccount(account), this.readCredits(account, CREDITS_PER_CAS + 1)]);
      // More credits than one compare-and-set folds: fold these first, decide the group after.
      const foldOnly = read.length > CREDITS_PER_CAS && passes < FOLD_PASSES;
      // A credit in `pending` is folded (its row's delete is part of the roll-forward).
      const credits = read.slice(0, CREDITS_PER_CAS).filter((c) => !row?.pending.some((p) => p.txn === c.txn && p.instance === c.instance));
      // The txn rows are read after the account row: a posting applied at an older version has its
      // mark there (rollForward writes it before any later CAS), one at this version is in `pending`.
      // So a credit row whose txn is marked was folded before: a late replay of its write.
      const [txns, creditMarks] = await Promise.all([
        Promise.all(group.map((r) => this.readMarks(r.txn.id))),
        Promise.all(credits.map((c) => this.readMarks(c.txn))),
        row ? this.rollForward(row) : undefined,
      ]);
      const replayed = credits.filter((_, i) => creditMarks[i]?.applied.has(account));
      if (replayed.length > 0) await Promise.all(replayed.map((c) => this.deleteCredit(account, c)));
      const unfolded = credits.filter((_, i) => !creditMarks[i]?.applied.has(account))
        // In the order they were written (a statement lists sequential credits as they happened).
        .sort((a, b) => a.wt - b.wt || (a.txn < b.txn ? -1 : 1));
      let balance = row?.balance ?? 0, seq = row?.seq ?? 0;
      const changes: AccountChange[] = [], now = Date.now();
      for (const c of unfolded) {
        balance += c.amount;
        seq += 1;
        const entry: LedgerEntry = { seq, txn: c.txn, kind: c.kind, amount: c.amount, balance, ts: c.ts };
        if (c.ref !== undefined) entry.ref = c.ref;
        changes.push({ txn: c.txn, instance: c.instance, at: now, entry, credit: c.wt });
      }
      const outcomes = (foldOnly ? [] : group).map((r, i): PostingOutcome | AccountChange => {
        const previous = row?.pending.find((c) => c.txn === r.txn.id && c.instance === r.instance);
        if (previous) return 'entry' in previous ? { status: 'applied' } : { status: 'refused', ...previous.refused };
        const t = txns[i];
        if (r.instance !== DERIVED && t?.instance !== r.instance) return { status: 'dead' };
        if (t?.applied.has(account)) return { status: 'applied' };
        if (!r.decide) return { status: 'undecided' };
        let change: AccountChange;
        if (r.constrained && balance + r.amount < 0) {
          change = { txn: r.txn.id, instance: r.instance, at: now, refused: { balance, needed: -r.amount } };
        } else {
          balance += r.amount;
          seq += 1;
          const entry: LedgerEntry = { seq, txn: r.txn.id, kind: r.txn.kind, amount: r.amount, balance, ts: r.txn.ts };
          if (r.txn.ref !== undefined) entry.ref = r.txn.ref;
          change = { txn: r.txn.id, instance: r.instance, at: now, entry };
        }
        changes.push(change);
        return change;
      });
      let after = row;
      // Nothing to write: answer with a row read after the credits were. The two reads above ran in
      // parallel, so `row` may predate another process's fold whose credit rows were already gone.
      if (changes.length === 0) after = await this.readAccount(account);
      if (changes.length > 0) {
        const version = (row?.version ?? 0) + 1;
        const pending = JSON.stringify(changes);
        const rs = row
          ? await this.client.execute(this.q.accountUpdate, [balance, seq, version, pending, account, row.version], this.o.paxos)
          : await this.client.execute(this.q.accountCreate, [account, balance, seq, version, pending], this.o.paxos);
        if (!rs.wasApplied()) { lost++; continue; }
        await this.finish(account, version, changes);
        after = { account, balance, seq, version, pending: changes };
      }
      if (foldOnly) { passes++; continue; }
      return { outcomes: outcomes.map((o) => 'status' in o ? o : 'entry' in o ? { status: 'applied' } : { status: 'refused', ...o.refused }), row: after };
    }
    throw new StoreUnavailableError(`cql: account ${account}: lost ${CAS_ROUNDS} compare-and-set rounds to other writers`);
  }

  /**
   * Rolls the row's last changes forward unless this process already did (idempotent either way).
   * A change old enough that its writer is not still at it may belong to a txn whose writer died
   * before its other postings and effects: noted for repairStale(), which runs outside any
   * account's queue (completing a txn here could wait on this very queue).
   */
  private async rollForward(row: AccountRow): Promise<void> {
    if (row.pending.length === 0 || this.rolled.get(row.account) === row.version) return;
    await this.finish(row.account, row.version, row.pending);
    for (const c of row.pending) {
      if ('entry' in c && Date.now() - c.at > this.o.inFlightMs && this.stale.size < STALE_TRACKED) this.stale.add(c.txn);
    }
  }

  /** Completes the txns rollForward() found possibly unfinished. A failure keeps the rest for the next call. */
  async repairStale(): Promise<void> {
    for (const id of [...this.stale]) {
      const row = await this.readTxn(id);
      if (row && !row.done) await this.complete(row, true); // committed: its change was applied
      this.stale.delete(id);
    }
  }

  /**
   * Writes what a compare-and-set decided: statement lines and the txns' marks; deletes refused
   * attempts' rows and the credit rows it folded.
   */
  private async finish(account: string, version: number, changes: AccountChange[]): Promise<void> {
    await Promise.all(changes.map((c) => {
      if (!('entry' in c)) return this.client.execute(this.q.txnDeleteRefused, [c.txn, c.instance], this.o.paxos);
      const e = c.entry;
      return Promise.all([
        this.client.execute(this.q.entryInsert,
          [account, bucketOf(e.seq, this.o.bucketSize), e.seq, e.txn, e.kind, e.amount, e.balance, e.ref ?? null, e.ts], this.o.write),
        this.client.execute(this.q.txnApplied, [{ [account]: e.seq }, c.txn], this.o.write),
        c.credit === undefined ? undefined : this.deleteCredit(account, { txn: c.txn, wt: c.credit }),
      ]);
    }));
    this.rolled.delete(account);
    this.rolled.set(account, version);
    if (this.rolled.size > ROLLED_CACHE_SIZE) this.rolled.delete(this.rolled.keys().next().value!);
  }

  /** Deletes a folded credit's row, later than its write even if this clock is behind the writer's. */
  private async deleteCredit(account: string, credit: { txn: string; wt: number }): Promise<void> {
    const ts = Math.max(Date.now() * 1000, credit.wt + 1);
    await this.client.execute(this.q.creditDelete, [ts, account, credit.txn], this.o.write);
  }

  /**
   * The account's statement lines with seq <= `top`, newest first, at most `limit`. Lines of the
   * last compare-and-set come from the row (they may not be written yet); every older line was
   * written before that compare-and-set, so the table holds them without gaps.
   */
  async entries(row: AccountRow, top: number, limit: number): Promise<LedgerEntry[]> {
    const out: LedgerEntry[] = [];
    const pending = row.pending.flatMap((c) => ('entry' in c ? [c.entry] : [])).sort((a, b) => b.seq - a.seq);
    for (const e of pending) if (e.seq <= top && out.length < limit) out.push(e);
    let upTo = Math.min(top, (pending.at(-1)?.seq ?? row.seq + 1) - 1);
    while (out.length < limit && upTo >= 1) {
      const bucket = bucketOf(upTo, this.o.bucketSize);
      const want = Math.min(limit - out.length, upTo - Math.max(1, bucket * this.o.bucketSize) + 1);
      const rs = await this.client.execute(this.q.entriesUpTo, [row.account, bucket, upTo, want], this.o.read);
      if (rs.rows.length !== want) throw new Error(`cql: account ${row.account} is missing statement lines at or below seq ${upTo}: data lost`);
      out.push(...rs.rows.map(toEntry));
      upTo -= want;
    }
    return out;
  }
}
