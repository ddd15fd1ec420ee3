// Start a real Lantern server for a test on an ephemeral port with its own data directory.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startLantern } from '../../gateway/main.ts';
import { mintToken, WireClient } from './wire-client.ts';

export interface TestServer {
  url: string;
  port: number;
  dataDir: string;
  secret: string;
  token(user: string, ttlSec?: number): Promise<string>;
  connect(user: string, device?: string): Promise<WireClient>;
  /** Stop the server (keeping its data) and start it again. It gets a new port: uWS cannot rebind
   *  a port whose connections are in TIME_WAIT (see listenRetryMs), and these tests check data. */
  restart(): Promise<void>;
  stop(): Promise<void>;
  close(): Promise<void>;
}

type Overrides = Parameters<typeof startLantern>[0];

export async function startTestServer(overrides: Overrides = {}): Promise<TestServer> {
  const dataDir = await mkdtemp(join(tmpdir(), 'lantern-test-'));
  const secret = randomBytes(24).toString('base64url');
  const base = { host: '127.0.0.1', port: 0, dataDir, store: 'lmdb' as const, jwtSecret: secret, logLevel: 'warn' as const, ...overrides };
  let running = await startLantern(base);
  let stopped = false;
  const server: TestServer = {
    get url() { return running.url; },
    get port() { return running.port; },
    dataDir,
    secret,
    token: (user, ttl) => mintToken(secret, user, ttl),
    connect: async (user, device = 'phone') => WireClient.connect(running.url, await mintToken(secret, user), device),
    async restart() {
      if (!stopped) await running.close();
      running = await startLantern(base);
      stopped = false;
    },
    async stop() { if (!stopped) { stopped = true; await running.close(); } },
    async close() {
      await server.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  return server;
}

/** Make two users friends and return their direct conversation id. */
export async function befriend(a: WireClient, aUser: string, b: WireClient, bUser: string): Promise<string> {
  await a.req('contact.request', { user: bUser });
  await b.req('contact.accept', { user: aUser });
  return (await a.req('conv.direct', { user: bUser })).conv;
}
