// WalletStore on LMDB (lmdb-js): msgpack values, ordered-binary array keys, sub-databases named
// `wallet.*` so the wallet can live in the chat store's directory (open both with the same path:
// lmdb-js shares one environment per path within a process; the chat store's 9 sub-databases
// plus these 7 fit the 16 both ask for).
//
// Key layout (sub-database: key -> value):
//   wallet.accounts:  account                          -> { balance, seq } (seq of its newest entry)
//   wallet.entries:   [account, seq]                   -> LedgerEntry (statements read it backwards)
//   wallet.txns:      txn id                           -> LedgerTxn (the idempotency record)
//   wallet.envelopes: envelope id                      -> { envelope, refunded? } (written at open
//                                                         and at refund only)
//   wallet.claims:    [envelope, 0]                    -> number of claims
//                     [envelope, 1, n]                 -> Claim n (0, 1, ...: the order made)
//                     [envelope, 2, user]              -> n of the user's claim
//                     [envelope, 3, index]             -> n of the claim holding that share
//                     (a claim writes four small rows, not the whole envelope: a burst on an
//                     envelope of 100 shares costs the same per grab from the first to the last)
//   wallet.transfers: transfer id                      -> Transfer
//   wallet.due:       ['env' | 'xfer', expiresAt, id]  -> true (open envelopes and pending
//                                                         transfers; removed on refund or settle)
//
// Every operation is one lmdb-js child transaction: callbacks queued in the same event turn run
// one after another inside one LMDB write txn, so each check-then-write sees the writes of the
// calls before it (concurrent claims serialize), and a callback that throws rolls back alone.
// Promises resolve after the batch is flushed to disk (durable).
import { mkdir } from 'node:fs/promises';
import { open, type Database, type Key, type RootDatabase } from 'lmdb';
import { StoreUnavailableError } from '../../engine/ports.ts';
import {
  EnvelopeClosedError, InsufficientFundsError, KeyReusedError, ShareTakenError, TransferSettledError,
  checkTxn, envelopeAccount, grabTxn, mayGoNegative, refundTxn, settleTxn, transferAccount,
  type Applied, type Claim, type Envelope, type EnvelopeRecord, type LedgerEntry, type LedgerTxn,
  type Transfer, type WalletStore,
} from '../../engine/wallet/ports.ts';
import { checkEscrow, ledgerEntry, nextBalance, shareAt } from '../wallet-rules.ts';

/** Sorts after every string and number element: [prefix, END] closes a prefix range. */
const END = new Uint8Array([0xff]);

export interface LmdbWalletStoreOptions {
  /** Directory of the LMDB environment (may be the chat store's); created if missing. */
  path: string;
  /** Initial map size in bytes (lmdb-js grows it as needed). */
  mapSize?: number;
}

interface AccountState {
  balance: number;
  seq: number;
}

type DueKind = 'env' | 'xfer';

/** Carries an error thrown by the operation itself (a refusal, or a value that cannot be stored) out of the transaction untouched. */
class Refused {
  constructor(readonly error: unknown) {}
}

export class LmdbWalletStore implements WalletStore {
  /** lmdb-js sub-databases still queue writes after the environment closes (they then crash in a timer): refuse them here. */
  private closed = false;

  private constructor(
    private readonly root: RootDatabase,
    private readonly accounts: Database<AccountState, string>,
    private readonly entries: Database<LedgerEntry, Key>,
    private readonly txns: Database<LedgerTxn, string>,
    private readonly envelopes: Database<EnvelopeRecord, string>,
    private readonly claims: Database<number | Claim, Key>,
    private readonly transfers: Database<Transfer, string>,
    private readonly due: Database<true, Key>,
  ) {}

  static async open(options: LmdbWalletStoreOptions): Promise<LmdbWalletStore> {
    try {
      await mkdir(options.path, { recursive: true });
      const root = open({ path: options.path, maxDbs: 16, encoding: 'msgpack', ...(options.mapSize ? { mapSize: options.mapSize } : {}) });
      const db = <V, K extends Key>(name: string) => root.openDB<V, K>(`wallet.${name}`, { encoding: 'msgpack' });
      return new LmdbWalletStore(root, db('accounts'), db('entries'), db('txns'), db('envelopes'), db('claims'), db('transfers'), db('due'));
    } catch (error) {
      throw new StoreUnavailableError(`lmdb: cannot open ${options.path}`, { cause: error });
    }
  }

  async post(txn: LedgerTxn): Promise<Applied<LedgerTxn>> {
    checkTxn(txn);
    return this.write('post', () => {
      const stored = this.seen(txn);
      if (stored) return { value: stored, applied: false };
      this.apply(txn);
      return { value: txn, applied: true };
    });
  }

