// Red envelopes: sent as a card with the total debited into escrow (`env:<id>`) and the shares
// split up front; grabbed share by share (a GrabDecider hands out indices, the store's claim is
// the truth and is durable before the grabber hears of it); refunded at expiry.
import { LanternError } from '../../protocol/errors.ts';
import type { EnvelopeEvent, EnvelopeInfo, RequestParams, RequestResult } from '../../protocol/frames.ts';
import type { DeviceSession, EngineSettings } from '../api.ts';
import type { ConversationCache, ConversationState } from '../conversation-state.ts';
import type { Messaging } from '../messaging.ts';
import type { Clock, Delivery, Logger } from '../ports.ts';
import { currencyOf, derivedId, fingerprint, requireCents, requireText } from './money.ts';
import {
  EnvelopeClosedError, envelopeAccount, InsufficientFundsError, KeyReusedError, ShareTakenError, walletAccount,
  type Claim, type Envelope, type EnvelopeRecord, type GrabDecider, type WalletStore,
} from './ports.ts';
import { splitEnvelope, type RandomInt } from './split.ts';

export const envelopeTxnId = (id: string): string => `envelope:${id}`;
/** Envelopes are immutable once sent: kept in memory so a grab costs no read of them. */
const KNOWN_ENVELOPES = 10_000;
const MEMBER_SNAPSHOTS = 1_000;
/** Decide-claim rounds before giving up on a grab that keeps colliding (only after a decider rebuild). */
const GRAB_ATTEMPTS = 4;

export function envelopeInfo(record: EnvelopeRecord): EnvelopeInfo {
  const { envelope: e, claims, refunded } = record;
  const luckiest = claims.length === e.count ? luckiestOf(claims) : undefined;
  return {
    envelope: e.id, conv: e.conv, sender: e.sender, currency: e.currency, total: e.total, count: e.count,
    mode: e.mode, greeting: e.greeting, createdAt: e.createdAt, expiresAt: e.expiresAt,
    claims: claims.map(({ user, amount, ts }) => ({ user, amount, ts })),
    left: refunded === undefined ? e.count - claims.length : 0,
    ...(refunded === undefined ? {} : { refunded }),
    ...(luckiest === undefined ? {} : { luckiest }),
  };
}

/** The largest share's owner; the earliest claim wins a tie. */
function luckiestOf(claims: readonly Claim[]): string | undefined {
  let best: Claim | undefined;
  for (const c of claims) if (!best || c.amount > best.amount) best = c;
  return best?.user;
}

export class Envelopes {
  private readonly known = new Map<string, Envelope>();
  private readonly snapshots = new Map<string, { state: ConversationState; at: number }>();
  private readonly loadingSnapshots = new Map<string, Promise<ConversationState>>();
  private readonly loadingEnvelopes = new Map<string, Promise<Envelope>>();
  /** Claims of envelopes with every share claimed or refunded: they can no longer change. */
  private readonly finalClaims = new Map<string, Map<string, Claim>>();
  private readonly readingClaims = new Map<string, Promise<Map<string, Claim>>>();
  /** Grabs not yet announced, by envelope (see announceGrab). */
  private readonly unannounced = new Map<string, { envelope: Envelope; state: ConversationState; claims: Claim[]; timer?: NodeJS.Timeout }>();

  constructor(
    private readonly store: WalletStore,
    private readonly decider: GrabDecider,
    private readonly cache: ConversationCache,
    private readonly messaging: Messaging,
    private readonly delivery: Delivery,
    private readonly settings: EngineSettings,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly random?: RandomInt,
  ) {}

