// WalletStore (engine/wallet/ports.ts, docs/decisions/0007) on Cassandra / ScyllaDB through an
// injected cassandra-driver Client. Tables, partition keys, compaction and gc_grace: schema.ts
// (migrations 0002_wallet, 0003_wallet_credits). Costs, measurements and the failure table: README.md.
//
// THE RULE. Every operation has exactly one commit point, a lightweight transaction (LWT) on one
// partition. Whatever else it implies is written after that, idempotently, by the writer, and
// again by anyone who finds it unfinished (roll-forward), as the chat store does (chat-store.ts).
//
// TRANSACTIONS (post, openEnvelope, openTransfer):
//   1. INSERT INTO wallet_txns ... IF NOT EXISTS takes the id for this attempt (`instance`, a uuid)
//      and stores the txn and its intent (the envelope or transfer to write). If the id is held:
//      another fingerprint -> KeyReusedError; done -> the stored value, applied false; pending ->
//      finish that attempt (steps 2-3, deciding it if need be), then answer from it.
//   2. The constrained debit (of an account that may not go negative; at most one per txn) is
//      decided by a compare-and-set on its account row: applied, or refused. The refusal is
//      recorded in the row too, so the writer and anyone finishing the attempt for it see the same
//      decision. Refused: the attempt's row is deleted (DELETE ... IF instance = <attempt>), which
//      frees the id, and InsufficientFundsError. A txn without one (a top-up debits ext:<cur>,
//      which may go negative) is committed by step 1.
//   3. The other postings (never refused: wallet credits as wallet_credits rows, see CREDITS), then
//      the intent's effects (envelope or transfer rows, expiry index), then state = 'done'.
// ACCOUNTS (wallet_accounts: balance, seq, version, pending). Each compare-and-set (IF version = v)
//   records its changes in `pending`; the next one first rolls them forward: the statement line,
//   and applied[account] = seq in the txn's row (or a refused attempt's delete). So a txn's mark is
//   in its row before the account moves past it, and "is this posting applied?" is: read the
//   account row, then the txn row; applied iff in `pending` or marked. Postings that meet on one
//   account in this process share one compare-and-set (wallet-ledger.ts).
// CREDITS (wallet_credits ((account), txn), migration 0003). A credit to a wallet can never be
//   refused, so it needs no compare-and-set when it happens: it is a plain, idempotent row keyed
//   by (account, txn id), written once its txn is committed (by the writer, or by whoever rolls the
//   txn forward). Every compare-and-set on the account first folds its unfolded credits in (in the
//   order they were written: write time, then txn id): each gets its seq and balance-after there, as a change in `pending` that says
//   which credit row it folds; the roll-forward writes its line and mark and deletes the row
//   (later than its write time). A credit row whose txn is already marked for the account is a late
//   replay of a folded one: deleted, not folded again. A debit is decided after the fold, so it
//   sees every credit written before it; balance() and statement() fold (a compare-and-set only
//   when a credit is waiting: they read the credits, then the row), and so does scanBalances().
// CLAIMS (the hot path; wallet-claims.ts). One conditional batch on the envelope's partition is the
//   commit point: the share's row and the user's row IF NOT EXISTS, and IF closed_at = null.
//   Claims meeting in this process share one batch. Then: the grab txn (derived from the claim,
//   a plain write) and the grabber's credit row (plain), then the claim's `settled` flag. Per grab:
//   a share of one LWT on the envelope, and no other; the credit is folded into the wallet by its
//   next compare-and-set (the next debit, a balance or statement read, the audit).
// ESCROW ACCOUNTS are derived, not stored: env:<id> = total - claims - refund, and its statement
//   is the opening, the claims in claim order (the write time of their batch, which is the Paxos
//   ballot and grows per partition, then their place in the batch), the refund. xfer:<id> likewise
//   from its transfer row. So hundreds of grabs of one envelope do not fight over a balance row.
// REFUND: UPDATE ... SET closed_at IF closed_at = null is the commit point. No claim commits after
//   it, so the claims read afterwards are final and the refund is exactly total - claimed. Then
//   unsettled claims are settled, the refund txn posted, `refunded` written, the due row deleted.
// SETTLE (transfer): UPDATE ... SET state IF state = null; then the settle txn, its credit, the due row.
// A CRASH AFTER A COMMIT POINT is finished by: a retry of the same request; getTxn / scanTxns (a
//   pending attempt older than inFlightMs is decided); the next posting or fold on the debited account
//   (statement line and mark; the rest of the txn at the next sweep of that process); getEnvelope / scanEnvelopes / refund (claims unsettled for
//   inFlightMs, refunds closed but unfinished); dueEnvelopes / dueTransfers (an interrupted refund
//   or settlement keeps its due row until finished).
// Plain writes never share a cell with LWT writes or conditions (Paxos ballot timestamps and client
// timestamps do not order each other): LWTs own closed_at, grabbed_at, the claim rows' data,
// transfer state, account rows and the txn row's identity; plain writes own the rest.
import cassandra from 'cassandra-driver';
import type { Client, QueryOptions, types as Types } from 'cassandra-driver';
import { StoreUnavailableError } from '../../engine/ports.ts';
import {
  EnvelopeClosedError, KeyReusedError, TransferSettledError, checkTxn, envelopeAccount, grabTxn, mayGoNegative,
  refundTxn, settleTxn, transferAccount, walletAccount,
  type Applied, type Claim, type Envelope, type EnvelopeRecord, type LedgerEntry, type LedgerTxn, type Transfer, type WalletStore,
} from '../../engine/wallet/ports.ts';
import { toStoreError, assertOpen, guarded } from './client.ts';
import { num } from './rows.ts';
import { assertKeyspaceName } from './schema.ts';
import { ClaimCommitter } from './wallet-claims.ts';
import { IN_FLIGHT_MS, Ledger } from './wallet-ledger.ts';
import {
  HOUR_MS, claimOf, envelopeEntries, hourOf, inClaimOrder, isEscrow, pageOf, remainingOf, toClaimRow, toStoredEnvelope,
  toStoredTransfer, toTxnRow, transferEntries,
  type ClaimRow, type Intent, type Opened, type StoredEnvelope, type StoredTransfer, type TxnRow,
} from './wallet-rows.ts';
import { WalletStatements } from './wallet-statements.ts';

