// The server's settings: one schema (default + one-line doc per setting), read from
// defaults < env (LANTERN_*) < CLI flags (--kebab-case) < programmatic overrides, validated once
// at boot with messages that name the setting, then frozen. Only the composition root calls
// loadSettings; everything else receives the frozen object.
import { DEFAULT_ENGINE_SETTINGS, type EngineSettings } from '../engine/api.ts';
import { DEFAULT_FRAME_LIMITS, type FrameLimits } from '../protocol/limits.ts';
import { parseEd25519PublicKey } from './auth.ts';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const STORES = ['lmdb', 'memory'] as const;
/** embedded: one process with everything; gateway: WebSockets only, engine over NATS; worker: engine only. */
export const MODES = ['embedded', 'gateway', 'worker'] as const;

export interface Settings extends FrameLimits, EngineSettings {
  readonly mode: (typeof MODES)[number];
  readonly natsUrl: string;
  readonly redisUrl: string;
  readonly cqlContactPoints: string;
  readonly cqlLocalDc: string;
  readonly cqlKeyspace: string;
  readonly partitions: number;
  readonly partitionLeaseMs: number;
  readonly engineTimeoutMs: number;
  readonly encodeThreads: number;
  readonly encodeOffloadItems: number;
  readonly presenceSessionTtlMs: number;
  readonly presenceSweepMs: number;
  readonly userSendRatePerSec: number;
  readonly userSendBurst: number;
  readonly host: string;
  readonly port: number;
  readonly dataDir: string;
  readonly store: (typeof STORES)[number];
  readonly logLevel: (typeof LOG_LEVELS)[number];
  readonly jwtSecret: string | undefined;
  readonly adminToken: string | undefined;
  readonly walletSweepMs: number;
  readonly saleMaxInflight: number;
  readonly saleTryLaterMs: number;
  readonly saleUserAttemptsPerSec: number;
  readonly saleUserAttemptBurst: number;
  readonly jwtPublicKey: string | undefined;
  readonly jwtAudience: string;
  readonly jwtClockToleranceSec: number;
  readonly helloTimeoutMs: number;
  readonly listenRetryMs: number;
  readonly maxProtocolErrors: number;
  readonly ratePerSec: number;
  readonly rateBurst: number;
  readonly floodCloseAfter: number;
  readonly maxInflightPerConnection: number;
  readonly maxInflightRequests: number;
  readonly slowConsumerBytes: number;
  readonly slowConsumerCloseMs: number;
  readonly idleTimeoutSec: number;
}

type Parsed<V> = { ok: true; value: V } | { ok: false; expected: string };

interface SettingSpec<V> {
  readonly default: V;
  readonly doc: string;
  /** Turns a raw value (a string from env/flags, or a typed override) into the setting's value. */
  readonly parse: (raw: unknown) => Parsed<V>;
}

function int(min: number, max: number, extra?: { test: (n: number) => boolean; expected: string }) {
  return (raw: unknown): Parsed<number> => {
    const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^-?\d+$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
    const expected = `an integer ${min}..${max}${extra ? ` ${extra.expected}` : ''}`;
    if (!Number.isSafeInteger(n) || n < min || n > max) return { ok: false, expected };
    if (extra && !extra.test(n)) return { ok: false, expected };
    return { ok: true, value: n };
  };
}

function text(minLength = 1) {
  return (raw: unknown): Parsed<string> =>
    typeof raw === 'string' && raw.length >= minLength
      ? { ok: true, value: raw }
      : { ok: false, expected: minLength > 1 ? `a string of at least ${minLength} characters` : 'a non-empty string' };
}

function optional<V>(inner: (raw: unknown) => Parsed<V>) {
  return (raw: unknown): Parsed<V | undefined> => (raw === undefined || raw === '' ? { ok: true, value: undefined } : inner(raw));
}

function oneOf<C extends readonly string[]>(choices: C) {
  return (raw: unknown): Parsed<C[number]> =>
    typeof raw === 'string' && choices.includes(raw) ? { ok: true, value: raw } : { ok: false, expected: `one of ${choices.join(', ')}` };
}

