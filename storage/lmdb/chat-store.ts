// ChatStore on LMDB (lmdb-js): one environment, named sub-databases, msgpack values,
// ordered-binary array keys (arrays sort element by element, so a key prefix is a range).
//
// Key layout (sub-database: key -> value):
//   meta:      'epoch'               -> string (random id made when the directory is first created)
//   convs:     conv                  -> StoredConversation (head and memberCount live here)
//   msgs:      [conv, seq]           -> Message
//   members:   [conv, user]          -> Membership
//   userConvs: [user, conv]          -> Membership (reverse index, written in the same txn)
//   cids:      [conv, from, cid]     -> seq (client-id index for idempotent sends)
//   reads:     [conv, user]          -> seq (read cursors)
//   contacts:  [owner, other]        -> ContactEdge
//   lastSeen:  user                  -> ms timestamp
//
// Writes go through lmdb-js async transactions: callbacks queued in the same event turn run
// back to back inside ONE LMDB write txn on the main thread, so thousands of concurrent
// commits share one disk flush. Each commit runs as a child txn, so a commit that throws
// rolls back alone. Promises resolve only after the batch is flushed to disk (durable).
import { mkdir } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { open, type Database, type Key, type RootDatabase } from 'lmdb';
import type { Message } from '../../protocol/frames.ts';
import {
  HeadConflictError, StoreUnavailableError,
  type ChatStore, type ContactEdge, type ConversationCommit, type Membership, type StoredConversation,
} from '../../engine/ports.ts';
import { validateCommit, validateCursor } from '../commit-rules.ts';

/** Sorts after every string and number element: [prefix, END] closes a prefix range. */
const END = new Uint8Array([0xff]);

export interface LmdbChatStoreOptions {
  /** Directory of the LMDB environment; created if missing. */
  path: string;
  /** Initial map size in bytes (lmdb-js grows it as needed). */
  mapSize?: number;
}

/** A commit that can never succeed as written (e.g. unknown conversation). Surfaces as a plain Error. */
class CommitRejected extends Error {}

type ContactChange = ContactEdge | { owner: string; other: string; state: 'none' };

export class LmdbChatStore implements ChatStore {
  /** lmdb-js sub-databases still queue writes after the environment closes (they then crash in a timer): refuse them here. */
  private closed = false;

  private constructor(
    readonly epoch: string,
    private readonly root: RootDatabase,
    private readonly convs: Database<StoredConversation, string>,
    private readonly msgs: Database<Message, Key>,
    private readonly members: Database<Membership, Key>,
    private readonly userConvs: Database<Membership, Key>,
    private readonly cids: Database<number, Key>,
    private readonly reads: Database<number, Key>,
    private readonly contacts: Database<ContactEdge, Key>,
    private readonly lastSeen: Database<number, string>,
  ) {}

  static async open(options: LmdbChatStoreOptions): Promise<LmdbChatStore> {
    try {
      await mkdir(options.path, { recursive: true });
      const root = open({ path: options.path, maxDbs: 16, encoding: 'msgpack', ...(options.mapSize ? { mapSize: options.mapSize } : {}) });
      const db = <V, K extends Key>(name: string) => root.openDB<V, K>(name, { encoding: 'msgpack' });
      const meta = db<string, string>('meta');
      // Read-or-create inside one write txn so two processes opening a fresh directory agree.
      const epoch = meta.transactionSync(() => {
        const existing = meta.get('epoch');
        if (existing !== undefined) return existing;
        const made = randomUUID();
        meta.putSync('epoch', made);
        return made;
      });
      return new LmdbChatStore(
        epoch, root,
        db('convs'), db('msgs'), db('members'), db('userConvs'), db('cids'), db('reads'), db('contacts'), db('lastSeen'),
      );
    } catch (error) {
      throw new StoreUnavailableError(`lmdb: cannot open ${options.path}`, { cause: error });
    }
  }

