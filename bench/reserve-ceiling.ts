// The raw ceiling of a flash sale's admission step (docs/decisions/0008): how many
// RedisStockGate.decide() calls one process gets through, with no NATS, no store and no protocol
// around them. The flash-sale benchmark is compared with this figure.
//
// Rounds until the duration is over: load `sales` fresh sales, then `concurrency` callers send
// every buyer's attempt (one unit each, limit one) at once, more buyers than units, interleaved so
// every sale is contended at the same time. Only the decide phases are timed; loads and drops are
// not. Each round checks every sale admitted exactly min(stock, buyers) attempts (never more than
// its stock) and that the gate's remaining count agrees.
//   node --import tsx bench/reserve-ceiling.ts [--redis-url redis://127.0.0.1:6379] [--duration 5] ...
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { RedisStockGate } from '../storage/redis/stock-gate.ts';
import { timedCalls, timedRounds } from './ceiling-rounds.ts';
import type { LatencyHistogram } from './loadgen/histogram.ts';

export interface ReserveCeilingOptions {
  redisUrl: string;
  /** Sales contended at once in each round. */
  sales: number;
  stockPerSale: number;
  /** Buyers of each sale, one attempt for one unit each; more than the stock, so most hear 'sold_out'. */
  buyersPerSale: number;
  /** decide() calls in flight at once. */
  concurrency: number;
  /** Rounds start until this much decide time has been spent (default 5 s). */
  durationMs?: number;
}

export interface ReserveCeiling {
  decisionsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** decide() calls timed (the warm-up round is not). */
  ops: number;
  /** Timed rounds. */
  rounds: number;
  /** Sales checked (the warm-up round included). */
  sales: number;
  /** Sales that admitted more than their stock. */
  oversold: number;
  /** Sales whose remaining count is not stock minus the admissions. */
  miscounted: number;
  /** Sales that turned buyers away while units were left (admitted fewer than min(stock, buyers)). */
  underfilled: number;
  /** Answers other than 'admit' or 'sold_out' ('unknown', 'duplicate', ...): none expected. */
  unexpected: number;
}

export async function measureReserveCeiling(options: ReserveCeilingOptions): Promise<ReserveCeiling> {
  const { redisUrl, sales, stockPerSale: stock, buyersPerSale: buyers, concurrency, durationMs = 5_000 } = options;
  for (const [name, value] of Object.entries({ sales, stockPerSale: stock, buyersPerSale: buyers, concurrency })) {
    if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`measureReserveCeiling ${name} must be an integer >= 1 (got ${value})`);
  }
  const client = new Redis(redisUrl, { enableAutoPipelining: true });
  const gate = new RedisStockGate(client, { keyPrefix: `bench-reserve-${randomUUID().slice(0, 8)}:` });
  const result: ReserveCeiling = { decisionsPerSec: 0, p50Ms: 0, p99Ms: 0, ops: 0, rounds: 0, sales: 0, oversold: 0, miscounted: 0, underfilled: 0, unexpected: 0 };
  let rounds = 0;

  /** Loads fresh sales, sends every attempt, checks and drops them; returns the decide time (ms). */
  const round = async (histogram: LatencyHistogram): Promise<number> => {
    const ids = Array.from({ length: sales }, (_, i) => `r${rounds}s${i}`);
    rounds++;
    const now = Date.now();
    const sale = { stock, perUserLimit: 1, startAt: now - 1_000, endAt: now + 3600_000, retainUntil: now + 3600_000 };
    await Promise.all(ids.map((id) => gate.load({ id, ...sale }, { taken: 0, users: [], pending: [] })));
    const admitted = ids.map(() => 0);
    // Task k: sale k % sales, buyer ⌊k / sales⌋, so in-flight calls spread over every sale.
    const elapsed = await timedCalls(sales * buyers, concurrency, histogram, async (k) => {
      const s = k % sales;
      const buyer = `b${Math.floor(k / sales)}`;
      const at = Date.now();
      const decision = await gate.decide(ids[s]!, { order: `o-${buyer}`, user: buyer, units: 1, now: at, payBy: at + 60_000 });
      if (decision.outcome === 'admit') admitted[s]!++;
      else if (decision.outcome !== 'sold_out') result.unexpected++;
    });
    const remaining = await Promise.all(ids.map((id) => gate.remaining(id)));
    admitted.forEach((count, s) => {
      if (count > stock) result.oversold++;
      else if (count < Math.min(stock, buyers)) result.underfilled++;
      if (remaining[s] !== stock - count) result.miscounted++;
    });
    result.sales += sales;
    await Promise.all(ids.map((id) => gate.drop(id)));
    return elapsed;
  };

  try {
    Object.assign(result, await timedRounds(round, sales * buyers, durationMs));
  } finally {
    client.disconnect();
  }
  return result;
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const { values } = parseArgs({
    options: {
      'redis-url': { type: 'string', default: 'redis://127.0.0.1:6379' },
      sales: { type: 'string', default: '20' },
      stock: { type: 'string', default: '100' },
      buyers: { type: 'string', default: '500' },
      concurrency: { type: 'string', default: '256' },
      duration: { type: 'string', default: '5' },
    },
  });
  const figures = await measureReserveCeiling({
    redisUrl: values['redis-url'], sales: Number(values.sales), stockPerSale: Number(values.stock),
    buyersPerSale: Number(values.buyers), concurrency: Number(values.concurrency), durationMs: Number(values.duration) * 1000,
  });
  console.log(JSON.stringify(figures, null, 2));
}
