// The wallet audit behind `lantern audit` (docs/decisions/0007): reads a WalletStore through its
// scans and checks that the double-entry ledger, the balances, the envelopes and the transfers
// agree with each other. It streams: only one number per account (its postings sum and listed
// balance) and the ids of transfers and envelopes seen in the ledger are kept, never the
// transactions themselves; single transactions are fetched by id where a check needs one.
import {
  envelopeAccount, grabTxnId, refundTxnId, settleTxnId, transferAccount, walletAccount,
  type EnvelopeRecord, type LedgerTxn, type Transfer, type WalletStore,
} from './ports.ts';

export interface CurrencyTotals {
  /** Everything that came in from the outside world: minus the balance of `ext:<cur>`. */
  toppedUp: number;
  /** Sum of the `u:` wallets. */
  wallets: number;
  /** Sum of the envelope (`env:`) and transfer (`xfer:`) escrows. */
  escrow: number;
}

export interface AuditReport {
  ok: boolean;
  /** One readable line per difference found, naming the account, txn, envelope or transfer. */
  problems: string[];
  /** Per currency, from the balances the store lists. */
  totals: Record<string, CurrencyTotals>;
  counts: { txns: number; accounts: number; envelopes: number; transfers: number };
}

export interface AuditOptions {
  /** Audit one currency only (the others are skipped, not counted). */
  currency?: string;
  /** Problem lines kept in the report; beyond it one line says how many more there were. Default 10 000. */
  maxProblems?: number;
  /** Transactions and transfers fetched by id at once. Default 32. */
  concurrency?: number;
}

/** What the audit keeps per account. */
interface Tally {
  currency: string;
  /** Sum of its postings over all transactions. */
  posted: number;
  /** The balance the store lists (scanBalances), once seen. */
  listed?: number;
  /** An envelope or transfer owns this escrow account. */
  owned?: boolean;
}

type AccountKind = 'wallet' | 'external' | 'escrow';

function kindOf(account: string): AccountKind | undefined {
  if (account.startsWith('u:')) return 'wallet';
  if (account.startsWith('ext:')) return 'external';
  if (account.startsWith('env:') || account.startsWith('xfer:')) return 'escrow';
  return undefined;
}

/** The currency an account's name carries (`u:<user>:<cur>`, `ext:<cur>`); escrow names carry none. */
function currencyInName(account: string): string | undefined {
  if (account.startsWith('ext:')) return account.slice(4);
  if (account.startsWith('u:')) return account.slice(account.lastIndexOf(':') + 1);
  return undefined;
}

export async function auditWallet(store: WalletStore, options: AuditOptions = {}): Promise<AuditReport> {
  return new Audit(store, options).run();
}

class Audit {
  private readonly problems: string[] = [];
  private dropped = 0;
  private readonly accounts = new Map<string, Tally>();
  /** Accounts the store lists without any posting in scope (normally escrows holding 0). */
  private readonly unposted = new Set<string>();
  private readonly totals = new Map<string, CurrencyTotals & { sum: number }>();
  /** Envelope id -> grab txns in the ledger that name it. Entries are removed as envelopes are seen. */
  private readonly grabs = new Map<string, number>();
  /** Transfers named by transfer, accept and return txns. */
  private readonly transferIds = new Set<string>();
  private readonly counts = { txns: 0, accounts: 0, envelopes: 0, transfers: 0 };
  private readonly maxProblems: number;
  private readonly concurrency: number;

  constructor(private readonly store: WalletStore, private readonly options: AuditOptions) {
    this.maxProblems = options.maxProblems ?? 10_000;
    this.concurrency = options.concurrency ?? 32;
  }

  async run(): Promise<AuditReport> {
    for await (const txn of this.store.scanTxns()) {
      if (this.inScope(txn.currency)) this.checkTxn(txn);
    }
    for await (const { account, balance } of this.store.scanBalances()) await this.checkBalance(account, balance);
    this.checkUnlisted();
    this.checkCurrencySums();
    for await (const record of this.store.scanEnvelopes()) {
      if (this.inScope(record.envelope.currency)) await this.checkEnvelope(record);
    }
    for (const [id, n] of this.grabs) this.problem(`envelope ${id}: ${n} grab txn(s) in the ledger, but the store has no such envelope`);
    await this.checkTransfers();
    this.checkOrphanEscrows();
    if (this.dropped > 0) this.problems.push(`... and ${this.dropped} more problems not listed`);
    const totals: Record<string, CurrencyTotals> = {};
    for (const cur of [...this.totals.keys()].sort()) {
      const { toppedUp, wallets, escrow } = this.totals.get(cur)!;
      totals[cur] = { toppedUp, wallets, escrow };
    }
    return { ok: this.problems.length === 0, problems: this.problems, totals, counts: this.counts };
  }

