// Balances, statements and top-ups: the wallet as its owner and the operator see it.
import { LanternError } from '../../protocol/errors.ts';
import type { AdminRequestMap, RequestParams, RequestResult } from '../../protocol/frames.ts';
import type { DeviceSession, EngineSettings } from '../api.ts';
import type { Clock } from '../ports.ts';
import { currencies, currencyOf, fingerprint, requireCents } from './money.ts';
import { externalAccount, InsufficientFundsError, KeyReusedError, walletAccount, type WalletStore } from './ports.ts';

type TopupParams = AdminRequestMap['wallet.topup']['params'];
type TopupResult = AdminRequestMap['wallet.topup']['result'];

export const topupTxnId = (key: string): string => `topup:${key}`;

export class Wallet {
  constructor(private readonly store: WalletStore, private readonly settings: EngineSettings, private readonly clock: Clock) {}

  async balance(who: DeviceSession): Promise<RequestResult<'wallet.balance'>> {
    const codes = currencies(this.settings);
    const cents = await Promise.all(codes.map((c) => this.store.balance(walletAccount(who.user, c))));
    return { balances: codes.map((currency, i) => ({ currency, cents: cents[i]! })) };
  }

  async statement(who: DeviceSession, p: RequestParams<'wallet.statement'>): Promise<RequestResult<'wallet.statement'>> {
    const currency = currencyOf(this.settings, p.currency);
    const limit = Math.min(p.limit ?? this.settings.statementPageDefault, this.settings.statementPageMax);
    // One extra entry says whether there is an older page.
    const entries = await this.store.statement(walletAccount(who.user, currency), { ...(p.before === undefined ? {} : { before: p.before }), limit: limit + 1 });
    return {
      entries: entries.slice(0, limit).map((e) => ({ seq: e.seq, kind: e.kind, amount: e.amount, balance: e.balance, ts: e.ts, ...(e.ref === undefined ? {} : { ref: e.ref }) })),
      more: entries.length > limit,
    };
  }

  /** Operator top-up: money from the outside world into a wallet, idempotent by the operator's key. */
  async topup(p: TopupParams): Promise<TopupResult> {
    const currency = currencyOf(this.settings, p.currency);
    const amount = requireCents(p.amount, this.settings.topupMaxAmount, 'amount', 'topupMaxAmount');
    const account = walletAccount(p.user, currency);
    try {
      const { applied } = await this.store.post({
        id: topupTxnId(p.key), kind: 'topup', currency, ts: this.clock.now(),
        postings: [{ account: externalAccount(currency), amount: -amount }, { account, amount }],
        fingerprint: fingerprint({ user: p.user, currency, amount }),
      });
      return { user: p.user, currency, amount, balance: await this.store.balance(account), applied };
    } catch (err) {
      if (err instanceof KeyReusedError) throw new LanternError('key_reused', `top-up key ${p.key} was used for a different top-up`, { field: 'key' });
      if (err instanceof InsufficientFundsError) throw new LanternError('internal', err.message);
      throw err;
    }
  }
}
