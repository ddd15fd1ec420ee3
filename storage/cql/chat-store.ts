// ChatStore on Cassandra / ScyllaDB through an injected cassandra-driver Client. Schema and
// compaction choices: schema.ts. Operating it: README.md.
//
// COMMIT PROTOCOL. The commit point is one lightweight transaction (Paxos) on the conversation row:
//   1. read the row (head, version, pending = the previous commit's intent);
//   2. roll the previous intent forward (idempotent, skipped when this process applied it);
//   3. head != expectHead -> HeadConflictError; compute the new member_count from the member rows;
//   4. UPDATE conversations SET head, member_count, version = v+1, pending = <this intent>
//        IF version = v            (create: INSERT ... IF NOT EXISTS)
//      not applied -> something committed since step 1: go to 1 (a different head then conflicts);
//   5. apply the intent: messages, client ids, members, user_conversations, recalls, every write
//      USING TIMESTAMP created_at_us + v+1; then resolve.
// Why nothing is written before the LWT: two writers racing on the same head would both write
// rows for the same seqs, and the loser's rows (last write wins) could land after and replace
// the winner's: a forked timeline. Here a loser writes nothing at all.
// Why fixed write timestamps: an intent may be applied twice (its writer, and the next writer
// rolling it forward) and a slow write may land late; with timestamps that grow with the version,
// a late or repeated write of an older commit never overrides a newer one (a later recall, a
// removal after a join), and replays are byte-for-byte identical.
// Failure analysis:
//   - crash/timeout before the LWT: nothing written; the engine retries on the same head.
//   - LWT outcome unknown (WriteTimeout on CAS): StoreUnavailableError saying so; the engine's
//     retry either commits or gets HeadConflictError, and client ids deduplicate resends.
//   - crash after the LWT, before step 5 finished: the commit is durable (its intent is in the
//     row). Reads of messages and of one conversation's members overlay the row's pending intent,
//     so they already see it; the next commit attempt on the conversation (any process) rolls it
//     forward before its own LWT. Until then listUserConversations may miss the change: it is the
//     one read that cannot overlay (it spans conversations).
//   - readers never read above the head of the row they read, and only the last intent can be
//     unapplied, so a reader sees a gapless prefix.
// Read cursors: USING TIMESTAMP = seq makes the highest seq win (monotonic, no Paxos).
import { randomUUID } from 'node:crypto';
import cassandra from 'cassandra-driver';
import type { Client, QueryOptions, types as Types } from 'cassandra-driver';
import type { Message } from '../../protocol/frames.ts';
import {
  HeadConflictError, StoreUnavailableError,
  type ChatStore, type ContactEdge, type ConversationCommit, type Membership, type StoredConversation,
} from '../../engine/ports.ts';
import { validateCommit, validateCursor } from '../commit-rules.ts';
import { toStoreError, assertOpen, guarded } from './client.ts';
import { assertKeyspaceName } from './schema.ts';
import { Statements } from './statements.ts';
import {
  num, overlayMembers, overlayMessages, recalledCopy, toContact, toConversationRow, toMembership, toMessage,
  writeTimestamp, type ConversationRow, type Intent,
} from './rows.ts';

const { consistencies } = cassandra.types;

/** Messages per partition of `messages` (see schema.ts). Fixed for a keyspace's life: recorded in `meta` on first open. */
export const DEFAULT_BUCKET_SIZE = 10_000;
/** LWT rounds before a commit that keeps losing to membership-only commits on the same head gives up (retryable). */
const MAX_COMMIT_ROUNDS = 8;
/** Conversations whose last intent this process applied, remembered to skip roll-forwards (bounded). */
const APPLIED_CACHE_SIZE = 100_000;

export interface CqlChatStoreOptions {
  /** Owned by the caller (see client.ts createCqlClient); close() does not shut it down. */
  client: Client;
  keyspace: string;
  /** Messages per `messages` partition. Default DEFAULT_BUCKET_SIZE; open() refuses a keyspace made with another. */
  bucketSize?: number;
  /** Rows per page for list queries. Default 500. */
  fetchSize?: number;
  /** Default LOCAL_QUORUM (reads and writes), LOCAL_SERIAL (Paxos). */
  consistency?: number;
  serialConsistency?: number;
}

