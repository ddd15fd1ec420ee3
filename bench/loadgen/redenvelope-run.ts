// The red-envelope load run as a whole, from the coordinator's process: set up the one group
// (create, then add members in chunks of the server's maxUsersPerCall; nobody needs to be online
// to be added, and each gateway reads a user's groups before its welcome), top the senders up
// through the admin API, run the 'redenvelope' scenario (scenarios/redenvelope.ts) in the worker
// processes, and verify every envelope against what the members were told.
import type { EnvelopeInfo } from '../../protocol/frames.ts';
import { runLoad, type LoadRunResult } from './coordinator.ts';
import { LanternConnection, LanternRequestError, mintToken } from './lantern-client.ts';
import type { ChatAuth, EnvelopeSettings, GrabReport, LoadSettings, RedEnvelopeConfig } from './messages.ts';
import { SETUP_CONCURRENCY } from './scenarios/scenario.ts';
import { closeSockets, mapLimit } from './socket.ts';

/** Cents each sender is topped up with: 25,000 envelopes of 20.00, below the default topupMaxAmount. */
export const DEFAULT_TOPUP_CENTS = 50_000_000;
const GROUP_TITLE = 'bench red envelopes';
const MAX_PROBLEMS = 10;
const DEFAULT_SETUP_TIMEOUT_MS = 60_000;

export interface RedEnvelopeRunOptions {
  /** Gateways: member i connects to urls[i % urls.length]. */
  urls: string[];
  chat: ChatAuth;
  /** The server's adminToken (POST /admin/wallet/topup). */
  adminToken: string;
  /** Group members, the owner (member 0) and the senders included. */
  members: number;
  /** Members who send envelopes, spread evenly over the members (and so over workers and gateways). */
  senders: number;
  envelope: EnvelopeSettings;
  /** Users per group.create / group.add call: the server's maxUsersPerCall. */
  usersPerCall: number;
  /** Load generator processes. */
  workers: number;
  /** Envelopes: max mode keeps `window` open per sender; rate mode sends `ratePerSec` in all. */
  load: LoadSettings;
  topUpCents?: number;
  setupTimeoutMs?: number;
  onGo?: (workerPids: number[]) => void;
  onReported?: () => void;
}

export interface Verification {
  /** Nothing below went wrong (unseenClaims aside). */
  ok: boolean;
  /** Envelopes read back with envelope.info. */
  envelopes: number;
  /** Of those, with every share claimed. */
  fullyGrabbed: number;
  claims: number;
  /** `grabbed` answers the members got. */
  grabbedAnswers: number;
  /** Claims no member was told `grabbed` about (a grab whose answer was still missing at the end). */
  unseenClaims: number;
  problemCount: number;
  /** The first few problems, each naming the envelope. */
  problems: string[];
}

export interface RedEnvelopeRun {
  load: LoadRunResult;
  setup: { conv: string; senders: number[]; ms: number };
  verification: Verification;
}

/** Sender indices spread evenly over the members: 500 members, 4 senders -> 0, 125, 250, 375. */
export function spreadSenders(members: number, senders: number): number[] {
  if (!(senders >= 1 && senders <= members)) throw new RangeError(`redenvelope needs 1 <= senders <= members, got ${senders} of ${members}`);
  return Array.from({ length: senders }, (_, k) => Math.floor((k * members) / senders));
}

export async function runRedEnvelopeLoad(o: RedEnvelopeRunOptions): Promise<RedEnvelopeRun> {
  if (o.envelope.count > o.members) throw new RangeError(`an envelope of ${o.envelope.count} shares needs as many members, got ${o.members}`);
  const setupTimeoutMs = o.setupTimeoutMs ?? DEFAULT_SETUP_TIMEOUT_MS;
  const started = performance.now();
  const redenvelope = await prepareGroup(o, setupTimeoutMs);
  const setup = { conv: redenvelope.conv, senders: redenvelope.senders, ms: Math.round(performance.now() - started) };
  const load = await runLoad({
    scenario: 'redenvelope', url: o.urls[0]!, urls: o.urls, clients: o.members, workers: o.workers, load: o.load,
    chat: o.chat, redenvelope, setupTimeoutMs,
    ...(o.onGo ? { onGo: o.onGo } : {}), ...(o.onReported ? { onReported: o.onReported } : {}),
  });
  const verification = await verifyRun(o, load.grabs!, setupTimeoutMs);
  return { load, setup, verification };
}

const userOf = (o: Pick<RedEnvelopeRunOptions, 'chat'>, index: number): string => `${o.chat.userPrefix}${index}`;

async function prepareGroup(o: RedEnvelopeRunOptions, timeoutMs: number): Promise<RedEnvelopeConfig> {
  const senders = spreadSenders(o.members, o.senders);
  const owner = userOf(o, 0);
  const conn = await LanternConnection.open(o.urls[0]!, await mintToken(o.chat.jwtSecret, o.chat.audience, owner), owner, 'bench-setup', timeoutMs);
  try {
    const others = Array.from({ length: o.members - 1 }, (_, i) => userOf(o, i + 1));
    const { conv } = await conn.request('group.create', { title: GROUP_TITLE, members: others.slice(0, o.usersPerCall) });
    for (let i = o.usersPerCall; i < others.length; i += o.usersPerCall) {
      await conn.request('group.add', { conv, users: others.slice(i, i + o.usersPerCall) });
    }
    const cents = o.topUpCents ?? DEFAULT_TOPUP_CENTS;
    await mapLimit(senders, SETUP_CONCURRENCY, (g) => topUp(o.urls[g % o.urls.length]!, o.adminToken, userOf(o, g), cents));
    return { conv, senders, envelope: o.envelope };
  } finally {
    conn.markClosing();
    await closeSockets([conn.ws]);
  }
}

