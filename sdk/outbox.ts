// The outbox holds every send until the server acks it. Each entry keeps its cid for life, so
// a re-send after a lost reply, a timeout or a reconnect is deduplicated by the server and
// can never create a second message. Per conversation only the head entry is in flight: the
// server sequences one connection's sends in arrival order, but a retried head could otherwise
// be overtaken by the entry behind it. Different conversations proceed in parallel.
import type { ClientMessageKind, MessageBody, RequestResult } from '../protocol/frames.ts';
import { LanternClientError, toError } from './errors.ts';

export type SendResult = RequestResult<'send'>;

export interface OutboxEntry {
  readonly conv: string;
  readonly cid: string;
  readonly kind: ClientMessageKind;
  readonly body: MessageBody;
  /** Times the entry has been put on the wire. */
  attempts: number;
  state: 'queued' | 'inflight' | 'waiting';
  timer: ReturnType<typeof setTimeout> | undefined;
  resolve(result: SendResult): void;
  reject(error: Error): void;
}

export interface OutboxDeps {
  /** Put one send on the wire; settles with the server's reply. */
  transmit(entry: OutboxEntry): Promise<SendResult>;
  /** Delay before retry number `attempt` (1-based) after a retryable error. */
  retryDelay(attempt: number, retryAfterMs: number | undefined): number;
  /** Report a retryable failure that the outbox handles itself (it is not the caller's to see). */
  reportRetry(error: Error, entry: OutboxEntry, delayMs: number): void;
}

export class Outbox {
  private readonly queues = new Map<string, OutboxEntry[]>();
  private online = false;

  constructor(private readonly deps: OutboxDeps) {}

  /** Queue a send; the promise settles with its ack or a non-retryable error. */
  enqueue(conv: string, kind: ClientMessageKind, body: MessageBody, cid: string): Promise<SendResult> {
    return new Promise<SendResult>((resolve, reject) => {
      const entry: OutboxEntry = { conv, cid, kind, body, attempts: 0, state: 'queued', timer: undefined, resolve, reject };
      const queue = this.queues.get(conv);
      if (queue === undefined) this.queues.set(conv, [entry]);
      else queue.push(entry);
      this.pump(conv);
    });
  }

  /** Online: entries may go on the wire. The client turns it on after the post-welcome sync. */
  setOnline(online: boolean): void {
    this.online = online;
    if (online) for (const conv of this.queues.keys()) this.pump(conv);
  }

  /** Unacked sends, oldest first per conversation. */
  pending(): Array<{ conv: string; cid: string; attempts: number }> {
    const out: Array<{ conv: string; cid: string; attempts: number }> = [];
    for (const queue of this.queues.values()) for (const e of queue) out.push({ conv: e.conv, cid: e.cid, attempts: e.attempts });
    return out;
  }

  get size(): number {
    let n = 0;
    for (const queue of this.queues.values()) n += queue.length;
    return n;
  }

  /** Fail every entry (the client was closed or stopped for good). */
  rejectAll(error: (entry: OutboxEntry) => Error): void {
    const queues = [...this.queues.values()];
    this.queues.clear();
    for (const queue of queues) {
      for (const entry of queue) {
        if (entry.timer !== undefined) clearTimeout(entry.timer);
        entry.reject(error(entry));
      }
    }
  }

  private pump(conv: string): void {
    const head = this.queues.get(conv)?.[0];
    if (head === undefined || head.state !== 'queued' || !this.online) return;
    head.state = 'inflight';
    const attempt = ++head.attempts;
    let sent: Promise<SendResult>;
    try {
      sent = this.deps.transmit(head);
    } catch (error) {
      sent = Promise.reject(error);
    }
    sent.then(
      (result) => {
        if (head.attempts !== attempt || !this.isHead(head)) return; // superseded attempt
        this.settleHead(conv);
        head.resolve(result);
      },
      (error: unknown) => {
        if (head.attempts !== attempt || !this.isHead(head)) return;
        this.failed(conv, head, toError(error));
      },
    );
  }

  private failed(conv: string, head: OutboxEntry, error: Error): void {
    const retry = error instanceof LanternClientError ? error.retry : false;
    if (!retry) {
      this.settleHead(conv);
      head.reject(error);
      return;
    }
    if (!this.online) {
      // The connection went away: resend (same cid) once the next session has resynced.
      head.state = 'queued';
      return;
    }
    const retryAfter = error instanceof LanternClientError ? error.retryAfterMs : undefined;
    const delay = this.deps.retryDelay(head.attempts, retryAfter);
    head.state = 'waiting';
    this.deps.reportRetry(error, head, delay);
    head.timer = setTimeout(() => {
      head.timer = undefined;
      head.state = 'queued';
      this.pump(conv);
    }, delay);
  }

  private isHead(entry: OutboxEntry): boolean {
    return this.queues.get(entry.conv)?.[0] === entry;
  }

  /** Remove the head and start the next entry of the conversation. */
  private settleHead(conv: string): void {
    const queue = this.queues.get(conv);
    if (queue === undefined) return;
    queue.shift();
    if (queue.length === 0) this.queues.delete(conv);
    else this.pump(conv);
  }
}
