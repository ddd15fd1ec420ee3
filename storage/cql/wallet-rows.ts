// Row <-> domain conversion for the CQL wallet store, and the statements of escrow accounts,
// which are derived from their envelope or transfer rather than stored. Pure functions, no I/O.
import type { types } from 'cassandra-driver';
import {
  envelopeAccount, grabTxnId, mayGoNegative, refundTxnId, settleTxnId, transferAccount,
  type Claim, type Envelope, type LedgerEntry, type LedgerTxn, type Posting, type Transfer,
} from '../../engine/wallet/ports.ts';
import { num } from './rows.ts';

type Row = types.Row;

/** What a committed transaction still has to write besides its postings (wallet_txns.intent). */
export type Intent =
  | { type: 'envelope'; envelope: Envelope }
  | { type: 'transfer'; transfer: Transfer }
  | { type: 'grab'; envelope: string; index: number }
  | { type: 'refund'; envelope: string }
  | { type: 'settle'; transfer: string };

/** `instance` of the transactions derived from a committed claim, refund or settlement: their commit point is not their row. */
export const DERIVED = 'derived';

export interface TxnRow {
  txn: LedgerTxn;
  /** The attempt that took the id (a uuid), or DERIVED. */
  instance: string;
  fingerprint: string;
  intent: Intent | undefined;
  /** ms; wall clock of the attempt (a derived txn's own ts). */
  createdAt: number;
  done: boolean;
  /** account -> seq of its statement line, for every posting already applied. */
  applied: Map<string, number>;
}

/**
 * One change made by the last compare-and-set on an account (wallet_accounts.pending); `at`: its
 * wall-clock ms. `credit`: the entry folds a row of wallet_credits, written at that time (µs),
 * which the roll-forward deletes.
 */
export type AccountChange =
  | { txn: string; instance: string; at: number; entry: LedgerEntry; credit?: number }
  | { txn: string; instance: string; at: number; refused: { balance: number; needed: number } };

/** A credit to a wallet written without a compare-and-set, not yet folded into its account row (wallet_credits). */
export interface CreditRow {
  txn: string;
  /** The attempt of the txn that committed it. */
  instance: string;
  kind: LedgerTxn['kind'];
  amount: number;
  ref: string | undefined;
  ts: number;
  /** Write time of the row (µs): its delete must be later. */
  wt: number;
}

export interface AccountRow {
  account: string;
  balance: number;
  /** The newest statement line's seq (0 before the first). */
  seq: number;
  /** Bumped by every compare-and-set, refusals included. */
  version: number;
  pending: AccountChange[];
}

/** How an envelope or transfer was opened: its txn, and the write timestamp (µs) of its due row. */
export interface Opened {
  txn: LedgerTxn;
  dueTs: number;
}

export interface StoredEnvelope {
  envelope: Envelope;
  opened: Opened;
  /** The refund's ts, set by the LWT that closes the envelope to claims. */
  closedAt: number | undefined;
  /** Written after the close: undefined while a refund is being rolled forward. */
  refunded: number | undefined;
  /** µs: when the close was written (to tell an interrupted refund from one in flight). */
  closedWriteTime: number | undefined;
}

export interface ClaimRow {
  claim: Claim;
  settled: boolean;
  /** Write time of the claim's LWT (µs; Paxos ballots grow per partition) and its place in the batch. */
  order: [number, number];
}

export interface StoredTransfer {
  transfer: Transfer;
  opened: Opened;
}

export const isEscrow = (account: string): boolean => account.startsWith('env:') || account.startsWith('xfer:');

/** A credit to a wallet: it can never be refused, so it is written as a wallet_credits row and folded later. */
export const isDeferredCredit = (p: Posting): boolean => p.amount > 0 && !mayGoNegative(p.account) && !isEscrow(p.account);

export const bucketOf = (seq: number, size: number): number => Math.floor(seq / size);

export const HOUR_MS = 3_600_000;
export const hourOf = (ms: number): number => Math.floor(ms / HOUR_MS);

function text(value: unknown): string | undefined {
  return value === null || value === undefined ? undefined : String(value);
}

/** Which attempt holds a txn id and where its postings are applied; read even from a partial row. */
export function toTxnMarks(row: Row): { instance: string | undefined; applied: Map<string, number> } {
  const applied = new Map<string, number>();
  const stored = row['applied'] as Record<string, unknown> | null;
  if (stored) for (const [account, seq] of Object.entries(stored)) applied.set(account, num(seq));
  return { instance: text(row['instance']), applied };
}

export function toTxnRow(row: Row): TxnRow | undefined {
  const txn = text(row['txn']);
  // A derived row whose insert has not landed yet holds only its marks: not a transaction yet.
  if (txn === undefined) return undefined;
  const intent = text(row['intent']);
  const { applied } = toTxnMarks(row);
  return {
    txn: JSON.parse(txn) as LedgerTxn,
    instance: String(row['instance']),
    fingerprint: String(row['fingerprint']),
    intent: intent === undefined ? undefined : JSON.parse(intent) as Intent,
    createdAt: num(row['created_at']),
    done: row['state'] === 'done',
    applied,
  };
}

export function toAccountRow(row: Row): AccountRow {
  const pending = text(row['pending']);
  return {
    account: String(row['account']),
    balance: num(row['balance']),
    seq: num(row['seq']),
    version: num(row['version']),
    pending: pending === undefined ? [] : JSON.parse(pending) as AccountChange[],
  };
}