  async send(who: DeviceSession, p: RequestParams<'envelope.send'>): Promise<RequestResult<'envelope.send'>> {
    const { settings } = this;
    const currency = currencyOf(settings, p.currency);
    const total = requireCents(p.total, settings.envelopeMaxTotal, 'total', 'envelopeMaxTotal');
    if (!Number.isSafeInteger(p.count) || p.count < 1) throw new LanternError('invalid_field', 'count must be a positive integer', { field: 'count' });
    if (p.count > settings.envelopeMaxShares) throw new LanternError('too_large', `count ${p.count} is above envelopeMaxShares (${settings.envelopeMaxShares})`, { field: 'count' });
    if (total < p.count) throw new LanternError('invalid_field', `total ${total} cents cannot make ${p.count} shares of at least 1 cent`, { field: 'total' });
    if (p.mode !== 'lucky' && p.mode !== 'equal') throw new LanternError('invalid_field', 'mode must be lucky or equal', { field: 'mode' });
    const greeting = requireText(p.greeting, settings.envelopeMaxGreeting, 'greeting');

    const state = await this.messaging.requirePostable(who, p.conv);
    // In a direct conversation the envelope is for the other person: one share.
    const grabbers = state.meta.type === 'direct' ? 1 : state.memberIds.length;
    if (p.count > grabbers) throw new LanternError('invalid_field', `count ${p.count} is more than the ${grabbers} who can grab in ${p.conv}`, { field: 'count' });

    const id = derivedId('e', who.user, p.key);
    const now = this.clock.now();
    const proposed: Envelope = {
      id, conv: p.conv, sender: who.user, currency, total, count: p.count, mode: p.mode, greeting,
      shares: splitEnvelope(total, p.count, p.mode, this.random), createdAt: now, expiresAt: now + settings.envelopeExpiryMs,
    };
    let envelope: Envelope;
    try {
      ({ value: envelope } = await this.store.openEnvelope(proposed, {
        id: envelopeTxnId(id), kind: 'envelope', currency, ref: id, ts: now,
        postings: [{ account: walletAccount(who.user, currency), amount: -total }, { account: envelopeAccount(id), amount: total }],
        // The split is random and not part of the request: a retry gets the stored shares.
        fingerprint: fingerprint({ conv: p.conv, currency, total, count: p.count, mode: p.mode, greeting }),
      }));
    } catch (err) {
      if (err instanceof InsufficientFundsError) throw new LanternError('insufficient_funds', `the ${currency} wallet holds ${err.balance} cents; the envelope needs ${total}`, { field: 'total' });
      if (err instanceof KeyReusedError) throw new LanternError('key_reused', `key ${p.key} was used for a different envelope`, { field: 'key' });
      throw err;
    }
    this.remember(envelope);
    // Ready before the card goes out, so the first grabs do not all miss; a failure here only
    // means the first grab loads it.
    await this.decider.load(envelope, []).catch((err: unknown) => this.log.warn({ err, envelope: id }, 'grab decider load failed; the first grab will load it'));
    const card = await this.messaging.postCard(who, p.conv, id, 'envelope', {
      envelope: id, greeting, total, count: envelope.count, mode: envelope.mode, currency,
    });
    return { envelope: id, conv: p.conv, seq: card.seq, expiresAt: envelope.expiresAt };
  }