function ed25519PublicKey(raw: unknown): Parsed<string> {
  const expected = 'an Ed25519 public key as PEM (SPKI) or JWK JSON';
  if (typeof raw !== 'string' || raw.trim() === '') return { ok: false, expected };
  try {
    parseEd25519PublicKey(raw);
    return { ok: true, value: raw };
  } catch (err) {
    return { ok: false, expected: `${expected} (${(err as Error).message})` };
  }
}

const MAX_INT = Number.MAX_SAFE_INTEGER;
const E = DEFAULT_ENGINE_SETTINGS;
const F = DEFAULT_FRAME_LIMITS;

export const SETTINGS_SCHEMA: { readonly [K in keyof Settings]-?: SettingSpec<Settings[K]> } = {
  mode: { default: 'embedded', doc: 'embedded (one process, LMDB), gateway (WebSockets; the engine runs in workers over NATS) or worker (engine over NATS, Redis and CQL).', parse: oneOf(MODES) },
  natsUrl: { default: 'nats://127.0.0.1:4222', doc: 'NATS server(s), comma-separated (gateway and worker modes).', parse: text() },
  redisUrl: { default: 'redis://127.0.0.1:6379', doc: 'Redis for hot state: presence sessions (worker mode).', parse: text() },
  cqlContactPoints: { default: '127.0.0.1:9042', doc: 'ScyllaDB/Cassandra contact points, comma-separated host:port (worker mode).', parse: text() },
  cqlLocalDc: { default: 'datacenter1', doc: 'Local data center for token-aware, DC-aware routing (worker mode).', parse: text() },
  cqlKeyspace: { default: 'lantern', doc: 'Keyspace of the chat store; create it with `lantern migrate`.', parse: text() },
  partitions: { default: 64, doc: 'Conversation partitions over which workers share sequencing; the same on every gateway and worker.', parse: int(1, 4096) },
  partitionLeaseMs: { default: 6_000, doc: 'Lease on a partition (NATS KV): a dead worker\'s partitions move to others within about this long (worker mode).', parse: int(1_000, 600_000) },
  engineTimeoutMs: { default: 5_000, doc: 'How long a gateway waits for a worker before answering `timeout` (gateway mode).', parse: int(100, 600_000) },
  encodeThreads: { default: 1, doc: 'piscina threads a worker encodes large replies on (sync pages, long histories); 0 encodes on the event loop (worker mode).', parse: int(0, 64) },
  encodeOffloadItems: { default: 100, doc: 'Replies with at least this many messages/conversations/contacts are encoded on those threads (worker mode).', parse: int(1, 1_000_000) },
  presenceSessionTtlMs: { default: 60_000, doc: 'Presence sessions expire this long after the last refresh when their gateway dies (worker mode).', parse: int(1_000, 3_600_000) },
  userSendRatePerSec: { default: 50, doc: 'Messages per second one user may send across all their devices and gateways (Redis in distributed mode); over it, `send` answers rate_limited with retryAfterMs.', parse: int(1, 100_000) },
  userSendBurst: { default: 100, doc: 'Messages a user may send at once before userSendRatePerSec applies.', parse: int(1, 1_000_000) },
  presenceSweepMs: { default: 5_000, doc: 'How often a worker looks for users whose gateway died (sessions expired unrefreshed) and announces them offline (worker mode).', parse: int(100, 3_600_000) },
  host: { default: '127.0.0.1', doc: 'Interface to listen on (0.0.0.0 for all).', parse: text() },
  port: { default: 8080, doc: 'TCP port for WebSocket and HTTP; 0 picks a free port.', parse: int(0, 65535) },
  dataDir: { default: '.lantern', doc: 'Directory for the LMDB store and the dev auth secret.', parse: text() },
  store: { default: 'lmdb', doc: 'Chat storage: lmdb (durable, embedded) or memory (lost on exit).', parse: oneOf(STORES) },
  logLevel: { default: 'info', doc: 'pino log level.', parse: oneOf(LOG_LEVELS) },
  adminToken: { default: undefined, doc: 'Bearer token of the admin HTTP API (POST /admin/wallet/topup); unset = the admin API is off. At least 32 characters.', parse: optional(text(32)) },
  walletSweepMs: { default: 5_000, doc: 'How often the engine refunds expired red envelopes, returns expired transfers and expires unpaid flash-sale orders, in ms.', parse: int(100, 3_600_000) },
  saleMaxInflight: { default: 2_000, doc: 'Purchase attempts (`sale.buy`) one gateway may have at the workers at once; above it attempts are answered `try_later` at once instead of queueing.', parse: int(1, 1_000_000) },
  saleUserAttemptsPerSec: { default: 5, doc: 'Purchase attempts (`sale.buy`) that reach a worker per user per second, across all their devices and gateways (token bucket; Redis in worker mode); above it `rate_limited` with retryAfterMs.', parse: int(1, 100_000) },
  saleUserAttemptBurst: { default: 10, doc: 'Burst of the per-user purchase attempt limit.', parse: int(1, 100_000) },
  saleTryLaterMs: { default: 200, doc: 'retryAfterMs of a `try_later` purchase answer, in ms.', parse: int(1, 60_000) },
  jwtSecret: { default: undefined, doc: 'HS256 shared secret for tokens (>= 32 chars); unset with no public key = dev secret in dataDir.', parse: optional(text(32)) },
  jwtPublicKey: { default: undefined, doc: 'Ed25519 public key (PEM or JWK JSON) accepting EdDSA tokens.', parse: optional(ed25519PublicKey) },
  jwtAudience: { default: 'lantern', doc: 'Required `aud` claim of tokens.', parse: text() },
  jwtClockToleranceSec: { default: 5, doc: 'Clock skew allowed when checking `exp`/`nbf`, in seconds.', parse: int(0, 300) },
  listenRetryMs: { default: 65_000, doc: 'How long to keep retrying to bind a busy port at start. This uWebSockets.js build does not set SO_REUSEADDR, so a port whose old connections sit in TIME_WAIT (up to 60 s on Linux after a restart) cannot be bound at once.', parse: int(0, 600_000) },
  maxInflightPerConnection: { default: 64, doc: 'Requests one connection may have in flight; more are refused with `busy` (5004) before decoding.', parse: int(1, 1_000_000) },
  maxInflightRequests: { default: 50_000, doc: 'Requests the gateway serves at once across connections; beyond it load is shed with `busy` instead of queueing without bound.', parse: int(1, 10_000_000) },
  helloTimeoutMs: { default: 10_000, doc: 'Time a new connection has to complete `hello` before close 4100.', parse: int(100, 600_000) },
  maxProtocolErrors: { default: 20, doc: 'Invalid frames (bad_frame/unknown_type/invalid_field) tolerated per connection before close 4000.', parse: int(1, 1_000_000) },
  ratePerSec: { default: 50, doc: 'Frames per second a connection may send (token bucket refill).', parse: int(1, 1_000_000) },
  rateBurst: { default: 100, doc: 'Frames a connection may send in a burst (token bucket capacity).', parse: int(1, 1_000_000) },
  floodCloseAfter: { default: 200, doc: 'Consecutive rate-limited frames before close 4102.', parse: int(1, 1_000_000) },
  slowConsumerBytes: { default: 1024 * 1024, doc: 'Send buffer bound per connection (uWS maxBackpressure); events beyond it are dropped and `lag` follows.', parse: int(1024, 1024 * 1024 * 1024) },
  slowConsumerCloseMs: { default: 30_000, doc: 'How long a connection may stay over the send buffer bound before close 4101.', parse: int(100, 3_600_000) },
  idleTimeoutSec: {
    default: 120,
    doc: 'Seconds without traffic before a socket is closed; pings are sent automatically before that.',
    parse: int(8, 960, { test: (n) => n % 4 === 0, expected: 'and a multiple of 4 (uWS timer granularity)' }),
  },
  maxFrameBytes: { default: F.maxFrameBytes, doc: 'Largest client WebSocket message in bytes; bigger ones close the socket with 1009.', parse: int(256, 16 * 1024 * 1024) },
  maxDepth: { default: F.maxDepth, doc: 'Deepest nesting of maps/arrays in a frame (the frame is depth 1).', parse: int(2, 64) },
  maxStringLength: { default: F.maxStringLength, doc: 'Longest string in a frame, in UTF-16 code units.', parse: int(1, MAX_INT) },
  maxArrayLength: { default: F.maxArrayLength, doc: 'Longest array in a frame.', parse: int(1, MAX_INT) },
  maxMapKeys: { default: F.maxMapKeys, doc: 'Most keys in one map of a frame.', parse: int(1, MAX_INT) },
  maxBinaryBytes: { default: F.maxBinaryBytes, doc: 'Longest binary value in a frame, in bytes.', parse: int(0, MAX_INT) },
  maxGroupMembers: { default: E.maxGroupMembers, doc: 'Most members in a group, owner included.', parse: int(2, 1_000_000) },
  recallWindowMs: { default: E.recallWindowMs, doc: 'How long after sending its sender may recall a message, in ms.', parse: int(0, MAX_INT) },
  maxTextLength: { default: E.maxTextLength, doc: 'Longest text message body, in characters.', parse: int(1, MAX_INT) },
  maxTitleLength: { default: E.maxTitleLength, doc: 'Longest group title or contact note, in characters.', parse: int(1, MAX_INT) },
  maxUsersPerCall: { default: E.maxUsersPerCall, doc: 'Most users named in one group.create/group.add/presence call.', parse: int(1, MAX_INT) },
  historyPageDefault: { default: E.historyPageDefault, doc: 'Messages per `history` page when the client gives no limit.', parse: int(1, MAX_INT) },
  historyPageMax: { default: E.historyPageMax, doc: 'Most messages per `history` page.', parse: int(1, MAX_INT) },
  syncPageDefault: { default: E.syncPageDefault, doc: 'Messages per `sync` page when the client gives no limit.', parse: int(1, MAX_INT) },
  syncPageMax: { default: E.syncPageMax, doc: 'Most messages per `sync` page.', parse: int(1, MAX_INT) },
  conversationCacheSize: { default: E.conversationCacheSize, doc: 'Conversations whose membership and head the engine keeps in memory (LRU).', parse: int(1, MAX_INT) },
  currencies: {
    default: E.currencies, doc: 'Currencies wallets hold: comma-separated ISO 4217 codes, the first is the default. Amounts are integer minor units (cents).',
    parse: (raw: unknown): Parsed<string> => (typeof raw === 'string' && /^[A-Z]{3}(,[A-Z]{3})*$/.test(raw)
      ? { ok: true, value: raw } : { ok: false, expected: 'comma-separated 3-letter currency codes, e.g. CNY,USD' }),
  },
  envelopeMaxTotal: { default: E.envelopeMaxTotal, doc: 'Largest red envelope, in cents.', parse: int(1, 2 ** 48 - 1) },
  envelopeMaxShares: { default: E.envelopeMaxShares, doc: 'Most shares in one red envelope (also never more than the conversation has members).', parse: int(1, 10_000) },
  envelopeMaxGreeting: { default: E.envelopeMaxGreeting, doc: 'Longest red envelope greeting, in characters.', parse: int(0, 4000) },
  envelopeExpiryMs: { default: E.envelopeExpiryMs, doc: 'How long a red envelope stays open; then what is left returns to its sender.', parse: int(1_000, MAX_INT) },
  transferMaxAmount: { default: E.transferMaxAmount, doc: 'Largest transfer, in cents.', parse: int(1, 2 ** 48 - 1) },
  transferExpiryMs: { default: E.transferExpiryMs, doc: 'How long a transfer waits to be accepted; then it returns to its sender.', parse: int(1_000, MAX_INT) },
  topupMaxAmount: { default: E.topupMaxAmount, doc: 'Largest single top-up through the admin API, in cents.', parse: int(1, 2 ** 48 - 1) },
  statementPageDefault: { default: E.statementPageDefault, doc: 'Entries per `wallet.statement` page when the client gives no limit.', parse: int(1, MAX_INT) },
  statementPageMax: { default: E.statementPageMax, doc: 'Most entries per `wallet.statement` page.', parse: int(1, MAX_INT) },
  envelopeEventCoalesceMs: { default: E.envelopeEventCoalesceMs, doc: 'Grabs of one red envelope within this many ms reach the members as one `envelope` event (0: one event per grab).', parse: int(0, 10_000) },
  grabMembershipCacheMs: { default: E.grabMembershipCacheMs, doc: 'How long a worker that does not own a conversation trusts its member list when checking who may grab an envelope (worker mode).', parse: int(0, 60_000) },
  saleMaxPrice: { default: E.saleMaxPrice, doc: 'Highest unit price of a flash sale, in cents.', parse: int(1, 1_000_000_000) },
  saleMaxStock: { default: E.saleMaxStock, doc: 'Most units one flash sale may offer.', parse: int(1, 1_000_000_000) },
  saleMaxPerUserLimit: { default: E.saleMaxPerUserLimit, doc: 'Highest per-buyer limit a sale may set (so also the most units in one purchase attempt).', parse: int(1, 10_000) },
  saleMaxItemLength: { default: E.saleMaxItemLength, doc: 'Longest item description of a sale, in characters.', parse: int(1, 4_000) },
  saleMaxDurationMs: { default: E.saleMaxDurationMs, doc: 'Longest a sale may stay open (endAt - startAt), in ms.', parse: int(1_000, 365 * 24 * 3_600_000) },
  salePayWindowMs: { default: E.salePayWindowMs, doc: 'How long a reservation waits for payment when the sale does not set payWindowMs; then its stock returns to the sale.', parse: int(1_000, 7 * 24 * 3_600_000) },
  saleMaxPayWindowMs: { default: E.saleMaxPayWindowMs, doc: 'Longest payment window a sale may set, in ms.', parse: int(1_000, 7 * 24 * 3_600_000) },
  saleStuckPaymentMs: { default: E.saleStuckPaymentMs, doc: 'How long past its deadline an order may stay in `paying` before the sweeper finishes it from the ledger (paid if the payment posted, else expired).', parse: int(1_000, 3_600_000) },
  saleStateThrottleMs: { default: E.saleStateThrottleMs, doc: 'At most one `sale` event with the remaining stock per sale per this many ms (sold out and reopened go at once).', parse: int(10, 60_000) },
  saleOrdersPageDefault: { default: E.saleOrdersPageDefault, doc: 'Orders per `sale.orders` page when `limit` is absent.', parse: int(1, 1_000) },
  saleOrdersPageMax: { default: E.saleOrdersPageMax, doc: 'Largest `sale.orders` page.', parse: int(1, 1_000) },
};

