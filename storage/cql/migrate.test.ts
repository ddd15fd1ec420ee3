// `lantern migrate` as an operator runs it: a child process of bin/lantern.mjs, settings in env.
import t from 'tap';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { freePort, sharedCassandra } from '../../test/support/infra.ts';
import { CqlChatStore } from './chat-store.ts';
import { createCqlClient } from './client.ts';
import { MIGRATIONS } from './schema.ts';

const BIN = fileURLToPath(new URL('../../bin/lantern.mjs', import.meta.url));

function lantern(args: string[], env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env['PATH'] ?? '', ...env } });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const endpoint = await sharedCassandra();
const keyspace = `lantern_cli_${randomBytes(4).toString('hex')}`;
const env = {
  LANTERN_CQL_CONTACT_POINTS: endpoint.contactPoints.join(','),
  LANTERN_CQL_LOCAL_DC: endpoint.localDataCenter,
  LANTERN_CQL_KEYSPACE: keyspace,
};
const client = createCqlClient(endpoint);
t.teardown(async () => {
  await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
  await client.shutdown();
});

t.test('migrate creates the schema, prints what it applied, and is a no-op the second time', async (t) => {
  const first = await lantern(['migrate'], env);
  t.equal(first.code, 0, first.stderr);
  for (const m of MIGRATIONS) t.match(first.stdout, `applied ${m.id}`);
  const store = await CqlChatStore.open({ client, keyspace });
  t.type(store.epoch, 'string', 'the migrated keyspace serves a store');
  const replication = await client.execute('SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?', [keyspace], { prepare: true });
  t.match(replication.first()['replication'], { class: /SimpleStrategy/, replication_factor: '1' }, 'default replication');

  const second = await lantern(['migrate'], env);
  t.equal(second.code, 0);
  t.match(second.stdout, new RegExp(`keyspace ${keyspace} is up to date \\(${MIGRATIONS.length} migrations already applied\\)`));
  t.notMatch(second.stdout, /applied 0/);
});

t.test('migrate exits 1 with a clear message when the database is unreachable', async (t) => {
  const port = await freePort();
  const result = await lantern(['migrate'], { ...env, LANTERN_CQL_CONTACT_POINTS: `127.0.0.1:${port}` });
  t.equal(result.code, 1);
  t.match(result.stderr, `cannot reach Cassandra/ScyllaDB at 127.0.0.1:${port}`);
});

t.test('migrate exits 2 on missing or bad settings, naming them', async (t) => {
  const missing = await lantern(['migrate'], { LANTERN_CQL_KEYSPACE: 'Not-Valid' });
  t.equal(missing.code, 2);
  t.match(missing.stderr, /LANTERN_CQL_CONTACT_POINTS is not set/);
  t.match(missing.stderr, /LANTERN_CQL_KEYSPACE: keyspace "Not-Valid" must match/);
  const extra = await lantern(['migrate', '--keyspace', 'x'], env);
  t.equal(extra.code, 2);
  t.match(extra.stderr, /migrate takes no arguments/);
  const help = await lantern(['migrate', '--help'], {});
  t.equal(help.code, 0);
  t.match(help.stdout, /LANTERN_CQL_REPLICATION/);
});