  async grab(who: DeviceSession, p: RequestParams<'envelope.grab'>): Promise<RequestResult<'envelope.grab'>> {
    const envelope = await this.envelope(p.envelope);
    const state = await this.conversation(envelope.conv);
    state.requireMember(who.user);
    if (state.meta.type === 'direct' && who.user === envelope.sender) {
      throw new LanternError('forbidden', 'the sender of a direct red envelope cannot grab it', { field: 'envelope' });
    }
    const answer = (outcome: RequestResult<'envelope.grab'>['outcome'], amount?: number): RequestResult<'envelope.grab'> =>
      ({ envelope: envelope.id, outcome, currency: envelope.currency, ...(amount === undefined ? {} : { amount }) });

    for (let attempt = 0; attempt < GRAB_ATTEMPTS; attempt++) {
      const decision = await this.decider.decide(envelope.id, who.user, this.clock.now());
      if (decision.outcome === 'unknown') {
        const record = await this.store.getEnvelope(envelope.id);
        if (!record) throw new LanternError('not_found', `no envelope ${envelope.id}`, { field: 'envelope' });
        const mine = record.claims.find((c) => c.user === who.user);
        if (mine) return answer('already', mine.amount);
        if (record.refunded !== undefined) return answer('expired');
        await this.decider.load(envelope, record.claims, { rebuild: true });
        continue;
      }
      if (decision.outcome !== 'share') {
        // A decider rebuilt from the store can miss a claim committed just after it read them:
        // someone told 'grabbed' must hear 'already' again, never 'empty'. The store is the truth.
        // Only a rebuilt decider can miss a claim, so only then does a 'no' cost a read.
        const mine = decision.rebuilt ? await this.claimOf(envelope, who.user) : undefined;
        return mine ? answer('already', mine.amount) : answer(decision.outcome);
      }
      try {
        const claimed = await this.store.claimShare(envelope.id, who.user, decision.index, this.clock.now());
        if (!claimed) throw new LanternError('not_found', `no envelope ${envelope.id}`, { field: 'envelope' });
        if (!claimed.applied) {
          // A claim the rebuilt decider missed: the decided index is free again, for someone else.
          if (claimed.value.index !== decision.index) {
            await this.decider.reassign(envelope.id, who.user, decision.index, claimed.value.index)
              .catch((err: unknown) => this.log.warn({ err, envelope: envelope.id }, 'grab decider reassign failed; the share waits for the expiry refund'));
          }
          return answer('already', claimed.value.amount);
        }
        await this.announceGrab(envelope, claimed.value, state);
        return answer('grabbed', claimed.value.amount);
      } catch (err) {
        if (err instanceof EnvelopeClosedError) return answer('expired');
        // Another user holds the index (the decider was rebuilt while claims were in flight).
        if (err instanceof ShareTakenError) { await this.decider.forget(envelope.id, who.user); continue; }
        throw err;
      }
    }
    throw new LanternError('unavailable', `envelope ${envelope.id}: shares kept colliding; retry`);
  }

  async info(who: DeviceSession, p: RequestParams<'envelope.info'>): Promise<EnvelopeInfo> {
    const record = await this.store.getEnvelope(p.envelope);
    if (!record) throw new LanternError('not_found', `no envelope ${p.envelope}`, { field: 'envelope' });
    if (record.envelope.sender !== who.user) (await this.conversation(record.envelope.conv)).requireMember(who.user);
    return envelopeInfo(record);
  }

  /** Refund expired envelopes; resolves how many this call refunded. */
  async sweep(limit = 100): Promise<number> {
    let refunded = 0;
    for (const id of await this.store.dueEnvelopes(this.clock.now(), limit)) {
      try {
        const done = await this.store.refundEnvelope(id, this.clock.now());
        if (!done) continue;
        await this.decider.drop(id).catch((err: unknown) => this.log.warn({ err, envelope: id }, 'grab decider drop failed; its state expires by itself'));
        if (!done.applied) continue;
        refunded++;
        const { envelope } = done.value;
        const back = done.value.refunded ?? 0;
        // Fully grabbed envelopes close silently: their last grab already told everyone.
        const state = back > 0 ? await this.cache.get(envelope.conv) : undefined;
        if (state) this.publish(state, { t: 'envelope', conv: envelope.conv, envelope: id, left: 0, refunded: back });
      } catch (err) {
        this.log.warn({ err, envelope: id }, 'could not refund an expired envelope; retrying next sweep');
      }
    }
    return refunded;
  }

  /**
   * Everyone in the conversation sees who grabbed how much; the last share also names the luckiest.
   * Grabs of one envelope within envelopeEventCoalesceMs go out as one event: in a burst, a 500-member
   * group would otherwise get an event per grab per member.
   */
  private async announceGrab(envelope: Envelope, claim: Claim, state: ConversationState): Promise<void> {
    let batch = this.unannounced.get(envelope.id);
    if (!batch) {
      batch = { envelope, state, claims: [] };
      this.unannounced.set(envelope.id, batch);
    }
    batch.state = state;
    batch.claims.push(claim);
    const wait = this.settings.envelopeEventCoalesceMs;
    if (wait === 0) return this.announce(envelope.id);
    if (!batch.timer) {
      batch.timer = setTimeout(() => void this.announce(envelope.id), wait);
      batch.timer.unref();
    }
  }

