import t from 'tap';
import { assessLag, type LagState } from './backpressure.ts';

const BOUND = 1000;
const CLOSE_MS = 5000;

t.test('mark at 75%, lag when below 50%, nothing in between', async (t) => {
  const s: LagState = { laggingSince: undefined };
  t.equal(assessLag(s, 740, 0, BOUND, CLOSE_MS), 'none');
  t.equal(s.laggingSince, undefined);
  t.equal(assessLag(s, 750, 10, BOUND, CLOSE_MS), 'none');
  t.equal(s.laggingSince, 10, 'marked lagging');
  t.equal(assessLag(s, 600, 20, BOUND, CLOSE_MS), 'none', 'between the marks: still lagging');
  t.equal(s.laggingSince, 10);
  t.equal(assessLag(s, 499, 30, BOUND, CLOSE_MS), 'lag');
  t.equal(s.laggingSince, undefined, 'cleared');
  t.equal(assessLag(s, 0, 40, BOUND, CLOSE_MS), 'none', 'lag is sent once');
});

t.test('close once lagging longer than the close delay', async (t) => {
  const s: LagState = { laggingSince: undefined };
  assessLag(s, 2000, 100, BOUND, CLOSE_MS);
  t.equal(assessLag(s, 2000, 100 + CLOSE_MS, BOUND, CLOSE_MS), 'none');
  t.equal(assessLag(s, 900, 101 + CLOSE_MS, BOUND, CLOSE_MS), 'close');
});