  async openEnvelope(envelope: Envelope, txn: LedgerTxn): Promise<Applied<Envelope>> {
    checkTxn(txn);
    checkEscrow(txn, envelope.id, envelopeAccount(envelope.id), envelope.total);
    return this.write('openEnvelope', () => {
      const stored = this.seen(txn);
      if (stored) {
        // A retry may carry a newly built envelope: the answer is the one stored with the txn.
        const record = stored.ref === undefined ? undefined : this.envelopes.get(stored.ref);
        if (!record) throw new KeyReusedError(txn.id);
        return { value: record.envelope, applied: false };
      }
      if (this.envelopes.doesExist(envelope.id)) throw new Error(`envelope ${envelope.id} exists under another transaction`);
      this.apply(txn);
      void this.envelopes.put(envelope.id, { envelope, claims: [] });
      void this.due.put(dueKey('env', envelope.expiresAt, envelope.id), true);
      return { value: envelope, applied: true };
    });
  }

  async claimShare(envelopeId: string, user: string, index: number, ts: number): Promise<Applied<Claim> | undefined> {
    return this.write('claimShare', () => {
      const record = this.envelopes.get(envelopeId);
      if (!record) return undefined;
      const earlier = this.claims.get([envelopeId, 2, user]) as number | undefined;
      if (earlier !== undefined) return { value: this.claims.get([envelopeId, 1, earlier]) as Claim, applied: false };
      if (record.refunded !== undefined) throw new EnvelopeClosedError(envelopeId);
      const amount = shareAt(record.envelope, index);
      if (this.claims.doesExist([envelopeId, 3, index])) throw new ShareTakenError(envelopeId, index);
      const claim: Claim = { user, index, amount, ts };
      this.apply(grabTxn(record.envelope, claim));
      const n = (this.claims.get([envelopeId, 0]) as number | undefined) ?? 0;
      void this.claims.put([envelopeId, 1, n], claim);
      void this.claims.put([envelopeId, 2, user], n);
      void this.claims.put([envelopeId, 3, index], n);
      void this.claims.put([envelopeId, 0], n + 1);
      return { value: claim, applied: true };
    });
  }

  async refundEnvelope(envelopeId: string, ts: number): Promise<Applied<EnvelopeRecord> | undefined> {
    return this.write('refundEnvelope', () => {
      const stored = this.envelopes.get(envelopeId);
      if (!stored) return undefined;
      const record = this.withClaims(stored);
      if (record.refunded !== undefined) return { value: record, applied: false };
      const remaining = record.envelope.total - record.claims.reduce((sum, c) => sum + c.amount, 0);
      if (remaining > 0) this.apply(refundTxn(record.envelope, remaining, ts));
      record.refunded = remaining;
      void this.envelopes.put(envelopeId, { envelope: record.envelope, claims: [], refunded: remaining });
      void this.due.remove(dueKey('env', record.envelope.expiresAt, envelopeId));
      return { value: record, applied: true };
    });
  }

  async getEnvelope(envelopeId: string): Promise<EnvelopeRecord | undefined> {
    return this.read('getEnvelope', () => {
      const stored = this.envelopes.get(envelopeId);
      return stored && this.withClaims(stored);
    });
  }

  async dueEnvelopes(now: number, limit: number): Promise<string[]> {
    return this.read('dueEnvelopes', () => this.dueIds('env', now, limit));
  }

  async openTransfer(transfer: Transfer, txn: LedgerTxn): Promise<Applied<Transfer>> {
    checkTxn(txn);
    checkEscrow(txn, transfer.id, transferAccount(transfer.id), transfer.amount);
    if (transfer.state !== 'pending') throw new RangeError(`transfer ${transfer.id} must open pending, not ${transfer.state}`);
    return this.write('openTransfer', () => {
      const stored = this.seen(txn);
      if (stored) {
        const existing = stored.ref === undefined ? undefined : this.transfers.get(stored.ref);
        if (!existing) throw new KeyReusedError(txn.id);
        return { value: existing, applied: false };
      }
      if (this.transfers.doesExist(transfer.id)) throw new Error(`transfer ${transfer.id} exists under another transaction`);
      this.apply(txn);
      void this.transfers.put(transfer.id, transfer);
      void this.due.put(dueKey('xfer', transfer.expiresAt, transfer.id), true);
      return { value: transfer, applied: true };
    });
  }

  async settleTransfer(transferId: string, state: 'accepted' | 'returned', at: number): Promise<Applied<Transfer> | undefined> {
    if (state !== 'accepted' && state !== 'returned') throw new RangeError(`a transfer settles as accepted or returned, not ${String(state)}`);
    return this.write('settleTransfer', () => {
      const transfer = this.transfers.get(transferId);
      if (!transfer) return undefined;
      if (transfer.state === state) return { value: transfer, applied: false };
      if (transfer.state !== 'pending') throw new TransferSettledError(transferId, transfer.state);
      this.apply(settleTxn(transfer, state, at));
      const settled: Transfer = { ...transfer, state, settledAt: at };
      void this.transfers.put(transferId, settled);
      void this.due.remove(dueKey('xfer', transfer.expiresAt, transferId));
      return { value: settled, applied: true };
    });
  }