  private async announce(id: string): Promise<void> {
    const batch = this.unannounced.get(id);
    if (!batch) return;
    this.unannounced.delete(id);
    clearTimeout(batch.timer);
    const { envelope, state, claims: grabs } = batch;
    // One read per batch: exact `left` as of now, and every claim to find the luckiest.
    let claims: readonly Claim[] | undefined;
    try {
      claims = (await this.store.getEnvelope(id))?.claims;
    } catch (err) {
      this.log.warn({ err, envelope: id }, 'envelope event without the claim count: the store read failed');
    }
    const left = claims ? envelope.count - claims.length : undefined;
    const luckiest = claims && left === 0 ? luckiestOf(claims) : undefined;
    this.publish(state, {
      t: 'envelope', conv: envelope.conv, envelope: id,
      grabs: grabs.map(({ user, amount, ts }) => ({ user, amount, ts })),
      ...(left === undefined ? {} : { left }),
      ...(luckiest === undefined ? {} : { luckiest }),
    });
  }

  /**
   * The user's claim on an envelope the decider calls empty or expired. Once every share is claimed
   * (or the envelope refunded) the claims are final: one read per envelope and worker serves the
   * rest of a burst; until then each answer reads again (reads in flight are shared).
   */
  private async claimOf(envelope: Envelope, user: string): Promise<Claim | undefined> {
    const final = this.finalClaims.get(envelope.id);
    if (final) return final.get(user);
    let reading = this.readingClaims.get(envelope.id);
    if (!reading) {
      reading = this.store.getEnvelope(envelope.id).then((record) => {
        const claims = new Map((record?.claims ?? []).map((c) => [c.user, c]));
        if (record && (record.claims.length === envelope.count || record.refunded !== undefined)) {
          this.finalClaims.set(envelope.id, claims);
          if (this.finalClaims.size > KNOWN_ENVELOPES) this.finalClaims.delete(this.finalClaims.keys().next().value!);
        }
        return claims;
      }).finally(() => this.readingClaims.delete(envelope.id));
      this.readingClaims.set(envelope.id, reading);
    }
    return (await reading).get(user);
  }

  private publish(state: ConversationState, event: EnvelopeEvent): void {
    this.delivery.toConversation(state.id, event, state.audience());
  }

  private async envelope(id: string): Promise<Envelope> {
    const hit = this.known.get(id);
    if (hit) return hit;
    // A burst on a worker that has not seen the envelope yet: one read, shared by every grab.
    let loading = this.loadingEnvelopes.get(id);
    if (!loading) {
      loading = this.store.getEnvelope(id).then((record) => {
        if (!record) throw new LanternError('not_found', `no envelope ${id}`, { field: 'envelope' });
        this.remember(record.envelope);
        return record.envelope;
      }).finally(() => this.loadingEnvelopes.delete(id));
      this.loadingEnvelopes.set(id, loading);
    }
    return loading;
  }

  private remember(envelope: Envelope): void {
    this.known.delete(envelope.id);
    this.known.set(envelope.id, envelope);
    if (this.known.size > KNOWN_ENVELOPES) this.known.delete(this.known.keys().next().value!);
  }

  /**
   * Who may grab: the owner's cached state when this engine writes the conversation; otherwise a
   * member list read from the store and trusted for grabMembershipCacheMs, so a burst of grabs in
   * one group costs one read, not one per grab.
   */
  private async conversation(conv: string): Promise<ConversationState> {
    if (this.cache.owns(conv)) return this.cache.require(conv);
    const now = this.clock.now();
    const hit = this.snapshots.get(conv);
    if (hit && now - hit.at < this.settings.grabMembershipCacheMs) return hit.state;
    // A burst's first grabs all miss at once: they share one read.
    let loading = this.loadingSnapshots.get(conv);
    if (!loading) {
      loading = this.cache.require(conv).finally(() => this.loadingSnapshots.delete(conv));
      this.loadingSnapshots.set(conv, loading);
    }
    const state = await loading;
    this.snapshots.delete(conv);
    this.snapshots.set(conv, { state, at: now });
    if (this.snapshots.size > MEMBER_SNAPSHOTS) this.snapshots.delete(this.snapshots.keys().next().value!);
    return state;
  }

}
