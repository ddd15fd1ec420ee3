// One named method per protocol request, so apps need not spell frame types. Each is a thin,
// typed wrapper over request(); LanternClient supplies request() and send().
import type {
  BalanceInfo, BuyResult, ClientMessageKind, OrderInfo, SaleInfo, ContactInfo, ConversationInfo, EnvelopeInfo, EnvelopeMode, LocationBody, MessageBody,
  PresenceInfo, RequestParams, RequestResult, RequestType, TransferInfo,
} from '../protocol/frames.ts';
import { LanternClientError } from './errors.ts';
import { randomCid } from './ids.ts';
import type { SendResult } from './outbox.ts';

/** Attempts of a money request whose outcome is unknown (timeout, connection lost) before giving up. */
export const MONEY_ATTEMPTS = 5;

export abstract class LanternApi {
  abstract request<T extends RequestType>(type: T, params: RequestParams<T>): Promise<RequestResult<T>>;
  abstract send(conv: string, kind: ClientMessageKind, body: MessageBody, opts?: { cid?: string }): Promise<SendResult>;

  // ---------------------------------------------------------------- messages

  sendText(conv: string, text: string, opts?: { cid?: string }): Promise<SendResult> {
    return this.send(conv, 'text', { text }, opts);
  }

  sendSticker(conv: string, pack: string, sticker: string, opts?: { cid?: string }): Promise<SendResult> {
    return this.send(conv, 'sticker', { pack, sticker }, opts);
  }

  sendLocation(conv: string, location: LocationBody, opts?: { cid?: string }): Promise<SendResult> {
    return this.send(conv, 'location', location, opts);
  }

  /** Recall your own message within the server's recall window. */
  recall(conv: string, seq: number): Promise<RequestResult<'recall'>> {
    return this.request('recall', { conv, seq });
  }

  /** Messages just below `before` (default: the newest), ascending. */
  history(conv: string, opts: { before?: number; limit?: number } = {}): Promise<RequestResult<'history'>> {
    return this.request('history', { conv, ...opts });
  }

  /** Raise your read cursor; other members (and your other devices) get a 'receipt' event. */
  read(conv: string, seq: number): Promise<RequestResult<'read'>> {
    return this.request('read', { conv, seq });
  }

  /** Every member's read cursor. */
  async receipts(conv: string): Promise<Record<string, number>> {
    return (await this.request('receipts', { conv })).reads;
  }

  /** Tell the other members you are (or stopped) typing; never stored. */
  async typing(conv: string, on: boolean): Promise<void> {
    await this.request('typing', { conv, on });
  }

  // ---------------------------------------------------------------- presence and contacts

  /** Online state of contacts among `users` (others are omitted by the server). */
  async presence(users: string[]): Promise<PresenceInfo[]> {
    return (await this.request('presence', { users })).presence;
  }

  async contacts(): Promise<ContactInfo[]> {
    return (await this.request('contact.list', {})).contacts;
  }

  requestContact(user: string, note?: string): Promise<ContactInfo> {
    return this.request('contact.request', note === undefined ? { user } : { user, note });
  }

  acceptContact(user: string): Promise<ContactInfo> {
    return this.request('contact.accept', { user });
  }

  /** Removes a friend, declines an incoming request or cancels an outgoing one. */
  removeContact(user: string): Promise<ContactInfo> {
    return this.request('contact.remove', { user });
  }

  blockContact(user: string): Promise<ContactInfo> {
    return this.request('contact.block', { user });
  }

  unblockContact(user: string): Promise<ContactInfo> {
    return this.request('contact.unblock', { user });
  }

  // ---------------------------------------------------------------- conversations and groups

  /** The 1:1 conversation with a friend; its id is deterministic for the pair. */
  direct(user: string): Promise<ConversationInfo> {
    return this.request('conv.direct', { user });
  }

  async conversations(): Promise<ConversationInfo[]> {
    return (await this.request('conv.list', {})).convs;
  }

  conversation(conv: string): Promise<RequestResult<'conv.info'>> {
    return this.request('conv.info', { conv });
  }

  createGroup(title: string, members: string[]): Promise<ConversationInfo> {
    return this.request('group.create', { title, members });
  }

  addToGroup(conv: string, users: string[]): Promise<RequestResult<'group.add'>> {
    return this.request('group.add', { conv, users });
  }

  removeFromGroup(conv: string, users: string[]): Promise<RequestResult<'group.remove'>> {
    return this.request('group.remove', { conv, users });
  }

  leaveGroup(conv: string): Promise<RequestResult<'group.leave'>> {
    return this.request('group.leave', { conv });
  }

  setRole(conv: string, user: string, role: 'admin' | 'member'): Promise<RequestResult<'group.role'>> {
    return this.request('group.role', { conv, user, role });
  }

