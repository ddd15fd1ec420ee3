// The ioredis connection options Lantern recommends for its hot-state clients. The composition
// root spreads them into `new Redis({ host, port, ...redisResilienceOptions })`; adapters in this
// folder never create clients themselves.
//
// Aim: ride out a blip (Redis restart, failover, a dropped socket) without operator action, but
// never let a caller wait unboundedly or receive a silently wrong answer. A presence call that
// cannot be answered fails fast with a thrown error; the engine then treats presence as degraded.
import type { RedisOptions } from 'ioredis';

/** Reconnect backoff: 50 ms doubling per attempt, capped here, plus jitter so gateways spread out. */
export const RECONNECT_MAX_DELAY_MS = 2_000;
/** Jitter added to every reconnect delay (uniform 0..this). */
export const RECONNECT_JITTER_MS = 100;

/** Delay before reconnect attempt `attempt` (1-based). Never gives up: Redis coming back is the normal case. */
export function reconnectDelay(attempt: number): number {
  const base = Math.min(50 * 2 ** Math.max(0, attempt - 1), RECONNECT_MAX_DELAY_MS);
  return base + Math.floor(Math.random() * RECONNECT_JITTER_MS);
}

export const redisResilienceOptions = Object.freeze({
  // Keep reconnecting forever (returning null would end the client for good and every later call
  // would fail with "Connection is closed" until the process restarts).
  retryStrategy: reconnectDelay,
  // Commands issued while disconnected wait in the offline queue, but only across this many
  // reconnect attempts (~50 + 100 ms of backoff); then they reject with MaxRetriesPerRequestError.
  // ioredis' default (20 attempts, tens of seconds) would stall connects and sends on a dead Redis.
  maxRetriesPerRequest: 1,
  // Queue while (re)connecting so boot and short blips do not fail calls; the limit above bounds
  // the wait. `false` would fail every call during the few ms of a reconnect.
  enableOfflineQueue: true,
  // A command already written when the socket dropped may or may not have run. Re-sending it
  // would turn a lost reply into a different answer (a re-sent remove() finds nothing and says
  // "not the last device"), so it is rejected instead and the caller sees the uncertainty.
  autoResendUnfulfilledCommands: false,
  // Wait until Redis has loaded its AOF/RDB before using a connection (default, stated on purpose:
  // commands during loading fail with LOADING).
  enableReadyCheck: true,
  // After a failover the old primary answers writes with READONLY: reconnect to find the new one.
  reconnectOnError: (err: Error) => (err.message.startsWith('READONLY') ? 2 : false),
  connectTimeout: 5_000,
} satisfies RedisOptions);
