// The gateway's side of a flash-sale storm (docs/decisions/0008): most attempts at a hot sale cannot
// win, and they are answered here without reaching a worker.
//   SaleBoard  every sale's last known state, fed by the engine's `sale` signals (in process, or the
//              bus subject SALE_SIGNALS_SUBJECT that every gateway subscribes to). Before the start:
//              not_open; from the end: closed; while sold out: sold_out.
//   the front  wraps the engine: `sale.buy` is answered from the board when it can be, and the rest
//              pass an admission limit (saleMaxInflight per gateway): above it the attempt is shed at
//              once with try_later, so a storm never queues into timeouts.
// An attempt marked `retry` (the same key resent after no answer) always goes to a worker: only the
// gate knows the earlier answer, and a local sold_out must not hide a reservation the buyer made.
// A key resent after try_later needs no `retry`: that attempt reached no worker.
import type { BuyResult, RequestParams, SaleEvent } from '../protocol/frames.ts';
import type { Engine } from '../engine/api.ts';
import type { SaleSignals } from '../engine/sales/sales.ts';

export const SALE_SIGNALS_SUBJECT = 'lantern.sales';
/** Sales a board remembers (the oldest-updated go first). */
const BOARD_SIZE = 10_000;

export interface SaleFrontCounters {
  /** Answered from the board. */
  answeredLocally: number;
  /** Sent on to a worker. */
  forwarded: number;
  /** Refused with try_later by the admission limit. */
  shed: number;
}

export class SaleBoard implements SaleSignals {
  private readonly sales = new Map<string, SaleEvent>();

  /** The newest state wins; signals from several workers may arrive out of order. */
  publish(event: SaleEvent): void {
    const known = this.sales.get(event.sale);
    if (known && known.ts > event.ts) return;
    this.sales.delete(event.sale);
    this.sales.set(event.sale, event);
    if (this.sales.size > BOARD_SIZE) this.sales.delete(this.sales.keys().next().value!);
  }

  /** A local answer for an attempt that cannot win now, or undefined to ask a worker. */
  answer(p: RequestParams<'sale.buy'>, now: number): BuyResult | undefined {
    if (p.retry === true) return undefined;
    const known = this.sales.get(p.sale);
    if (!known) return undefined;
    if (now < known.startAt) return { sale: p.sale, outcome: 'not_open', startAt: known.startAt };
    if (now >= known.endAt) return { sale: p.sale, outcome: 'closed' };
    if (known.state === 'sold_out') return { sale: p.sale, outcome: 'sold_out' };
    return undefined;
  }

  get size(): number {
    return this.sales.size;
  }
}

export interface SaleFrontOptions {
  /** `sale.buy` requests this gateway may have at workers at once (saleMaxInflight). */
  maxInflight: number;
  /** retryAfterMs of a try_later answer (saleTryLaterMs). */
  tryLaterMs: number;
  counters: SaleFrontCounters;
  now?: () => number;
}

/** The engine with purchase attempts answered from the board or shed when too many are in flight. */
export function withSaleFront(engine: Engine, board: SaleBoard, o: SaleFrontOptions): Engine {
  const now = o.now ?? Date.now;
  let inflight = 0;
  const request: Engine['request'] = async (who, type, params) => {
    if (type !== 'sale.buy') return engine.request(who, type, params);
    const p = params as RequestParams<'sale.buy'>;
    const local = board.answer(p, now());
    if (local) {
      o.counters.answeredLocally++;
      return local as never;
    }
    if (inflight >= o.maxInflight) {
      o.counters.shed++;
      return { sale: p.sale, outcome: 'try_later', retryAfterMs: o.tryLaterMs } satisfies BuyResult as never;
    }
    inflight++;
    o.counters.forwarded++;
    try {
      const result = await engine.request(who, type, params);
      return result;
    } finally {
      inflight--;
    }
  };
  // Everything else is the engine's own, called on the engine (class engines keep their state).
  return new Proxy(engine, {
    get(target, prop) {
      if (prop === 'request') return request;
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}
