import t from 'tap';
import { DEFAULT_ENGINE_SETTINGS } from '../engine/api.ts';
import { DEFAULT_FRAME_LIMITS } from '../protocol/limits.ts';
import {
  ConfigError, SETTINGS_SCHEMA, SETTING_NAMES, engineSettingsOf, envName, flagName, frameLimitsOf, loadSettings, renderSettingsMarkdown,
} from './config.ts';

function problemsOf(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

t.test('defaults match the brief and the protocol/engine defaults; result is frozen', async (t) => {
  const s = loadSettings();
  t.match(s, {
    host: '127.0.0.1', port: 8080, dataDir: '.lantern', store: 'lmdb', logLevel: 'info', jwtAudience: 'lantern',
    jwtClockToleranceSec: 5, helloTimeoutMs: 10000, maxProtocolErrors: 20, ratePerSec: 50, rateBurst: 100,
    floodCloseAfter: 200, slowConsumerBytes: 1048576, slowConsumerCloseMs: 30000, idleTimeoutSec: 120,
  });
  t.equal(s.jwtSecret, undefined);
  t.same(frameLimitsOf(s), DEFAULT_FRAME_LIMITS);
  t.same(engineSettingsOf(s), DEFAULT_ENGINE_SETTINGS);
  t.ok(Object.isFrozen(s));
  t.throws(() => { (s as { port: number }).port = 1; });
});

t.test('every frame limit and engine setting is a setting; every setting has a doc line', async (t) => {
  for (const k of [...Object.keys(DEFAULT_FRAME_LIMITS), ...Object.keys(DEFAULT_ENGINE_SETTINGS)]) {
    t.ok(SETTING_NAMES.includes(k as never), `${k} is a setting`);
  }
  const md = renderSettingsMarkdown();
  for (const name of SETTING_NAMES) {
    const doc = SETTINGS_SCHEMA[name].doc;
    t.ok(doc.trim().length > 10 && !doc.includes('\n'), `${name} has a one-line doc`);
    t.ok(md.includes(`| \`${name}\` | \`${envName(name)}\` | \`${flagName(name)}\` |`), `${name} is in the Markdown table`);
  }
  t.equal(md.trim().split('\n').length, SETTING_NAMES.length + 2);
});

t.test('names: LANTERN_SCREAMING_SNAKE and --kebab-case', async (t) => {
  t.equal(envName('maxFrameBytes'), 'LANTERN_MAX_FRAME_BYTES');
  t.equal(flagName('maxFrameBytes'), '--max-frame-bytes');
  t.equal(envName('jwtClockToleranceSec'), 'LANTERN_JWT_CLOCK_TOLERANCE_SEC');
});

t.test('precedence: defaults < env < flags < overrides', async (t) => {
  const env = { LANTERN_PORT: '1111', LANTERN_RATE_PER_SEC: '7', LANTERN_HOST: '0.0.0.0', LANTERN_STORE: 'memory' };
  const s = loadSettings({ env, argv: ['--port', '2222', '--rate-per-sec=8'], overrides: { port: 3333 } });
  t.equal(s.port, 3333);
  t.equal(s.ratePerSec, 8);
  t.equal(s.host, '0.0.0.0');
  t.equal(s.store, 'memory');
  t.equal(s.rateBurst, 100);
});

t.test('errors name the setting, the value and the source; all problems at once', async (t) => {
  const problems = problemsOf(() => loadSettings({
    env: { LANTERN_PORT: 'abc', LANTERN_STORE: 'redis' },
    argv: ['--idle-timeout-sec', '10', '--nope', 'x'],
    overrides: { maxFrameBytes: -1 },
  }));
  t.match(problems, [
    /unknown flag "--nope"/,
    'LANTERN_PORT / --port: must be an integer 0..65535, got "abc" (from env)',
    /^LANTERN_STORE \/ --store: must be one of lmdb, memory, got "redis"/,
    /^LANTERN_IDLE_TIMEOUT_SEC \/ --idle-timeout-sec: must be an integer 8\.\.960 and a multiple of 4.*got "10" \(from flag\)/,
    /^LANTERN_MAX_FRAME_BYTES \/ --max-frame-bytes: .*got -1 \(from override\)/,
  ]);
  t.match(problemsOf(() => loadSettings({ argv: ['--idle-timeout-sec', '4'] })), [/IDLE_TIMEOUT_SEC/]);
  t.equal(loadSettings({ argv: ['--idle-timeout-sec', '16'] }).idleTimeoutSec, 16);
  t.match(problemsOf(() => loadSettings({ env: { LANTERN_JWT_SECRET: 'short' } })), [/^LANTERN_JWT_SECRET \/ --jwt-secret: must be a string of at least 32/]);
  t.match(problemsOf(() => loadSettings({ env: { LANTERN_JWT_PUBLIC_KEY: 'not a key' } })), [/^LANTERN_JWT_PUBLIC_KEY \/ --jwt-public-key: must be an Ed25519 public key/]);
  t.match(problemsOf(() => loadSettings({ overrides: { historyPageDefault: 500 } })), [/HISTORY_PAGE_DEFAULT.*<= historyPageMax/]);
  t.match(problemsOf(() => loadSettings({ overrides: { bogus: 1 } as never })), [/unknown setting "bogus"/]);
  t.match(problemsOf(() => loadSettings({ argv: ['--port'] })), [/--port: needs a value/]);
});
