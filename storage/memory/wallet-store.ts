// In-process WalletStore for engine unit tests. Same contract as the LMDB adapter (the shared
// suite in storage/contract/ runs against both). Every operation runs to completion without an
// await, so it is atomic with respect to every other call; all checks precede the first write,
// so a refused operation changes nothing. Values are cloned in and out: callers never alias
// stored state.
import {
  EnvelopeClosedError, InsufficientFundsError, KeyReusedError, ShareTakenError, TransferSettledError,
  checkTxn, envelopeAccount, grabTxn, mayGoNegative, refundTxn, settleTxn, transferAccount,
  type Applied, type Claim, type Envelope, type EnvelopeRecord, type LedgerEntry, type LedgerTxn,
  type Transfer, type WalletStore,
} from '../../engine/wallet/ports.ts';
import { checkEscrow, checkSettleState, ledgerEntry, nextBalance, shareAt } from '../wallet-rules.ts';

interface Account {
  balance: number;
  /** entries[seq - 1]: seqs run 1, 2, 3... per account. */
  entries: LedgerEntry[];
}

const clone = <T>(value: T): T => structuredClone(value);

export class MemoryWalletStore implements WalletStore {
  private readonly accounts = new Map<string, Account>();
  private readonly txns = new Map<string, LedgerTxn>();
  private readonly envelopes = new Map<string, EnvelopeRecord>();
  private readonly transfers = new Map<string, Transfer>();
  /** Expiry index: id -> expiresAt of envelopes not yet refunded, and of pending transfers. */
  private readonly openEnvelopes = new Map<string, number>();
  private readonly pendingTransfers = new Map<string, number>();
  private closed = false;

  async post(txn: LedgerTxn): Promise<Applied<LedgerTxn>> {
    this.assertOpen();
    checkTxn(txn);
    const stored = this.seen(txn);
    if (stored) return { value: clone(stored), applied: false };
    this.apply(txn);
    return { value: clone(txn), applied: true };
  }

  async openEnvelope(envelope: Envelope, txn: LedgerTxn): Promise<Applied<Envelope>> {
    this.assertOpen();
    checkTxn(txn);
    checkEscrow(txn, envelope.id, envelopeAccount(envelope.id), envelope.total);
    const stored = this.seen(txn);
    if (stored) {
      // A retry may carry a newly built envelope: the answer is the one stored with the txn.
      const record = this.envelopes.get(stored.ref ?? '');
      if (!record) throw new KeyReusedError(txn.id);
      return { value: clone(record.envelope), applied: false };
    }
    if (this.envelopes.has(envelope.id)) throw new Error(`envelope ${envelope.id} exists under another transaction`);
    this.apply(txn);
    this.envelopes.set(envelope.id, { envelope: clone(envelope), claims: [] });
    this.openEnvelopes.set(envelope.id, envelope.expiresAt);
    return { value: clone(envelope), applied: true };
  }

  async claimShare(envelopeId: string, user: string, index: number, ts: number): Promise<Applied<Claim> | undefined> {
    this.assertOpen();
    const record = this.envelopes.get(envelopeId);
    if (!record) return undefined;
    const earlier = record.claims.find((c) => c.user === user);
    if (earlier) return { value: clone(earlier), applied: false };
    if (record.refunded !== undefined) throw new EnvelopeClosedError(envelopeId);
    const amount = shareAt(record.envelope, index);
    if (record.claims.some((c) => c.index === index)) throw new ShareTakenError(envelopeId, index);
    const claim: Claim = { user, index, amount, ts };
    this.apply(grabTxn(record.envelope, claim));
    record.claims.push(claim);
    return { value: clone(claim), applied: true };
  }

  async refundEnvelope(envelopeId: string, ts: number): Promise<Applied<EnvelopeRecord> | undefined> {
    this.assertOpen();
    const record = this.envelopes.get(envelopeId);
    if (!record) return undefined;
    if (record.refunded !== undefined) return { value: clone(record), applied: false };
    const remaining = record.envelope.total - record.claims.reduce((sum, c) => sum + c.amount, 0);
    if (remaining > 0) this.apply(refundTxn(record.envelope, remaining, ts));
    record.refunded = remaining;
    this.openEnvelopes.delete(envelopeId);
    return { value: clone(record), applied: true };
  }

  async getEnvelope(envelopeId: string): Promise<EnvelopeRecord | undefined> {
    this.assertOpen();
    return clone(this.envelopes.get(envelopeId));
  }

  async dueEnvelopes(now: number, limit: number): Promise<string[]> {
    this.assertOpen();
    return due(this.openEnvelopes, now, limit);
  }

