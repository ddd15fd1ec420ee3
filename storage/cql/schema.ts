// The CQL schema of the chat store and (from 0002) the wallet, as an ordered list of migrations,
// and `migrate()`, which creates the keyspace and applies the missing ones. Works on Apache
// Cassandra 4/5 and ScyllaDB.
//
// Table design (partition key in double parentheses, then clustering columns):
//   conversations     ((conv))                 meta + head + member_count + version + pending.
//                     The commit point: every commit is one lightweight transaction (LWT) on
//                     this row, conditioned on `version` (bumped by every commit). `pending` holds
//                     the last commit's changes as JSON so a crash after the LWT can be rolled
//                     forward (see chat-store.ts for the failure analysis).
//   messages          ((conv, bucket), seq)    bucket = floor(seq / bucketSize): a partition holds
//                     at most bucketSize messages (10 000 x ~1 KB = ~10 MB, well under the 100 MB
//                     partition guidance), and a seq range maps to its buckets by arithmetic, no index.
//   client_ids        ((conv, sender, cid), seq)  one tiny partition per client send id. seq is a
//                     clustering column so a duplicate commit of the same cid adds a row instead of
//                     overwriting: the lowest seq (the first commit, the one acknowledged) reads first.
//   members           ((conv), user)           a conversation's members, sorted by user id.
//   user_conversations ((user), conv)          the reverse index, written by the same commit.
//   read_cursors      ((conv), user)           seq, written with USING TIMESTAMP = seq so the highest
//                     seq wins (a max-register without Paxos).
//   contacts          ((owner), other)         one directed edge per row.
//   last_seen         ((user))                 ms timestamp.
//   meta              ((key))                  epoch and bucket_size, created once with IF NOT EXISTS.
// Text clustering columns sort by UTF-8 bytes (= code point order), the order compareIds() in
// storage/commit-rules.ts defines, so lists come back in the port's order without re-sorting.
//
// Compaction (must exist on Cassandra and ScyllaDB, so UCS/ICS are not hard-coded):
//   - LeveledCompactionStrategy for tables that are read far more than written or overwritten
//     in place: conversations (rewritten by every commit), messages (history pages are slices
//     of one partition; recalls rewrite old rows), members, user_conversations, read_cursors,
//     contacts, last_seen. LCS bounds a read to ~1 SSTable per level and purges overwritten cells
//     quickly, at the price of more write amplification.
//   - SizeTieredCompactionStrategy (the default) for client_ids: write-once, rarely read point
//     lookups that bloom filters answer; tiered compaction writes each byte the fewest times.
//   - Not TimeWindowCompactionStrategy: it suits data that is TTL'd and never updated; messages
//     are kept forever and a recall updates an old row, which would pin old windows.
//   Cassandra 5: UnifiedCompactionStrategy ('scaling_parameters': 'L10' ~ leveled, 'T4' ~ tiered)
//   may replace both by ALTER TABLE. ScyllaDB: Incremental Compaction (ICS) is its recommended
//   replacement for STCS/LCS where available; see README.md.
// TTLs: none on durable data. client_ids could carry a dedupe-window TTL (default_time_to_live
// equal to the longest client outbox retry) but the port promises findByClientId for the life
// of the conversation, so it is not set here. The migration lock row carries a TTL so a crashed
// migrate cannot hold it forever.
import { setTimeout as delay } from 'node:timers/promises';
import { randomUUID } from 'node:crypto';
import type { Client } from 'cassandra-driver';

export interface Migration {
  /** Ordered, never reused, never edited once released: add a new migration instead. */
  readonly id: string;
  readonly description: string;
  /** Each statement must be idempotent (IF NOT EXISTS / IF EXISTS): a crash mid-migration re-runs it. */
  readonly statements: readonly string[];
}

const LEVELED = "WITH compaction = {'class': 'LeveledCompactionStrategy'}";

