// `lantern` command line: start the server, mint a dev token, migrate the CQL schema, audit the
// wallet, print help. Exit codes: 0 ok, 1 runtime failure, 2 usage or settings error. `audit`
// refines them: 1 = the ledger has problems, 2 = also the store could not be read.
import { ConfigError, SETTING_NAMES, SETTINGS_SCHEMA, envName, flagName, loadSettings } from './config.ts';
import { loadOrCreateDevSecret, mintToken } from './auth.ts';
import { startLantern, type RunningLantern } from './main.ts';

export interface CliIo {
  out(line: string): void;
  err(line: string): void;
  env: Readonly<Record<string, string | undefined>>;
}

const processIo: CliIo = {
  out: (line) => process.stdout.write(line + '\n'),
  err: (line) => process.stderr.write(line + '\n'),
  env: process.env,
};

class UsageError extends Error {
  override readonly name = 'UsageError';
}

export function helpText(): string {
  const lines = [
    'Usage:',
    '  lantern start [--setting value ...]   start the server (embedded mode; --mode gateway for a shard)',
    '  lantern worker [--setting value ...]  start an engine worker (NATS, Redis, CQL; distributed mode)',
    '  lantern token --user ID [--ttl SEC] [--data-dir DIR | --secret S] [--aud AUD]',
    '                                        print an HS256 token (dev secret by default)',
    '  lantern migrate [--help]              create or upgrade the CQL schema (Cassandra/ScyllaDB);',
    '                                        settings from LANTERN_CQL_* env, see `lantern migrate --help`',
    '  lantern audit [--json] [--currency CUR] [--setting value ...]',
    '                                        check the wallet ledger and flash sales (LMDB at <dataDir>/wallet',
    '                                        and /sales; CQL with --mode worker); exit 0 clean, 1 problems,',
    '                                        2 store unreadable',
    '  lantern help                          this text',
    '',
    'Settings (flag / env, default: meaning):',
  ];
  for (const name of SETTING_NAMES) {
    const spec = SETTINGS_SCHEMA[name];
    const def = spec.default === undefined ? 'unset' : String(spec.default);
    lines.push(`  ${flagName(name)} / ${envName(name)} (${def}): ${spec.doc}`);
  }
  return lines.join('\n');
}

/** Runs one command; resolves with the exit code (for `start`, once the server has closed). */
export async function runCli(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'start':
        return await startCommand(rest, io);
      case 'worker':
        return await workerCommand(rest, io);
      case 'token':
        io.out(await tokenCommand(rest, io.env));
        return 0;
      case 'migrate': {
        // The CQL adapter's schema tool: its settings and logic live with the adapter, loaded
        // only here so other commands never load cassandra-driver.
        const { migrateCommand } = await import('../storage/cql/migrate-command.ts');
        return await migrateCommand(rest, io);
      }
      case 'audit': {
        const { auditCommand } = await import('./audit-command.ts');
        return await auditCommand(rest, io);
      }
      case 'help':
      case '--help':
      case '-h':
      case undefined:
        io.out(helpText());
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command "${command}" (commands: start, worker, token, migrate, audit, help)`);
    }
  } catch (err) {
    if (err instanceof UsageError || err instanceof ConfigError) {
      io.err(`lantern: ${err.message}`);
      io.err('run `lantern help` for usage');
      return 2;
    }
    io.err(`lantern: ${(err as Error).stack ?? String(err)}`);
    return 1;
  }
}

async function tokenCommand(argv: readonly string[], env: CliIo['env']): Promise<string> {
  const known = new Set(['--user', '--ttl', '--data-dir', '--secret', '--aud']);
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    if (!known.has(flag)) throw new UsageError(`token: unknown flag "${flag}" (flags: ${[...known].join(', ')})`);
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined || value === '') throw new UsageError(`token: ${flag} needs a value`);
    flags.set(flag, value);
  }
  const user = flags.get('--user');
  if (user === undefined) throw new UsageError('token: --user is required');
  const ttlText = flags.get('--ttl') ?? '3600';
  const ttlSec = Number(ttlText);
  if (!/^\d+$/.test(ttlText) || ttlSec < 1) throw new UsageError(`token: --ttl must be a positive integer of seconds, got "${ttlText}"`);
  if (flags.has('--secret') && flags.has('--data-dir')) throw new UsageError('token: give either --secret or --data-dir, not both');

  // Same sources as the server: env settings, then the flags given here.
  const settings = loadSettings({ env });
  let secret = flags.get('--secret') ?? (flags.has('--data-dir') ? undefined : settings.jwtSecret);
  if (secret === undefined) secret = (await loadOrCreateDevSecret(flags.get('--data-dir') ?? settings.dataDir)).secret;
  return mintToken({ secret, user, ttlSec, audience: flags.get('--aud') ?? settings.jwtAudience });
}

async function startCommand(argv: readonly string[], io: CliIo): Promise<number> {
  const running: RunningLantern = await startLantern({}, { env: io.env, argv });
  if (running.devSecret !== undefined) {
    const dirFlag = running.settings.dataDir === '.lantern' ? '' : ` --data-dir ${running.settings.dataDir}`;
    // Dev mode only: the secret is printed so other tools (the SDK example, k6, a Go client) can sign tokens too.
    io.err(`lantern: dev auth in use (no jwtSecret/jwtPublicKey). Dev HS256 secret: ${running.devSecret}`);
    io.err(`lantern: mint a token with: npx lantern token --user alice${dirFlag}`);
  }
  io.err(`lantern: listening on ${running.url}`);
  return untilSignal(running, io);
}

async function workerCommand(argv: readonly string[], io: CliIo): Promise<number> {
  // Loaded only here: other commands never load the NATS, Redis and CQL drivers.
  const { startWorker } = await import('./worker.ts');
  const running = await startWorker({}, { env: io.env, argv });
  io.err(`lantern: worker serving (keyspace ${running.settings.cqlKeyspace}, nats ${running.settings.natsUrl})`);
  return untilSignal(running, io);
}

/** Serve until SIGINT/SIGTERM, then close gracefully (a second signal exits at once). */
function untilSignal(running: { close(): Promise<void> }, io: CliIo): Promise<number> {
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        io.err(`lantern: ${signal} again, exiting without waiting`);
        process.exit(1);
      }
      stopping = true;
      io.err(`lantern: ${signal}, shutting down`);
      running.close().then(
        () => resolve(0),
        (err: unknown) => {
          io.err(`lantern: shutdown failed: ${(err as Error).stack ?? String(err)}`);
          resolve(1);
        },
      );
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