/** POST /admin/wallet/topup on the gateway behind a WebSocket URL. */
export async function topUp(wsUrl: string, adminToken: string, user: string, amount: number): Promise<void> {
  const url = new URL(wsUrl);
  url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
  url.pathname = '/admin/wallet/topup';
  const res = await fetch(url, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ user, amount, key: `bench-${user}-${amount}` }),
  });
  if (!res.ok) throw new Error(`top-up of ${user} at ${url.href}: ${res.status} ${await res.text()}`);
}

/** Reads every envelope of the run back (as the owner, a member) and checks it against the answers. */
async function verifyRun(o: RedEnvelopeRunOptions, grabs: GrabReport, timeoutMs: number): Promise<Verification> {
  const owner = userOf(o, 0);
  const conn = await LanternConnection.open(o.urls[0]!, await mintToken(o.chat.jwtSecret, o.chat.audience, owner), owner, 'bench-verify', timeoutMs);
  try {
    const missing: string[] = [];
    const infos = await mapLimit(grabs.envelopes, SETUP_CONCURRENCY, async (envelope) => {
      try {
        return await conn.request('envelope.info', { envelope });
      } catch (err) {
        if (err instanceof LanternRequestError && err.error === 'not_found') { missing.push(envelope); return undefined; }
        throw err;
      }
    });
    return verifyEnvelopes(infos.filter((i): i is EnvelopeInfo => i !== undefined), grabs.grabs, missing);
  } finally {
    conn.markClosing();
    await closeSockets([conn.ws]);
  }
}

/**
 * The money checks: for every envelope, nobody claims twice, the claims never exceed the count or
 * the total, and once every share is claimed they sum to the total; every `grabbed` (or `already`)
 * answer a member got names a claim of that member for that amount, and nobody is told `grabbed`
 * twice for one envelope.
 */
export function verifyEnvelopes(infos: readonly EnvelopeInfo[], grabs: GrabReport['grabs'], missing: readonly string[] = []): Verification {
  const problems: string[] = missing.map((e) => `${e}: a card or send named it, envelope.info says not_found`);
  const byEnvelope = new Map(infos.map((info) => [info.envelope, info]));
  let fullyGrabbed = 0, claims = 0;
  const claimed = new Map<string, Map<string, number>>();
  for (const info of infos) {
    const id = info.envelope;
    const users = new Map<string, number>();
    let sum = 0;
    for (const c of info.claims) {
      if (users.has(c.user)) problems.push(`${id}: ${c.user} claimed twice`);
      users.set(c.user, c.amount);
      if (!Number.isSafeInteger(c.amount) || c.amount < 1) problems.push(`${id}: ${c.user}'s share is ${c.amount} cents`);
      sum += c.amount;
    }
    claimed.set(id, users);
    claims += info.claims.length;
    if (info.claims.length > info.count) problems.push(`${id}: ${info.claims.length} claims on ${info.count} shares`);
    if (sum > info.total) problems.push(`${id}: claims sum to ${sum} cents, more than the total ${info.total}`);
    if (info.refunded === undefined && info.left !== info.count - info.claims.length) {
      problems.push(`${id}: left ${info.left} with ${info.claims.length} of ${info.count} shares claimed`);
    }
    if (info.refunded === undefined && info.claims.length === info.count) {
      fullyGrabbed++;
      if (sum !== info.total) problems.push(`${id}: all ${info.count} shares went, summing to ${sum} cents of ${info.total}`);
    }
  }
  let grabbedAnswers = 0;
  const told = new Map<string, Set<string>>();
  for (const [envelope, user, amount, outcome] of grabs) {
    if (!byEnvelope.has(envelope)) {
      if (!missing.includes(envelope)) problems.push(`${envelope}: ${user} was told ${outcome} but the envelope was not read back`);
      continue;
    }
    const mine = claimed.get(envelope)!.get(user);
    if (mine === undefined) problems.push(`${envelope}: ${user} was told ${outcome} ${amount} cents but has no claim`);
    else if (mine !== amount) problems.push(`${envelope}: ${user} was told ${outcome} ${amount} cents, the claim says ${mine}`);
    if (outcome !== 'grabbed') continue;
    grabbedAnswers++;
    let users = told.get(envelope);
    if (!users) told.set(envelope, (users = new Set()));
    if (users.has(user)) problems.push(`${envelope}: ${user} was told grabbed twice`);
    users.add(user);
  }
  let unseenClaims = 0;
  for (const [envelope, users] of claimed) for (const user of users.keys()) if (!told.get(envelope)?.has(user)) unseenClaims++;
  return {
    ok: problems.length === 0, envelopes: infos.length, fullyGrabbed, claims, grabbedAnswers, unseenClaims,
    problemCount: problems.length, problems: problems.slice(0, MAX_PROBLEMS),
  };
}
