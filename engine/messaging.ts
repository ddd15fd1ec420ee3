// Sending, recalling, reading and paging messages in a conversation.
import { LanternError } from '../protocol/errors.ts';
import type { EnvelopeBody, Message, MessageKind, RequestParams, RequestResult, SaleBody, SystemBody, TransferBody } from '../protocol/frames.ts';
import type { DeviceSession, EngineSettings } from './api.ts';
import type { ConversationCache, ConversationState } from './conversation-state.ts';
import type { ConversationWriter, Operation } from './conversation-writer.ts';
import { validateBody } from './message-body.ts';
import type { ChatStore, Clock, Delivery, Logger, RateLimiter } from './ports.ts';

type SendResult = RequestResult<'send'>;
/** What identifies a message being sent: its conversation, client id and kind. */
interface Outgoing { conv: string; cid: string; kind: MessageKind }

export function systemMessage(conv: string, seq: number, ts: number, body: SystemBody): Message {
  return { conv, seq, from: body.by, dev: '', cid: '', kind: 'system', body, ts };
}

/**
 * The per-user send limit: all of a user's devices, on every gateway, share one bucket. If the
 * limiter cannot be reached the send goes through (logged): chat stays up when Redis is down,
 * and each connection is still held to its own frame rate by the gateway.
 */
export class SendLimit {
  private lastWarning = 0;
  /** `what` names what is limited, in the error (`messages`, `purchase attempts`). */
  constructor(private readonly limiter: RateLimiter, private readonly log: Logger, private readonly clock: Clock, private readonly what = 'messages') {}

  async check(user: string): Promise<void> {
    let wait: number;
    try {
      wait = await this.limiter.take(user);
    } catch (err) {
      const now = this.clock.now();
      if (now - this.lastWarning > 10_000) {
        this.lastWarning = now;
        this.log.warn({ err, what: this.what }, 'per-user limit unavailable: not limited per user until it returns');
      }
      return;
    }
    if (wait > 0) {
      throw new LanternError('rate_limited', `more than ${this.limiter.ratePerSec} ${this.what}/s from this user (burst ${this.limiter.burst})`, { retryAfterMs: wait });
    }
  }
}

export class Messaging {
  /** Sends being committed, by (conv, from, cid): a retry joins the first attempt instead of racing it. */
  private readonly inflight = new Map<string, Promise<SendResult>>();
  /** Per (conv, session): settles when that connection's latest send reached the writer or gave up. */
  private readonly turns = new Map<string, Promise<void>>();

  constructor(
    private readonly store: ChatStore,
    private readonly cache: ConversationCache,
    private readonly writer: ConversationWriter,
    private readonly delivery: Delivery,
    private readonly settings: EngineSettings,
    private readonly clock: Clock,
    private readonly sendLimit: SendLimit | undefined,
  ) {}

  async send(who: DeviceSession, p: RequestParams<'send'>): Promise<SendResult> {
    const body = validateBody(p.kind, p.body as unknown as Record<string, unknown>, this.settings);
    return this.submit(who, { conv: p.conv, cid: p.cid, kind: p.kind }, body);
  }

  /**
   * Post a server-built card (a red envelope, a transfer, a sale) as `who`'s message: the same path as a
   * send (membership, block check, per-user limit, idempotent by cid), with a body the engine made.
   */
  postCard(who: DeviceSession, conv: string, cid: string, kind: 'envelope' | 'transfer' | 'sale', body: EnvelopeBody | TransferBody | SaleBody): Promise<SendResult> {
    return this.submit(who, { conv, cid, kind }, body);
  }

  private submit(who: DeviceSession, p: Outgoing, body: Message['body']): Promise<SendResult> {
    const key = `${p.conv}\u0000${who.user}\u0000${p.cid}`;
    const running = this.inflight.get(key);
    if (running) return running.then((r) => ({ ...r, dup: true }));
    // A connection's sends are sequenced in the order they arrived (PROTOCOL.md), but the reads
    // before the writer (cache load, duplicate check, block check, rate limit) may finish out of
    // order on a remote store. So each send queues on the writer only after its predecessor from
    // the same connection did, and one that stops early passes its turn on in order too.
    const orderKey = `${p.conv}\u0000${who.session}`;
    const previous = this.turns.get(orderKey) ?? Promise.resolve();
    let pass!: () => void;
    const turn = new Promise<void>((resolve) => { pass = resolve; });
    this.turns.set(orderKey, turn);
    let passed = false;
    const passOn = (): void => {
      if (passed) return;
      passed = true;
      void previous.then(() => {
        pass();
        if (this.turns.get(orderKey) === turn) this.turns.delete(orderKey);
      });
    };
    const attempt = this.sendOnce(who, p, body, previous, passOn).finally(() => {
      passOn();
      this.inflight.delete(key);
    });
    this.inflight.set(key, attempt);
    return attempt;
  }