export const SETTING_NAMES = Object.keys(SETTINGS_SCHEMA) as ReadonlyArray<keyof Settings>;

export function envName(name: string): string {
  return 'LANTERN_' + name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase();
}

export function flagName(name: string): string {
  return '--' + name.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();
}

const BY_FLAG: ReadonlyMap<string, keyof Settings> = new Map(SETTING_NAMES.map((n) => [flagName(n), n]));

/** One or more invalid settings; `problems` has one line per setting, naming it. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly problems: readonly string[]) {
    super(`invalid settings:\n  ${problems.join('\n  ')}`);
  }
}

/** Parse `--flag value` / `--flag=value` pairs into raw setting values; unknown flags become problems. */
export function parseFlags(argv: readonly string[]): { values: Partial<Record<keyof Settings, string>>; problems: string[] } {
  const values: Partial<Record<keyof Settings, string>> = {};
  const problems: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const flag = eq === -1 ? arg : arg.slice(0, eq);
    const name = BY_FLAG.get(flag);
    let value: string | undefined;
    if (eq !== -1) value = arg.slice(eq + 1);
    else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) value = argv[++i];
    if (name === undefined) problems.push(`unknown flag "${flag}" (see \`lantern help\`)`);
    else if (value === undefined) problems.push(`${envName(name)} / ${flag}: needs a value`);
    else values[name] = value;
  }
  return { values, problems };
}