/** A commit that can never succeed as written: surfaces as a plain Error. */
class CommitRejected extends Error {}

type ContactChange = ContactEdge | { owner: string; other: string; state: 'none' };

export class CqlChatStore implements ChatStore {
  private closed = false;
  private readonly applied = new Map<string, number>();
  private readonly read: QueryOptions;
  private readonly write: QueryOptions;
  private readonly paxos: QueryOptions;

  private constructor(
    readonly epoch: string,
    private readonly client: Client,
    private readonly q: Statements,
    private readonly bucketSize: number,
    private readonly fetchSize: number,
    consistency: number,
    serialConsistency: number,
  ) {
    this.read = { prepare: true, isIdempotent: true, consistency };
    this.write = { prepare: true, isIdempotent: true, consistency };
    // An LWT is never retried by the driver: a retry of our own applied write would report "not applied".
    this.paxos = { prepare: true, isIdempotent: false, consistency, serialConsistency };
  }

  static async open(options: CqlChatStoreOptions): Promise<CqlChatStore> {
    assertKeyspaceName(options.keyspace);
    const bucketSize = options.bucketSize ?? DEFAULT_BUCKET_SIZE;
    if (!Number.isSafeInteger(bucketSize) || bucketSize < 1) throw new Error(`bucketSize must be a positive integer, got ${bucketSize}`);
    const q = new Statements(options.keyspace);
    const consistency = options.consistency ?? consistencies.localQuorum;
    const serialConsistency = options.serialConsistency ?? consistencies.localSerial;
    const paxos = { prepare: true, consistency, serialConsistency };
    let epoch: string, storedBucket: string;
    try {
      // Read-or-create with IF NOT EXISTS: concurrent first opens all end with the winner's value.
      const setting = async (key: string, value: string) => {
        const rs = await options.client.execute(q.metaInsert, [key, value], paxos);
        return rs.wasApplied() ? value : String(rs.first()['value']);
      };
      epoch = await setting('epoch', randomUUID());
      storedBucket = await setting('bucket_size', String(bucketSize));
    } catch (error) {
      throw toStoreError(error, `open keyspace ${options.keyspace} (has \`lantern migrate\` run?)`);
    }
    if (Number(storedBucket) !== bucketSize) {
      throw new Error(`keyspace ${options.keyspace} was created with bucketSize ${storedBucket}, not ${bucketSize}: messages would be looked up in the wrong partitions`);
    }
    return new CqlChatStore(epoch, options.client, q, bucketSize, options.fetchSize ?? 500, consistency, serialConsistency);
  }

  // ---- timeline ------------------------------------------------------------------------------

  async commit(change: ConversationCommit): Promise<void> {
    validateCommit(change);
    this.assertOpen('commit');
    try {
      if (change.create) return await this.create(change);
      for (let round = 0; round < MAX_COMMIT_ROUNDS; round++) {
        const row = await this.conversationRow(change.conv);
        if (!row) throw new CommitRejected(`commit ${change.conv}: conversation does not exist`);
        await this.rollForward(change.conv, row);
        if (row.meta.head !== change.expectHead) throw new HeadConflictError(change.conv, change.expectHead, row.meta.head);
        const { intent, memberCount } = await this.buildIntent(change, row.meta, row.version + 1, row.meta.memberCount);
        const rs = await this.client.execute(this.q.commitUpdate,
          [change.expectHead + intent.messages.length, memberCount, intent.version, JSON.stringify(intent), change.conv, row.version],
          this.paxos);
        if (!rs.wasApplied()) continue;
        await this.applyIntent(change.conv, intent);
        return;
      }
      throw new StoreUnavailableError(`cql: commit ${change.conv}: lost ${MAX_COMMIT_ROUNDS} rounds to concurrent commits on head ${change.expectHead}`);
    } catch (error) {
      throw this.commitError(error, change.conv);
    }
  }

