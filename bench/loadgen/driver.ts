// Drives one worker's clients: paces sends (open loop) or keeps a window of outstanding
// messages per client (closed loop, max rate), and counts deliveries and latency inside
// the measured window.
import { LatencyHistogram } from './histogram.ts';
import type { LoadSettings, WorkerReport } from './messages.ts';

/** Wall-clock ms with sub-ms resolution, comparable across processes of this machine. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** One client able to send a timestamped message. */
export interface Sender {
  send(stampMs: number): void;
  /** Bytes queued in the client's socket, not yet written. */
  bufferedAmount(): number;
}

/** What scenarios report back while the load runs. */
export interface DeliverySink {
  /** A message sent by `senderIndex` with payload timestamp `stampMs` arrived where it is measured. */
  delivered(senderIndex: number, stampMs: number): void;
  /**
   * Something went wrong. `senderIndex` is the client whose send was refused (that send is
   * then finished: it will never be delivered), or null for errors that finish no send.
   */
  failed(senderIndex: number | null, description: string): void;
  /**
   * Fan-out scenarios (groups): one copy of a message reached one recipient. Counted and timed
   * like delivered(), but it does not finish the send (many copies per send).
   */
  deliveredCopy(stampMs: number): void;
  /** Fan-out scenarios: the send of `senderIndex` stamped `stampMs` is complete (frees its window slot). */
  completed(senderIndex: number, stampMs: number): void;
  /** Fan-out scenarios: how many copies (deliveredCopy) each completed send owes; the drain waits for them. */
  expectCopiesPerSend(n: number): void;
  /**
   * Reactive scenarios (red envelopes) make requests of their own, not paced by the driver (a grab
   * on seeing an envelope card): the drain then waits for their answers and for a quiet spell.
   */
  expectReactive(): void;
  /** A reactive request went out; the drain waits for its answer. */
  reactiveSent(): void;
  /** The answer to a reactive request sent at `stampMs` came: counted and timed like a delivery. */
  reactiveAnswered(stampMs: number): void;
  /** A reactive request was refused: an error, and no longer awaited. */
  reactiveFailed(description: string): void;
  /** Whether something stamped `stampMs` (a send time) belongs to the measured window. */
  inWindow(stampMs: number): boolean;
}

const MAX_ERROR_SAMPLES = 5;
/**
 * Reactive scenarios: after the last reactive request, the drain waits this long for more before it
 * ends, so a worker without senders still answers cards that are on their way when sending stops.
 */
export const REACTIVE_QUIET_MS = 1000;
const DRAIN_POLL_MS = 20;

export class LoadDriver implements DeliverySink {
  private readonly latency = new LatencyHistogram();
  private senders: readonly Sender[] = [];
  private sending = false;
  private startedAt = 0;
  private measureStart = Infinity;
  private measureEnd = Infinity;
  private paced = 0;
  private nextSender = 0;
  private tickTimer: NodeJS.Timeout | undefined;
  private totalSent = 0;
  private totalFinished = 0;
  /** Fan-out: copies each completed send owes other recipients, completed sends, and copies received (any time). */
  private copiesPerSend = 0;
  private totalCompleted = 0;
  private totalCopies = 0;
  /** Reactive requests: awaiting an answer, made in all, and when the latest was made. */
  private reactive = false;
  private reactivePending = 0;
  private lastReactiveAt = 0;
  private onAllFinished: (() => void) | undefined;
  private readonly counts = { sent: 0, delivered: 0, completed: 0, arrived: 0, skipped: 0, scheduled: 0, errors: 0 };
  private readonly errorSamples: string[] = [];

  constructor(private readonly settings: LoadSettings, private readonly ratePerSec: number, private readonly clients: number) {
    // A worker without senders (red envelopes: members who only grab) has no rate to keep.
    if (settings.mode === 'rate' && clients > 0 && !(ratePerSec > 0)) throw new RangeError(`open-loop mode needs a positive rate, got ${ratePerSec}`);
    if (settings.mode === 'max' && !(settings.window >= 1)) throw new RangeError(`max mode needs window >= 1, got ${settings.window}`);
  }

  delivered(senderIndex: number, stampMs: number): void {
    // Measured by send time, not arrival: every message sent in the window counts, including
    // the slow ones that arrive during the drain, and a backlog built up during warm-up does
    // not inflate the rate.
    const now = nowMs();
    if (this.inWindow(stampMs)) {
      this.counts.delivered++;
      this.latency.record(now - stampMs);
    }
    if (this.inWindow(now)) this.counts.arrived++;
    if (this.inWindow(stampMs)) this.counts.completed++;
    this.finish(senderIndex);
  }

  /** Fan-out scenarios: every completed send also owes `n` copies; the drain waits for them too. */
  expectCopiesPerSend(n: number): void {
    this.copiesPerSend = n;
  }

  deliveredCopy(stampMs: number): void {
    this.totalCopies++;
    const now = nowMs();
    if (this.inWindow(stampMs)) {
      this.counts.delivered++;
      this.latency.record(now - stampMs);
    }
    if (this.inWindow(now)) this.counts.arrived++;
    if (!this.sending && this.onAllFinished !== undefined && this.allDone()) this.onAllFinished();
  }