  private inScope(currency: string): boolean {
    return this.options.currency === undefined || this.options.currency === currency;
  }

  private problem(line: string): void {
    if (this.problems.length < this.maxProblems) this.problems.push(line);
    else this.dropped++;
  }

  private totalsOf(currency: string): CurrencyTotals & { sum: number } {
    let totals = this.totals.get(currency);
    if (!totals) this.totals.set(currency, (totals = { toppedUp: 0, wallets: 0, escrow: 0, sum: 0 }));
    return totals;
  }

  // ---- transactions ----------------------------------------------------------------------------

  private checkTxn(txn: LedgerTxn): void {
    this.counts.txns++;
    const what = `txn ${txn.id} (${txn.kind}, ${txn.currency})`;
    if (txn.postings.length < 2) this.problem(`${what}: has ${txn.postings.length} posting(s), expected at least 2`);
    let sum = 0;
    const seen = new Set<string>();
    for (const { account, amount } of txn.postings) {
      if (seen.has(account)) this.problem(`${what}: account ${account} is posted twice`);
      seen.add(account);
      if (!Number.isSafeInteger(amount) || amount === 0) {
        this.problem(`${what}: posting to ${account} is ${amount}, expected a non-zero integer of cents`);
        continue;
      }
      sum += amount;
      this.post(txn, account, amount);
    }
    if (sum !== 0) this.problem(`${what}: postings sum to ${sum}, expected 0`);
    if (txn.ref !== undefined) {
      if (txn.kind === 'grab') this.grabs.set(txn.ref, (this.grabs.get(txn.ref) ?? 0) + 1);
      if (txn.kind === 'transfer' || txn.kind === 'accept' || txn.kind === 'return') this.transferIds.add(txn.ref);
    }
  }

  private post(txn: LedgerTxn, account: string, amount: number): void {
    if (kindOf(account) === undefined) this.problem(`txn ${txn.id}: account ${account} is of no known kind (u:, ext:, env:, xfer:)`);
    const named = currencyInName(account);
    if (named !== undefined && named !== txn.currency) this.problem(`txn ${txn.id} is in ${txn.currency} but posts to ${account}`);
    const tally = this.accounts.get(account);
    if (!tally) {
      this.accounts.set(account, { currency: txn.currency, posted: amount });
      return;
    }
    if (tally.currency !== txn.currency) this.problem(`txn ${txn.id} posts ${txn.currency} to ${account}, which holds ${tally.currency}`);
    tally.posted += amount;
    if (!Number.isSafeInteger(tally.posted)) this.problem(`${account}: postings sum leaves the safe integers at txn ${txn.id}`);
  }

  // ---- balances --------------------------------------------------------------------------------

  private async checkBalance(account: string, balance: number): Promise<void> {
    const tally = this.accounts.get(account);
    let currency = tally?.currency;
    if (!tally) {
      // No posting in scope: fine if it holds 0; else find its currency to know whether it is ours.
      currency = currencyInName(account) ?? (balance === 0 ? undefined : await this.escrowCurrency(account));
      if (currency !== undefined && !this.inScope(currency)) return;
      if (this.options.currency !== undefined && currency === undefined && balance === 0) return;
      if (this.unposted.has(account)) this.problem(`${account}: listed twice by the store`);
      else this.counts.accounts++;
      this.unposted.add(account);
      if (balance !== 0) this.problem(`${account}: balance is ${balance}, but no txn posts to it (expected 0)`);
    } else {
      if (tally.listed !== undefined) this.problem(`${account}: listed twice by the store (balances ${tally.listed} and ${balance})`);
      else this.counts.accounts++;
      tally.listed = balance;
      if (balance !== tally.posted) this.problem(`${account}: balance is ${balance}, but its postings sum to ${tally.posted} (difference ${balance - tally.posted})`);
    }
    if (!Number.isSafeInteger(balance)) {
      this.problem(`${account}: balance ${balance} is not an integer of cents`);
      return;
    }
    const kind = kindOf(account);
    if (kind === 'wallet' && balance < 0) this.problem(`${account}: wallet is negative (${balance})`);
    if (kind === 'escrow' && balance < 0) this.problem(`${account}: escrow is negative (${balance})`);
    if (kind === undefined && !tally) this.problem(`${account}: account of no known kind (u:, ext:, env:, xfer:)`);
    if (currency === undefined) return;
    const totals = this.totalsOf(currency);
    totals.sum += balance;
    if (kind === 'external') totals.toppedUp -= balance;
    else if (kind === 'wallet') totals.wallets += balance;
    else if (kind === 'escrow') totals.escrow += balance;
  }

