// Red-envelope bursts for the fault tests: a crowd of members, each with their own WebSocket
// (a user is who their token says, so every grabber needs a connection of their own), grabbing
// every envelope at once the way an app does (a retryable error or no answer at all: send the
// same grab again until there is an outcome), and the checks a user and an accountant would make
// afterwards: what each grabber was told is what the envelope's claims say and what their wallet
// holds; shares sum to the total minus what is still in escrow; the remainder goes back to the sender.
import type { Test } from 'tap';
import type { EnvelopeInfo, GrabOutcome, RequestResult } from '../../protocol/frames.ts';
import { until } from '../support/processes.ts';
import { mintToken, WireClient, WireError } from '../support/wire-client.ts';

export interface Member {
  user: string;
  client: WireClient;
  /** Index of the gateway it is connected to. */
  gateway: number;
}

/** `count` members named `<prefix><i>`, spread round-robin over the gateways, `parallel` connects at a time. */
export async function connectMembers(urls: readonly string[], secret: string, count: number, prefix: string, parallel = 25): Promise<Member[]> {
  const members: Member[] = new Array(count);
  let next = 0;
  const connector = async (): Promise<void> => {
    for (let i = next++; i < count; i = next++) {
      const user = `${prefix}${i}`;
      const gateway = i % urls.length;
      members[i] = { user, gateway, client: await WireClient.connect(urls[gateway]!, await mintToken(secret, user), 'phone') };
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, connector));
  return members;
}

/** POST /admin/wallet/topup on a gateway; throws unless it answers 200. */
export async function topup(wsUrl: string, adminToken: string, body: { user: string; amount: number; key: string }): Promise<void> {
  const base = wsUrl.replace(/^ws:/, 'http:').replace(/\/ws$/, '');
  const res = await fetch(`${base}/admin/wallet/topup`, {
    method: 'POST', headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' }, body: JSON.stringify(body),
  });
  if (res.status !== 200) throw new Error(`top-up ${JSON.stringify(body)}: ${res.status} ${await res.text()}`);
}

/** `sentAt`: when the attempt that got this answer was sent; `at`: when the answer arrived. */
export interface Answer { outcome: GrabOutcome; amount?: number; attempt: number; sentAt: number; at: number }

/** One member's grab of one envelope, through every retry. */
export interface GrabRecord {
  user: string;
  envelope: string;
  /** Answers in arrival order, late ones (to an attempt this client had given up on) included. */
  answers: Answer[];
  /** What made the client try again: retryable error names and `no-answer` (its own timeout). */
  retries: string[];
  /** A non-retryable error, or the overall deadline: the grab never reached an outcome. */
  failure?: string;
}

export interface GrabOptions {
  /** The client gives up waiting for an answer after this long and sends the same grab again. */
  answerTimeoutMs: number;
  /** Stop retrying after this long (the record then has a `failure`). */
  deadlineMs: number;
}

export interface BurstOptions extends GrabOptions {
  /** Each grab starts after a random delay up to this (0: all at once), as people open the card at different moments. */
  spreadMs?: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Grab until an outcome, as an app would; never throws. */
export async function grabUntilOutcome(m: Member, envelope: string, o: GrabOptions): Promise<GrabRecord> {
  const record: GrabRecord = { user: m.user, envelope, answers: [], retries: [] };
  const deadline = Date.now() + o.deadlineMs;
  for (let attempt = 1; ; attempt++) {
    const sentAt = Date.now();
    const request = m.client.req('envelope.grab', { envelope }).then(
      (res: RequestResult<'envelope.grab'>) => {
        record.answers.push({ outcome: res.outcome, ...(res.amount === undefined ? {} : { amount: res.amount }), attempt, sentAt, at: Date.now() });
        return 'answered' as const;
      },
      (err: unknown) => err,
    );
    let timer: NodeJS.Timeout | undefined;
    const gaveUp = new Promise<'no-answer'>((resolve) => { timer = setTimeout(() => resolve('no-answer'), o.answerTimeoutMs); });
    const got = await Promise.race([request, gaveUp]);
    clearTimeout(timer);
    if (got === 'answered') return record;
    if (got instanceof WireError && !got.frame.retry) {
      record.failure = got.message;
      return record;
    }
    if (got !== 'no-answer' && !(got instanceof WireError)) {
      record.failure = `attempt ${attempt}: ${(got as Error).message}`;
      return record;
    }
    record.retries.push(got === 'no-answer' ? 'no-answer' : got.error);
    if (Date.now() > deadline) {
      record.failure = `no outcome after ${attempt} attempts (${record.retries.join(', ')})`;
      return record;
    }
    // Backoff with jitter, as the protocol asks of 5xxx answers: the crowd does not retry in lockstep.
    await sleep(100 + Math.floor(Math.random() * 200));
  }
}

/** Grabs running at once: each job is one member grabbing one envelope until an outcome. */
export class Burst {
  readonly records: GrabRecord[] = [];
  readonly done: Promise<GrabRecord[]>;
  /** Grabs sent so far (the first attempt). */
  started = 0;
  readonly size: number;

