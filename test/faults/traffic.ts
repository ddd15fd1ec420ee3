// Traffic and checks shared by the fault tests: SDK devices (the real client, whose outbox and
// resync are what users rely on), senders that enqueue numbered messages at a steady pace while
// a fault happens, and the check a user would make afterwards: every acked message exactly once,
// in the same gapless order on every device and in history.
import type { Test } from 'tap';
import { WebSocket } from 'ws';
import { LanternClient, LanternClientError, type ClientErrorEvent, type Message, type SendResult } from '../../sdk/index.ts';
import { randomBytes } from 'node:crypto';
import { sharedCassandra, startNats, startRedis, type CassandraEndpoint, type TestService } from '../support/infra.ts';
import { freshKeyspace, ProcessCluster, until, type ClusterSettings } from '../support/processes.ts';
import { mintToken } from '../support/wire-client.ts';

export interface DeviceSpec {
  user: string;
  device: string;
  /** Gateway URLs in the order the client tries them. */
  urls: string[];
}

/** One user device: an SDK client and everything it reported. */
export class TestDevice {
  readonly client: LanternClient;
  readonly messages: Message[] = [];
  readonly errors: ClientErrorEvent[] = [];
  welcomes = 0;
  readonly name: string;

  constructor(readonly spec: DeviceSpec, secret: string) {
    this.name = `${spec.user}/${spec.device}`;
    this.client = new LanternClient({
      url: spec.urls,
      token: () => mintToken(secret, spec.user),
      device: spec.device,
      WebSocket,
      // Quick returns: the tests wait for recovery, not for a production backoff ceiling.
      backoff: { initialMs: 100, maxMs: 1000 },
      requestTimeoutMs: 5000,
      heartbeatMs: 5000,
    });
    this.client.on('message', (m) => this.messages.push(m));
    this.client.on('error', (e) => this.errors.push(e));
    this.client.on('connected', () => { this.welcomes++; });
  }

  received(conv: string): Message[] {
    return this.messages.filter((m) => m.conv === conv);
  }
}

export async function connectAll(devices: readonly TestDevice[]): Promise<void> {
  await Promise.all(devices.map((d) => d.client.connect()));
}

/**
 * A setup request retried while it gets a retryable answer (workers still sharing out the
 * partitions answer `unavailable`), as an app would; anything else fails at once.
 */
export async function retrying<T>(fn: () => Promise<T>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof LanternClientError && err.retry) || Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

interface SendRecord { sender: string; from: string; index: number; cid: string; ack?: SendResult; error?: Error }

/** Senders enqueueing numbered messages into one conversation at a steady pace. */
export class Traffic {
  readonly records: SendRecord[] = [];
  /** Resolves once every sender has enqueued all its messages (not when they are acked). */
  readonly enqueued: Promise<void>;
  readonly total: number;

  constructor(readonly conv: string, senders: readonly TestDevice[], opts: { count: number; intervalMs: number; tag: string }) {
    this.total = senders.length * opts.count;
    this.enqueued = Promise.all(senders.map((s) => this.run(s, opts))).then(() => undefined);
  }

  get acked(): number { return this.records.filter((r) => r.ack !== undefined).length; }
  get failed(): SendRecord[] { return this.records.filter((r) => r.error !== undefined); }

