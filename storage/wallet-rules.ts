// Rules every WalletStore adapter applies the same way (engine/wallet/ports.ts): balance steps,
// statement entries, what an opening txn must fill, and share lookup. One place, so the adapters
// cannot drift apart on what they accept.
import {
  InsufficientFundsError, mayGoNegative, type Envelope, type LedgerEntry, type LedgerTxn,
} from '../engine/wallet/ports.ts';

/** The balance after posting `amount`; only the outside world may go below 0. */
export function nextBalance(account: string, balance: number, amount: number): number {
  const after = balance + amount;
  if (!Number.isSafeInteger(after)) throw new RangeError(`${account}: balance ${balance} + ${amount} leaves the safe integers`);
  if (after < 0 && !mayGoNegative(account)) throw new InsufficientFundsError(account, balance, -amount);
  return after;
}

export function ledgerEntry(seq: number, txn: LedgerTxn, amount: number, balance: number): LedgerEntry {
  return { seq, txn: txn.id, kind: txn.kind, amount, balance, ts: txn.ts, ...(txn.ref === undefined ? {} : { ref: txn.ref }) };
}

/** The opening txn must name what it opens and fill its escrow with exactly the amount held: claims, refunds and settlements pay out of it. */
export function checkEscrow(txn: LedgerTxn, ref: string, account: string, amount: number): void {
  if (txn.ref !== ref || !txn.postings.some((p) => p.account === account && p.amount === amount)) {
    throw new RangeError(`txn ${txn.id} must have ref ${ref} and credit ${account} with ${amount}`);
  }
}

export function checkSettleState(state: string): void {
  if (state !== 'accepted' && state !== 'returned') throw new RangeError(`a transfer settles as accepted or returned, not ${state}`);
}

export function shareAt(envelope: Envelope, index: number): number {
  if (!Number.isInteger(index) || index < 0 || index >= envelope.shares.length) {
    throw new RangeError(`envelope ${envelope.id} has shares 0..${envelope.shares.length - 1}, not ${index}`);
  }
  return envelope.shares[index]!;
}
