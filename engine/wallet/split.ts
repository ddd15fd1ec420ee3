// Splitting a red envelope into shares, in integer cents, when it is sent: the shares are fixed
// before anyone grabs, so a grab only has to hand out the next one (atomically) and the sum is
// exact by construction.
//
// Lucky: share i is uniform in [1, min(2 * remaining / left, remaining - (left - 1))], so every
// share is at least 1 cent, at most twice the average of what remains, and enough remains for
// the others; the last share takes the remainder. Equal: total / count each, the remainder cents
// going one each to the first shares (the sum stays exact; shares differ by at most 1 cent).
import { randomInt } from 'node:crypto';

export type SplitMode = 'lucky' | 'equal';

/** A random integer in [min, max]; crypto by default (nobody can predict the next share). */
export type RandomInt = (min: number, maxInclusive: number) => number;
const cryptoRandomInt: RandomInt = (min, max) => randomInt(min, max + 1);

/** crypto.randomInt's range limit; far above any envelope a setting allows (2.8e12 currency units). */
export const MAX_SPLIT_TOTAL = 2 ** 48 - 1;

export class SplitError extends Error {
  override readonly name = 'SplitError';
}

export function splitEnvelope(total: number, count: number, mode: SplitMode, random: RandomInt = cryptoRandomInt): number[] {
  if (!Number.isSafeInteger(total) || total < 1) throw new SplitError(`total must be a positive integer number of cents (got ${total})`);
  if (!Number.isSafeInteger(count) || count < 1) throw new SplitError(`count must be a positive integer (got ${count})`);
  if (total > MAX_SPLIT_TOTAL) throw new SplitError(`total ${total} exceeds ${MAX_SPLIT_TOTAL} cents`);
  if (total < count) throw new SplitError(`total ${total} cents cannot give ${count} shares of at least 1 cent`);
  if (mode === 'equal') {
    const base = Math.floor(total / count);
    const extra = total - base * count;
    return Array.from({ length: count }, (_, i) => base + (i < extra ? 1 : 0));
  }
  const shares: number[] = [];
  let remaining = total;
  for (let left = count; left > 1; left--) {
    const max = Math.min(Math.floor((2 * remaining) / left), remaining - (left - 1));
    const share = random(1, max);
    shares.push(share);
    remaining -= share;
  }
  shares.push(remaining);
  return shares;
}