const { consistencies } = cassandra.types;

/** Statement lines per wallet_entries partition. Fixed for a keyspace's life: recorded in `meta` on first open. */
export const DEFAULT_WALLET_BUCKET_SIZE = 1_000;
/** Claims per conditional batch: two rows each, so 16 stay near Cassandra's 5 KiB batch warning. */
export const DEFAULT_CLAIM_BATCH = 16;
/** Immutable envelope parts kept in memory, so a grab reads nothing before its LWT. */
const KNOWN_ENVELOPES = 10_000;
/** An empty expiry-hour marker is deleted only this long after its hour ended (clock-skew margin). */
const HOUR_MARKER_GRACE_MS = 2 * HOUR_MS;
/** The due-row read cursor never passes rows whose expiry is this recent (wall clock): late inserts land there. */
const DUE_CURSOR_LAG_MS = 60_000;

export interface CqlWalletStoreOptions {
  /** Owned by the caller (see client.ts createCqlClient); close() does not shut it down. */
  client: Client;
  keyspace: string;
  /** Statement lines per partition. Default DEFAULT_WALLET_BUCKET_SIZE; open() refuses a keyspace made with another. */
  bucketSize?: number;
  /** Rows per page for scans and long reads. Default 500. */
  fetchSize?: number;
  /** Claims per conditional batch. Default DEFAULT_CLAIM_BATCH. */
  claimBatchSize?: number;
  /** How old an unfinished operation must be before a reader finishes it (ms). Default 15 000. */
  inFlightMs?: number;
  /** Default LOCAL_QUORUM (reads and writes), LOCAL_SERIAL (Paxos). */
  consistency?: number;
  serialConsistency?: number;
}

type DueKind = 'env' | 'xfer';

export class CqlWalletStore implements WalletStore {
  private closed = false;
  private readonly ledger: Ledger;
  private readonly claims: ClaimCommitter;
  private readonly known = new Map<string, { envelope: Envelope; opened: Opened }>();
  private readonly loading = new Map<string, Promise<{ envelope: Envelope; opened: Opened } | undefined>>();
  private readonly dueFrom = new Map<string, number>();
  private readonly read: QueryOptions;
  private readonly write: QueryOptions;
  private readonly paxos: QueryOptions;