export interface SettingsSources {
  env?: Readonly<Record<string, string | undefined>>;
  argv?: readonly string[];
  overrides?: Partial<Settings>;
}

/** Merge the sources, validate every setting (all problems reported at once) and freeze. */
export function loadSettings(sources: SettingsSources = {}): Settings {
  const env = sources.env ?? {};
  const { values: flags, problems } = parseFlags(sources.argv ?? []);
  const overrides = sources.overrides ?? {};
  const values: Record<string, unknown> = {};
  for (const name of SETTING_NAMES) {
    const spec = SETTINGS_SCHEMA[name] as SettingSpec<unknown>;
    let raw: unknown;
    let from: string;
    if (Object.hasOwn(overrides, name) && overrides[name] !== undefined) { raw = overrides[name]; from = 'override'; }
    else if (flags[name] !== undefined) { raw = flags[name]; from = 'flag'; }
    else if (env[envName(name)] !== undefined) { raw = env[envName(name)]; from = 'env'; }
    else { values[name] = spec.default; continue; }
    const parsed = spec.parse(raw);
    if (parsed.ok) values[name] = parsed.value;
    else problems.push(`${envName(name)} / ${flagName(name)}: must be ${parsed.expected}, got ${describe(raw)} (from ${from})`);
  }
  for (const name of Object.keys(overrides)) {
    if (!Object.hasOwn(SETTINGS_SCHEMA, name)) problems.push(`unknown setting "${name}" (override)`);
  }
  if (problems.length === 0) problems.push(...crossCheck(values as unknown as Settings));
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(values) as unknown as Settings;
}

