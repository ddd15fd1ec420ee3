// User-to-user transfers: the money waits in escrow (`xfer:<id>`) under a card in the direct
// conversation until the recipient accepts it, or returns to the sender (declined, or expired).
import { LanternError } from '../../protocol/errors.ts';
import type { RequestParams, RequestResult, TransferInfo } from '../../protocol/frames.ts';
import type { DeviceSession, EngineSettings } from '../api.ts';
import { directConversationId } from '../conversations.ts';
import type { Messaging } from '../messaging.ts';
import type { Clock, Delivery, Logger } from '../ports.ts';
import { currencyOf, derivedId, fingerprint, requireCents, requireText } from './money.ts';
import {
  InsufficientFundsError, KeyReusedError, TransferSettledError, transferAccount, walletAccount,
  type Transfer, type WalletStore,
} from './ports.ts';

export const transferTxnId = (id: string): string => `transfer:${id}`;

export function transferInfo(t: Transfer): TransferInfo {
  const { id, from, to, currency, amount, note, conv, createdAt, expiresAt, state, settledAt } = t;
  return { transfer: id, from, to, currency, amount, note, conv, createdAt, expiresAt, state, ...(settledAt === undefined ? {} : { settledAt }) };
}

export class Transfers {
  constructor(
    private readonly store: WalletStore,
    private readonly messaging: Messaging,
    private readonly delivery: Delivery,
    private readonly settings: EngineSettings,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {}

  async send(who: DeviceSession, p: RequestParams<'transfer.send'>): Promise<RequestResult<'transfer.send'>> {
    if (p.user === who.user) throw new LanternError('invalid_field', 'a transfer needs another user', { field: 'user' });
    const currency = currencyOf(this.settings, p.currency);
    const amount = requireCents(p.amount, this.settings.transferMaxAmount, 'amount', 'transferMaxAmount');
    const note = requireText(p.note, this.settings.maxTitleLength, 'note');
    const conv = directConversationId(who.user, p.user);
    // Checked before any money moves; the card's own send checks again.
    try {
      await this.messaging.requirePostable(who, conv);
    } catch (err) {
      if (err instanceof LanternError && err.error === 'not_found') throw new LanternError('not_contact', `no direct conversation with ${p.user}: transfers go to contacts`, { field: 'user' });
      throw err;
    }
    const id = derivedId('t', who.user, p.key);
    const now = this.clock.now();
    const proposed: Transfer = {
      id, from: who.user, to: p.user, currency, amount, note, conv,
      createdAt: now, expiresAt: now + this.settings.transferExpiryMs, state: 'pending',
    };
    let transfer: Transfer;
    try {
      ({ value: transfer } = await this.store.openTransfer(proposed, {
        id: transferTxnId(id), kind: 'transfer', currency, ref: id, ts: now,
        postings: [{ account: walletAccount(who.user, currency), amount: -amount }, { account: transferAccount(id), amount }],
        fingerprint: fingerprint({ to: p.user, currency, amount, note }),
      }));
    } catch (err) {
      if (err instanceof InsufficientFundsError) throw new LanternError('insufficient_funds', `the ${currency} wallet holds ${err.balance} cents; the transfer needs ${amount}`, { field: 'amount' });
      if (err instanceof KeyReusedError) throw new LanternError('key_reused', `key ${p.key} was used for a different transfer`, { field: 'key' });
      throw err;
    }
    // The card is idempotent by its cid (the transfer id): a retry after a crash posts it once.
    const card = await this.messaging.postCard(who, conv, id, 'transfer', { transfer: id, amount, currency, note });
    return { transfer: transferInfo(transfer), conv, seq: card.seq };
  }

  accept(who: DeviceSession, p: RequestParams<'transfer.accept'>): Promise<TransferInfo> {
    return this.settle(who, p.transfer, 'accepted');
  }

  /** The recipient declines: the money goes back to the sender. */
  return(who: DeviceSession, p: RequestParams<'transfer.return'>): Promise<TransferInfo> {
    return this.settle(who, p.transfer, 'returned');
  }

  async info(who: DeviceSession, p: RequestParams<'transfer.info'>): Promise<TransferInfo> {
    const t = await this.store.getTransfer(p.transfer);
    if (!t || (t.from !== who.user && t.to !== who.user)) throw new LanternError('not_found', `no transfer ${p.transfer}`, { field: 'transfer' });
    return transferInfo(t);
  }

  /** Return expired pending transfers to their senders; resolves how many this call returned. */
  async sweep(limit = 100): Promise<number> {
    const now = this.clock.now();
    let returned = 0;
    for (const id of await this.store.dueTransfers(now, limit)) {
      try {
        const settled = await this.store.settleTransfer(id, 'returned', now);
        if (settled?.applied) { returned++; this.announce(settled.value); }
      } catch (err) {
        // Accepted between the listing and now: nothing to return.
        if (!(err instanceof TransferSettledError)) this.log.warn({ err, transfer: id }, 'could not return an expired transfer; retrying next sweep');
      }
    }
    return returned;
  }

  private async settle(who: DeviceSession, id: string, state: 'accepted' | 'returned'): Promise<TransferInfo> {
    const t = await this.store.getTransfer(id);
    // Only the recipient settles; to anyone else the transfer does not exist.
    if (!t || t.to !== who.user) throw new LanternError('not_found', `no transfer ${id} to you`, { field: 'transfer' });
    if (t.state === 'pending' && t.expiresAt <= this.clock.now()) {
      // Expired but not yet swept: it can only go back now.
      if (state === 'accepted') throw new LanternError('already_settled', `transfer ${id} expired; it is returned to ${t.from}`, { field: 'transfer' });
    }
    try {
      const settled = await this.store.settleTransfer(id, state, this.clock.now());
      if (!settled) throw new LanternError('not_found', `no transfer ${id} to you`, { field: 'transfer' });
      if (settled.applied) this.announce(settled.value);
      return transferInfo(settled.value);
    } catch (err) {
      if (err instanceof TransferSettledError) throw new LanternError('already_settled', `transfer ${id} is already ${err.state}`, { field: 'transfer' });
      throw err;
    }
  }

  private announce(t: Transfer): void {
    this.delivery.toUsers([t.from, t.to], { t: 'transfer', transfer: transferInfo(t) });
  }
}
