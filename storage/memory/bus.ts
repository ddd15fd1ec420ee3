// The in-process Bus for embedded mode and unit tests: same semantics as the NATS adapter
// (wildcards, queue groups, request/reply, no-responders), delivered asynchronously so a
// publisher never runs subscriber code on its own stack.
import {
  BusNoRespondersError, BusTimeoutError,
  type Bus, type BusSubscription, type Logger, silentLogger,
} from '../../engine/ports.ts';
import { subjectMatches } from '../subject-match.ts';

type Handler = (data: Uint8Array, subject: string) => void;

interface Sub {
  pattern: string;
  queue: string | undefined;
  handler: Handler;
  active: boolean;
  /** Set for serve(): the request handler, answered through `reply`. */
  responder?: (data: Uint8Array, subject: string) => Promise<Uint8Array>;
}

export class InProcessBus implements Bus {
  private subs: Sub[] = [];
  private closed = false;
  /** Round-robin position per queue group, so queue members share the load. */
  private readonly turns = new Map<string, number>();

  constructor(private readonly log: Logger = silentLogger) {}

  publish(subject: string, data: Uint8Array): void {
    this.assertOpen();
    for (const sub of this.pick(subject)) {
      if (sub.responder) continue;
      queueMicrotask(() => {
        if (!sub.active) return;
        try {
          sub.handler(data, subject);
        } catch (err) {
          this.log.error({ err, subject }, 'bus subscriber threw');
        }
      });
    }
  }

  subscribe(subject: string, handler: Handler, options: { queue?: string } = {}): BusSubscription {
    return this.add({ pattern: subject, queue: options.queue, handler, active: true });
  }

  serve(subject: string, handler: (data: Uint8Array, subject: string) => Promise<Uint8Array>, options: { queue?: string } = {}): BusSubscription {
    return this.add({ pattern: subject, queue: options.queue, handler: () => {}, responder: handler, active: true });
  }

  async request(subject: string, data: Uint8Array, options: { timeoutMs: number }): Promise<Uint8Array> {
    this.assertOpen();
    const responders = this.pick(subject).filter((s) => s.responder);
    const target = responders[0];
    if (!target) throw new BusNoRespondersError(subject);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new BusTimeoutError(subject, options.timeoutMs)), options.timeoutMs);
    });
    const answer = (async () => {
      await Promise.resolve();
      try {
        return await target.responder!(data, subject);
      } catch (err) {
        // Like a NATS service that throws: nothing is answered and the requester times out.
        this.log.error({ err, subject }, 'bus request handler failed');
        return new Promise<never>(() => {});
      }
    })();
    try {
      return await Promise.race([answer, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async flush(): Promise<void> {}

  async close(): Promise<void> {
    this.closed = true;
    for (const s of this.subs) s.active = false;
    this.subs = [];
  }

  private add(sub: Sub): BusSubscription {
    this.assertOpen();
    this.subs.push(sub);
    return {
      unsubscribe: () => {
        sub.active = false;
        this.subs = this.subs.filter((s) => s !== sub);
      },
    };
  }

  /** Matching subscribers: every plain one, and one member per queue group (round robin). */
  private pick(subject: string): Sub[] {
    const out: Sub[] = [];
    const groups = new Map<string, Sub[]>();
    for (const s of this.subs) {
      if (!s.active || !subjectMatches(s.pattern, subject)) continue;
      if (s.queue === undefined) { out.push(s); continue; }
      const key = `${s.pattern}\u0000${s.queue}`;
      let g = groups.get(key);
      if (!g) { g = []; groups.set(key, g); }
      g.push(s);
    }
    for (const [key, members] of groups) {
      const turn = this.turns.get(key) ?? 0;
      this.turns.set(key, turn + 1);
      out.push(members[turn % members.length]!);
    }
    return out;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('bus is closed');
  }
}
