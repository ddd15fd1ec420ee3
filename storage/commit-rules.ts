// Rules every ChatStore adapter applies to a ConversationCommit before touching its backend,
// so all adapters reject the same malformed commits with the same messages. State-dependent
// checks (head, existence) stay in each adapter, where they can run inside its transaction.
import type { ConversationCommit, Membership } from '../engine/ports.ts';

/** Throws a plain Error naming the problem if the commit is malformed; a caller bug, never retryable. */
export function validateCommit(change: ConversationCommit): void {
  const { conv, expectHead } = change;
  if (typeof conv !== 'string' || conv === '') throw new Error('commit: conv must be a non-empty string');
  if (!Number.isSafeInteger(expectHead) || expectHead < 0) {
    throw new Error(`commit ${conv}: expectHead must be a non-negative integer, got ${expectHead}`);
  }
  if (change.create) {
    if (change.create.id !== conv) throw new Error(`commit ${conv}: create.id ${change.create.id} differs from conv`);
    if (expectHead !== 0) throw new Error(`commit ${conv}: create requires expectHead 0, got ${expectHead}`);
  }
  change.messages.forEach((m, i) => {
    if (m.conv !== conv) throw new Error(`commit ${conv}: message ${i} belongs to conversation ${m.conv}`);
    const want = expectHead + 1 + i;
    if (m.seq !== want) throw new Error(`commit ${conv}: message ${i} has seq ${m.seq}, expected ${want}`);
  });
  for (const member of change.putMembers ?? []) validateMember(conv, member);
  for (const user of change.removeMembers ?? []) {
    if (typeof user !== 'string' || user === '') throw new Error(`commit ${conv}: removeMembers has an empty user`);
  }
  const newHead = expectHead + change.messages.length;
  for (const seq of change.recall ?? []) {
    if (!Number.isSafeInteger(seq) || seq < 1 || seq > newHead) {
      throw new Error(`commit ${conv}: recall seq ${seq} is outside 1..${newHead}`);
    }
  }
}

/** advanceReadCursor arguments; a plain Error names the problem. */
export function validateCursor(conv: string, user: string, seq: number): void {
  if (!Number.isSafeInteger(seq) || seq < 0) throw new Error(`read cursor ${conv}/${user}: seq must be a non-negative integer, got ${seq}`);
}

function validateMember(conv: string, member: Membership): void {
  if (member.conv !== conv) throw new Error(`commit ${conv}: putMembers entry for ${member.user} names conv ${member.conv}`);
  if (typeof member.user !== 'string' || member.user === '') throw new Error(`commit ${conv}: putMembers has an empty user`);
  if (!Number.isSafeInteger(member.joined) || member.joined < 0) {
    throw new Error(`commit ${conv}: putMembers ${member.user} has invalid joined ${member.joined}`);
  }
}

/**
 * Orders ids the way LMDB (ordered-binary) and Cassandra (text clustering) do: by UTF-8 bytes,
 * which is code point order. Plain `<` compares UTF-16 units and disagrees for astral characters.
 */
export function compareIds(a: string, b: string): number {
  if (a === b) return 0;
  const la = a.length, lb = b.length;
  for (let i = 0, j = 0; i < la && j < lb;) {
    const ca = a.codePointAt(i)!, cb = b.codePointAt(j)!;
    if (ca !== cb) return ca < cb ? -1 : 1;
    i += ca > 0xffff ? 2 : 1;
    j += cb > 0xffff ? 2 : 1;
  }
  return la < lb ? -1 : la > lb ? 1 : 0;
}
