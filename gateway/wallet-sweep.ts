// The periodic wallet sweep of an engine: expired red envelopes refunded, expired transfers
// returned. Embedded mode runs one; in distributed mode every worker runs one (each refund is an
// idempotent store operation, so two sweepers never pay twice).
import type { Engine } from '../engine/api.ts';
import type { Logger } from '../engine/ports.ts';

/** Refund expired envelopes and return expired transfers every `everyMs`; returns the stop function. */
export function sweepWallet(engine: Engine, everyMs: number, log: Logger): () => void {
  if (!engine.sweepWallet) return () => {};
  let running = false;
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    engine.sweepWallet!()
      .then((n) => { if (n.envelopes || n.transfers || n.orders) log.info(n, 'wallet sweep: refunded expired envelopes, returned expired transfers, expired unpaid orders'); })
      .catch((err: unknown) => log.warn({ err }, 'wallet sweep failed; retrying next interval'))
      .finally(() => { running = false; });
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

