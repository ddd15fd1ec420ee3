// The raw ceiling of the grab's atomic step (docs/decisions/0007 "The grab path"): how many
// RedisGrabDecider.decide() calls one process gets through, with no NATS, no store and no
// protocol around them. The red-envelope benchmark is compared with this figure.
//
// Rounds until the duration is over: load `envelopes` fresh envelopes, then `concurrency`
// callers grab them all at once, more grabbers than shares, interleaved so every envelope is
// contended at the same time. Only the decide phases are timed; loads and drops are not.
// Each round checks every envelope handed out exactly its shares, each index once.
//   node --import tsx bench/grab-ceiling.ts [--redis-url redis://127.0.0.1:6379] [--duration 5] ...
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { RedisGrabDecider } from '../storage/redis/grab-decider.ts';
import { timedCalls, timedRounds } from './ceiling-rounds.ts';
import type { LatencyHistogram } from './loadgen/histogram.ts';

export interface GrabCeilingOptions {
  redisUrl: string;
  /** Envelopes grabbed at once in each round. */
  envelopes: number;
  sharesPerEnvelope: number;
  /** Users grabbing each envelope; more than the shares, so most are told 'empty'. */
  grabbersPerEnvelope: number;
  /** decide() calls in flight at once. */
  concurrency: number;
  /** Rounds start until this much decide time has been spent (default 5 s). */
  durationMs?: number;
}

export interface GrabCeiling {
  decisionsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** decide() calls timed (the warm-up round is not). */
  ops: number;
  /** Timed rounds. */
  rounds: number;
  /** Envelopes grabbed (the warm-up round included), and how many did not hand out exactly their shares, each index once. */
  envelopes: number;
  misallocated: number;
  /** Answers other than 'share' or 'empty' ('unknown', 'expired'): none expected. */
  unexpected: number;
}

export async function measureGrabCeiling(options: GrabCeilingOptions): Promise<GrabCeiling> {
  const { redisUrl, envelopes, sharesPerEnvelope: shares, grabbersPerEnvelope: grabbers, concurrency, durationMs = 5_000 } = options;
  for (const [name, value] of Object.entries({ envelopes, sharesPerEnvelope: shares, grabbersPerEnvelope: grabbers, concurrency })) {
    if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`measureGrabCeiling ${name} must be an integer >= 1 (got ${value})`);
  }
  const client = new Redis(redisUrl, { enableAutoPipelining: true });
  const decider = new RedisGrabDecider(client, { keyPrefix: `bench-grab-${randomUUID().slice(0, 8)}:`, retentionMs: 60_000 });
  const result: GrabCeiling = { decisionsPerSec: 0, p50Ms: 0, p99Ms: 0, ops: 0, rounds: 0, envelopes: 0, misallocated: 0, unexpected: 0 };
  let rounds = 0;

  /** Loads fresh envelopes, grabs them all, checks and drops them; returns the decide time (ms). */
  const round = async (histogram: LatencyHistogram): Promise<number> => {
    const ids = Array.from({ length: envelopes }, (_, i) => `r${rounds}e${i}`);
    rounds++;
    const expiresAt = Date.now() + 3600_000;
    await Promise.all(ids.map((id) => decider.load({ id, count: shares, expiresAt }, [])));
    const handed = ids.map((): number[] => []);
    // Task k: envelope k % envelopes, grabber ⌊k / envelopes⌋, so in-flight calls spread over every envelope.
    const elapsed = await timedCalls(envelopes * grabbers, concurrency, histogram, async (k) => {
      const e = k % envelopes;
      const decision = await decider.decide(ids[e]!, `g${Math.floor(k / envelopes)}`, Date.now());
      if (decision.outcome === 'share') handed[e]!.push(decision.index);
      else if (decision.outcome !== 'empty') result.unexpected++;
    });
    const expected = Math.min(shares, grabbers);
    for (const indices of handed) {
      const inRange = indices.every((i) => i >= 0 && i < shares);
      if (indices.length !== expected || new Set(indices).size !== expected || !inRange) result.misallocated++;
    }
    result.envelopes += envelopes;
    await Promise.all(ids.map((id) => decider.drop(id)));
    return elapsed;
  };

  try {
    Object.assign(result, await timedRounds(round, envelopes * grabbers, durationMs));
  } finally {
    client.disconnect();
  }
  return result;
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  const { values } = parseArgs({
    options: {
      'redis-url': { type: 'string', default: 'redis://127.0.0.1:6379' },
      envelopes: { type: 'string', default: '100' },
      shares: { type: 'string', default: '10' },
      grabbers: { type: 'string', default: '50' },
      concurrency: { type: 'string', default: '256' },
      duration: { type: 'string', default: '5' },
    },
  });
  const figures = await measureGrabCeiling({
    redisUrl: values['redis-url'], envelopes: Number(values.envelopes), sharesPerEnvelope: Number(values.shares),
    grabbersPerEnvelope: Number(values.grabbers), concurrency: Number(values.concurrency), durationMs: Number(values.duration) * 1000,
  });
  console.log(JSON.stringify(figures, null, 2));
}
