// `ops/cluster.sh` (npm run cluster) starts gateway and worker processes that clients can use
// through any gateway; SIGTERM stops them all.
import t from 'tap';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServerFrame } from '../protocol/frames.ts';
import { createCqlClient } from '../storage/cql/client.ts';
import { freePort, sharedCassandra, startNats, startRedis } from './support/infra.ts';
import { mintToken, WireClient } from './support/wire-client.ts';

const SCRIPT = fileURLToPath(new URL('../ops/cluster.sh', import.meta.url));

/** Two consecutive free ports (gateways listen on base and base+1). */
async function twoPorts(): Promise<number> {
  for (;;) {
    const a = await freePort();
    const b = await freePort();
    if (b === a + 1) return a;
    if (a < 65000) {
      const net = await import('node:net');
      const ok = await new Promise<boolean>((resolve) => {
        const s = net.createServer().once('error', () => resolve(false)).listen(a + 1, '127.0.0.1', () => s.close(() => resolve(true)));
      });
      if (ok) return a;
    }
  }
}

t.test('cluster: 2 gateways + 2 workers as processes; users on different gateways talk; SIGTERM stops all', async (t) => {
  const nats = await startNats();
  const redis = await startRedis();
  const cassandra = await sharedCassandra();
  const dir = await mkdtemp(join(tmpdir(), 'lantern-cluster-'));
  const keyspace = `lantern_cluster_${randomBytes(4).toString('hex')}`;
  const secret = randomBytes(24).toString('base64url');
  t.teardown(async () => {
    const admin = createCqlClient({ contactPoints: cassandra.contactPoints, localDataCenter: cassandra.localDataCenter });
    await admin.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    await admin.shutdown();
    await nats.close();
    await redis.close();
    await rm(dir, { recursive: true, force: true });
  });
  const base = await twoPorts();
  const child = spawn('bash', [SCRIPT, '--external', '--gateways', '2', '--workers', '2', '--base-port', String(base)], {
    env: {
      ...process.env, LANTERN_NATS_URL: nats.url, LANTERN_REDIS_URL: redis.url,
      LANTERN_CQL_CONTACT_POINTS: cassandra.contactPoints.join(','), LANTERN_CQL_LOCAL_DC: cassandra.localDataCenter,
      LANTERN_CQL_KEYSPACE: keyspace, LANTERN_CLUSTER_DIR: dir, LANTERN_JWT_SECRET: secret, LANTERN_LOG_LEVEL: 'warn',
      LANTERN_PARTITIONS: '8', LANTERN_PARTITION_LEASE_MS: '1500',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  const urls = await new Promise<string[]>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const lines = out.split('\n').filter((l) => l.startsWith('ws://'));
      if (lines.length === 2) resolve(lines);
    });
    void exited.then((code) => reject(new Error(`cluster exited ${code}: ${stderr}`)));
  });
  t.same(urls, [`ws://127.0.0.1:${base}/ws`, `ws://127.0.0.1:${base + 1}/ws`]);

  const alice = await WireClient.connect(urls[0]!, await mintToken(secret, 'alice'));
  const bob = await WireClient.connect(urls[1]!, await mintToken(secret, 'bob'));
  await alice.req('contact.request', { user: 'bob' });
  // Requests may land while the two workers are still sharing out the partitions: a retryable
  // answer is retried, as the SDK's outbox would.
  const retry = async <T>(fn: () => Promise<T>): Promise<T> => {
    for (let i = 0; ; i++) {
      try { return await fn(); } catch (err) {
        if (i > 50 || !['unavailable', 'timeout'].includes((err as { error?: string }).error ?? '')) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  await retry(() => bob.req('contact.accept', { user: 'alice' }));
  const { conv } = await retry(() => alice.req('conv.direct', { user: 'bob' }));
  for (let i = 0; i < 5; i++) await retry(() => alice.text(conv, `hello ${i}`, `c${i}`));
  const got = await bob.waitForCount((f: ServerFrame) => f.t === 'msg' && f.m.conv === conv, 5);
  t.same(got.map((f) => (f as { m: { seq: number } }).m.seq), [1, 2, 3, 4, 5], 'delivered across gateway processes in order');
  await alice.close();
  await bob.close();

  child.kill('SIGTERM');
  t.equal(await exited, 0, 'the cluster stops cleanly on SIGTERM');
  const net = await import('node:net');
  const refused = await new Promise<boolean>((resolve) => {
    const s = net.connect(base, '127.0.0.1').once('connect', () => { s.destroy(); resolve(false); }).once('error', () => resolve(true));
  });
  t.ok(refused, 'the gateway processes are gone');
});