  completed(senderIndex: number, stampMs: number): void {
    this.totalCompleted++;
    if (this.inWindow(stampMs)) this.counts.completed++;
    this.finish(senderIndex);
  }

  /** Copies still owed by completed sends (a copy to another gateway may arrive after the sender's own). */
  private missingCopies(): number {
    return Math.max(0, this.totalCompleted * this.copiesPerSend - this.totalCopies);
  }

  private allDone(): boolean {
    return this.totalFinished >= this.totalSent && this.missingCopies() === 0 && this.reactivePending === 0;
  }

  failed(senderIndex: number | null, description: string): void {
    this.counts.errors++;
    if (this.errorSamples.length < MAX_ERROR_SAMPLES) this.errorSamples.push(description);
    if (senderIndex !== null) this.finish(senderIndex);
  }

  expectReactive(): void {
    this.reactive = true;
  }

  reactiveSent(): void {
    this.reactivePending++;
    this.lastReactiveAt = nowMs();
  }

  reactiveAnswered(stampMs: number): void {
    this.reactivePending--;
    const now = nowMs();
    if (this.inWindow(stampMs)) {
      this.counts.delivered++;
      this.latency.record(now - stampMs);
    }
    if (this.inWindow(now)) this.counts.arrived++;
  }

  reactiveFailed(description: string): void {
    this.reactivePending--;
    this.failed(null, description);
  }

  /** Runs warm-up, the measured window and the drain, then reports. Bounded by the settings' times. */
  async run(senders: readonly Sender[]): Promise<Omit<WorkerReport, 'workerIndex' | 'cpuMs'>> {
    if (senders.length !== this.clients) throw new RangeError(`driver was built for ${this.clients} clients, got ${senders.length}`);
    const { warmupMs, durationMs, drainMs } = this.settings;
    this.senders = senders;
    this.startedAt = nowMs();
    this.measureStart = this.startedAt + warmupMs;
    this.measureEnd = this.measureStart + durationMs;
    this.sending = senders.length > 0;
    if (this.settings.mode === 'max') {
      for (let i = 0; i < senders.length; i++) for (let k = 0; k < this.settings.window; k++) this.sendOne(i);
    } else {
      this.tick();
    }
    await new Promise<void>((resolve) => setTimeout(resolve, warmupMs + durationMs));
    this.sending = false;
    clearTimeout(this.tickTimer);
    await this.waitForOutstanding(drainMs);
    return {
      ...this.counts,
      errorSamples: this.errorSamples,
      undelivered: this.totalSent - this.totalFinished + this.missingCopies() + this.reactivePending,
      measuredMs: durationMs,
      latency: this.latency.toJSON(),
    };
  }

  inWindow(t: number): boolean {
    return t >= this.measureStart && t < this.measureEnd;
  }

  private sendOne(index: number): void {
    const stamp = nowMs();
    this.senders[index]!.send(stamp);
    this.totalSent++;
    if (this.inWindow(stamp)) this.counts.sent++;
  }

  // Closed loop: a finished send makes room in its client's window for the next one.
  private finish(index: number): void {
    this.totalFinished++;
    if (this.sending && this.settings.mode === 'max') this.sendOne(index);
    else if (!this.sending && this.onAllFinished !== undefined && this.allDone()) this.onAllFinished();
  }

  // Open loop: everything due since the start goes out now, round-robin over the clients,
  // so a stalled event loop shows up as a burst (and as latency), not as a lower rate.
  private readonly tick = (): void => {
    if (!this.sending) return;
    const now = nowMs();
    const due = Math.floor(((now - this.startedAt) * this.ratePerSec) / 1000) - this.paced;
    const count = this.senders.length;
    for (let k = 0; k < due; k++) {
      this.paced++;
      const index = this.nextSender;
      this.nextSender = (index + 1) % count;
      const counted = this.inWindow(now);
      if (counted) this.counts.scheduled++;
      if (this.senders[index]!.bufferedAmount() > this.settings.maxBufferedBytes) {
        if (counted) this.counts.skipped++;
        continue;
      }
      this.sendOne(index);
    }
    this.tickTimer = setTimeout(this.tick, this.settings.tickMs);
  };

  private waitForOutstanding(timeoutMs: number): Promise<void> {
    if (this.reactive) return this.waitForQuiet(timeoutMs);
    if (this.allDone()) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      function done(): void { clearTimeout(timer); resolve(); }
      this.onAllFinished = () => { this.onAllFinished = undefined; done(); };
    });
  }

  /** Reactive scenarios: requests keep coming while cards arrive, so wait for answers and a quiet spell. */
  private async waitForQuiet(timeoutMs: number): Promise<void> {
    const deadline = nowMs() + timeoutMs;
    while (nowMs() < deadline && !(this.allDone() && nowMs() - this.lastReactiveAt >= REACTIVE_QUIET_MS)) {
      await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
    }
  }
}