  private async run(sender: TestDevice, { count, intervalMs, tag }: { count: number; intervalMs: number; tag: string }): Promise<void> {
    for (let index = 0; index < count; index++) {
      const record: SendRecord = { sender: sender.name, from: sender.spec.user, index, cid: `${tag}-${sender.spec.device}-${index}` };
      this.records.push(record);
      sender.client.sendText(this.conv, `${sender.name} #${index}`, { cid: record.cid }).then(
        (ack) => { record.ack = ack; },
        (error: unknown) => { record.error = error as Error; },
      );
      // Pacing, not synchronisation: a steady stream of sends while the fault happens.
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  }
}

const key = (m: Pick<Message, 'seq' | 'from' | 'cid'>): string => `${m.seq}:${m.from}:${m.cid}`;

/** Every page of history, oldest first. */
export async function fullHistory(device: TestDevice, conv: string): Promise<Message[]> {
  const out: Message[] = [];
  let before: number | undefined;
  for (;;) {
    const page = await retrying(() => device.client.history(conv, { limit: 200, ...(before === undefined ? {} : { before }) }));
    out.push(...page.msgs);
    if (!page.more || page.msgs.length === 0) break;
    before = Math.min(...page.msgs.map((m) => m.seq));
  }
  return out.sort((a, b) => a.seq - b.seq);
}

/**
 * What users would check after the fault: every send was acked (none lost or refused); every acked
 * message is on every member device exactly once, at its acked seq; seqs are gapless and in the
 * same order everywhere; each sender's messages keep their send order; history agrees.
 */
export async function checkExactlyOnce(t: Test, traffic: Traffic, devices: readonly TestDevice[], settleMs = 30_000): Promise<void> {
  const { conv } = traffic;
  await traffic.enqueued;
  t.equal(traffic.records.length, traffic.total, `${traffic.total} sends enqueued`);
  await until(() => traffic.records.every((r) => r.ack !== undefined || r.error !== undefined), 'every send to settle', settleMs, 100)
    .catch((err: Error) => { throw new Error(`${err.message}; still pending: ${traffic.records.filter((r) => !r.ack && !r.error).length}`); });
  t.same(traffic.failed.map((r) => `${r.cid}: ${r.error!.message}`), [], 'no send was refused or lost');
  const acks = traffic.records.filter((r) => r.ack !== undefined);
  t.equal(acks.length, traffic.records.length, `all ${traffic.records.length} sends acked`);
  const head = Math.max(...acks.map((r) => r.ack!.seq));

  // Live events and gap syncs bring every device up to the head without any manual resync.
  await until(() => devices.every((d) => (d.client.cursor(conv) ?? 0) >= head), `every device to reach seq ${head}`, settleMs, 100)
    .catch((err: Error) => { throw new Error(`${err.message}: ${devices.map((d) => `${d.name}=${d.client.cursor(conv)}`).join(', ')}`); });

  let reference: string[] | undefined;
  for (const d of devices) {
    const got = d.received(conv);
    t.same(got.map((m) => m.seq), Array.from({ length: head }, (_, i) => i + 1), `${d.name}: seqs 1..${head}, gapless, each once`);
    const bySenderCid = new Map<string, Message[]>();
    for (const m of got) bySenderCid.set(`${m.from}/${m.cid}`, [...(bySenderCid.get(`${m.from}/${m.cid}`) ?? []), m]);
    const wrong = acks.filter((r) => {
      const seen = bySenderCid.get(`${r.from}/${r.cid}`) ?? [];
      return seen.length !== 1 || seen[0]!.seq !== r.ack!.seq;
    });
    t.same(wrong.map((r) => `${r.cid} acked as seq ${r.ack!.seq}, seen ${(bySenderCid.get(`${r.from}/${r.cid}`) ?? []).map((m) => m.seq).join('+') || 'never'}`), [],
      `${d.name}: every acked message exactly once, at its acked seq`);
    const order = got.map(key);
    if (reference === undefined) reference = order;
    else t.same(order, reference, `${d.name}: same order as ${devices[0]!.name}`);
  }

  const bySender = new Map<string, number[]>();
  for (const r of acks) bySender.set(r.sender, [...(bySender.get(r.sender) ?? []), r.ack!.seq]);
  for (const [sender, seqs] of bySender) {
    t.ok(seqs.every((s, i) => i === 0 || s > seqs[i - 1]!), `${sender}: messages stored in the order they were sent`);
  }

  const history = await fullHistory(devices[0]!, conv);
  t.same(history.map(key), reference, 'history agrees with what the devices received');
}

/** What every fault test stands on: private nats-server and redis-server, the shared Cassandra
 *  with a fresh keyspace, a process cluster, and the devices to close at the end. */
export interface FaultStage {
  nats: TestService;
  redis: TestService;
  cluster: ProcessCluster;
  secret: string;
  devices: TestDevice[];
  /** Where the cluster's data is: for tests that read the stores directly (the audit). */
  cassandra: CassandraEndpoint;
  keyspace: string;
}

/** Starts the infrastructure for `t` (no processes yet) and tears it all down after it, devices first. */
export async function startFaultStage(t: Test, settings: Omit<ClusterSettings, 'natsUrl' | 'redisUrl' | 'cassandra' | 'keyspace' | 'jwtSecret'> = {}): Promise<FaultStage> {
  const nats = await startNats();
  const redis = await startRedis();
  const cassandra = await sharedCassandra();
  const ks = await freshKeyspace(cassandra);
  const secret = randomBytes(24).toString('base64url');
  const cluster = new ProcessCluster({ ...settings, natsUrl: nats.url, redisUrl: redis.url, cassandra, keyspace: ks.keyspace, jwtSecret: secret });
  const devices: TestDevice[] = [];
  t.teardown(async () => {
    await Promise.all(devices.map((d) => d.client.close()));
    await cluster.cleanup();
    await ks.drop();
    await nats.close();
    await redis.close();
  });
  t.teardown(() => cluster.reportIfFailed(t));
  return { nats, redis, cluster, secret, devices, cassandra, keyspace: ks.keyspace };
}
