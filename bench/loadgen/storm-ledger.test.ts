// The reconnect storm's gap detection: what a client holds of a conversation after live events and
// sync replies, and what the server got wrong (a seq twice, a sync reply with a hole, a message
// never delivered).
import t from 'tap';
import { SeqLedger } from './storm-ledger.ts';

const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

t.test('live messages in order advance the cursor; nothing is missing up to the head', async (t) => {
  const l = new SeqLedger();
  for (const seq of range(1, 5)) t.ok(l.live(seq), `seq ${seq} is new`);
  t.equal(l.cursor, 5);
  t.notOk(l.behind);
  t.equal(l.gaps(5), 0);
  t.equal(l.missing(7), 2, 'the head moved on while the client was away: 6 and 7 are missing');
});

t.test('a dropped client resyncs from its cursor; live messages during the sync are held once', async (t) => {
  const l = new SeqLedger();
  for (const seq of range(1, 3)) l.live(seq);
  // Away: 4..9 committed. Reconnected: live 10 arrives before the sync reply.
  l.newConnection();
  t.ok(l.live(10));
  t.ok(l.behind, 'a message beyond a gap: the client must sync');
  t.equal(l.cursor, 3);
  const since = l.cursor;
  t.equal(l.synced(since, range(4, 10)), 6, '4..9 recovered; 10 was held already');
  t.equal(l.cursor, 10);
  t.notOk(l.behind);
  t.equal(l.gaps(10), 0);
  t.ok(l.live(11));
  t.equal(l.gaps(11), 0);
});

t.test('the same seq twice on one connection is a duplicate; on a new connection it is expected overlap', async (t) => {
  const l = new SeqLedger();
  l.live(1); l.live(2);
  t.notOk(l.live(2), 'held already');
  t.equal(l.duplicates, 1);
  t.equal(l.gaps(2), 1);
  const m = new SeqLedger();
  m.live(1); m.live(2);
  m.newConnection();
  m.live(2);
  t.equal(m.duplicates, 0, 'a new connection may push what the last one did');
  const o = new SeqLedger();
  o.live(1); o.live(3); o.live(2);
  t.equal(o.duplicates, 1, 'out of order on one connection counts too');
});

t.test('a sync reply must start after the cursor asked from, without repeats or holes', async (t) => {
  const dup = new SeqLedger();
  dup.live(1); dup.live(2);
  dup.synced(2, [2, 3, 3, 4]);
  t.equal(dup.duplicates, 2, 'seq 2 (at the cursor) and the second 3');
  t.equal(dup.cursor, 4);
  const hole = new SeqLedger();
  hole.live(1);
  t.equal(hole.synced(1, [2, 3, 5, 6]), 4);
  t.equal(hole.skipped, 1, 'seq 4 left out of the reply');
  t.equal(hole.cursor, 3);
  t.ok(hole.behind);
  t.equal(hole.missing(6), 1);
  t.equal(hole.gaps(6), 2, 'the hole in the reply, and 4 still missing');
  hole.live(4); // a later delivery fills it; the reply was still wrong
  t.equal(hole.cursor, 6);
  t.equal(hole.gaps(6), 1);
});

t.test('a cursor that starts at joined does not count earlier seqs as missing', async (t) => {
  const l = new SeqLedger(4);
  t.equal(l.missing(4), 0);
  t.equal(l.synced(4, [5, 6]), 2);
  t.equal(l.gaps(6), 0);
  t.equal(l.missing(8), 2);
});