  async commit(change: ConversationCommit): Promise<void> {
    validateCommit(change);
    this.assertOpen('commit');
    try {
      await this.convs.childTransaction(() => {
        try {
          this.applyCommit(change);
        } catch (error) {
          // Thrown while applying (a failed check, a value msgpack cannot encode): the commit is
          // wrong, not the store. The child txn is rolled back either way.
          if (error instanceof HeadConflictError || error instanceof CommitRejected) throw error;
          throw new CommitRejected(`commit ${change.conv}: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
        }
      });
      await this.root.flushed;
    } catch (error) {
      if (error instanceof HeadConflictError) throw error;
      if (error instanceof CommitRejected) throw new Error(error.message, { cause: error.cause });
      throw new StoreUnavailableError(`lmdb: commit to ${change.conv} failed`, { cause: error });
    }
  }

  /** Runs inside the write txn: every check precedes the first write (the child txn also rolls back on throw). */
  private applyCommit(change: ConversationCommit): void {
    const { conv, expectHead } = change;
    const current = this.convs.get(conv);
    let meta: StoredConversation;
    if (change.create) {
      if (current) throw new HeadConflictError(conv, expectHead, current.head);
      meta = { ...change.create, head: 0, memberCount: 0 };
    } else {
      if (!current) throw new CommitRejected(`commit ${conv}: conversation does not exist`);
      if (current.head !== expectHead) throw new HeadConflictError(conv, expectHead, current.head);
      meta = current;
    }
    for (const m of change.messages) {
      void this.msgs.put([conv, m.seq], m);
      // The first commit of a client id wins: it is the seq the sender was acknowledged with.
      if (m.cid !== '') {
        const key = [conv, m.from, m.cid];
        if (!this.cids.doesExist(key)) void this.cids.put(key, m.seq);
      }
    }
    meta.head = expectHead + change.messages.length;
    for (const member of change.putMembers ?? []) {
      if (!this.members.doesExist([conv, member.user])) meta.memberCount++;
      void this.members.put([conv, member.user], member);
      void this.userConvs.put([member.user, conv], member);
    }
    for (const user of change.removeMembers ?? []) {
      if (!this.members.doesExist([conv, user])) continue;
      meta.memberCount--;
      void this.members.remove([conv, user]);
      void this.userConvs.remove([user, conv]);
    }
    for (const seq of change.recall ?? []) {
      const original = this.msgs.get([conv, seq]);
      if (!original) throw new CommitRejected(`commit ${conv}: recall of missing seq ${seq}`);
      delete original.body;
      original.recalled = true;
      void this.msgs.put([conv, seq], original);
    }
    void this.convs.put(conv, meta);
  }

  async getConversation(conv: string): Promise<StoredConversation | undefined> {
    return this.read('getConversation', () => this.convs.get(conv));
  }

  async getMembership(conv: string, user: string): Promise<Membership | undefined> {
    return this.read('getMembership', () => this.members.get([conv, user]));
  }

  async listMembers(conv: string): Promise<Membership[]> {
    return this.read('listMembers', () => values(this.members, [conv], [conv, END]));
  }

  async listUserConversations(user: string): Promise<Membership[]> {
    return this.read('listUserConversations', () => values(this.userConvs, [user], [user, END]));
  }

  async readAfter(conv: string, afterSeq: number, limit: number): Promise<Message[]> {
    if (limit <= 0) return [];
    const from = Math.max(0, afterSeq) + 1;
    return this.read('readAfter', () => values(this.msgs, [conv, from], [conv, END], limit));
  }

  async readBefore(conv: string, beforeSeq: number, limit: number): Promise<Message[]> {
    const upTo = Math.min(beforeSeq - 1, Number.MAX_SAFE_INTEGER);
    if (limit <= 0 || upTo < 1) return [];
    // Reverse ranges include `start` and exclude `end`; seq 0 is never stored.
    return this.read('readBefore', () => values(this.msgs, [conv, upTo], [conv, 0], limit, true).reverse());
  }

  async getMessage(conv: string, seq: number): Promise<Message | undefined> {
    return this.read('getMessage', () => this.msgs.get([conv, seq]));
  }

  async findByClientId(conv: string, from: string, cid: string): Promise<number | undefined> {
    return this.read('findByClientId', () => this.cids.get([conv, from, cid]));
  }

  async advanceReadCursor(conv: string, user: string, seq: number): Promise<number> {
    validateCursor(conv, user, seq);
    this.assertOpen('advanceReadCursor');
    try {
      // Read-max-write inside the txn: concurrent advances serialize and the highest wins.
      const after = await this.reads.transaction(() => {
        const current = this.reads.get([conv, user]) ?? 0;
        if (seq <= current) return current;
        void this.reads.put([conv, user], seq);
        return seq;
      });
      await this.root.flushed;
      return after;
    } catch (error) {
      throw new StoreUnavailableError(`lmdb: read cursor ${conv}/${user} failed`, { cause: error });
    }
  }

  async getReadCursor(conv: string, user: string): Promise<number> {
    return this.read('getReadCursor', () => this.reads.get([conv, user]) ?? 0);
  }

  async getReadCursors(conv: string): Promise<Record<string, number>> {
    return this.read('getReadCursors', () => {
      const result: Record<string, number> = {};
      for (const { key, value } of this.reads.getRange({ start: [conv], end: [conv, END] })) {
        result[(key as [string, string])[1]] = value;
      }
      return result;
    });
  }

  async setContacts(edges: readonly ContactChange[]): Promise<void> {
    this.assertOpen('setContacts');
    try {
      await this.contacts.childTransaction(() => {
        for (const edge of edges) {
          if (edge.state === 'none') void this.contacts.remove([edge.owner, edge.other]);
          else void this.contacts.put([edge.owner, edge.other], edge);
        }
      });
      await this.root.flushed;
    } catch (error) {
      throw new StoreUnavailableError('lmdb: setContacts failed', { cause: error });
    }
  }

  async getContact(owner: string, other: string): Promise<ContactEdge | undefined> {
    return this.read('getContact', () => this.contacts.get([owner, other]));
  }

  async listContacts(owner: string): Promise<ContactEdge[]> {
    return this.read('listContacts', () => values(this.contacts, [owner], [owner, END]));
  }

  async setLastSeen(user: string, ts: number): Promise<void> {
    this.assertOpen('setLastSeen');
    try {
      await this.lastSeen.put(user, ts);
      await this.root.flushed;
    } catch (error) {
      throw new StoreUnavailableError(`lmdb: setLastSeen ${user} failed`, { cause: error });
    }
  }

  async getLastSeen(users: readonly string[]): Promise<Record<string, number>> {
    return this.read('getLastSeen', () => {
      const result: Record<string, number> = {};
      for (const user of users) {
        const ts = this.lastSeen.get(user);
        if (ts !== undefined) result[user] = ts;
      }
      return result;
    });
  }

  /** Waits for queued writes to be durable, then closes the environment. */
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

  private assertOpen(what: string): void {
    if (this.closed) throw new StoreUnavailableError(`lmdb: ${what} on a closed store`);
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
}

function values<V>(db: Database<V, Key>, start: Key, end: Key, limit?: number, reverse = false): V[] {
  const range = db.getRange({ start, end, reverse, ...(limit === undefined ? {} : { limit }) });
  return Array.from(range, (entry) => entry.value);
}