  private constructor(
    private readonly client: Client,
    private readonly q: WalletStatements,
    bucketSize: number,
    private readonly fetchSize: number,
    claimBatchSize: number,
    private readonly inFlightMs: number,
    consistency: number,
    serialConsistency: number,
  ) {
    this.read = { prepare: true, isIdempotent: true, consistency };
    this.write = { prepare: true, isIdempotent: true, consistency };
    // An LWT is never retried by the driver: a retry of our own applied write would report "not applied".
    this.paxos = { prepare: true, isIdempotent: false, consistency, serialConsistency };
    this.ledger = new Ledger({
      client, q, bucketSize, read: this.read, write: this.write, paxos: this.paxos, inFlightMs,
      effects: (intent, row) => this.effects(intent, row),
    });
    this.claims = new ClaimCommitter({
      client, q, paxos: this.paxos, read: this.read, batchSize: claimBatchSize,
      serialRead: { ...this.read, consistency: serialConsistency, fetchSize },
      settle: (envelope, claim, fresh) => this.settleClaim(envelope, claim, fresh),
    });
  }

  static async open(options: CqlWalletStoreOptions): Promise<CqlWalletStore> {
    assertKeyspaceName(options.keyspace);
    const bucketSize = options.bucketSize ?? DEFAULT_WALLET_BUCKET_SIZE;
    if (!Number.isSafeInteger(bucketSize) || bucketSize < 1) throw new Error(`bucketSize must be a positive integer, got ${bucketSize}`);
    const claimBatch = options.claimBatchSize ?? DEFAULT_CLAIM_BATCH;
    if (!Number.isSafeInteger(claimBatch) || claimBatch < 1) throw new Error(`claimBatchSize must be a positive integer, got ${claimBatch}`);
    const q = new WalletStatements(options.keyspace);
    const consistency = options.consistency ?? consistencies.localQuorum;
    const serialConsistency = options.serialConsistency ?? consistencies.localSerial;
    let stored: string;
    try {
      // Read-or-create with IF NOT EXISTS: concurrent first opens all end with the winner's value.
      const rs = await options.client.execute(q.metaInsert, ['wallet_bucket_size', String(bucketSize)], { prepare: true, consistency, serialConsistency });
      stored = rs.wasApplied() ? String(bucketSize) : String(rs.first()['value']);
    } catch (error) {
      throw toStoreError(error, `open keyspace ${options.keyspace} (has \`lantern migrate\` run?)`);
    }
    if (Number(stored) !== bucketSize) {
      throw new Error(`keyspace ${options.keyspace} was created with wallet bucketSize ${stored}, not ${bucketSize}: statements would be looked up in the wrong partitions`);
    }
    return new CqlWalletStore(options.client, q, bucketSize, options.fetchSize ?? 500, claimBatch,
      options.inFlightMs ?? IN_FLIGHT_MS, consistency, serialConsistency);
  }

  // ---- ledger ----------------------------------------------------------------------------------

  async post(txn: LedgerTxn): Promise<Applied<LedgerTxn>> {
    checkTxn(txn);
    checkPostings(txn);
    return this.guard('post', async () => {
      const { row, applied } = await this.ledger.commit(txn, undefined);
      return { value: row.txn, applied };
    });
  }

  async getTxn(id: string): Promise<LedgerTxn | undefined> {
    return this.guard('getTxn', async () => {
      const row = await this.ledger.readTxn(id);
      return row ? this.ledger.resolve(row) : undefined;
    });
  }

  async balance(account: string): Promise<number> {
    return this.guard('balance', async () => {
      if (account.startsWith('env:')) {
        const found = await this.envelopeState(account.slice(4));
        return found ? escrowOf(found.stored, found.claims.map((c) => c.claim)) : 0;
      }
      if (account.startsWith('xfer:')) {
        const stored = await this.readTransfer(account.slice(5));
        return stored?.transfer.state === 'pending' ? stored.transfer.amount : 0;
      }
      return this.ledger.balance(account);
    });
  }

  async statement(account: string, options: { before?: number; limit: number }): Promise<LedgerEntry[]> {
    const { before, limit } = options;
    if (limit <= 0) return [];
    return this.guard('statement', async () => {
      if (isEscrow(account)) return pageOf(await this.escrowEntries(account), before, limit);
      const row = await this.ledger.fold(account);
      if (!row) return [];
      const top = before === undefined ? row.seq : Math.min(row.seq, before - 1);
      return top < 1 ? [] : this.ledger.entries(row, top, limit);
    });
  }

  private async escrowEntries(account: string): Promise<LedgerEntry[]> {
    if (account.startsWith('env:')) {
      const found = await this.envelopeState(account.slice(4));
      if (!found) return [];
      const claims = found.claims.map((c) => c.claim);
      return envelopeEntries(found.stored, claims, refundedOf(found.stored, claims));
    }
    const stored = await this.readTransfer(account.slice(5));
    return stored ? transferEntries(stored) : [];
  }

  // ---- envelopes -------------------------------------------------------------------------------