export const MIGRATIONS: readonly Migration[] = Object.freeze([
  {
    id: '0001_chat_store',
    description: 'conversations, messages, client ids, membership, read cursors, contacts, last seen, meta',
    statements: [
      `CREATE TABLE IF NOT EXISTS meta (key text PRIMARY KEY, value text)`,
      `CREATE TABLE IF NOT EXISTS conversations (
         conv text PRIMARY KEY, type text, title text, epoch text, created_by text, created_at bigint,
         head bigint, member_count int, version bigint, pending text) ${LEVELED}`,
      `CREATE TABLE IF NOT EXISTS messages (
         conv text, bucket bigint, seq bigint, sender text, dev text, cid text, kind text, body text,
         ts bigint, recalled boolean, PRIMARY KEY ((conv, bucket), seq)) ${LEVELED}`,
      `CREATE TABLE IF NOT EXISTS client_ids (
         conv text, sender text, cid text, seq bigint, PRIMARY KEY ((conv, sender, cid), seq))`,
      `CREATE TABLE IF NOT EXISTS members (
         conv text, user text, role text, joined bigint, PRIMARY KEY ((conv), user)) ${LEVELED}`,
      `CREATE TABLE IF NOT EXISTS user_conversations (
         user text, conv text, role text, joined bigint, PRIMARY KEY ((user), conv)) ${LEVELED}`,
      `CREATE TABLE IF NOT EXISTS read_cursors (
         conv text, user text, seq bigint, PRIMARY KEY ((conv), user)) ${LEVELED}`,
      `CREATE TABLE IF NOT EXISTS contacts (
         owner text, other text, state text, ts bigint, note text, PRIMARY KEY ((owner), other)) ${LEVELED}`,
      `CREATE TABLE IF NOT EXISTS last_seen (user text PRIMARY KEY, ts bigint) ${LEVELED}`,
    ],
  },
  // The wallet (CqlWalletStore; design and failure analysis in wallet-store.ts and README.md):
  //   wallet_txns       ((id))                one row per ledger transaction: the idempotency key
  //                     (INSERT IF NOT EXISTS), the txn and its side effect as JSON, which postings
  //                     are applied (map), done. Written once and updated moments later, read by
  //                     point lookups: size-tiered (the default).
  //   wallet_accounts   ((account))           balance + seq + version + the last CAS's entries
  //                     (pending), changed by LWT only. Rewritten by every posting: leveled.
  //   wallet_entries    ((account, bucket), seq DESC)  statement lines; bucket = floor(seq /
  //                     wallet bucket size), so a partition holds a bounded number. Read newest first.
  //   wallet_envelopes  ((envelope), kind, key)  the envelope (static) and its claims: one row per
  //                     share index (kind 'i') and one per user (kind 'u'), so one conditional batch
  //                     on this partition claims both. closed_at closes it to claims (LWT).
  //   wallet_transfers  ((id))                the transfer (immutable JSON) + state (LWT only).
  //   wallet_due        ((kind, hour), expires_at, id)  open envelopes / pending transfers by hour
  //                     of expiry, deleted when settled; wallet_due_hours lists the hours that may
  //                     hold rows. A resurrected row is harmless (readers check the state), so
  //                     tombstones may be purged after 3 hours instead of 10 days.
  {
    id: '0002_wallet',
    description: 'wallet: ledger transactions, accounts, statement entries, envelopes and claims, transfers, expiry index',
    statements: [
      `CREATE TABLE IF NOT EXISTS wallet_txns (
         id text PRIMARY KEY, instance text, fingerprint text, txn text, intent text, created_at bigint,
         state text, applied map<text, bigint>)`,
      `CREATE TABLE IF NOT EXISTS wallet_accounts (
         account text PRIMARY KEY, balance bigint, seq bigint, version bigint, pending text) ${LEVELED}`,
      `CREATE TABLE IF NOT EXISTS wallet_entries (
         account text, bucket bigint, seq bigint, txn text, kind text, amount bigint, balance bigint, ref text, ts bigint,
         PRIMARY KEY ((account, bucket), seq))
         WITH CLUSTERING ORDER BY (seq DESC) AND compaction = {'class': 'LeveledCompactionStrategy'}`,
      `CREATE TABLE IF NOT EXISTS wallet_envelopes (
         envelope text, kind text, key text,
         body text static, opened text static, closed_at bigint static, refunded bigint static, grabbed_at bigint static,
         user text, share int, amount bigint, ts bigint, pos int, settled boolean,
         PRIMARY KEY ((envelope), kind, key)) ${LEVELED}`,
      `CREATE TABLE IF NOT EXISTS wallet_transfers (
         id text PRIMARY KEY, body text, opened text, state text, settled_at bigint) ${LEVELED}`,
      `CREATE TABLE IF NOT EXISTS wallet_due (
         kind text, hour bigint, expires_at bigint, id text, PRIMARY KEY ((kind, hour), expires_at, id))
         WITH compaction = {'class': 'LeveledCompactionStrategy'} AND gc_grace_seconds = 10800`,
      `CREATE TABLE IF NOT EXISTS wallet_due_hours (
         kind text, hour bigint, PRIMARY KEY ((kind), hour)) WITH gc_grace_seconds = 10800`,
    ],
  },
  // Wallet credits without a compare-and-set (wallet-ledger.ts):
  //   wallet_credits    ((account), txn)      a credit to a wallet that no compare-and-set has folded
  //                     into its account row yet: written plainly (idempotent by txn), deleted by the
  //                     fold's roll-forward, so a partition holds few live rows and many tombstones:
  //                     leveled, and gc_grace 3 hours. A resurrected row is harmless (the fold finds
  //                     its txn marked as applied to the account and deletes it again).
  {
    id: '0003_wallet_credits',
    description: 'wallet: credits written without a compare-and-set, folded into their account later',
    statements: [
      `CREATE TABLE IF NOT EXISTS wallet_credits (
         account text, txn text, instance text, kind text, amount bigint, ref text, ts bigint,
         PRIMARY KEY ((account), txn))
         WITH compaction = {'class': 'LeveledCompactionStrategy'} AND gc_grace_seconds = 10800`,
    ],
  },
  // Flash sales (CqlSaleStore; design and failure analysis in sale-store.ts and README.md):
  //   sales             ((sale), kind, key)   the sale (static: body, and the counters taken =
  //                     units in reserved, paying and paid orders, and sold = units in paid ones)
  //                     and its rows: kind 'o' key <order id> (the order, its state), kind 'u' key
  //                     <user> (units the buyer holds), kind 'c' key <createdAt>:<order id> (the
  //                     listing order). Every reservation and transition is one conditional batch on
  //                     this partition. Updated in place by every commit: leveled.
  //   sale_order_index  ((id))                order id -> sale, written before the order's commit.
  //                     Write once, point reads: size-tiered (the default).
  //   sale_user_orders  ((user), created_at DESC, id DESC)  a buyer's orders, newest first, written
  //                     before the commit (a row whose order never committed is skipped by readers).
  //   sale_due          ((hour), pay_by, id)  orders by hour of their payment deadline, written before
  //                     the commit, deleted by the sweep once the order is settled (readers check the
  //                     order, so a resurrected row is harmless: gc_grace 3 hours); sale_due_hours
  //                     lists the hours that may hold rows.
  {
    id: '0004_sales',
    description: 'flash sales: sales with their orders and buyers, order index, buyer listing, payment deadlines',
    statements: [
      `CREATE TABLE IF NOT EXISTS sales (
         sale text, kind text, key text,
         body text static, taken bigint static, sold bigint static,
         order_body text, state text, settled_at bigint, units bigint,
         PRIMARY KEY ((sale), kind, key)) ${LEVELED}`,
      `CREATE TABLE IF NOT EXISTS sale_order_index (id text PRIMARY KEY, sale text)`,
      `CREATE TABLE IF NOT EXISTS sale_user_orders (
         user text, created_at bigint, id text, sale text, PRIMARY KEY ((user), created_at, id))
         WITH CLUSTERING ORDER BY (created_at DESC, id DESC) AND compaction = {'class': 'LeveledCompactionStrategy'}`,
      `CREATE TABLE IF NOT EXISTS sale_due (
         hour bigint, pay_by bigint, id text, sale text, PRIMARY KEY ((hour), pay_by, id))
         WITH compaction = {'class': 'LeveledCompactionStrategy'} AND gc_grace_seconds = 10800`,
      `CREATE TABLE IF NOT EXISTS sale_due_hours (
         scope text, hour bigint, PRIMARY KEY ((scope), hour)) WITH gc_grace_seconds = 10800`,
    ],
  },
]);

