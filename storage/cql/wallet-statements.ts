// Every CQL statement of the wallet store (CqlWalletStore), built once per keyspace and always
// executed prepared (token-aware routing, parsed once per host). Which ones are LWTs, and why, is
// in wallet-store.ts; rows written by plain statements never share a cell with rows an LWT
// writes or conditions on, because a plain write's client timestamp and a Paxos ballot's
// timestamp do not order each other.
export class WalletStatements {
  readonly metaInsert: string;

  // ---- transactions: the idempotency key and the roll-forward record ----
  /** LWT: takes the id. The failed insert returns the row that holds it. */
  readonly txnInsert: string;
  /** Plain: the txns derived from a committed claim, refund or settlement (identical on every replay). */
  readonly txnInsertDerived: string;
  readonly txnSelect: string;
  readonly txnsScan: string;
  readonly txnApplied: string;
  readonly txnDone: string;
  /** LWT: frees the id of a refused request, and only that attempt's row. */
  readonly txnDeleteRefused: string;

  // ---- accounts and statements ----
  readonly accountSelect: string;
  readonly accountsScan: string;
  readonly accountCreate: string;
  readonly accountUpdate: string;
  readonly entryInsert: string;
  readonly entriesUpTo: string;
  /** Plain: a wallet credit, folded into its account by a later compare-and-set. */
  readonly creditInsert: string;
  readonly creditsSelect: string;
  readonly creditDelete: string;
  readonly creditAccountsScan: string;

  // ---- envelopes and claims ----
  readonly envelopeInsert: string;
  readonly envelopeStatic: string;
  readonly envelopeClaims: string;
  readonly envelopeRows: string;
  readonly userClaim: string;
  readonly envelopesScan: string;
  readonly claimInsert: string;
  readonly claimOpenCheck: string;
  readonly claimSettled: string;
  readonly envelopeClose: string;
  readonly envelopeRefunded: string;

  // ---- transfers ----
  readonly transferInsert: string;
  readonly transferSelect: string;
  readonly transfersScan: string;
  readonly transferSettle: string;

  // ---- expiry index ----
  readonly dueInsert: string;
  readonly dueDelete: string;
  readonly dueSelect: string;
  readonly hourInsert: string;
  readonly hoursSelect: string;
  readonly hourDelete: string;