  async openEnvelope(envelope: Envelope, txn: LedgerTxn): Promise<Applied<Envelope>> {
    checkTxn(txn);
    checkEnvelope(envelope, txn);
    return this.guard('openEnvelope', async () => {
      const { row, applied } = await this.ledger.commit(txn, { type: 'envelope', envelope: structuredClone(envelope) });
      if (row.intent?.type !== 'envelope') throw new KeyReusedError(txn.id);
      return { value: row.intent.envelope, applied };
    });
  }

  async claimShare(envelopeId: string, user: string, index: number, ts: number): Promise<Applied<Claim> | undefined> {
    return this.guard('claimShare', async () => {
      const known = await this.knownEnvelope(envelopeId);
      if (!known) return undefined;
      const { envelope } = known;
      if (Number.isSafeInteger(index) && index >= 0 && index < envelope.count) return this.claims.claim(envelope, user, index, ts);
      // No such share; still, a user with a claim gets it back, and a closed envelope says so.
      const [mine, stored] = await Promise.all([
        this.client.execute(this.q.userClaim, [envelopeId, user], this.read).then((rs) => rs.first()),
        this.readEnvelope(envelopeId),
      ]);
      if (mine) {
        const claim = claimOf(mine);
        await this.settleClaim(envelope, claim, false);
        return { value: claim, applied: false };
      }
      if (stored?.closedAt !== undefined) throw new EnvelopeClosedError(envelopeId);
      throw new RangeError(`envelope ${envelopeId} has shares 0..${envelope.count - 1}, not ${index}`);
    });
  }

  async refundEnvelope(envelopeId: string, ts: number): Promise<Applied<EnvelopeRecord> | undefined> {
    return this.guard('refundEnvelope', async () => {
      let stored = await this.readEnvelope(envelopeId);
      if (!stored) return undefined;
      let applied = false;
      if (stored.closedAt === undefined) {
        const rs = await this.client.execute(this.q.envelopeClose, [ts, envelopeId], this.paxos);
        applied = rs.wasApplied();
        stored = { ...stored, closedAt: applied ? ts : num(rs.first()['closed_at']) };
      }
      this.claims.closed(envelopeId);
      return { value: await this.finishRefund(stored), applied };
    });
  }

  /**
   * Everything a closed envelope's refund implies, idempotently: claims settled, the refund txn
   * posted (none when nothing is left), `refunded` written, the due row deleted.
   */
  private async finishRefund(stored: StoredEnvelope): Promise<EnvelopeRecord> {
    const { envelope } = stored;
    // Read after the close: no claim can commit any more, so these are all of them.
    const rows = await this.readClaims(envelope.id);
    await Promise.all(rows.filter((r) => !r.settled).map((r) => this.settleClaim(envelope, r.claim, false)));
    const claims = rows.map((r) => r.claim);
    const remaining = remainingOf(envelope, claims);
    if (stored.refunded === undefined) {
      if (remaining > 0) await this.ledger.completeDerived(refundTxn(envelope, remaining, stored.closedAt!), { type: 'refund', envelope: envelope.id });
      else await this.refunded(stored, 0);
    }
    return { envelope, claims, refunded: remaining };
  }

  private async refunded(stored: StoredEnvelope | { envelope: Envelope; opened: Opened }, amount: number): Promise<void> {
    const { envelope, opened } = stored;
    await Promise.all([
      this.client.execute(this.q.envelopeRefunded, [amount, envelope.id], this.write),
      this.deleteDue('env', envelope.id, envelope.expiresAt, opened.dueTs),
    ]);
  }

  async getEnvelope(envelopeId: string): Promise<EnvelopeRecord | undefined> {
    return this.guard('getEnvelope', async () => {
      const found = await this.envelopeState(envelopeId);
      return found ? this.record(found.stored, found.claims) : undefined;
    });
  }

  /**
   * The record as of the reads, finishing what was interrupted: claims unsettled for inFlightMs,
   * and a refund closed that long ago but not finished.
   */
  private async record(stored: StoredEnvelope, rows: ClaimRow[]): Promise<EnvelopeRecord> {
    const stale = Date.now() * 1000 - this.inFlightMs * 1000;
    if (stored.closedAt !== undefined && stored.refunded === undefined && stored.closedWriteTime! < stale) return this.finishRefund(stored);
    await Promise.all(rows.filter((r) => !r.settled && r.order[0] < stale).map((r) => this.settleClaim(stored.envelope, r.claim, false)));
    const claims = rows.map((r) => r.claim);
    const refunded = refundedOf(stored, claims);
    return { envelope: stored.envelope, claims, ...(refunded === undefined ? {} : { refunded }) };
  }

