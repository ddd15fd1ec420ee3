// Bus over NATS core (client v3). The connection is made by the composition root and injected;
// this adapter only maps the Bus contract onto it: subjects and queue groups are NATS's own,
// request() maps NATS's no-responders and timeout errors onto the port's error classes.
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { errors } from '@nats-io/transport-node';
import {
  BusNoRespondersError, BusTimeoutError,
  type Bus, type BusSubscription, type Logger, silentLogger,
} from '../../engine/ports.ts';

export class NatsBus implements Bus {
  constructor(private readonly nc: NatsConnection, private readonly log: Logger = silentLogger) {}

  publish(subject: string, data: Uint8Array): void {
    this.nc.publish(subject, data);
  }

  subscribe(subject: string, handler: (data: Uint8Array, subject: string) => void, options: { queue?: string } = {}): BusSubscription {
    const sub = this.nc.subscribe(subject, {
      ...(options.queue ? { queue: options.queue } : {}),
      callback: (err, msg) => {
        if (err) { this.log.error({ err, subject }, 'bus subscription failed'); return; }
        try {
          handler(msg.data, msg.subject);
        } catch (error) {
          this.log.error({ err: error, subject: msg.subject }, 'bus subscriber threw');
        }
      },
    });
    return wrap(sub);
  }

  serve(subject: string, handler: (data: Uint8Array, subject: string) => Promise<Uint8Array>, options: { queue?: string } = {}): BusSubscription {
    const sub = this.nc.subscribe(subject, {
      ...(options.queue ? { queue: options.queue } : {}),
      callback: (err, msg) => {
        if (err) { this.log.error({ err, subject }, 'bus service subscription failed'); return; }
        handler(msg.data, msg.subject).then(
          (reply) => { if (msg.reply) msg.respond(reply); },
          (error: unknown) => this.log.error({ err: error, subject: msg.subject }, 'bus request handler failed'),
        );
      },
    });
    return wrap(sub);
  }

  async request(subject: string, data: Uint8Array, options: { timeoutMs: number }): Promise<Uint8Array> {
    try {
      const msg = await this.nc.request(subject, data, { timeout: options.timeoutMs });
      return msg.data;
    } catch (err) {
      if (isNoResponders(err)) throw new BusNoRespondersError(subject);
      if (err instanceof errors.TimeoutError || (err as Error)?.name === 'TimeoutError') throw new BusTimeoutError(subject, options.timeoutMs);
      throw err;
    }
  }

  flush(): Promise<void> {
    return this.nc.flush();
  }

  async close(): Promise<void> {
    await this.nc.drain();
  }
}

function isNoResponders(err: unknown): boolean {
  if (err instanceof errors.NoRespondersError) return true;
  if (err instanceof errors.RequestError) return err.isNoResponders();
  return false;
}

function wrap(sub: Subscription): BusSubscription {
  return { unsubscribe: () => sub.unsubscribe() };
}
