// Property tests of the split: for any total and count, shares sum exactly, every share is at
// least 1 cent and at most twice the average of what remained when it was cut.
import t, { type Test } from 'tap';
import { randomInt } from 'node:crypto';
import { MAX_SPLIT_TOTAL, splitEnvelope, SplitError, type RandomInt } from './split.ts';

/** A seeded PRNG so a failing case can be replayed from the seed printed in its message. */
function seeded(seed: number): RandomInt {
  let s = seed >>> 0 || 1;
  return (min, max) => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return min + (s % (max - min + 1));
  };
}

function checkLucky(t: Test, total: number, count: number, shares: number[], label: string): boolean {
  let remaining = total;
  for (let i = 0; i < shares.length; i++) {
    const left = count - i;
    const share = shares[i]!;
    if (!Number.isSafeInteger(share) || share < 1) return t.fail(`${label}: share ${i} = ${share} is not >= 1 cent`);
    if (left > 1 && share > (2 * remaining) / left) return t.fail(`${label}: share ${i} = ${share} exceeds twice the average of ${remaining}/${left}`);
    if (left > 1 && remaining - share < left - 1) return t.fail(`${label}: share ${i} leaves too little for the rest`);
    remaining -= share;
  }
  if (remaining !== 0) return t.fail(`${label}: shares sum to ${total - remaining}, not ${total}`);
  return shares.length === count;
}

t.test('lucky: exact sum and bounds for random totals and counts', async (t) => {
  let bad = 0;
  for (let c = 0; c < 3000; c++) {
    const seed = randomInt(1, 2 ** 31);
    const rnd = seeded(seed);
    const count = 1 + (c % 3 === 0 ? rnd(0, 2) : rnd(0, 499));
    const total = count + rnd(0, c % 5 === 0 ? count : 1_000_000);
    const shares = splitEnvelope(total, count, 'lucky', rnd);
    if (!checkLucky(t, total, count, shares, `seed ${seed} total ${total} count ${count}`)) bad++;
  }
  t.equal(bad, 0, '3000 random cases hold every rule');
});

t.test('lucky: edge cases', async (t) => {
  t.same(splitEnvelope(7, 1, 'lucky'), [7], 'one share takes everything');
  t.same(splitEnvelope(5, 5, 'lucky'), [1, 1, 1, 1, 1], 'total == count: a cent each');
  const big = splitEnvelope(MAX_SPLIT_TOTAL, 3, 'lucky');
  t.equal(big.reduce((a, b) => a + b, 0), MAX_SPLIT_TOTAL, 'the largest total still sums exactly');
  const extremes = splitEnvelope(1000, 10, 'lucky', (min, max) => max);
  t.ok(checkLucky(t, 1000, 10, extremes, 'always the max'), 'a random source that always picks the max stays within bounds');
  const lows = splitEnvelope(1000, 10, 'lucky', (min) => min);
  t.same(lows, [1, 1, 1, 1, 1, 1, 1, 1, 1, 991], 'always the min: the last share takes the rest');
});

t.test('equal: exact sum, shares differ by at most one cent', async (t) => {
  for (let c = 0; c < 2000; c++) {
    const count = randomInt(1, 1000);
    const total = count + randomInt(0, 10_000_000);
    const shares = splitEnvelope(total, count, 'equal');
    const sum = shares.reduce((a, b) => a + b, 0);
    if (sum !== total || Math.max(...shares) - Math.min(...shares) > 1 || shares.length !== count) {
      t.fail(`total ${total} count ${count}: ${sum}`);
      return;
    }
  }
  t.same(splitEnvelope(10, 3, 'equal'), [4, 3, 3]);
});

t.test('refuses what cannot be split', async (t) => {
  for (const [total, count] of [[0, 1], [-5, 1], [2, 3], [1.5, 1], [10, 0], [10, 2.5], [Number.MAX_SAFE_INTEGER + 1, 1], [MAX_SPLIT_TOTAL + 1, 2], [NaN, 1]] as const) {
    t.throws(() => splitEnvelope(total, count, 'lucky'), SplitError, `total ${total} count ${count}`);
  }
});