  /** The currency of an escrow account holding money without postings, from what owns it. */
  private async escrowCurrency(account: string): Promise<string | undefined> {
    if (account.startsWith('env:')) return (await this.store.getEnvelope(account.slice(4)))?.envelope.currency;
    if (account.startsWith('xfer:')) return (await this.store.getTransfer(account.slice(5)))?.currency;
    return undefined;
  }

  /** Accounts with postings that the store does not list: their balance reads as 0. */
  private checkUnlisted(): void {
    for (const [account, tally] of this.accounts) {
      if (tally.listed !== undefined) continue;
      this.counts.accounts++;
      if (tally.posted !== 0) this.problem(`${account}: postings sum to ${tally.posted}, but the store lists no balance for it`);
    }
  }

  private checkCurrencySums(): void {
    for (const cur of [...this.totals.keys()].sort()) {
      const { sum, toppedUp, wallets, escrow } = this.totals.get(cur)!;
      if (sum !== 0) {
        this.problem(`${cur}: balances sum to ${sum}, expected 0 (topped up ${toppedUp}, but wallets ${wallets} + escrow ${escrow} = ${wallets + escrow})`);
      }
    }
  }

  /** The balance the store lists for an account in scope (0 when it lists none). */
  private listedBalance(account: string): number {
    const tally = this.accounts.get(account);
    if (tally) tally.owned = true;
    return tally?.listed ?? 0;
  }

  // ---- envelopes -------------------------------------------------------------------------------

  private async checkEnvelope({ envelope, claims, refunded }: EnvelopeRecord): Promise<void> {
    this.counts.envelopes++;
    const what = `envelope ${envelope.id}`;
    const { total, shares } = envelope;
    if (shares.length !== envelope.count) this.problem(`${what}: has ${shares.length} shares, expected count ${envelope.count}`);
    if (shares.some((s) => !Number.isSafeInteger(s) || s <= 0)) this.problem(`${what}: shares [${shares.join(', ')}] are not all positive integers of cents`);
    const shareSum = shares.reduce((a, b) => a + b, 0);
    if (shareSum !== total) this.problem(`${what}: shares sum to ${shareSum}, expected total ${total}`);

    const escrow = this.listedBalance(envelopeAccount(envelope.id));
    const claimed = claims.reduce((a, c) => a + c.amount, 0);
    const back = refunded ?? 0;
    if (claimed + back + escrow !== total) {
      this.problem(`${what}: claimed ${claimed} + refunded ${back} + escrow ${escrow} = ${claimed + back + escrow}, expected total ${total}`);
    }
    if (refunded !== undefined && escrow !== 0) this.problem(`${what}: refunded, but its escrow holds ${escrow}, expected 0`);
    if (refunded !== undefined && (!Number.isSafeInteger(refunded) || refunded < 0)) this.problem(`${what}: refunded ${refunded} is not a non-negative integer of cents`);

    const byUser = new Map<string, number>();
    const byIndex = new Map<number, string>();
    for (const claim of claims) {
      if (byUser.has(claim.user)) this.problem(`${what}: user ${claim.user} claimed twice (shares ${byUser.get(claim.user)} and ${claim.index})`);
      byUser.set(claim.user, claim.index);
      const holder = byIndex.get(claim.index);
      if (holder !== undefined) this.problem(`${what}: share ${claim.index} claimed twice (by ${holder} and ${claim.user})`);
      byIndex.set(claim.index, claim.user);
      const share = shares[claim.index];
      if (share === undefined) this.problem(`${what}: claim of ${claim.user} is for share ${claim.index}, but the envelope has shares 0..${shares.length - 1}`);
      else if (claim.amount !== share) this.problem(`${what}: claim of ${claim.user} is ${claim.amount}, but share ${claim.index} is ${share}`);
    }

    // Each claim is paid by its own grab txn: escrow -> the grabber's wallet, the claim's amount.
    const escrowAccount = envelopeAccount(envelope.id);
    for (const lines of await this.inBatches(claims, async (claim) => {
      const id = grabTxnId(envelope.id, claim.user);
      const txn = await this.store.getTxn(id);
      if (!txn) return [`${what}: claim of ${claim.user} (share ${claim.index}, ${claim.amount}) has no grab txn ${id}`];
      return paysOut(txn, escrowAccount, walletAccount(claim.user, envelope.currency), claim.amount, `${what}: claim of ${claim.user} (${claim.amount})`);
    })) lines.forEach((l) => this.problem(l));
    const grabTxns = this.grabs.get(envelope.id) ?? 0;
    this.grabs.delete(envelope.id);
    // Fewer grab txns than claims is reported per claim above; more means escrow paid out without a claim.
    if (grabTxns > claims.length) this.problem(`${what}: ${grabTxns} grab txns in the ledger, but only ${claims.length} claims`);

    const refund = await this.store.getTxn(refundTxnId(envelope.id));
    if (refunded === undefined) {
      if (refund) this.problem(`${what}: not refunded, but refund txn ${refund.id} exists`);
    } else if (refunded === 0) {
      if (refund) this.problem(`${what}: refunded 0, but refund txn ${refund.id} exists`);
    } else if (!refund) {
      this.problem(`${what}: refunded ${refunded}, but there is no refund txn ${refundTxnId(envelope.id)}`);
    } else {
      for (const l of paysOut(refund, escrowAccount, walletAccount(envelope.sender, envelope.currency), refunded, `${what}: refund of ${refunded}`)) this.problem(l);
    }
  }