  async getTransfer(transferId: string): Promise<Transfer | undefined> {
    return this.read('getTransfer', () => this.transfers.get(transferId));
  }

  async dueTransfers(now: number, limit: number): Promise<string[]> {
    return this.read('dueTransfers', () => this.dueIds('xfer', now, limit));
  }

  async getTxn(id: string): Promise<LedgerTxn | undefined> {
    return this.read('getTxn', () => this.txns.get(id));
  }

  async balance(account: string): Promise<number> {
    return this.read('balance', () => this.accounts.get(account)?.balance ?? 0);
  }

  async statement(account: string, options: { before?: number; limit: number }): Promise<LedgerEntry[]> {
    const upTo = Math.min((options.before ?? Infinity) - 1, Number.MAX_SAFE_INTEGER);
    if (options.limit <= 0 || upTo < 1) return [];
    // Reverse ranges include `start` and exclude `end`; seq 0 is never stored.
    return this.read('statement', () =>
      Array.from(this.entries.getRange({ start: [account, upTo], end: [account, 0], reverse: true, limit: options.limit }), (e) => e.value));
  }

  async *scanTxns(): AsyncIterable<LedgerTxn> {
    yield* this.scan('scanTxns', this.txns, (_, txn) => txn);
  }

  async *scanBalances(): AsyncIterable<{ account: string; balance: number }> {
    yield* this.scan('scanBalances', this.accounts, (account, { balance }) => ({ account, balance }));
  }

  async *scanEnvelopes(): AsyncIterable<EnvelopeRecord> {
    yield* this.scan('scanEnvelopes', this.envelopes, (_, record) => this.withClaims(record));
  }

  /** Waits for queued writes to be durable, then closes this handle on the environment. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.root.flushed;
      await this.root.close();
    } catch (error) {
      throw new StoreUnavailableError('lmdb: close failed', { cause: error });
    }
  }

  /** The stored txn when its id was seen with the same request; KeyReusedError with another. */
  private seen(txn: LedgerTxn): LedgerTxn | undefined {
    const stored = this.txns.get(txn.id);
    if (stored && stored.fingerprint !== txn.fingerprint) throw new KeyReusedError(txn.id);
    return stored;
  }

  /** Posts a new txn inside the current write txn; every balance is checked before the first put. */
  private apply(txn: LedgerTxn): void {
    checkTxn(txn);
    if (this.txns.doesExist(txn.id)) throw new KeyReusedError(txn.id);
    const next = txn.postings.map(({ account, amount }) => {
      const current = this.accounts.get(account) ?? { balance: 0, seq: 0 };
      return { account, amount, balance: nextBalance(account, current.balance, amount), seq: current.seq + 1 };
    });
    for (const { account, amount, balance, seq } of next) {
      void this.accounts.put(account, { balance, seq });
      void this.entries.put([account, seq], ledgerEntry(seq, txn, amount, balance));
    }
    void this.txns.put(txn.id, txn);
  }

  private dueIds(kind: DueKind, now: number, limit: number): string[] {
    if (limit <= 0) return [];
    return Array.from(this.due.getKeys({ start: [kind], end: [kind, now, END], limit }), (key) => (key as [DueKind, number, string])[2]);
  }

  /** One write transaction; refusals pass through as thrown, failures of the store become StoreUnavailableError. */
  private async write<T>(what: string, operation: () => T): Promise<T> {
    this.assertOpen(what);
    try {
      const result = await this.txns.childTransaction(() => {
        try {
          return operation();
        } catch (error) {
          throw new Refused(error);
        }
      });
      await this.root.flushed;
      return result;
    } catch (error) {
      if (error instanceof Refused) throw error.error;
      throw new StoreUnavailableError(`lmdb: ${what} failed`, { cause: error });
    }
  }

  /** Reads are synchronous in lmdb-js (memory-mapped); failures become StoreUnavailableError. */
  private read<T>(what: string, fn: () => T): T {
    this.assertOpen(what);
    try {
      return fn();
    } catch (error) {
      throw new StoreUnavailableError(`lmdb: ${what} failed`, { cause: error });
    }
  }

  private async *scan<V, K extends Key, T>(what: string, db: Database<V, K>, map: (key: K, value: V) => T): AsyncIterable<T> {
    this.assertOpen(what);
    for (const { key, value } of db.getRange()) yield map(key, value);
  }

  /** The stored envelope with its claims, in the order made. */
  private withClaims(stored: EnvelopeRecord): EnvelopeRecord {
    const id = stored.envelope.id;
    const claims = [...this.claims.getRange({ start: [id, 1], end: [id, 1, END] })].map(({ value }) => value as Claim);
    return { envelope: stored.envelope, claims, ...(stored.refunded === undefined ? {} : { refunded: stored.refunded }) };
  }

  private assertOpen(what: string): void {
    if (this.closed) throw new StoreUnavailableError(`lmdb: ${what} on a closed store`);
  }
}

const dueKey = (kind: DueKind, expiresAt: number, id: string): Key => [kind, expiresAt, id];