  async dueEnvelopes(now: number, limit: number): Promise<string[]> {
    return this.due('env', now, limit, async (id) => {
      const stored = await this.readEnvelope(id);
      if (!stored) return 'later'; // its opening is still being written
      if (stored.closedAt === undefined) return 'due';
      // An interrupted refund, or a due row that outlived its delete: finish it and drop the row.
      await this.finishRefund(stored);
      await this.deleteDue('env', id, stored.envelope.expiresAt, stored.opened.dueTs);
      return 'gone';
    });
  }

  /** Posts a committed claim's grab txn and marks the claim settled (idempotent). */
  private async settleClaim(envelope: Envelope, claim: Claim, fresh: boolean): Promise<void> {
    const txn = grabTxn(envelope, claim);
    if (!fresh && (await this.ledger.readTxn(txn.id))?.done) return;
    await this.ledger.completeDerived(txn, { type: 'grab', envelope: envelope.id, index: claim.index });
  }

  // ---- transfers -------------------------------------------------------------------------------

  async openTransfer(transfer: Transfer, txn: LedgerTxn): Promise<Applied<Transfer>> {
    checkTxn(txn);
    checkTransfer(transfer, txn);
    return this.guard('openTransfer', async () => {
      const { row, applied } = await this.ledger.commit(txn, { type: 'transfer', transfer: structuredClone(transfer) });
      if (row.intent?.type !== 'transfer') throw new KeyReusedError(txn.id);
      return { value: row.intent.transfer, applied };
    });
  }

  async settleTransfer(transferId: string, state: 'accepted' | 'returned', at: number): Promise<Applied<Transfer> | undefined> {
    if (state !== 'accepted' && state !== 'returned') throw new RangeError(`a transfer settles as accepted or returned, not ${String(state)}`);
    return this.guard('settleTransfer', async () => {
      const stored = await this.readTransfer(transferId);
      if (!stored) return undefined;
      let transfer = stored.transfer, applied = false;
      if (transfer.state === 'pending') {
        const rs = await this.client.execute(this.q.transferSettle, [state, at, transferId], this.paxos);
        applied = rs.wasApplied();
        const row = rs.first();
        transfer = applied ? { ...transfer, state, settledAt: at } : { ...transfer, state: row['state'] as Transfer['state'], settledAt: num(row['settled_at']) };
      }
      if (transfer.state !== state) throw new TransferSettledError(transferId, transfer.state);
      await this.finishSettle({ transfer, opened: stored.opened }, applied);
      return { value: transfer, applied };
    });
  }

  /** Posts a settled transfer's txn and drops it from the expiry index (idempotent). */
  private async finishSettle(stored: StoredTransfer, fresh: boolean): Promise<void> {
    const { transfer } = stored;
    const txn = settleTxn(transfer, transfer.state as 'accepted' | 'returned', transfer.settledAt!);
    if (!fresh && (await this.ledger.readTxn(txn.id))?.done) return;
    await this.ledger.completeDerived(txn, { type: 'settle', transfer: transfer.id });
  }

  async getTransfer(transferId: string): Promise<Transfer | undefined> {
    return this.guard('getTransfer', async () => (await this.readTransfer(transferId))?.transfer);
  }

  async dueTransfers(now: number, limit: number): Promise<string[]> {
    return this.due('xfer', now, limit, async (id) => {
      const stored = await this.readTransfer(id);
      if (!stored) return 'later';
      if (stored.transfer.state === 'pending') return 'due';
      // An interrupted settlement, or a due row that outlived its delete: finish it and drop the row.
      await this.finishSettle(stored, false);
      await this.deleteDue('xfer', id, stored.transfer.expiresAt, stored.opened.dueTs);
      return 'gone';
    });
  }

  // ---- intents: what a committed transaction writes besides postings -----------------------------