  // ---- transfers -------------------------------------------------------------------------------

  private async checkTransfers(): Promise<void> {
    const ids = [...this.transferIds];
    this.transferIds.clear();
    const checked = await this.inBatches(ids, async (id) => {
      const transfer = await this.store.getTransfer(id);
      if (!transfer) return { lines: [`transfer ${id}: txns refer to it, but the store has no such transfer`], counted: false };
      if (!this.inScope(transfer.currency)) return { lines: [], counted: false };
      const settlements = await Promise.all([this.store.getTxn(settleTxnId(id, 'accepted')), this.store.getTxn(settleTxnId(id, 'returned'))]);
      return { lines: this.transferLines(transfer, ...settlements), counted: true };
    });
    for (const { lines, counted } of checked) {
      if (counted) this.counts.transfers++;
      lines.forEach((l) => this.problem(l));
    }
  }

  private transferLines(transfer: Transfer, accept: LedgerTxn | undefined, ret: LedgerTxn | undefined): string[] {
    const lines: string[] = [];
    const what = `transfer ${transfer.id} (${transfer.state}, ${transfer.amount})`;
    const escrow = this.listedBalance(transferAccount(transfer.id));
    const expected = transfer.state === 'pending' ? transfer.amount : 0;
    if (escrow !== expected) lines.push(`${what}: escrow holds ${escrow}, expected ${expected}`);
    const settle = (state: 'accepted' | 'returned', txn: LedgerTxn | undefined, to: string) => {
      if (transfer.state === state) {
        if (!txn) lines.push(`${what}: no settle txn ${settleTxnId(transfer.id, state)}`);
        else lines.push(...paysOut(txn, transferAccount(transfer.id), walletAccount(to, transfer.currency), transfer.amount, what));
      } else if (txn) {
        lines.push(`${what}: settle txn ${txn.id} exists, but the transfer is ${transfer.state}`);
      }
    };
    settle('accepted', accept, transfer.to);
    settle('returned', ret, transfer.from);
    return lines;
  }

  /** Escrow accounts that hold money but belong to no envelope or transfer the store has. */
  private checkOrphanEscrows(): void {
    for (const [account, tally] of this.accounts) {
      if (kindOf(account) !== 'escrow' || tally.owned) continue;
      const balance = tally.listed ?? 0;
      if (balance !== 0) this.problem(`${account}: escrow holds ${balance}, but the store has no envelope or transfer for it`);
    }
  }

  /** Runs `fn` over `items`, `concurrency` at a time; results in the items' order. */
  private async inBatches<T, R>(items: readonly T[], fn: (item: T) => Promise<R>): Promise<R[]> {
    const results: R[] = [];
    for (let i = 0; i < items.length; i += this.concurrency) {
      results.push(...await Promise.all(items.slice(i, i + this.concurrency).map(fn)));
    }
    return results;
  }
}

/** Differences between `txn` and a payment of `amount` from escrow `from` to wallet `to` (empty when it is one). */
function paysOut(txn: LedgerTxn, from: string, to: string, amount: number, what: string): string[] {
  const debit = txn.postings.find((p) => p.account === from)?.amount ?? 0;
  const credit = txn.postings.find((p) => p.account === to)?.amount ?? 0;
  if (debit === -amount && credit === amount && txn.postings.length === 2) return [];
  return [`${what}: txn ${txn.id} moves ${-debit} out of ${from} and ${credit} into ${to}, expected ${amount}`];
}