  constructor(jobs: ReadonlyArray<{ member: Member; envelope: string }>, o: BurstOptions) {
    const order = [...jobs];
    shuffle(order);
    this.size = order.length;
    const spread = o.spreadMs ?? 0;
    this.done = Promise.all(order.map(async ({ member, envelope }) => {
      if (spread > 0) await sleep(Math.random() * spread);
      this.started++;
      const r = await grabUntilOutcome(member, envelope, o);
      this.records.push(r);
      return r;
    }));
  }

  /** Grabs that reached an outcome (or gave up) so far. */
  get finished(): number { return this.records.length; }
  /** Grabs sent and not yet answered. */
  get inFlight(): number { return this.started - this.finished; }
}

/** Every member grabs every envelope, interleaved so each envelope is grabbed through both gateways from the start. */
export function everyone(members: readonly Member[], envelopes: readonly string[]): Array<{ member: Member; envelope: string }> {
  return members.flatMap((member) => envelopes.map((envelope) => ({ member, envelope })));
}

function shuffle<T>(items: T[]): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
}

/** The share a grab ended with: the amount of its 'grabbed' or 'already' answer. */
export function shareOf(r: GrabRecord): number | undefined {
  return r.answers.find((a) => a.outcome === 'grabbed' || a.outcome === 'already')?.amount;
}

/** An envelope as the test sent it. */
export interface SentEnvelope { id: string; sender: string; total: number; count: number }

/**
 * What a grabber can check for one envelope after the burst: every grab reached an outcome; no
 * member was answered two different amounts, or 'grabbed' twice; the members told they have a
 * share, with what amount, are exactly the envelope's claims; the claims sum to at most the total,
 * and to exactly the total minus what is still in escrow. Returns user -> amount.
 */
export function checkEnvelope(t: Test, e: SentEnvelope, records: readonly GrabRecord[], info: EnvelopeInfo, escrow: number): Map<string, number> {
  const mine = records.filter((r) => r.envelope === e.id);
  t.same(mine.filter((r) => r.failure !== undefined).map((r) => `${r.user}: ${r.failure}`), [], `${e.id}: every grab reached an outcome`);
  const inconsistent = mine.filter((r) => {
    const amounts = new Set(r.answers.filter((a) => a.amount !== undefined).map((a) => a.amount));
    return amounts.size > 1 || r.answers.filter((a) => a.outcome === 'grabbed').length > 1;
  });
  t.same(inconsistent.map((r) => `${r.user}: ${JSON.stringify(r.answers)}`), [], `${e.id}: no grabber was told two amounts or 'grabbed' twice`);

  const told = new Map<string, number>();
  for (const r of mine) {
    const amount = shareOf(r);
    if (amount !== undefined) told.set(r.user, amount);
  }
  const claimed = new Map<string, number>();
  const twice: string[] = [];
  for (const c of info.claims) {
    if (claimed.has(c.user)) twice.push(c.user);
    claimed.set(c.user, c.amount);
  }
  t.same(twice, [], `${e.id}: no user holds two shares`);
  const sorted = (m: Map<string, number>) => [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  t.same(sorted(told), sorted(claimed), `${e.id}: the grabbers told they got a share, and how much, are exactly the envelope's ${claimed.size} claims`);
  const sum = [...claimed.values()].reduce((s, a) => s + a, 0);
  t.ok(sum <= e.total, `${e.id}: claims sum to ${sum} <= total ${e.total}`);
  const refunded = info.refunded ?? 0;
  t.equal(sum, e.total - escrow - refunded, `${e.id}: claims (${sum}) = total (${e.total}) - escrow (${escrow})${refunded ? ` - refunded (${refunded})` : ''}`);
  t.ok(claimed.size <= e.count, `${e.id}: at most ${e.count} shares (${claimed.size})`);
  const toldEmpty = mine.filter((r) => r.answers.some((a) => a.outcome === 'empty')).length;
  if (toldEmpty > 0) t.equal(claimed.size, e.count, `${e.id}: ${toldEmpty} members were told 'empty', so every share was taken`);
  return told;
}

/** Waits until the expiry sweep has refunded each envelope; returns their final infos. */
export async function refundedInfos(reader: WireClient, envelopes: readonly SentEnvelope[], timeoutMs: number): Promise<EnvelopeInfo[]> {
  return Promise.all(envelopes.map((e) => until(async () => {
    const info = await reader.req('envelope.info', { envelope: e.id });
    return info.refunded === undefined ? undefined : info;
  }, `${e.id} to be refunded at expiry`, timeoutMs, 200)));
}

/** Expected wallet balances, kept as money moves: top-ups, sends, shares, refunds. */
export class Expected {
  private readonly cents = new Map<string, number>();
  add(user: string, amount: number): void { this.cents.set(user, (this.cents.get(user) ?? 0) + amount); }
  of(user: string): number { return this.cents.get(user) ?? 0; }
}

/** Every member asks for their balance; returns "user: has X, expected Y" for each that differs. */
export async function balanceMismatches(members: readonly Member[], expected: Expected): Promise<string[]> {
  const wrong: string[] = [];
  await Promise.all(members.map(async (m) => {
    const cents = (await m.client.req('wallet.balance', {})).balances[0]!.cents;
    if (cents !== expected.of(m.user)) wrong.push(`${m.user}: has ${cents}, expected ${expected.of(m.user)}`);
  }));
  return wrong.sort();
}