  private async effects(intent: Intent, row: TxnRow): Promise<void> {
    // The due row's write timestamp is fixed by the attempt, so a late replay of the opening can
    // never resurrect a due row that its refund or settlement deleted (those delete later).
    const opened: Opened = { txn: row.txn, dueTs: row.createdAt * 1000 };
    switch (intent.type) {
      case 'envelope': {
        const { envelope } = intent;
        await Promise.all([
          this.client.execute(this.q.envelopeInsert, [envelope.id, JSON.stringify(envelope), JSON.stringify(opened)], this.write),
          this.insertDue('env', envelope.id, envelope.expiresAt, opened.dueTs),
        ]);
        return;
      }
      case 'transfer': {
        const { transfer } = intent;
        await Promise.all([
          this.client.execute(this.q.transferInsert, [transfer.id, JSON.stringify(transfer), JSON.stringify(opened)], this.write),
          this.insertDue('xfer', transfer.id, transfer.expiresAt, opened.dueTs),
        ]);
        return;
      }
      case 'grab':
        await this.client.execute(this.q.claimSettled, [intent.envelope, String(intent.index)], this.write);
        return;
      case 'refund': {
        const known = await this.knownEnvelope(intent.envelope);
        const amount = row.txn.postings.find((p) => p.account === envelopeAccount(intent.envelope))!.amount;
        if (known) await this.refunded(known, -amount);
        return;
      }
      case 'settle': {
        const stored = await this.readTransfer(intent.transfer);
        if (stored) await this.deleteDue('xfer', stored.transfer.id, stored.transfer.expiresAt, stored.opened.dueTs);
        return;
      }
    }
  }

  // ---- expiry index ----------------------------------------------------------------------------

  private async insertDue(kind: DueKind, id: string, expiresAt: number, writeTs: number): Promise<void> {
    const hour = hourOf(expiresAt);
    // Row before marker: a sweeper that sees no marker for the hour sees no row in it either.
    await this.client.execute(this.q.dueInsert, [kind, hour, expiresAt, id, writeTs], this.write);
    await this.client.execute(this.q.hourInsert, [kind, hour], this.write);
  }

  private async deleteDue(kind: DueKind, id: string, expiresAt: number, insertTs: number): Promise<void> {
    // Later than the insert even if this clock is behind the opener's.
    const ts = Math.max(Date.now() * 1000, insertTs + 1);
    await this.client.execute(this.q.dueDelete, [ts, kind, hourOf(expiresAt), expiresAt, id], this.write);
  }

  /**
   * Ids whose due row has expires_at <= now, soonest first, that `check` confirms are still open
   * (it finishes interrupted settlements: 'gone'; an opening still being written: 'later'). Hours come from
   * wallet_due_hours; within an hour, reads start at a per-process cursor below which every row
   * was seen deleted, so the tombstones of settled rows are not read again and again.
   */
  private async due(kind: DueKind, now: number, limit: number, check: (id: string) => Promise<'due' | 'gone' | 'later'>): Promise<string[]> {
    if (limit <= 0) return [];
    return this.guard(kind === 'env' ? 'dueEnvelopes' : 'dueTransfers', async () => {
      // Sweeps run periodically in every worker: the place to finish txns whose writer died after
      // their debit and whose client never retried (noticed by later postings on the account).
      await this.ledger.repairStale();
      const ids: string[] = [];
      for await (const hourRow of this.rows(this.q.hoursSelect, [kind, hourOf(now)], 'due hours')) {
        const hour = num(hourRow['hour']);
        const key = `${kind}:${hour}`;
        const from = this.dueFrom.get(key) ?? hour * HOUR_MS;
        const readAt = Date.now() * 1000;
        let seen = 0, firstLive: number | undefined;
        for await (const row of this.rows(this.q.dueSelect, [kind, hour, from, now], 'due rows')) {
          seen++;
          const expiresAt = num(row['expires_at']), id = String(row['id']);
          const state = await check(id);
          if (state === 'gone') continue;
          firstLive ??= expiresAt;
          if (state === 'later') continue;
          ids.push(id);
          if (ids.length >= limit) break;
        }
        // Rows below the first live one were deleted; recent ones may still arrive late, so stay behind them.
        const cursor = Math.min(firstLive ?? Math.min(now, (hour + 1) * HOUR_MS - 1), Date.now() - DUE_CURSOR_LAG_MS);
        if (cursor > from) this.dueFrom.set(key, cursor);
        if (ids.length >= limit) break;
        const hourOver = (hour + 1) * HOUR_MS - 1 <= now;
        if (seen === 0 && hourOver && (hour + 1) * HOUR_MS < Date.now() - HOUR_MARKER_GRACE_MS) {
          // Empty and long past: drop the marker (a marker written after this read began survives).
          await this.client.execute(this.q.hourDelete, [readAt, kind, hour], this.write);
          this.dueFrom.delete(key);
        }
      }
      return ids;
    });
  }

  // ---- scans -----------------------------------------------------------------------------------

