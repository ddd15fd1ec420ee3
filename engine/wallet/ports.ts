// The wallet's storage port: a double-entry ledger plus the envelopes and transfers whose escrow
// it holds (docs/decisions/0007). Every write is one domain operation, atomic and durable when it
// resolves, and idempotent by its transaction id: the same id again returns what was stored and
// moves nothing; the same id with a different fingerprint is refused (KeyReusedError).
// storage/contract/wallet-store.contract.ts checks every adapter.

/** One side of a transaction: cents into (positive) or out of (negative) an account. */
export interface Posting {
  account: string;
  amount: number;
}

export type TxnKind = 'topup' | 'envelope' | 'grab' | 'refund' | 'transfer' | 'accept' | 'return' | 'purchase' | 'purchase_refund';

export interface LedgerTxn {
  /** Idempotency key, scoped by who asked (docs/decisions/0007). */
  id: string;
  kind: TxnKind;
  currency: string;
  /** Sum to 0. An account appears at most once. */
  postings: Posting[];
  /** The envelope or transfer the transaction belongs to, if any. */
  ref?: string;
  ts: number;
  /** Hash of the request that caused it: a reused id with another request is refused. */
  fingerprint: string;
}

/** One line of an account's statement. */
export interface LedgerEntry {
  /** Increases per account: the statement's paging cursor. */
  seq: number;
  txn: string;
  kind: TxnKind;
  amount: number;
  /** The balance right after this entry. */
  balance: number;
  ref?: string;
  ts: number;
}

export type EnvelopeMode = 'lucky' | 'equal';

export interface Envelope {
  id: string;
  conv: string;
  sender: string;
  currency: string;
  total: number;
  count: number;
  mode: EnvelopeMode;
  greeting: string;
  /** The pre-split shares, in the order they are handed out. */
  shares: number[];
  createdAt: number;
  expiresAt: number;
}

export interface Claim {
  user: string;
  /** Index into Envelope.shares. */
  index: number;
  amount: number;
  ts: number;
}

export interface EnvelopeRecord {
  envelope: Envelope;
  /** In the order they were made. */
  claims: Claim[];
  /** Cents returned to the sender at expiry, once refunded. */
  refunded?: number;
}

export type TransferState = 'pending' | 'accepted' | 'returned';

export interface Transfer {
  id: string;
  from: string;
  to: string;
  currency: string;
  amount: number;
  note: string;
  /** The direct conversation its card is posted in. */
  conv: string;
  createdAt: number;
  expiresAt: number;
  state: TransferState;
  settledAt?: number;
}

/** The result of an idempotent write: `applied` false means the id was seen and nothing moved. */
export interface Applied<T> {
  value: T;
  applied: boolean;
}

export interface WalletStore {
  /** Post a transaction (top-ups). Throws InsufficientFundsError if a wallet (`u:` account) would go negative. */
  post(txn: LedgerTxn): Promise<Applied<LedgerTxn>>;
  /** Store the envelope and post `txn` (its debit, sender → `env:<id>`) together. Idempotent by txn id;
   *  throws InsufficientFundsError (nothing stored) if the sender's wallet cannot pay. */
  openEnvelope(envelope: Envelope, txn: LedgerTxn): Promise<Applied<Envelope>>;
  /**
   * Give share `index` of the envelope to `user` and post grabTxn(envelope, claim) with it, atomically.
   * Idempotent by user: a user who already has a claim gets it back (applied false), whatever index
   * was asked. Throws ShareTakenError if another user holds the index, EnvelopeClosedError if the
   * envelope was refunded, RangeError for an index outside the shares, and returns undefined for
   * an unknown envelope.
   */
  claimShare(envelopeId: string, user: string, index: number, ts: number): Promise<Applied<Claim> | undefined>;
  /**
   * Close the envelope to claims and return what no one claimed to the sender (refundTxn; no txn
   * when nothing remains), atomically. Idempotent: a closed envelope is returned as it is (applied
   * false). Undefined for an unknown envelope.
   */
  refundEnvelope(envelopeId: string, ts: number): Promise<Applied<EnvelopeRecord> | undefined>;
  getEnvelope(envelopeId: string): Promise<EnvelopeRecord | undefined>;
  /** Ids of envelopes not yet refunded whose expiry is <= `now`, soonest first. */
  dueEnvelopes(now: number, limit: number): Promise<string[]>;

