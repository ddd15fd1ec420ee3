// The Engine across the Bus: gateways hold a BusEngine, workers run serveEngine() around a real
// engine. Calls and replies are msgpack frames (the protocol codec); errors travel as their
// LanternError name so the gateway answers the client exactly as an in-process engine would.
// Routing (docs/decisions/0006): conversation requests to the partition subject of their
// conversation, everything else to the shared worker subject.
import { createHash } from 'node:crypto';
import { decodeFrame, encodeFrame } from '../protocol/codec.ts';
import { ErrorCodes, LanternError, type ErrorName } from '../protocol/errors.ts';
import type { AdminRequestMap, RequestParams, RequestResult, RequestType } from '../protocol/frames.ts';
import { DEFAULT_FRAME_LIMITS, type FrameLimits } from '../protocol/limits.ts';
import type { DeviceSession, Engine } from './api.ts';
import { directConversationId } from './conversations.ts';
import { inlineReplyEncoder, type ReplyEncoder } from './reply-encoder.ts';
import { BusNoRespondersError, BusTimeoutError, StoreUnavailableError, type Bus, type BusSubscription, type Logger, silentLogger } from './ports.ts';

export const USER_SUBJECT = 'lantern.user';
export const WORKER_QUEUE = 'workers';
export const conversationSubject = (partition: number): string => `lantern.conv.${partition}`;

/** Requests naming another user whose direct conversation with the caller they concern: conv.direct
 *  creates it; a block or unblock changes whether it accepts sends, which its owner caches; every
 *  contact change of a pair reads then writes both edges, so one owner serializes them (Contacts). */
const DIRECT_REQUESTS: ReadonlySet<RequestType> = new Set<RequestType>([
  'conv.direct', 'contact.request', 'contact.accept', 'contact.remove', 'contact.block', 'contact.unblock', 'transfer.send',
]);

/** Requests served by the owner of the conversation's partition. */
const CONVERSATION_REQUESTS: ReadonlySet<RequestType> = new Set<RequestType>([
  'send', 'recall', 'history', 'read', 'receipts', 'typing', 'conv.info',
  'group.add', 'group.remove', 'group.leave', 'group.role', 'envelope.send', ...DIRECT_REQUESTS,
]);

/** Internal calls that are not client requests. */
type Internal = '$connected' | '$disconnected' | '$epoch' | '$refresh' | '$groups' | '$admin';

/** Bus frames are worker-to-gateway traffic (sync pages, member lists): far larger than client frames. */
const BUS_LIMITS: FrameLimits = Object.freeze({
  ...DEFAULT_FRAME_LIMITS, maxFrameBytes: 16 * 1024 * 1024, maxDepth: 16, maxStringLength: 1024 * 1024,
  maxArrayLength: 100_000, maxMapKeys: 100_000, maxBinaryBytes: 1024 * 1024,
});

export function partitionOf(conv: string, partitions: number): number {
  // A stable hash every process agrees on (not JS's per-process string hashing).
  return createHash('sha1').update(conv).digest().readUInt32BE(0) % partitions;
}

/** Which subject a request goes to. */
export function subjectFor(type: RequestType | Internal, params: Record<string, unknown>, who: DeviceSession, partitions: number): string {
  // A sale's card is a message in its conversation: created by that conversation's writer.
  if (type === '$admin' && params['type'] === 'sale.create') {
    return conversationSubject(partitionOf(String((params['params'] as Record<string, unknown> | undefined)?.['conv']), partitions));
  }
  if (!CONVERSATION_REQUESTS.has(type as RequestType)) return USER_SUBJECT;
  const conv = DIRECT_REQUESTS.has(type as RequestType) ? directConversationId(who.user, String(params['user'])) : String(params['conv']);
  return conversationSubject(partitionOf(conv, partitions));
}

interface Call { who: DeviceSession; t: string; p: Record<string, unknown> }
type Reply = { ok: unknown } | { error: string; msg: string; field?: string; retryAfterMs?: number };

export interface BusEngineOptions {
  partitions: number;
  /** How long a request may take before the gateway answers `timeout` (outcome unknown). */
  requestTimeoutMs: number;
}

export class BusEngine implements Engine {
  private constructor(private readonly bus: Bus, private readonly options: BusEngineOptions, readonly epoch: string) {}

