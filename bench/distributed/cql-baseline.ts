// The storage ceilings of the distributed mode, measured with cassandra-driver on the same
// Cassandra in the same run, in a keyspace of their own with Lantern's schema and statements:
//   cql-insert       prepared INSERTs of message-sized rows into `messages` (LOCAL_QUORUM),
//                    `concurrency` in flight: the raw write rate.
//   cql-lwt          the commit's compare-and-set, `UPDATE conversations ... IF version = ?`
//                    (LOCAL_SERIAL Paxos), on `concurrency` conversations with one in flight each,
//                    as a single writer per conversation does: the ceiling of the commit point.
//   cql-store-commit CqlChatStore.commit of one text message (read row, LWT, message batch +
//                    client id), same lanes: the whole store commit path, without engine, bus or gateway.
import { randomBytes } from 'node:crypto';
import cassandra from 'cassandra-driver';
import type { Client } from 'cassandra-driver';
import type { Message } from '../../protocol/frames.ts';
import { CqlChatStore } from '../../storage/cql/chat-store.ts';
import { createCqlClient } from '../../storage/cql/client.ts';
import { migrate } from '../../storage/cql/schema.ts';
import { Statements } from '../../storage/cql/statements.ts';
import { LatencyHistogram } from '../loadgen/histogram.ts';
import { makeStamper } from '../loadgen/payload.ts';
import type { Endpoints } from './infra.ts';
import { coresBetween, perUnit, pidListeningOn, sampleCpu, type CoresUsed } from './proc-cpu.ts';

const { consistencies } = cassandra.types;
const MAX_ERROR_SAMPLES = 5;

export interface CqlBaselineOptions {
  endpoints: Endpoints;
  /** Operations in flight (insert) / conversations written concurrently (lwt, commit). */
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  /** Filler bytes after the timestamp in each message body (as in the chat load). */
  payloadBytes: number;
}

export interface CqlPhaseFigures {
  what: string;
  concurrency: number;
  consistency: string;
  opsPerSec: number;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
  ops: number;
  errors: number;
  errorSamples: string[];
  /** Cores of this process (the driver) and of the Cassandra server over the phase, and CPU µs per operation. */
  cpu: CoresUsed & { usPerOp: Record<string, number> | null };
}

type Op = (lane: number) => Promise<void>;

/** Runs `concurrency` lanes of `op` back to back for warm-up + duration; counts ops started in the window. */
async function drive(o: CqlBaselineOptions, cassandraPid: number | undefined, what: string, consistency: string, op: Op): Promise<CqlPhaseFigures> {
  const latency = new LatencyHistogram();
  const errorSamples: string[] = [];
  let ops = 0, errors = 0;
  const start = performance.now();
  const windowStart = start + o.warmupMs, windowEnd = windowStart + o.durationMs;
  const groups = { driver: [process.pid], cassandra: cassandraPid === undefined ? [] : [cassandraPid] };
  let before = sampleCpu(groups);
  let sampledAtWindow = false;
  const lane = async (i: number): Promise<void> => {
    for (let t0 = performance.now(); t0 < windowEnd; t0 = performance.now()) {
      if (!sampledAtWindow && t0 >= windowStart) { sampledAtWindow = true; before = sampleCpu(groups); }
      try {
        await op(i);
        if (t0 >= windowStart) { ops++; latency.record(performance.now() - t0); }
      } catch (err) {
        errors++;
        if (errorSamples.length < MAX_ERROR_SAMPLES) errorSamples.push((err as Error).message);
      }
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, (_, i) => lane(i)));
  const cores = coresBetween(before, sampleCpu(groups));
  const ms = (v: number): number | null => (Number.isFinite(v) ? Math.round(v * 1000) / 1000 : null);
  const opsPerSec = Math.round((ops * 1000) / o.durationMs);
  const cpu = { ...cores, usPerOp: perUnit(cores, opsPerSec) };
  return {
    what, concurrency: o.concurrency, consistency,
    opsPerSec,
    p50Ms: ms(latency.percentile(50)), p99Ms: ms(latency.percentile(99)), maxMs: ms(latency.maxMs),
    ops, errors, errorSamples, cpu,
  };
}

function textMessage(conv: string, seq: number, text: string): Message {
  return { conv, seq, from: 'u1', dev: 'bench', cid: `c${seq}`, kind: 'text', body: { text }, ts: Date.now() };
}

