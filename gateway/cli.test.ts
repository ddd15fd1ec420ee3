// The `lantern` command as a user runs it: a real child process of bin/lantern.mjs.
import t from 'tap';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTokenVerifier } from './auth.ts';
import { runCli } from './cli.ts';
import { TestClient } from './test-support.ts';

const BIN = fileURLToPath(new URL('../bin/lantern.mjs', import.meta.url));
const SECRET = 'cli-test-secret-0123456789abcdef-0123';

function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { PATH: process.env['PATH'] ?? '', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

t.test('token --secret prints only a JWT that verifies', async (t) => {
  const { code, stdout } = await run(['token', '--user', 'alice', '--secret', SECRET, '--ttl', '120', '--aud', 'chat']);
  t.equal(code, 0);
  t.match(stdout, /^[\w-]+\.[\w-]+\.[\w-]+\n$/, 'one line, a compact JWT');
  const verifier = createTokenVerifier({ secret: SECRET, audience: 'chat', clockToleranceSec: 0 });
  t.same(await verifier.verify(stdout.trim()), { ok: true, user: 'alice' });
  const payload = JSON.parse(Buffer.from(stdout.split('.')[1]!, 'base64url').toString()) as { exp: number; iat: number };
  t.equal(payload.exp - payload.iat, 120);
});

/** runCli in-process (no child process: fast) with captured output. */
async function runHere(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, { out: (l) => { stdout += l + '\n'; }, err: (l) => { stderr += l + '\n'; }, env });
  return { code, stdout, stderr };
}

t.test('token --data-dir signs with the dev secret the server uses; env settings apply', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'lantern-cli-'));
  const { code, stdout } = await runHere(['token', '--user', 'bob', '--data-dir', dataDir]);
  t.equal(code, 0);
  const secret = (await readFile(join(dataDir, 'dev-secret'), 'utf8')).trim();
  const verifier = createTokenVerifier({ secret, audience: 'lantern', clockToleranceSec: 0 });
  t.same(await verifier.verify(stdout.trim()), { ok: true, user: 'bob' });
  const fromEnv = await runHere(['token', '--user', 'eve'], { LANTERN_JWT_SECRET: SECRET, LANTERN_JWT_AUDIENCE: 'env-aud' });
  const envVerifier = createTokenVerifier({ secret: SECRET, audience: 'env-aud', clockToleranceSec: 0 });
  t.same(await envVerifier.verify(fromEnv.stdout.trim()), { ok: true, user: 'eve' });
});

t.test('usage errors exit 2 with a message naming the problem', async (t) => {
  const bad = await run(['frobnicate']);
  t.equal(bad.code, 2, 'the real process exits 2');
  t.match(bad.stderr, /unknown command "frobnicate"/);
  const flag = await runHere(['token', '--user', 'a', '--colour', 'red']);
  t.equal(flag.code, 2);
  t.match(flag.stderr, /unknown flag "--colour"/);
  t.equal(flag.stdout, '');
  const noUser = await runHere(['token', '--secret', SECRET]);
  t.equal(noUser.code, 2);
  t.match(noUser.stderr, /--user is required/);
  const ttl = await runHere(['token', '--user', 'a', '--secret', SECRET, '--ttl', '-5']);
  t.equal(ttl.code, 2);
  t.match(ttl.stderr, /--ttl must be a positive integer/);
  const setting = await runHere(['start', '--port', 'abc', '--bogus', '1']);
  t.equal(setting.code, 2);
  t.match(setting.stderr, /LANTERN_PORT \/ --port: must be an integer 0\.\.65535, got "abc"/);
  t.match(setting.stderr, /unknown flag "--bogus"/);
  const help = await runHere(['help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /lantern token --user ID/);
  t.match(help.stdout, /--max-frame-bytes \/ LANTERN_MAX_FRAME_BYTES \(65536\)/);
});

t.test('start serves until SIGTERM, then shuts down gracefully (clients get 1001)', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'lantern-cli-'));
  const child = spawn(process.execPath, [BIN, 'start', '--port', '0', '--store', 'memory', '--data-dir', dataDir, '--log-level', 'warn'], {
    env: { PATH: process.env['PATH'] ?? '' },
  });
  let stderr = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      const m = /listening on (ws:\/\/\S+)/.exec(stderr);
      if (m) resolve(m[1]!);
    });
    child.on('exit', (code) => reject(new Error(`exited ${code}: ${stderr}`)));
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  t.match(stderr, /dev auth in use.*Dev HS256 secret: [\w-]{20,}/);
  t.match(stderr, /npx lantern token --user alice --data-dir/);
  const printed = /Dev HS256 secret: (\S+)/.exec(stderr)![1]!;
  t.equal(printed, (await readFile(join(dataDir, 'dev-secret'), 'utf8')).trim(), 'the printed secret is the one tokens are signed with');
  const token = await run(['token', '--user', 'alice', '--data-dir', dataDir]);
  const client = new TestClient(url);
  t.match(await client.hello(token.stdout.trim()), { t: 'welcome', user: 'alice' });
  child.kill('SIGTERM');
  t.equal(await client.waitClose(), 1001);
  t.equal(await exited, 0);
});
