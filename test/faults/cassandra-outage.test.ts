// Fault 4 (issue 3): Cassandra stops while users send. A send is then answered with a retryable
// `unavailable` error frame (never an ack, never `internal`); the SDK outbox keeps it and re-sends
// it with the same cid; when Cassandra is back every send is acked, exactly once, in order.
// The shared test Cassandra is never stopped (other test files use it): this file runs its own
// small instance (ops/test-cassandra.sh with a private data dir, ports and a 512 MiB heap).
import t from 'tap';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ErrorCodes } from '../../protocol/errors.ts';
import { freshKeyspace, ProcessCluster, until } from '../support/processes.ts';
import { freePort, startNats, startRedis, type CassandraEndpoint } from '../support/infra.ts';
import { mintToken, WireClient, WireError } from '../support/wire-client.ts';
import { checkExactlyOnce, connectAll, retrying, TestDevice, Traffic } from './traffic.ts';

const run = promisify(execFile);
const SCRIPT = fileURLToPath(new URL('../../ops/test-cassandra.sh', import.meta.url));

interface PrivateCassandra extends CassandraEndpoint { stop(): Promise<void>; start(): Promise<void>; close(): Promise<void> }

async function privateCassandra(): Promise<PrivateCassandra> {
  const dir = await mkdtemp(join(tmpdir(), 'lantern-cassandra-fault-'));
  const cql = await freePort();
  const env = {
    ...process.env, LANTERN_TEST_INFRA_DIR: dir, LANTERN_TEST_CQL_PORT: String(cql),
    LANTERN_TEST_CASSANDRA_STORAGE_PORT: String(await freePort()), LANTERN_TEST_CASSANDRA_HEAP: '512m',
  };
  const script = async (command: 'start' | 'stop') => {
    try {
      await run(SCRIPT, [command], { env, timeout: 300_000 });
    } catch (err) {
      const e = err as { stderr?: string; message: string };
      throw new Error(`ops/test-cassandra.sh ${command} (private, ${dir}) failed: ${e.stderr || e.message}`);
    }
  };
  await script('start');
  const pidOf = async (): Promise<number> => Number(await readFile(join(dir, 'cassandra', 'cassandra.pid'), 'utf8').catch(() => ''));
  // Best effort if this process exits without its teardown: never leave a 1 GiB JVM behind.
  let lastPid = await pidOf();
  const onExit = () => { if (lastPid > 0) try { process.kill(lastPid, 'SIGKILL'); } catch { /* gone */ } };
  process.once('exit', onExit);
  return {
    contactPoints: [`127.0.0.1:${cql}`], localDataCenter: 'datacenter1',
    stop: () => script('stop'),
    start: async () => { await script('start'); lastPid = await pidOf(); },
    async close() {
      // Its data is thrown away: no need for a graceful (5 s) shutdown.
      const pid = await pidOf();
      process.off('exit', onExit);
      if (pid > 0) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
        await until(() => { try { process.kill(pid, 0); return false; } catch { return true; } }, `private Cassandra (pid ${pid}) to exit`, 10_000);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

t.test('Cassandra stops: sends get a retryable `unavailable` error, not an ack; when it returns they succeed, exactly once', async (t) => {
  const cassandra = await privateCassandra();
  t.teardown(() => cassandra.close());
  const [nats, redis, ks] = await Promise.all([startNats(), startRedis(), freshKeyspace(cassandra)]);
  const secret = randomBytes(24).toString('base64url');
  const cluster = new ProcessCluster({ natsUrl: nats.url, redisUrl: redis.url, cassandra, keyspace: ks.keyspace, jwtSecret: secret });
  const devices: TestDevice[] = [];
  let raw: WireClient | undefined;
  t.teardown(async () => {
    await raw?.close();
    await Promise.all(devices.map((d) => d.client.close()));
    await cluster.cleanup();
    // No keyspace to drop: the private instance and its data dir go away whole.
    await nats.close();
    await redis.close();
  });
  t.teardown(() => cluster.reportIfFailed(t));

  await cluster.worker().start();
  const gateway = cluster.gateway();
  await gateway.start();
  const [alice, bob] = [
    new TestDevice({ user: 'alice', device: 'phone', urls: [gateway.url] }, secret),
    new TestDevice({ user: 'bob', device: 'phone', urls: [gateway.url] }, secret),
  ] as const;
  devices.push(alice, bob);
  await connectAll(devices);
  await retrying(() => alice.client.requestContact('bob'));
  await retrying(() => bob.client.acceptContact('alice'));
  const { conv } = await retrying(() => alice.client.direct('bob'));
  // alice's second device speaks the wire protocol directly, to see the exact error frame.
  raw = await WireClient.connect(gateway.url, await mintToken(secret, 'alice'), 'raw');
  const before = await raw.text(conv, 'before the outage', 'raw-before');
  t.equal(before.dup, false, 'a send is acked while Cassandra is up');

  const traffic = new Traffic(conv, [alice, bob], { count: 40, intervalMs: 100, tag: 'cql' });
  await until(() => traffic.acked >= 10, 'traffic to be under way');
  await cassandra.stop();
  const stoppedAt = Date.now();
  const ackedWhenStopped = traffic.acked;

  // Whatever the worker answers while its only Cassandra node is down, it must never be an ack.
  // A request caught mid-shutdown may time out; once the node is down the answer is `unavailable`.
  const answers: string[] = [];
  let last: WireError['frame'] | undefined;
  await until(async () => {
    try {
      const ack = await raw!.text(conv, 'during the outage', 'raw-outage');
      answers.push(`ack seq ${ack.seq}`);
      return true;
    } catch (err) {
      if (!(err instanceof WireError)) throw err;
      answers.push(err.error);
      last = err.frame;
      return err.error !== 'timeout';
    }
  }, 'a definite answer to a send while Cassandra is down', 20_000, 100);
  t.same(answers.filter((a) => a !== 'timeout' && a !== 'unavailable'), [], `only retryable answers, no ack (${answers.join(', ')})`);
  t.match(last, { t: 'err', error: 'unavailable', code: ErrorCodes.unavailable.code, retry: true }, 'the send is refused with the retryable `unavailable` error frame');
  t.match(last?.msg, /storage|unavailable|cql/i, 'the message says storage is unavailable');

  // The SDK outbox holds the sends and retries them with the same cid; none is acked while down.
  await until(() => alice.errors.some((e) => e.context.startsWith('outbox:') && (e.error as { error?: string }).error === 'unavailable'), 'the SDK to see `unavailable` and retry', 10_000);
  t.equal(traffic.acked, ackedWhenStopped, 'no send was acked while Cassandra was down');

  await cassandra.start();
  const startedAt = Date.now();
  t.comment(`Cassandra was down ${startedAt - stoppedAt} ms`);
  const again = await until(async () => raw!.text(conv, 'during the outage', 'raw-outage').catch((err: unknown) => {
    if (err instanceof WireError && err.frame.retry) return undefined;
    throw err;
  }), 'the refused send to succeed once Cassandra is back', 30_000, 200);
  t.equal(again.dup, false, 'the send refused during the outage had not been stored: its retry stores it now');
  t.comment(`sends succeed again ${Date.now() - startedAt} ms after Cassandra answered`);

  await checkExactlyOnce(t, traffic, devices);
  const onBob = bob.received(conv);
  t.equal(onBob.filter((m) => m.cid === 'raw-outage').length, 1, 'the message sent during the outage is there exactly once');
});
