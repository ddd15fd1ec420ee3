// `lantern migrate`: create or upgrade the CQL schema. Settings come from the environment
// (the same names `ops/infra.sh env` prints), so it needs nothing from the server's config.
// Exit codes: 0 done (also when nothing was left to apply), 1 Cassandra unreachable or a
// migration failed, 2 bad settings or arguments.
import { createCqlClient } from './client.ts';
import { assertKeyspaceName, migrate } from './schema.ts';

export interface MigrateIo {
  out(line: string): void;
  err(line: string): void;
  env: Readonly<Record<string, string | undefined>>;
}

export const MIGRATE_ENV = Object.freeze({
  LANTERN_CQL_CONTACT_POINTS: 'required: comma-separated host:port list, e.g. 127.0.0.1:9042',
  LANTERN_CQL_LOCAL_DC: 'data center of this client (default datacenter1)',
  LANTERN_CQL_KEYSPACE: 'keyspace to create or upgrade (default lantern)',
  LANTERN_CQL_REPLICATION: "replication map used when the keyspace is created (default {'class': 'SimpleStrategy', 'replication_factor': 1})",
});

const DEFAULT_REPLICATION = "{'class': 'SimpleStrategy', 'replication_factor': 1}";

function migrateHelp(): string[] {
  return [
    'Usage: lantern migrate',
    'Creates the keyspace if missing and applies the schema migrations it lacks (safe to re-run).',
    'Settings (environment):',
    ...Object.entries(MIGRATE_ENV).map(([name, doc]) => `  ${name}: ${doc}`),
  ];
}

export async function migrateCommand(argv: readonly string[], io: MigrateIo): Promise<number> {
  if (argv.length === 1 && ['--help', '-h', 'help'].includes(argv[0]!)) {
    for (const line of migrateHelp()) io.out(line);
    return 0;
  }
  if (argv.length > 0) {
    io.err(`lantern: migrate takes no arguments (got "${argv.join(' ')}")`);
    for (const line of migrateHelp()) io.err(line);
    return 2;
  }
  const contactPoints = (io.env['LANTERN_CQL_CONTACT_POINTS'] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const localDataCenter = io.env['LANTERN_CQL_LOCAL_DC'] || 'datacenter1';
  const keyspace = io.env['LANTERN_CQL_KEYSPACE'] || 'lantern';
  const replication = io.env['LANTERN_CQL_REPLICATION'] || DEFAULT_REPLICATION;
  const problems: string[] = [];
  if (contactPoints.length === 0) problems.push('LANTERN_CQL_CONTACT_POINTS is not set (e.g. 127.0.0.1:9042; `eval "$(ops/infra.sh env)"` sets it for the local Cassandra)');
  try { assertKeyspaceName(keyspace); } catch (error) { problems.push(`LANTERN_CQL_KEYSPACE: ${(error as Error).message}`); }
  if (problems.length > 0) {
    for (const p of problems) io.err(`lantern: migrate: ${p}`);
    return 2;
  }

  const client = createCqlClient({ contactPoints, localDataCenter });
  try {
    try {
      await client.connect();
    } catch (error) {
      io.err(`lantern: migrate: cannot reach Cassandra/ScyllaDB at ${contactPoints.join(', ')} (local DC ${localDataCenter}): ${(error as Error).message}`);
      return 1;
    }
    const result = await migrate(client, keyspace, { replication });
    for (const id of result.applied) io.out(`applied ${id}`);
    io.out(result.applied.length === 0
      ? `keyspace ${keyspace} is up to date (${result.alreadyApplied.length} migrations already applied)`
      : `keyspace ${keyspace}: applied ${result.applied.length}, already applied ${result.alreadyApplied.length}`);
    return 0;
  } catch (error) {
    io.err(`lantern: migrate of keyspace ${keyspace} failed: ${(error as Error).message}`);
    return 1;
  } finally {
    await client.shutdown();
  }
}