export interface MigrateOptions {
  /** CQL replication map, e.g. "{'class': 'NetworkTopologyStrategy', 'dc1': 3}". Used only when the keyspace is created. */
  replication: string;
  /** How long to wait for another migrate to release the lock (ms). Default 120 000. */
  lockWaitMs?: number;
  /** The migration list (tests pass extra ones). Default MIGRATIONS. */
  migrations?: readonly Migration[];
}

export interface MigrateResult {
  /** Ids applied by this call, in order (empty when the schema was current). */
  applied: string[];
  /** Ids that were already recorded. */
  alreadyApplied: string[];
}

const KEYSPACE_NAME = /^[a-z][a-z0-9_]{0,47}$/;
const LOCK_TTL_SECONDS = 300;

/** Throws if `name` is not a keyspace name we can interpolate into CQL safely. */
export function assertKeyspaceName(name: string): void {
  if (!KEYSPACE_NAME.test(name)) throw new Error(`keyspace "${name}" must match ${KEYSPACE_NAME} (lower case, starts with a letter, <= 48 chars)`);
}

/**
 * Creates the keyspace if missing and applies the migrations not yet recorded in
 * `schema_migrations`, in order. Safe to run twice (statements are idempotent and applied ids are
 * skipped) and concurrently: a lease row taken with an LWT serializes migrators, because
 * concurrent schema changes to the same table on different coordinators can disagree.
 */