  constructor(ks: string) {
    this.metaInsert = `INSERT INTO ${ks}.meta (key, value) VALUES (?, ?) IF NOT EXISTS`;

    const txnColumns = 'id, instance, fingerprint, txn, intent, created_at, state, applied';
    this.txnInsert = `INSERT INTO ${ks}.wallet_txns (id, instance, fingerprint, txn, intent, created_at) VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS`;
    this.txnInsertDerived = `INSERT INTO ${ks}.wallet_txns (id, instance, fingerprint, txn, intent, created_at) VALUES (?, ?, ?, ?, ?, ?)`;
    this.txnSelect = `SELECT ${txnColumns} FROM ${ks}.wallet_txns WHERE id = ?`;
    this.txnsScan = `SELECT ${txnColumns} FROM ${ks}.wallet_txns`;
    this.txnApplied = `UPDATE ${ks}.wallet_txns SET applied = applied + ? WHERE id = ?`;
    this.txnDone = `UPDATE ${ks}.wallet_txns SET state = 'done' WHERE id = ?`;
    this.txnDeleteRefused = `DELETE FROM ${ks}.wallet_txns WHERE id = ? IF instance = ?`;

    this.accountSelect = `SELECT account, balance, seq, version, pending FROM ${ks}.wallet_accounts WHERE account = ?`;
    this.accountsScan = `SELECT account, balance FROM ${ks}.wallet_accounts`;
    this.accountCreate = `INSERT INTO ${ks}.wallet_accounts (account, balance, seq, version, pending) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS`;
    this.accountUpdate = `UPDATE ${ks}.wallet_accounts SET balance = ?, seq = ?, version = ?, pending = ? WHERE account = ? IF version = ?`;
    this.entryInsert = `INSERT INTO ${ks}.wallet_entries (account, bucket, seq, txn, kind, amount, balance, ref, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`;
    // Clustered seq DESC: newest first, a LIMIT takes the newest.
    this.entriesUpTo = `SELECT seq, txn, kind, amount, balance, ref, ts FROM ${ks}.wallet_entries WHERE account = ? AND bucket = ? AND seq <= ? LIMIT ?`;

    this.creditInsert = `INSERT INTO ${ks}.wallet_credits (account, txn, instance, kind, amount, ref, ts) VALUES (?, ?, ?, ?, ?, ?, ?)`;
    this.creditsSelect = `SELECT txn, instance, kind, amount, ref, ts, WRITETIME(amount) AS wt FROM ${ks}.wallet_credits WHERE account = ? LIMIT ?`;
    this.creditDelete = `DELETE FROM ${ks}.wallet_credits USING TIMESTAMP ? WHERE account = ? AND txn = ?`;
    this.creditAccountsScan = `SELECT DISTINCT account FROM ${ks}.wallet_credits`;

    const claimColumns = 'key, user, share, amount, ts, pos, settled, WRITETIME(amount) AS wt';
    this.envelopeInsert = `INSERT INTO ${ks}.wallet_envelopes (envelope, body, opened) VALUES (?, ?, ?)`;
    this.envelopeStatic = `SELECT body, opened, closed_at, refunded, WRITETIME(closed_at) AS closed_wt FROM ${ks}.wallet_envelopes WHERE envelope = ? LIMIT 1`;
    this.envelopeClaims = `SELECT ${claimColumns} FROM ${ks}.wallet_envelopes WHERE envelope = ? AND kind = 'i'`;
    this.envelopeRows = `SELECT kind, key, user, share, amount, ts, closed_at FROM ${ks}.wallet_envelopes WHERE envelope = ?`;
    this.userClaim = `SELECT kind, user, share, amount, ts FROM ${ks}.wallet_envelopes WHERE envelope = ? AND kind = 'u' AND key = ?`;
    this.envelopesScan = `SELECT envelope, kind, body, opened, closed_at, refunded, WRITETIME(closed_at) AS closed_wt, ${claimColumns} FROM ${ks}.wallet_envelopes`;
    this.claimInsert = `INSERT INTO ${ks}.wallet_envelopes (envelope, kind, key, user, share, amount, ts, pos) VALUES (?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS`;
    this.claimOpenCheck = `UPDATE ${ks}.wallet_envelopes SET grabbed_at = ? WHERE envelope = ? IF closed_at = null`;
    this.claimSettled = `UPDATE ${ks}.wallet_envelopes SET settled = true WHERE envelope = ? AND kind = 'i' AND key = ?`;
    this.envelopeClose = `UPDATE ${ks}.wallet_envelopes SET closed_at = ? WHERE envelope = ? IF closed_at = null`;
    this.envelopeRefunded = `UPDATE ${ks}.wallet_envelopes SET refunded = ? WHERE envelope = ?`;

    const transferColumns = 'id, body, opened, state, settled_at';
    this.transferInsert = `INSERT INTO ${ks}.wallet_transfers (id, body, opened) VALUES (?, ?, ?)`;
    this.transferSelect = `SELECT ${transferColumns} FROM ${ks}.wallet_transfers WHERE id = ?`;
    this.transfersScan = `SELECT ${transferColumns} FROM ${ks}.wallet_transfers`;
    this.transferSettle = `UPDATE ${ks}.wallet_transfers SET state = ?, settled_at = ? WHERE id = ? IF state = null`;

    this.dueInsert = `INSERT INTO ${ks}.wallet_due (kind, hour, expires_at, id) VALUES (?, ?, ?, ?) USING TIMESTAMP ?`;
    this.dueDelete = `DELETE FROM ${ks}.wallet_due USING TIMESTAMP ? WHERE kind = ? AND hour = ? AND expires_at = ? AND id = ?`;
    this.dueSelect = `SELECT expires_at, id FROM ${ks}.wallet_due WHERE kind = ? AND hour = ? AND expires_at >= ? AND expires_at <= ?`;
    this.hourInsert = `INSERT INTO ${ks}.wallet_due_hours (kind, hour) VALUES (?, ?)`;
    this.hoursSelect = `SELECT hour FROM ${ks}.wallet_due_hours WHERE kind = ? AND hour <= ?`;
    this.hourDelete = `DELETE FROM ${ks}.wallet_due_hours USING TIMESTAMP ? WHERE kind = ? AND hour = ?`;
  }
}