  /**
   * Connect to the workers and learn the store epoch (sent in every welcome). Gateways may start
   * before any worker serves: keep asking until `waitForWorkersMs` passes (readyz says 503 meanwhile).
   */
  static async connect(bus: Bus, options: BusEngineOptions & { waitForWorkersMs?: number }): Promise<BusEngine> {
    const probe = new BusEngine(bus, options, '');
    const deadline = Date.now() + (options.waitForWorkersMs ?? 60_000);
    for (;;) {
      try {
        const epoch = await probe.call('$epoch', {}, { user: '', device: '', session: '' }) as string;
        return new BusEngine(bus, options, epoch);
      } catch (err) {
        const retryable = err instanceof LanternError && (err.error === 'unavailable' || err.error === 'timeout');
        if (!retryable || Date.now() > deadline) throw err;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
  }

  request<T extends RequestType>(who: DeviceSession, type: T, params: RequestParams<T>): Promise<RequestResult<T>> {
    return this.call(type, params as Record<string, unknown>, who) as Promise<RequestResult<T>>;
  }

  async connected(who: DeviceSession): Promise<void> { await this.call('$connected', {}, who); }
  async disconnected(who: DeviceSession): Promise<void> { await this.call('$disconnected', {}, who); }
  async refresh(sessions: readonly DeviceSession[]): Promise<void> {
    await this.call('$refresh', { sessions: sessions.map(({ user, device, session }) => ({ user, device, session })) }, { user: '', device: '', session: '' });
  }
  async groups(user: string): Promise<string[]> {
    return await this.call('$groups', { user }, { user: '', device: '', session: '' }) as string[];
  }
  admin<T extends keyof AdminRequestMap>(type: T, params: AdminRequestMap[T]['params']): Promise<AdminRequestMap[T]['result']> {
    return this.call('$admin', { type, params }, { user: '', device: '', session: '' }) as Promise<AdminRequestMap[T]['result']>;
  }
  async close(): Promise<void> {}

  private async call(t: RequestType | Internal, p: Record<string, unknown>, who: DeviceSession): Promise<unknown> {
    const subject = subjectFor(t, p, who, this.options.partitions);
    let raw: Uint8Array;
    try {
      raw = await this.bus.request(subject, encodeFrame({ who, t, p } satisfies Call), { timeoutMs: this.options.requestTimeoutMs });
    } catch (err) {
      if (err instanceof BusNoRespondersError) throw new LanternError('unavailable', 'no engine worker is serving this request right now; retry', { cause: err });
      if (err instanceof BusTimeoutError) throw new LanternError('timeout', 'the engine did not answer in time; retry with the same cid to learn the outcome', { cause: err });
      throw new LanternError('unavailable', 'the message bus is unavailable; retry', { cause: err });
    }
    const reply = decodeFrame(raw, BUS_LIMITS) as Reply;
    if ('ok' in reply) return reply.ok;
    const name: ErrorName = Object.hasOwn(ErrorCodes, reply.error) ? reply.error as ErrorName : 'internal';
    throw new LanternError(name, reply.msg, {
      ...(reply.field === undefined ? {} : { field: reply.field }),
      ...(reply.retryAfterMs === undefined ? {} : { retryAfterMs: reply.retryAfterMs }),
    });
  }
}

/**
 * Serve an engine on the bus. `subjects` are what this worker answers: the shared user subject,
 * and each partition subject while it holds that partition's lease (engine/partition-leases.ts).
 */
export function serveEngine(
  bus: Bus, engine: Engine, subjects: readonly string[], log: Logger = silentLogger, encoder: ReplyEncoder = inlineReplyEncoder,
): BusSubscription {
  const handle = async (data: Uint8Array): Promise<Uint8Array> => {
    let reply: Reply;
    try {
      const call = decodeFrame(data, BUS_LIMITS) as unknown as Call;
      reply = { ok: await dispatch(engine, call) };
    } catch (err) {
      if (err instanceof LanternError) {
        reply = { error: err.error, msg: err.message };
        if (err.field !== undefined) reply.field = err.field;
        if (err.retryAfterMs !== undefined) reply.retryAfterMs = err.retryAfterMs;
      } else if (err instanceof StoreUnavailableError) {
        // Storage down or overloaded (e.g. a read that loads conversation state before a send):
        // nothing was stored, so the client may retry as is. `internal` would hide that.
        log.warn({ err }, 'engine request failed: storage unavailable');
        reply = { error: 'unavailable', msg: `storage unavailable; retry: ${err.message}` };
      } else {
        log.error({ err }, 'engine request failed');
        reply = { error: 'internal', msg: 'internal server error; the request may be retried' };
      }
    }
    return encoder.encode(reply);
  };
  const subs = subjects.map((s) => bus.serve(s, handle, { queue: WORKER_QUEUE }));
  return { unsubscribe: () => { for (const s of subs) s.unsubscribe(); } };
}

async function dispatch(engine: Engine, call: Call): Promise<unknown> {
  switch (call.t) {
    case '$epoch': return engine.epoch;
    case '$connected': await engine.connected(call.who); return null;
    case '$disconnected': await engine.disconnected(call.who); return null;
    case '$refresh': await engine.refresh?.(call.p['sessions'] as DeviceSession[]); return null;
    case '$groups': return engine.groups ? engine.groups(String(call.p['user'])) : [];
    case '$admin': {
      if (!engine.admin) throw new LanternError('not_found', 'this worker has no admin requests');
      return engine.admin(call.p['type'] as keyof AdminRequestMap, call.p['params'] as never);
    }
    default: return engine.request(call.who, call.t as RequestType, call.p as never);
  }
}