  private async create(change: ConversationCommit): Promise<void> {
    const create = change.create!;
    const { intent, memberCount } = await this.buildIntent(change, { ...create, head: 0, memberCount: 0 }, 1, 0, new Set());
    const rs = await this.client.execute(this.q.createInsert, [
      change.conv, create.type, create.title, create.epoch, create.createdBy, create.createdAt,
      change.messages.length, memberCount, intent.version, JSON.stringify(intent),
    ], this.paxos);
    if (!rs.wasApplied()) throw new HeadConflictError(change.conv, 0, num(rs.first()['head']));
    await this.applyIntent(change.conv, intent);
  }

  private commitError(error: unknown, conv: string): Error {
    if (error instanceof HeadConflictError || error instanceof StoreUnavailableError) return error;
    if (error instanceof CommitRejected) return new Error(error.message, { cause: error.cause });
    return toStoreError(error, `commit ${conv}`);
  }

  /** The intent of a commit based on `meta` at `version - 1`; reads the touched member rows to count members. */
  private async buildIntent(change: ConversationCommit, meta: StoredConversation, version: number, memberCount: number, knownMembers?: Set<string>): Promise<{ intent: Intent; memberCount: number }> {
    const puts = change.putMembers ?? [], removes = change.removeMembers ?? [];
    const members = knownMembers ?? await this.existingMembers(change.conv, [...puts.map((m) => m.user), ...removes]);
    for (const m of puts) if (!members.has(m.user)) { members.add(m.user); memberCount++; }
    const removed: string[] = [];
    for (const user of removes) if (members.delete(user)) { removed.push(user); memberCount--; }
    const recallNew = new Set((change.recall ?? []).filter((seq) => seq > change.expectHead));
    const intent: Intent = {
      version,
      writeTs: writeTimestamp(meta.createdAt, version),
      messages: change.messages.map((m) => recallNew.has(m.seq) ? recalledCopy(m) : structuredClone(m)),
      putMembers: puts.map((m) => ({ ...m })),
      removeMembers: removed,
      recall: (change.recall ?? []).filter((seq) => seq <= change.expectHead),
    };
    return { intent, memberCount };
  }

  private async existingMembers(conv: string, users: string[]): Promise<Set<string>> {
    if (users.length === 0) return new Set();
    const rs = await this.client.execute(this.q.membersIn, [conv, [...new Set(users)]], this.read);
    return new Set(rs.rows.map((r) => r['user'] as string));
  }

  /** Applies the row's pending intent unless this process already did (idempotent either way). */
  private async rollForward(conv: string, row: ConversationRow): Promise<void> {
    if (!row.pending || this.applied.get(conv) === row.version) return;
    await this.applyIntent(conv, row.pending);
  }

  private async applyIntent(conv: string, intent: Intent): Promise<void> {
    const ts = intent.writeTs, q = this.q, writes: Promise<unknown>[] = [];
    const byBucket = new Map<number, Array<{ query: string; params: unknown[] }>>();
    for (const m of intent.messages) {
      const bucket = Math.floor(m.seq / this.bucketSize);
      const list = byBucket.get(bucket) ?? [];
      list.push({ query: q.messageInsert, params: [conv, bucket, m.seq, m.from, m.dev, m.cid, m.kind, m.body === undefined ? null : JSON.stringify(m.body), m.ts, m.recalled === true, ts] });
      byBucket.set(bucket, list);
      if (m.cid !== '') writes.push(this.client.execute(q.clientIdInsert, [conv, m.from, m.cid, m.seq, ts], this.write));
    }
    // One unlogged batch per partition: a single mutation, applied atomically on each replica.
    for (const list of byBucket.values()) writes.push(this.client.batch(list, { ...this.write, logged: false }));
    for (const m of intent.putMembers) {
      writes.push(this.client.execute(q.memberInsert, [conv, m.user, m.role, m.joined, ts], this.write));
      writes.push(this.client.execute(q.userConvInsert, [m.user, conv, m.role, m.joined, ts], this.write));
    }
    for (const user of intent.removeMembers) {
      writes.push(this.client.execute(q.memberDelete, [ts, conv, user], this.write));
      writes.push(this.client.execute(q.userConvDelete, [ts, user, conv], this.write));
    }
    for (const seq of intent.recall) {
      writes.push(this.client.execute(q.messageRecall, [ts, conv, Math.floor(seq / this.bucketSize), seq], this.write));
    }
    await settleAll(writes);
    this.rememberApplied(conv, intent.version);
  }