  // ---------------------------------------------------------------- wallet, transfers, red envelopes
  // Amounts are integer cents. Requests that move money carry an idempotency key (a fresh one by
  // default) and are retried with the same key while the outcome is unknown, so a lost reply never
  // pays twice; pass your own `key` to retry across app restarts.

  async balances(): Promise<BalanceInfo[]> {
    return (await this.request('wallet.balance', {})).balances;
  }

  statement(opts: { currency?: string; before?: number; limit?: number } = {}): Promise<RequestResult<'wallet.statement'>> {
    return this.request('wallet.statement', opts);
  }

  sendTransfer(user: string, amount: number, opts: { key?: string; currency?: string; note?: string } = {}): Promise<RequestResult<'transfer.send'>> {
    const { key = randomCid(), ...rest } = opts;
    return this.retryUnknown(() => this.request('transfer.send', { user, amount, key, ...rest }));
  }

  acceptTransfer(transfer: string): Promise<TransferInfo> {
    return this.retryUnknown(() => this.request('transfer.accept', { transfer }));
  }

  returnTransfer(transfer: string): Promise<TransferInfo> {
    return this.retryUnknown(() => this.request('transfer.return', { transfer }));
  }

  transfer(transfer: string): Promise<TransferInfo> {
    return this.request('transfer.info', { transfer });
  }

  sendEnvelope(conv: string, envelope: { total: number; count: number; mode: EnvelopeMode; greeting?: string; currency?: string; key?: string }): Promise<RequestResult<'envelope.send'>> {
    const { key = randomCid(), ...rest } = envelope;
    return this.retryUnknown(() => this.request('envelope.send', { conv, key, ...rest }));
  }

  /** Try to take a share: `grabbed` (with amount), `already`, `empty` or `expired`. One share per user, so retrying is safe. */
  grabEnvelope(envelope: string): Promise<RequestResult<'envelope.grab'>> {
    return this.retryUnknown(() => this.request('envelope.grab', { envelope }));
  }

  envelope(envelope: string): Promise<EnvelopeInfo> {
    return this.request('envelope.info', { envelope });
  }

  // ---------------------------------------------------------------- flash sales

  /**
   * One purchase attempt, answered: `reserved` (pay `order` before `order.payBy`), `sold_out`,
   * `limit_reached`, `not_open` or `closed`. A lost reply or a `try_later` (the gateway shedding
   * load) is sent again with the same key, so one tap never reserves twice; after a lost reply the
   * resends carry `retry`, so a worker answers from what it decided. Pass your own `key` to retry
   * across app restarts.
   */
  async buy(sale: string, quantity: number, opts: { key?: string; maxWaitMs?: number } = {}): Promise<BuyResult> {
    const { key = randomCid(), maxWaitMs = 30_000 } = opts;
    const deadline = Date.now() + maxWaitMs;
    // Set once an attempt may have reached a worker unanswered; a try_later reached none.
    let uncertain = false;
    for (;;) {
      const result = await this.retryUnknown(async () => {
        try {
          return await this.request('sale.buy', { sale, quantity, key, ...(uncertain ? { retry: true } : {}) });
        } catch (error) {
          if (error instanceof LanternClientError && (error.error === 'timeout' || error.error === 'unavailable')) uncertain = true;
          throw error;
        }
      });
      if (result.outcome !== 'try_later' || Date.now() >= deadline) return result;
      await new Promise((resolve) => setTimeout(resolve, result.retryAfterMs ?? 200));
    }
  }

  /** Pay a reserved order from the wallet (once, however often it is retried). */
  payOrder(order: string): Promise<OrderInfo> {
    return this.retryUnknown(() => this.request('sale.pay', { order }));
  }

  sale(sale: string): Promise<SaleInfo> {
    return this.request('sale.info', { sale });
  }

  /** Your orders, newest first; with `sale`, that sale's orders (its merchant only). */
  orders(opts: { sale?: string; after?: string; limit?: number } = {}): Promise<RequestResult<'sale.orders'>> {
    return this.request('sale.orders', opts);
  }

  /** Re-run `attempt` (which must be idempotent) while it fails with a retryable error, with a short backoff. */
  private async retryUnknown<T>(attempt: () => Promise<T>): Promise<T> {
    for (let n = 1; ; n++) {
      try {
        return await attempt();
      } catch (error) {
        if (!(error instanceof LanternClientError) || !error.retry || n >= MONEY_ATTEMPTS) throw error;
        await new Promise((resolve) => setTimeout(resolve, error.retryAfterMs ?? 100 * 2 ** (n - 1)));
      }
    }
  }

  /** Round trip to the server; resolves with the server's clock. */
  async ping(): Promise<number> {
    return (await this.request('ping', {})).ts;
  }
}