  /** Store a pending transfer and post `txn` (its debit, sender → `xfer:<id>`). Idempotent by txn id;
   *  throws InsufficientFundsError (nothing stored) if the sender cannot pay. */
  openTransfer(transfer: Transfer, txn: LedgerTxn): Promise<Applied<Transfer>>;
  /** Move a pending transfer to accepted (money to `to`) or returned (back to `from`), posting
   *  settleTxn(transfer, state, at). Settling again the same way is a no-op (applied false); the
   *  other way throws TransferSettledError. Undefined for an unknown transfer. */
  settleTransfer(transferId: string, state: 'accepted' | 'returned', at: number): Promise<Applied<Transfer> | undefined>;
  getTransfer(transferId: string): Promise<Transfer | undefined>;
  /** Ids of pending transfers whose expiry is <= `now`, soonest first. */
  dueTransfers(now: number, limit: number): Promise<string[]>;

  getTxn(id: string): Promise<LedgerTxn | undefined>;
  /** Cents in the account (0 for an account never posted to). */
  balance(account: string): Promise<number>;
  /** The account's entries, newest first, with seq < `before` (from the newest if absent). */
  statement(account: string, options: { before?: number; limit: number }): Promise<LedgerEntry[]>;

  /** Everything, for the audit. */
  scanTxns(): AsyncIterable<LedgerTxn>;
  scanBalances(): AsyncIterable<{ account: string; balance: number }>;
  scanEnvelopes(): AsyncIterable<EnvelopeRecord>;
  close(): Promise<void>;
}

/** What a grab decider answers: the user's share index (a new one, or the one decided earlier), or why none. */
export type GrabDecision =
  | { outcome: 'share'; index: number }
  /** `rebuilt`: the state was loaded from the store's claims after a loss, and may miss a claim that
   *  committed just after that read: the caller must check the store before saying no to a user. */
  | { outcome: 'empty'; rebuilt?: true }
  | { outcome: 'expired'; rebuilt?: true }
  /** The decider holds nothing for the envelope (never loaded, evicted, or Redis restarted): load() it from the store and ask again. */
  | { outcome: 'unknown' };

/**
 * Hands out an envelope's pre-split shares, one per user, atomically under any number of
 * concurrent grabs (docs/decisions/0007). It is fast, not durable: the store's claims are the
 * truth, and a decider that lost its state is rebuilt from them.
 * storage/contract/grab-decider.contract.ts checks every adapter (memory, Redis).
 */
export interface GrabDecider {
  /**
   * Install the envelope: shares [0, count) are free except those in `claimed`, whose users keep
   * their index. Does nothing when the envelope is already installed (a concurrent load won).
   * `rebuild`: loaded after the state was lost (not at send); its 'empty'/'expired' answers say so.
   * State may be dropped some time after `expiresAt`.
   */
  load(envelope: { id: string; count: number; expiresAt: number }, claimed: ReadonlyArray<{ user: string; index: number }>, options?: { rebuild?: boolean }): Promise<void>;
  /**
   * The user's earlier decision if there is one (even after expiry: the store decides whether it
   * still counts); else `expired` when now >= expiresAt; else the next free index; else `empty`.
   */
  decide(envelopeId: string, user: string, now: number): Promise<GrabDecision>;
  /** The store refused the user's decided index (another user holds it, after a rebuild): drop the
   *  user's decision so the next decide() hands them another free index. The index stays out of
   *  the free ones: its holder has it. */
  forget(envelopeId: string, user: string): Promise<void>;
  /**
   * The store holds the user's claim at `held`, not at the decided `decided` (a decider rebuilt from
   * a claims read that missed it): record `held` as the user's decision, take it out of the free
   * indices if it is there, and put `decided` back at the front of them, so the next grabber gets
   * it instead of an early 'empty'. Does nothing unless the user's decision is `decided`.
   */
  reassign(envelopeId: string, user: string, decided: number, held: number): Promise<void>;
  /** Drop the envelope's state (it was refunded). */
  drop(envelopeId: string): Promise<void>;
}