  private async sendOnce(
    who: DeviceSession, p: Outgoing, body: Message['body'], previous: Promise<void>, queued: () => void,
  ): Promise<SendResult> {
    const state = await this.cache.require(p.conv);
    state.requireMember(who.user);
    const seen = await this.store.findByClientId(p.conv, who.user, p.cid);
    if (seen !== undefined) {
      const m = await this.store.getMessage(p.conv, seen);
      return { conv: p.conv, seq: seen, ts: m?.ts ?? 0, dup: true };
    }
    if (state.meta.type === 'direct') await this.checkNotBlocked(state, who.user);
    // After the duplicate check: an outbox resending what was already committed is never limited.
    await this.sendLimit?.check(who.user);
    const op: Operation = {
      changesMembers: false,
      build(s, seq, ts) {
        s.requireMember(who.user);
        const m: Message = { conv: p.conv, seq, from: who.user, dev: who.device, cid: p.cid, kind: p.kind, ts };
        if (body !== undefined) m.body = body;
        return { messages: [m] };
      },
    };
    await previous;
    const submitted = this.writer.submit(state, op);
    queued();
    const change = await submitted;
    const m = change.messages[0]!;
    return { conv: p.conv, seq: m.seq, ts: m.ts, dup: false };
  }

  /** The conversation, if `who` may post in it now (member; in a direct conversation, neither side blocked). */
  async requirePostable(who: DeviceSession, conv: string): Promise<ConversationState> {
    const state = await this.cache.require(conv);
    state.requireMember(who.user);
    if (state.meta.type === 'direct') await this.checkNotBlocked(state, who.user);
    return state;
  }

  private async checkNotBlocked(state: ConversationState, user: string): Promise<void> {
    if (state.blocked === undefined) {
      const [a, b] = state.memberIds;
      if (a === undefined || b === undefined) return;
      const generation = state.blockGeneration;
      const [ab, ba] = await Promise.all([this.store.getContact(a, b), this.store.getContact(b, a)]);
      const blocked = ab?.state === 'blocked' || ba?.state === 'blocked';
      if (state.blockGeneration === generation) state.blocked = blocked;
      if (blocked) throw new LanternError('blocked', `one side of this direct conversation has blocked the other (${user})`);
      return;
    }
    if (state.blocked) throw new LanternError('blocked', `one side of this direct conversation has blocked the other (${user})`);
  }

  async recall(who: DeviceSession, p: RequestParams<'recall'>): Promise<RequestResult<'recall'>> {
    const state = await this.cache.require(p.conv);
    const member = state.requireMember(who.user);
    if (p.seq <= member.joined || p.seq > state.head) throw new LanternError('not_found', `no message ${p.seq} in ${p.conv}`, { field: 'seq' });
    const target = await this.store.getMessage(p.conv, p.seq);
    if (!target) throw new LanternError('not_found', `no message ${p.seq} in ${p.conv}`, { field: 'seq' });
    if (target.kind === 'system') throw new LanternError('conflict', 'system notices cannot be recalled', { field: 'seq' });
    if (target.from !== who.user) throw new LanternError('forbidden', 'only the sender may recall a message', { field: 'seq' });
    if (this.clock.now() - target.ts > this.settings.recallWindowMs) {
      throw new LanternError('recall_window_passed', `messages can be recalled within ${this.settings.recallWindowMs} ms of sending`);
    }
    if (target.recalled) return { conv: p.conv, seq: p.seq };
    const change = await this.writer.submit(state, {
      changesMembers: false,
      build: (s, seq, ts) => {
        s.requireMember(who.user);
        return { messages: [systemMessage(p.conv, seq, ts, { event: 'recalled', by: who.user, seq: p.seq })], recall: [p.seq] };
      },
    });
    return { conv: p.conv, seq: change.messages[0]!.seq };
  }

  async history(who: DeviceSession, p: RequestParams<'history'>): Promise<RequestResult<'history'>> {
    const state = await this.cache.require(p.conv);
    const member = state.requireMember(who.user);
    const limit = Math.min(p.limit ?? this.settings.historyPageDefault, this.settings.historyPageMax);
    const before = Math.min(p.before ?? state.head + 1, state.head + 1);
    if (before <= member.joined + 1) return { msgs: [], more: false };
    const msgs = (await this.store.readBefore(p.conv, before, limit)).filter((m) => m.seq > member.joined);
    const first = msgs[0];
    return { msgs, more: first !== undefined && first.seq > member.joined + 1 };
  }

  async read(who: DeviceSession, p: RequestParams<'read'>): Promise<RequestResult<'read'>> {
    const state = await this.cache.require(p.conv);
    state.requireMember(who.user);
    const target = Math.min(p.seq, state.head);
    const before = await this.store.getReadCursor(p.conv, who.user);
    if (target <= before) return { conv: p.conv, read: before };
    const read = await this.store.advanceReadCursor(p.conv, who.user, target);
    if (read > before) this.delivery.toConversation(p.conv, { t: 'receipt', conv: p.conv, user: who.user, seq: read }, state.audience());
    return { conv: p.conv, read };
  }

  async receipts(who: DeviceSession, p: RequestParams<'receipts'>): Promise<RequestResult<'receipts'>> {
    const state = await this.cache.require(p.conv);
    state.requireMember(who.user);
    const all = await this.store.getReadCursors(p.conv);
    const reads: Record<string, number> = {};
    for (const [user, seq] of Object.entries(all)) if (state.members.has(user)) reads[user] = seq;
    return { conv: p.conv, reads };
  }

  async typing(who: DeviceSession, p: RequestParams<'typing'>): Promise<RequestResult<'typing'>> {
    const state = await this.cache.require(p.conv);
    state.requireMember(who.user);
    if (state.memberIds.length > 1) this.delivery.toConversation(p.conv, { t: 'typing', conv: p.conv, user: who.user, on: p.on }, state.audience({ except: who.user }));
    return {};
  }
}