export async function migrate(client: Client, keyspace: string, options: MigrateOptions): Promise<MigrateResult> {
  assertKeyspaceName(keyspace);
  const migrations = options.migrations ?? MIGRATIONS;
  assertOrdered(migrations);
  // The replication map is operator input spliced into DDL: allow only a map literal.
  if (!/^\{[^;]*\}$/.test(options.replication.trim())) throw new Error(`replication must be a CQL map literal like {'class': 'SimpleStrategy', 'replication_factor': 1}, got ${options.replication}`);
  await client.execute(`CREATE KEYSPACE IF NOT EXISTS ${keyspace} WITH replication = ${options.replication}`);
  await client.execute(`CREATE TABLE IF NOT EXISTS ${keyspace}.schema_migrations (id text PRIMARY KEY, description text, applied_at timestamp)`);
  await client.execute(`CREATE TABLE IF NOT EXISTS ${keyspace}.schema_lock (name text PRIMARY KEY, owner text)`);

  const owner = randomUUID();
  await acquireLock(client, keyspace, owner, options.lockWaitMs ?? 120_000);
  try {
    const rows = await client.execute(`SELECT id FROM ${keyspace}.schema_migrations`, [], { prepare: true, consistency: SERIAL_READ });
    const done = new Set(rows.rows.map((r) => r['id'] as string));
    const result: MigrateResult = { applied: [], alreadyApplied: [] };
    for (const migration of migrations) {
      if (done.has(migration.id)) { result.alreadyApplied.push(migration.id); continue; }
      for (const statement of migration.statements) {
        // Unqualified table names resolve in the target keyspace.
        await client.execute(qualify(statement, keyspace));
      }
      await client.execute(
        `INSERT INTO ${keyspace}.schema_migrations (id, description, applied_at) VALUES (?, ?, ?)`,
        [migration.id, migration.description, new Date()], { prepare: true, consistency: QUORUM_WRITE });
      result.applied.push(migration.id);
    }
    return result;
  } finally {
    await client.execute(`DELETE FROM ${keyspace}.schema_lock WHERE name = 'migrate' IF owner = ?`, [owner], { prepare: true });
  }
}

// Numeric consistency codes (types.consistencies) so this module needs no runtime driver import.
const SERIAL_READ = 0x0009; // serial: see the lock holder's committed writes
const QUORUM_WRITE = 0x0004;

async function acquireLock(client: Client, keyspace: string, owner: string, waitMs: number): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (let pause = 100; ; pause = Math.min(pause * 2, 2000)) {
    const rs = await client.execute(
      `INSERT INTO ${keyspace}.schema_lock (name, owner) VALUES ('migrate', ?) IF NOT EXISTS USING TTL ${LOCK_TTL_SECONDS}`,
      [owner], { prepare: true });
    if (rs.wasApplied()) return;
    if (Date.now() > deadline) {
      throw new Error(`migrate: another migrate (${String(rs.first()?.['owner'])}) holds ${keyspace}.schema_lock; it expires ${LOCK_TTL_SECONDS} s after it was taken`);
    }
    await delay(pause);
  }
}

function assertOrdered(migrations: readonly Migration[]): void {
  for (let i = 1; i < migrations.length; i++) {
    if (migrations[i - 1]!.id >= migrations[i]!.id) throw new Error(`migrations out of order: ${migrations[i - 1]!.id} before ${migrations[i]!.id}`);
  }
}

/** Prefixes the table name of CREATE TABLE / ALTER TABLE / CREATE INDEX ... ON with the keyspace. */
function qualify(statement: string, keyspace: string): string {
  return statement.replace(/^(\s*(?:CREATE TABLE(?: IF NOT EXISTS)?|ALTER TABLE|DROP TABLE(?: IF EXISTS)?)\s+)(\w+)/i, `$1${keyspace}.$2`);
}