  async *scanTxns(): AsyncIterable<LedgerTxn> {
    this.assertOpen('scanTxns');
    for await (const raw of this.rows(this.q.txnsScan, [], 'scanTxns')) {
      const row = toTxnRow(raw);
      if (!row) continue;
      const txn = await this.guard('scanTxns', () => this.ledger.resolve(row));
      if (txn) yield txn;
    }
  }

  async *scanBalances(): AsyncIterable<{ account: string; balance: number }> {
    this.assertOpen('scanBalances');
    // Unfolded credits are not in the account rows yet: fold them first (each is in a txn the audit scanned).
    for await (const row of this.rows(this.q.creditAccountsScan, [], 'scanBalances')) {
      await this.guard('scanBalances', () => this.ledger.fold(String(row['account'])));
    }
    for await (const row of this.rows(this.q.accountsScan, [], 'scanBalances')) {
      yield { account: String(row['account']), balance: num(row['balance']) };
    }
    for await (const record of this.scanEnvelopes()) {
      const escrow = record.refunded === undefined ? remainingOf(record.envelope, record.claims) : 0;
      yield { account: envelopeAccount(record.envelope.id), balance: escrow };
    }
    for await (const row of this.rows(this.q.transfersScan, [], 'scanBalances')) {
      const stored = toStoredTransfer(row);
      if (stored) yield { account: transferAccount(stored.transfer.id), balance: stored.transfer.state === 'pending' ? stored.transfer.amount : 0 };
    }
  }

  /** Every envelope partition in token order; a partition's rows arrive together (static + claim rows). */
  async *scanEnvelopes(): AsyncIterable<EnvelopeRecord> {
    this.assertOpen('scanEnvelopes');
    let current: { id: string; stored: StoredEnvelope | undefined; claims: ClaimRow[] } | undefined;
    const flush = async () => (current?.stored ? this.guard('scanEnvelopes', () => this.record(current!.stored!, inClaimOrder(current!.claims))) : undefined);
    for await (const row of this.rows(this.q.envelopesScan, [], 'scanEnvelopes')) {
      const id = String(row['envelope']);
      if (current?.id !== id) {
        const done = await flush();
        if (done) yield done;
        current = { id, stored: toStoredEnvelope(row), claims: [] };
      }
      if (row['kind'] === 'i') current.claims.push(toClaimRow(row));
    }
    const last = await flush();
    if (last) yield last;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  // ---- reads and helpers -------------------------------------------------------------------------

  /** An envelope's immutable parts, from memory after the first read (a grab then reads nothing before its LWT). */
  private async knownEnvelope(id: string): Promise<{ envelope: Envelope; opened: Opened } | undefined> {
    const hit = this.known.get(id);
    if (hit) return hit;
    // The first grabs of a burst share one read (and so reach the claim queue in call order).
    let loading = this.loading.get(id);
    if (!loading) {
      loading = this.readEnvelope(id).then((stored) => {
        if (!stored) return undefined;
        const known = { envelope: stored.envelope, opened: stored.opened };
        this.known.set(id, known);
        if (this.known.size > KNOWN_ENVELOPES) this.known.delete(this.known.keys().next().value!);
        return known;
      }).finally(() => this.loading.delete(id));
      this.loading.set(id, loading);
    }
    return loading;
  }

  private async readEnvelope(id: string): Promise<StoredEnvelope | undefined> {
    return toStoredEnvelope((await this.client.execute(this.q.envelopeStatic, [id], this.read)).first());
  }

  /** The claims, in claim order. */
  private async readClaims(id: string): Promise<ClaimRow[]> {
    return inClaimOrder((await this.all(this.q.envelopeClaims, [id])).map(toClaimRow));
  }

  /** Static columns and claims, read in parallel. A close between the two reads freezes the claims, so the pair is consistent. */
  private async envelopeState(id: string): Promise<{ stored: StoredEnvelope; claims: ClaimRow[] } | undefined> {
    const [stored, claims] = await Promise.all([this.readEnvelope(id), this.readClaims(id)]);
    return stored ? { stored, claims } : undefined;
  }

  private async readTransfer(id: string): Promise<StoredTransfer | undefined> {
    return toStoredTransfer((await this.client.execute(this.q.transferSelect, [id], this.read)).first());
  }

  /** Every row of a single-partition query, page by page. */
  private async all(query: string, params: unknown[]): Promise<Types.Row[]> {
    const rows: Types.Row[] = [];
    let pageState: string | undefined;
    do {
      const rs = await this.client.execute(query, params, { ...this.read, fetchSize: this.fetchSize, ...(pageState ? { pageState } : {}) });
      rows.push(...rs.rows);
      pageState = rs.pageState ?? undefined;
    } while (pageState);
    return rows;
  }

  /** Rows of a query as a stream: the driver fetches the next page of `fetchSize` rows as the consumer reads. */
  private async *rows(query: string, params: unknown[], what: string): AsyncGenerator<Types.Row> {
    const stream = this.client.stream(query, params, { ...this.read, fetchSize: this.fetchSize }) as unknown as AsyncIterable<Types.Row> & { destroy(): void };
    try {
      for await (const row of stream) yield row;
    } catch (error) {
      throw error instanceof StoreUnavailableError ? error : toStoreError(error, what);
    } finally {
      stream.destroy();
    }
  }

  private assertOpen(what: string): void {
    assertOpen(this.closed, what);
  }

  private guard<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return guarded(this.closed, what, fn);
  }
}