function crossCheck(s: Settings): string[] {
  const problems: string[] = [];
  const pairs: Array<[keyof Settings, keyof Settings]> = [['historyPageDefault', 'historyPageMax'], ['syncPageDefault', 'syncPageMax']];
  for (const [small, big] of pairs) {
    if ((s[small] as number) > (s[big] as number)) {
      problems.push(`${envName(small)} / ${flagName(small)}: must be <= ${big} (${String(s[big])}), got ${String(s[small])}`);
    }
  }
  return problems;
}

function describe(raw: unknown): string {
  if (typeof raw === 'string') return JSON.stringify(raw.length > 60 ? raw.slice(0, 60) + '...' : raw);
  return typeof raw === 'object' ? JSON.stringify(raw) : String(raw);
}

export function engineSettingsOf(s: Settings): EngineSettings {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(DEFAULT_ENGINE_SETTINGS)) out[k] = s[k as keyof Settings];
  return Object.freeze(out) as unknown as EngineSettings;
}

export function frameLimitsOf(s: Settings): FrameLimits {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(DEFAULT_FRAME_LIMITS)) out[k] = s[k as keyof Settings];
  return Object.freeze(out) as unknown as FrameLimits;
}

/** The settings table as Markdown (setting, env, flag, default, meaning), for the docs. */
export function renderSettingsMarkdown(): string {
  const rows = SETTING_NAMES.map((name) => {
    const spec = SETTINGS_SCHEMA[name] as SettingSpec<unknown>;
    const def = spec.default === undefined ? '(unset)' : `\`${String(spec.default)}\``;
    return `| \`${name}\` | \`${envName(name)}\` | \`${flagName(name)}\` | ${def} | ${spec.doc.replace(/\|/g, '\\|')} |`;
  });
  return ['| setting | env | flag | default | meaning |', '|---|---|---|---|---|', ...rows].join('\n') + '\n';
}