/** Runs the three phases in a keyspace of their own (dropped at the end); a phase that fails is reported as { error }. */
export async function runCqlBaselines(o: CqlBaselineOptions): Promise<Record<string, CqlPhaseFigures | { error: string }>> {
  const keyspace = `lantern_bench_raw_${randomBytes(4).toString('hex')}`;
  const cassandraPort = Number(o.endpoints.cassandra.contactPoints[0]!.split(':')[1] ?? 9042);
  const cassandraPid = pidListeningOn(cassandraPort);
  const client: Client = createCqlClient({ contactPoints: o.endpoints.cassandra.contactPoints, localDataCenter: o.endpoints.cassandra.localDataCenter });
  const results: Record<string, CqlPhaseFigures | { error: string }> = {};
  const stamp = makeStamper(o.payloadBytes);
  const attempt = async (name: string, run: () => Promise<CqlPhaseFigures>): Promise<void> => {
    console.error(`bench: ${name} ...`);
    try {
      results[name] = await run();
    } catch (err) {
      console.error(`bench: ${name} failed:`, err);
      results[name] = { error: err instanceof Error ? err.message : String(err) };
    }
  };
  try {
    await client.connect();
    await migrate(client, keyspace, { replication: "{'class': 'SimpleStrategy', 'replication_factor': 1}" });
    const q = new Statements(keyspace);
    // As the store executes them: prepared, LOCAL_QUORUM, LOCAL_SERIAL for Paxos.
    const write = { prepare: true, isIdempotent: true, consistency: consistencies.localQuorum };
    const paxos = { prepare: true, isIdempotent: false, consistency: consistencies.localQuorum, serialConsistency: consistencies.localSerial };

    await attempt('cql-insert', async () => {
      const seqs = new Array<number>(o.concurrency).fill(0);
      return drive(o, cassandraPid, 'prepared INSERT INTO messages (one row, body as the chat text)', 'LOCAL_QUORUM', async (lane) => {
        const seq = ++seqs[lane]!;
        const m = textMessage(`raw-insert-${lane}`, seq, stamp(Date.now()));
        await client.execute(q.messageInsert, [m.conv, 0, seq, m.from, m.dev, m.cid, m.kind, JSON.stringify(m.body), m.ts, false, Date.now() * 1000], write);
      });
    });

    await attempt('cql-lwt', async () => {
      const versions = new Array<number>(o.concurrency).fill(1);
      await Promise.all(versions.map((_, lane) => client.execute(q.createInsert,
        [`raw-lwt-${lane}`, 'direct', '', 'e', 'u1', Date.now(), 0, 2, 1, null], paxos)));
      return drive(o, cassandraPid, 'UPDATE conversations SET head, member_count, version, pending IF version = ? (one in flight per conversation)', 'LOCAL_QUORUM / LOCAL_SERIAL', async (lane) => {
        const v = versions[lane]!;
        const rs = await client.execute(q.commitUpdate, [v, 2, v + 1, null, `raw-lwt-${lane}`, v], paxos);
        if (!rs.wasApplied()) throw new Error(`raw-lwt-${lane}: LWT not applied at version ${v}`);
        versions[lane] = v + 1;
      });
    });

    await attempt('cql-store-commit', async () => {
      const store = await CqlChatStore.open({ client, keyspace });
      const heads = new Array<number>(o.concurrency).fill(0);
      const now = Date.now();
      await Promise.all(heads.map((_, lane) => store.commit({
        conv: `raw-commit-${lane}`, expectHead: 0, messages: [],
        create: { id: `raw-commit-${lane}`, type: 'direct', title: '', epoch: 'e', createdBy: 'u1', createdAt: now },
        putMembers: [{ conv: `raw-commit-${lane}`, user: 'u1', role: 'member', joined: 0 }, { conv: `raw-commit-${lane}`, user: 'u2', role: 'member', joined: 0 }],
      })));
      return drive(o, cassandraPid, 'CqlChatStore.commit of one text message (row read, LWT, message batch + client id)', 'LOCAL_QUORUM / LOCAL_SERIAL', async (lane) => {
        const head = heads[lane]!;
        const conv = `raw-commit-${lane}`;
        await store.commit({ conv, expectHead: head, messages: [textMessage(conv, head + 1, stamp(Date.now()))] });
        heads[lane] = head + 1;
      });
    });
  } finally {
    try {
      await client.execute(`DROP KEYSPACE IF EXISTS ${keyspace}`);
    } finally {
      await client.shutdown();
    }
  }
  return results;
}