  async openTransfer(transfer: Transfer, txn: LedgerTxn): Promise<Applied<Transfer>> {
    this.assertOpen();
    checkTxn(txn);
    checkEscrow(txn, transfer.id, transferAccount(transfer.id), transfer.amount);
    if (transfer.state !== 'pending') throw new RangeError(`transfer ${transfer.id} must open pending, not ${transfer.state}`);
    const stored = this.seen(txn);
    if (stored) {
      const existing = this.transfers.get(stored.ref ?? '');
      if (!existing) throw new KeyReusedError(txn.id);
      return { value: clone(existing), applied: false };
    }
    if (this.transfers.has(transfer.id)) throw new Error(`transfer ${transfer.id} exists under another transaction`);
    this.apply(txn);
    this.transfers.set(transfer.id, clone(transfer));
    this.pendingTransfers.set(transfer.id, transfer.expiresAt);
    return { value: clone(transfer), applied: true };
  }

  async settleTransfer(transferId: string, state: 'accepted' | 'returned', at: number): Promise<Applied<Transfer> | undefined> {
    this.assertOpen();
    checkSettleState(state);
    const transfer = this.transfers.get(transferId);
    if (!transfer) return undefined;
    if (transfer.state === state) return { value: clone(transfer), applied: false };
    if (transfer.state !== 'pending') throw new TransferSettledError(transferId, transfer.state);
    this.apply(settleTxn(transfer, state, at));
    transfer.state = state;
    transfer.settledAt = at;
    this.pendingTransfers.delete(transferId);
    return { value: clone(transfer), applied: true };
  }

  async getTransfer(transferId: string): Promise<Transfer | undefined> {
    this.assertOpen();
    return clone(this.transfers.get(transferId));
  }

  async dueTransfers(now: number, limit: number): Promise<string[]> {
    this.assertOpen();
    return due(this.pendingTransfers, now, limit);
  }

  async getTxn(id: string): Promise<LedgerTxn | undefined> {
    this.assertOpen();
    return clone(this.txns.get(id));
  }

  async balance(account: string): Promise<number> {
    this.assertOpen();
    return this.accounts.get(account)?.balance ?? 0;
  }

  async statement(account: string, options: { before?: number; limit: number }): Promise<LedgerEntry[]> {
    this.assertOpen();
    const entries = this.accounts.get(account)?.entries ?? [];
    // Entries with seq < before are entries[0 .. before - 2].
    const end = Math.max(0, Math.min(entries.length, (options.before ?? Infinity) - 1));
    if (options.limit <= 0) return [];
    return entries.slice(Math.max(0, end - options.limit), end).reverse().map(clone);
  }

  // The scans copy the current state first: writes made while a caller iterates do not disturb it.
  async *scanTxns(): AsyncIterable<LedgerTxn> {
    this.assertOpen();
    for (const txn of [...this.txns.values()]) yield clone(txn);
  }

  async *scanBalances(): AsyncIterable<{ account: string; balance: number }> {
    this.assertOpen();
    for (const [account, { balance }] of [...this.accounts]) yield { account, balance };
  }

  async *scanEnvelopes(): AsyncIterable<EnvelopeRecord> {
    this.assertOpen();
    for (const record of [...this.envelopes.values()]) yield clone(record);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  /** The stored txn when its id was seen with the same request; KeyReusedError with another. */
  private seen(txn: LedgerTxn): LedgerTxn | undefined {
    const stored = this.txns.get(txn.id);
    if (stored && stored.fingerprint !== txn.fingerprint) throw new KeyReusedError(txn.id);
    return stored;
  }

  /** Posts a new, checked txn: every balance is computed and checked before the first write. */
  private apply(txn: LedgerTxn): void {
    checkTxn(txn);
    if (this.txns.has(txn.id)) throw new KeyReusedError(txn.id);
    const after = txn.postings.map(({ account, amount }) => nextBalance(account, this.accounts.get(account)?.balance ?? 0, amount));
    txn.postings.forEach(({ account, amount }, i) => {
      let state = this.accounts.get(account);
      if (!state) this.accounts.set(account, (state = { balance: 0, entries: [] }));
      state.balance = after[i]!;
      state.entries.push(ledgerEntry(state.entries.length + 1, txn, amount, state.balance));
    });
    this.txns.set(txn.id, clone(txn));
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('MemoryWalletStore is closed');
  }
}

/** Ids due at `now`, soonest first (ties by id, as an ordered index would list them). */
function due(expiries: ReadonlyMap<string, number>, now: number, limit: number): string[] {
  if (limit <= 0) return [];
  return [...expiries]
    .filter(([, at]) => at <= now)
    .sort(([a, atA], [b, atB]) => atA - atB || (a < b ? -1 : a > b ? 1 : 0))
    .slice(0, limit)
    .map(([id]) => id);
}