export function toCreditRow(row: Row): CreditRow {
  return {
    txn: String(row['txn']), instance: String(row['instance']), kind: row['kind'] as CreditRow['kind'],
    amount: num(row['amount']), ref: text(row['ref']), ts: num(row['ts']), wt: num(row['wt']),
  };
}

export function toEntry(row: Row): LedgerEntry {
  const entry: LedgerEntry = {
    seq: num(row['seq']), txn: String(row['txn']), kind: row['kind'] as LedgerEntry['kind'],
    amount: num(row['amount']), balance: num(row['balance']), ts: num(row['ts']),
  };
  const ref = text(row['ref']);
  if (ref !== undefined) entry.ref = ref;
  return entry;
}

/** Static columns of an envelope partition; undefined when the envelope was never stored. */
export function toStoredEnvelope(row: Row | undefined): StoredEnvelope | undefined {
  const body = text(row?.['body']);
  if (!row || body === undefined) return undefined;
  const closedAt = row['closed_at'], refunded = row['refunded'];
  return {
    envelope: JSON.parse(body) as Envelope,
    opened: JSON.parse(String(row['opened'])) as Opened,
    closedAt: closedAt === null || closedAt === undefined ? undefined : num(closedAt),
    refunded: refunded === null || refunded === undefined ? undefined : num(refunded),
    closedWriteTime: closedAt === null || closedAt === undefined ? undefined : num(row['closed_wt']),
  };
}

export function toClaimRow(row: Row): ClaimRow {
  return {
    claim: { user: String(row['user']), index: Number(row['share']), amount: num(row['amount']), ts: num(row['ts']) },
    settled: row['settled'] === true,
    order: [num(row['wt']), Number(row['pos'])],
  };
}

/** A claim from any row of the claim batch (the index row or the user row). */
export function claimOf(row: Row): Claim {
  return { user: String(row['user']), index: Number(row['share']), amount: num(row['amount']), ts: num(row['ts']) };
}

/** Claims in the order they were made: by their LWT's write time, then their place in its batch. */
export function inClaimOrder(rows: ClaimRow[]): ClaimRow[] {
  return [...rows].sort((a, b) => a.order[0] - b.order[0] || a.order[1] - b.order[1]);
}

export function toStoredTransfer(row: Row | undefined): StoredTransfer | undefined {
  const body = text(row?.['body']);
  if (!row || body === undefined) return undefined;
  const transfer = JSON.parse(body) as Transfer;
  const state = text(row['state']) as Transfer['state'] | undefined;
  if (state !== undefined && state !== 'pending') {
    transfer.state = state;
    transfer.settledAt = num(row['settled_at']);
  }
  return { transfer, opened: JSON.parse(String(row['opened'])) as Opened };
}

/** The refund an envelope owes once closed: what its claims left (they are frozen by the close). */
export function remainingOf(envelope: Envelope, claims: readonly Claim[]): number {
  return envelope.total - claims.reduce((sum, c) => sum + c.amount, 0);
}

function entry(seq: number, txn: string, kind: LedgerEntry['kind'], amount: number, balance: number, ref: string | undefined, ts: number): LedgerEntry {
  const e: LedgerEntry = { seq, txn, kind, amount, balance, ts };
  if (ref !== undefined) e.ref = ref;
  return e;
}

function openingEntry(opened: Opened, account: string): LedgerEntry {
  const { txn } = opened;
  const amount = txn.postings.find((p) => p.account === account)?.amount ?? 0;
  return entry(1, txn.id, txn.kind, amount, amount, txn.ref, txn.ts);
}

/** The statement of `env:<id>`, oldest first: the opening, each claim in claim order, the refund if any. */
export function envelopeEntries(stored: StoredEnvelope, claims: readonly Claim[], refunded: number | undefined): LedgerEntry[] {
  const { envelope } = stored;
  const entries = [openingEntry(stored.opened, envelopeAccount(envelope.id))];
  let balance = entries[0]!.balance;
  for (const c of claims) {
    balance -= c.amount;
    entries.push(entry(entries.length + 1, grabTxnId(envelope.id, c.user), 'grab', -c.amount, balance, envelope.id, c.ts));
  }
  if (refunded !== undefined && refunded > 0) {
    balance -= refunded;
    entries.push(entry(entries.length + 1, refundTxnId(envelope.id), 'refund', -refunded, balance, envelope.id, stored.closedAt!));
  }
  return entries;
}

/** The statement of `xfer:<id>`, oldest first: the opening and, once settled, the settlement. */
export function transferEntries(stored: StoredTransfer): LedgerEntry[] {
  const { transfer } = stored;
  const entries = [openingEntry(stored.opened, transferAccount(transfer.id))];
  if (transfer.state !== 'pending') {
    entries.push(entry(2, settleTxnId(transfer.id, transfer.state), transfer.state === 'accepted' ? 'accept' : 'return',
      -transfer.amount, entries[0]!.balance - transfer.amount, transfer.id, transfer.settledAt!));
  }
  return entries;
}

/** A statement page: entries (oldest first) with seq < before, newest first, at most `limit`. */
export function pageOf(oldestFirst: readonly LedgerEntry[], before: number | undefined, limit: number): LedgerEntry[] {
  const below = before === undefined ? oldestFirst : oldestFirst.filter((e) => e.seq < before);
  return below.slice(Math.max(0, below.length - limit)).reverse();
}