  private rememberApplied(conv: string, version: number): void {
    this.applied.delete(conv);
    this.applied.set(conv, version);
    if (this.applied.size > APPLIED_CACHE_SIZE) this.applied.delete(this.applied.keys().next().value!);
  }

  private async conversationRow(conv: string): Promise<ConversationRow | undefined> {
    const rs = await this.client.execute(this.q.conversationSelect, [conv], this.read);
    const row = rs.first();
    return row ? toConversationRow(row) : undefined;
  }

  async getConversation(conv: string): Promise<StoredConversation | undefined> {
    return this.guard('getConversation', async () => (await this.conversationRow(conv))?.meta);
  }

  async getMembership(conv: string, user: string): Promise<Membership | undefined> {
    return this.guard('getMembership', async () => {
      const [rs, row] = await Promise.all([this.client.execute(this.q.memberSelect, [conv, user], this.read), this.conversationRow(conv)]);
      const stored = rs.first();
      return overlayMembers(stored ? [toMembership(stored)] : [], row?.pending).find((m) => m.user === user);
    });
  }

  async listMembers(conv: string): Promise<Membership[]> {
    return this.guard('listMembers', async () => {
      const [rows, row] = await Promise.all([this.all(this.q.membersSelect, [conv]), this.conversationRow(conv)]);
      return overlayMembers(rows.map(toMembership), row?.pending);
    });
  }

  async listUserConversations(user: string): Promise<Membership[]> {
    return this.guard('listUserConversations', async () => (await this.all(this.q.userConvsSelect, [user])).map(toMembership));
  }

  async readAfter(conv: string, afterSeq: number, limit: number): Promise<Message[]> {
    if (limit <= 0) return [];
    return this.guard('readAfter', async () => {
      const row = await this.conversationRow(conv);
      if (!row) return [];
      const from = Math.max(0, afterSeq) + 1;
      return this.readRange(conv, row, from, Math.min(row.meta.head, from + limit - 1));
    });
  }

  async readBefore(conv: string, beforeSeq: number, limit: number): Promise<Message[]> {
    if (limit <= 0) return [];
    return this.guard('readBefore', async () => {
      const row = await this.conversationRow(conv);
      if (!row) return [];
      const to = Math.min(beforeSeq - 1, row.meta.head);
      return this.readRange(conv, row, Math.max(1, to - limit + 1), to);
    });
  }

  async getMessage(conv: string, seq: number): Promise<Message | undefined> {
    if (!Number.isSafeInteger(seq) || seq < 1) return undefined;
    return this.guard('getMessage', async () => {
      const row = await this.conversationRow(conv);
      if (!row || seq > row.meta.head) return undefined;
      return (await this.readRange(conv, row, seq, seq))[0];
    });
  }

  /** Messages from..to (capped at the row's head by the caller), one query per bucket, in parallel. */
  private async readRange(conv: string, row: ConversationRow, from: number, to: number): Promise<Message[]> {
    if (from > to) return [];
    const first = Math.floor(from / this.bucketSize), last = Math.floor(to / this.bucketSize);
    const pages = [];
    for (let bucket = first; bucket <= last; bucket++) pages.push(this.all(this.q.messagesRange, [conv, bucket, from, to]));
    const stored = (await Promise.all(pages)).flat().map((r) => toMessage(conv, r));
    return overlayMessages(conv, from, to, stored, row.pending);
  }

