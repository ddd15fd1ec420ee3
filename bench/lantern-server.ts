// Starts an embedded Lantern for a benchmark phase: fresh data dir, ephemeral port, a random
// JWT secret and admin token, and rate limits lifted so the generator measures the engine, not
// the limiter. A phase may override more settings (red envelopes: group size limits).
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLantern } from '../gateway/main.ts';
import type { Settings } from '../gateway/config.ts';
import type { ChatAuth } from './loadgen/messages.ts';

export interface BenchLantern {
  url: string;
  chat: ChatAuth;
  /** Bearer token of the admin HTTP API (top-ups). */
  adminToken: string;
  /** What the server ran with, secrets removed (for the results file). */
  settings: Record<string, unknown>;
  close(): Promise<void>;
}

export const BENCH_RATE_LIMIT = 100_000;

export async function startBenchLantern(store: Settings['store'], overrides: Partial<Settings> = {}): Promise<BenchLantern> {
  const dataDir = await mkdtemp(join(tmpdir(), 'lantern-bench-'));
  const jwtSecret = randomBytes(32).toString('hex');
  const adminToken = randomBytes(32).toString('hex');
  let running: Awaited<ReturnType<typeof startLantern>>;
  try {
    // Explicit env and argv: a LANTERN_* variable in the shell must not change the benchmark.
    running = await startLantern(
      {
        port: 0, host: '127.0.0.1', store, dataDir, jwtSecret, adminToken, logLevel: 'warn',
        ratePerSec: BENCH_RATE_LIMIT, rateBurst: BENCH_RATE_LIMIT, floodCloseAfter: BENCH_RATE_LIMIT,
        userSendRatePerSec: BENCH_RATE_LIMIT, userSendBurst: BENCH_RATE_LIMIT,
        ...overrides,
      },
      { env: {}, argv: [] },
    );
  } catch (err) {
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  }
  const { jwtSecret: _secret, adminToken: _admin, ...settings } = running.settings;
  return {
    url: running.url,
    chat: { jwtSecret, audience: running.settings.jwtAudience, userPrefix: 'u' },
    adminToken: running.settings.adminToken ?? adminToken,
    settings,
    close: async () => {
      await running.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