export const grabTxnId = (envelopeId: string, user: string): string => `grab:${envelopeId}:${user}`;
export const refundTxnId = (envelopeId: string): string => `refund:${envelopeId}`;
export const settleTxnId = (transferId: string, state: 'accepted' | 'returned'): string =>
  `${state === 'accepted' ? 'accept' : 'return'}:${transferId}`;

/** The transaction that pays a claim out of the envelope's escrow. Every adapter posts exactly this. */
export function grabTxn(envelope: Envelope, claim: Claim): LedgerTxn {
  return {
    id: grabTxnId(envelope.id, claim.user), kind: 'grab', currency: envelope.currency, ref: envelope.id, ts: claim.ts,
    postings: [{ account: envelopeAccount(envelope.id), amount: -claim.amount }, { account: walletAccount(claim.user, envelope.currency), amount: claim.amount }],
    fingerprint: `${envelope.id}:${claim.user}:${claim.index}`,
  };
}

/** The transaction that returns an envelope's unclaimed `remaining` cents (> 0) to its sender. */
export function refundTxn(envelope: Envelope, remaining: number, ts: number): LedgerTxn {
  return {
    id: refundTxnId(envelope.id), kind: 'refund', currency: envelope.currency, ref: envelope.id, ts,
    postings: [{ account: envelopeAccount(envelope.id), amount: -remaining }, { account: walletAccount(envelope.sender, envelope.currency), amount: remaining }],
    fingerprint: `${envelope.id}:${remaining}`,
  };
}

/** The transaction that settles a transfer's escrow: to the recipient, or back to the sender. */
export function settleTxn(transfer: Transfer, state: 'accepted' | 'returned', at: number): LedgerTxn {
  const to = state === 'accepted' ? transfer.to : transfer.from;
  return {
    id: settleTxnId(transfer.id, state), kind: state === 'accepted' ? 'accept' : 'return', currency: transfer.currency, ref: transfer.id, ts: at,
    postings: [{ account: transferAccount(transfer.id), amount: -transfer.amount }, { account: walletAccount(to, transfer.currency), amount: transfer.amount }],
    fingerprint: `${transfer.id}:${state}`,
  };
}

/** Accounts that may go below zero: only the outside world. */
export function mayGoNegative(account: string): boolean {
  return account.startsWith('ext:');
}

export const walletAccount = (user: string, currency: string): string => `u:${user}:${currency}`;
export const externalAccount = (currency: string): string => `ext:${currency}`;
export const envelopeAccount = (id: string): string => `env:${id}`;
export const transferAccount = (id: string): string => `xfer:${id}`;

export class InsufficientFundsError extends Error {
  override readonly name = 'InsufficientFundsError';
  constructor(readonly account: string, readonly balance: number, readonly needed: number) {
    super(`${account} holds ${balance} cents; ${needed} needed`);
  }
}

export class KeyReusedError extends Error {
  override readonly name = 'KeyReusedError';
  constructor(readonly txn: string) { super(`transaction ${txn} exists with a different request`); }
}

export class ShareTakenError extends Error {
  override readonly name = 'ShareTakenError';
  constructor(readonly envelope: string, readonly index: number) { super(`share ${index} of ${envelope} is taken`); }
}

export class EnvelopeClosedError extends Error {
  override readonly name = 'EnvelopeClosedError';
  constructor(readonly envelope: string) { super(`envelope ${envelope} is refunded`); }
}

export class TransferSettledError extends Error {
  override readonly name = 'TransferSettledError';
  constructor(readonly transfer: string, readonly state: TransferState) { super(`transfer ${transfer} is already ${state}`); }
}

/** Checks a transaction is well formed before any adapter applies it (a bug otherwise). */
export function checkTxn(txn: LedgerTxn): void {
  let sum = 0;
  const seen = new Set<string>();
  for (const { account, amount } of txn.postings) {
    if (!Number.isSafeInteger(amount) || amount === 0) throw new RangeError(`txn ${txn.id}: posting to ${account} must be a non-zero integer of cents (got ${amount})`);
    if (seen.has(account)) throw new RangeError(`txn ${txn.id}: account ${account} posted twice`);
    seen.add(account);
    sum += amount;
  }
  if (sum !== 0) throw new RangeError(`txn ${txn.id}: postings sum to ${sum}, not 0`);
  if (txn.postings.length < 2) throw new RangeError(`txn ${txn.id}: needs at least two postings`);
}