  async findByClientId(conv: string, from: string, cid: string): Promise<number | undefined> {
    return this.guard('findByClientId', async () => {
      const [rs, row] = await Promise.all([this.client.execute(this.q.clientIdSelect, [conv, from, cid], this.read), this.conversationRow(conv)]);
      const stored = rs.first() ? num(rs.first()['seq']) : undefined;
      const pending = row?.pending?.messages.find((m) => m.from === from && m.cid === cid)?.seq;
      if (stored === undefined) return pending;
      return pending === undefined ? stored : Math.min(stored, pending);
    });
  }

  async advanceReadCursor(conv: string, user: string, seq: number): Promise<number> {
    validateCursor(conv, user, seq);
    return this.guard('advanceReadCursor', async () => {
      // The timestamp is the seq: of concurrent writes the highest seq wins, whatever the order.
      if (seq > 0) await this.client.execute(this.q.cursorUpdate, [seq, seq, conv, user], this.write);
      return this.getReadCursor(conv, user);
    });
  }

  async getReadCursor(conv: string, user: string): Promise<number> {
    return this.guard('getReadCursor', async () => num((await this.client.execute(this.q.cursorSelect, [conv, user], this.read)).first()?.['seq']));
  }

  async getReadCursors(conv: string): Promise<Record<string, number>> {
    return this.guard('getReadCursors', async () => {
      const result: Record<string, number> = {};
      for (const r of await this.all(this.q.cursorsSelect, [conv])) result[r['user'] as string] = num(r['seq']);
      return result;
    });
  }

  // ---- contacts and users --------------------------------------------------------------------

  async setContacts(edges: readonly ContactChange[]): Promise<void> {
    if (edges.length === 0) return;
    return this.guard('setContacts', async () => {
      // A logged batch: the edges span partitions (one per owner) and must all land or none.
      const queries = edges.map((e) => e.state === 'none'
        ? { query: this.q.contactDelete, params: [e.owner, e.other] }
        : { query: this.q.contactInsert, params: [e.owner, e.other, e.state, e.ts, e.note ?? null] });
      await this.client.batch(queries, { ...this.write, logged: true });
    });
  }

  async getContact(owner: string, other: string): Promise<ContactEdge | undefined> {
    return this.guard('getContact', async () => {
      const row = (await this.client.execute(this.q.contactSelect, [owner, other], this.read)).first();
      return row ? toContact(row) : undefined;
    });
  }

  async listContacts(owner: string): Promise<ContactEdge[]> {
    return this.guard('listContacts', async () => (await this.all(this.q.contactsSelect, [owner])).map(toContact));
  }

  async setLastSeen(user: string, ts: number): Promise<void> {
    return this.guard('setLastSeen', async () => { await this.client.execute(this.q.lastSeenInsert, [user, ts], this.write); });
  }

  async getLastSeen(users: readonly string[]): Promise<Record<string, number>> {
    return this.guard('getLastSeen', async () => {
      // One token-aware point read per user rather than a multi-partition IN on one coordinator.
      const rows = await Promise.all([...new Set(users)].map((u) => this.client.execute(this.q.lastSeenSelect, [u], this.read)));
      const result: Record<string, number> = {};
      for (const rs of rows) { const r = rs.first(); if (r) result[r['user'] as string] = num(r['ts']); }
      return result;
    });
  }

  /** Marks the store closed; the injected client stays open (its owner shuts it down). */
  async close(): Promise<void> {
    this.closed = true;
  }

  // ---- helpers -------------------------------------------------------------------------------

  /** Every row of a query, page by page (fetchSize rows per round trip). */
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

  private assertOpen(what: string): void {
    assertOpen(this.closed, what);
  }

  private guard<T>(what: string, fn: () => Promise<T>): Promise<T> {
    return guarded(this.closed, what, fn);
  }
}

/** Waits for every write (none is left running unobserved), then throws the first failure. */
async function settleAll(writes: Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(writes);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}