/** What the escrow of an envelope holds: nothing once closed (the refund takes what claims left). */
function escrowOf(stored: StoredEnvelope, claims: readonly Claim[]): number {
  return stored.closedAt === undefined ? remainingOf(stored.envelope, claims) : 0;
}

/** The record's `refunded`: written once finished; while a refund is rolled forward, what it will be. */
function refundedOf(stored: StoredEnvelope, claims: readonly Claim[]): number | undefined {
  if (stored.closedAt === undefined) return undefined;
  return stored.refunded ?? remainingOf(stored.envelope, claims);
}

/**
 * Postings this store can apply: escrow accounts move only through their envelope or transfer
 * (their balances are derived from it), and one constrained debit at most, because its account
 * row is where the transaction's fate is decided.
 */
function checkPostings(txn: LedgerTxn, escrow?: { account: string; amount: number }): void {
  let constrained = 0;
  for (const { account, amount } of txn.postings) {
    if (isEscrow(account)) {
      if (escrow && account === escrow.account && amount === escrow.amount) continue;
      throw new RangeError(`txn ${txn.id}: ${account} ${escrow ? `must receive ${escrow.amount}` : 'moves only through its envelope or transfer'}`);
    }
    if (amount < 0 && !mayGoNegative(account)) constrained++;
  }
  if (escrow && !txn.postings.some((p) => p.account === escrow.account)) throw new RangeError(`txn ${txn.id}: ${escrow.account} must receive ${escrow.amount}`);
  if (constrained > 1) throw new RangeError(`txn ${txn.id}: debits ${constrained} wallets; the CQL store decides a txn on its one wallet debit`);
}

function checkEnvelope(envelope: Envelope, txn: LedgerTxn): void {
  const { shares } = envelope;
  if (!Number.isSafeInteger(envelope.count) || envelope.count < 1 || shares.length !== envelope.count) throw new RangeError(`envelope ${envelope.id}: count ${envelope.count} with ${shares.length} shares`);
  if (!shares.every((s) => Number.isSafeInteger(s) && s > 0)) throw new RangeError(`envelope ${envelope.id}: shares must be positive integers of cents`);
  if (shares.reduce((a, b) => a + b, 0) !== envelope.total) throw new RangeError(`envelope ${envelope.id}: shares do not sum to the total ${envelope.total}`);
  if (!Number.isSafeInteger(envelope.expiresAt)) throw new RangeError(`envelope ${envelope.id}: expiresAt must be an integer`);
  if (txn.currency !== envelope.currency || txn.ref !== envelope.id) throw new RangeError(`txn ${txn.id} must be in ${envelope.currency} with ref ${envelope.id}`);
  checkPostings(txn, { account: envelopeAccount(envelope.id), amount: envelope.total });
  if (!txn.postings.some((p) => p.account === walletAccount(envelope.sender, envelope.currency))) throw new RangeError(`txn ${txn.id}: the sender's wallet must pay the envelope`);
}

function checkTransfer(transfer: Transfer, txn: LedgerTxn): void {
  if (transfer.state !== 'pending' || transfer.settledAt !== undefined) throw new RangeError(`transfer ${transfer.id} must open pending, not ${transfer.state}`);
  if (!Number.isSafeInteger(transfer.amount) || transfer.amount <= 0) throw new RangeError(`transfer ${transfer.id}: amount must be a positive integer of cents`);
  if (!Number.isSafeInteger(transfer.expiresAt)) throw new RangeError(`transfer ${transfer.id}: expiresAt must be an integer`);
  if (txn.currency !== transfer.currency || txn.ref !== transfer.id) throw new RangeError(`txn ${txn.id} must be in ${transfer.currency} with ref ${transfer.id}`);
  checkPostings(txn, { account: transferAccount(transfer.id), amount: transfer.amount });
}
