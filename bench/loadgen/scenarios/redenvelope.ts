// 'redenvelope': every client is a member of one group, set up before the workers start by the
// coordinator's process (loadgen/redenvelope-run.ts: group created, members added, senders topped
// up). The senders, spread over the workers and gateways, are the driver's senders: each keeps
// `window` envelopes open (max mode) or sends at its share of the rate. Every member, senders
// included, grabs every envelope as soon as its card (`msg` of kind 'envelope') arrives.
//
// Measured per grab: `envelope.grab` sent -> its `res`, whatever the outcome (the driver's
// reactive requests: rate and latency), and the outcomes by themselves. A send completes, freeing
// its window slot, once every share is gone: the sender sees an `envelope` event with `left: 0`
// (or `luckiest`), or its own grab is answered `empty`. So the window also waits for the fan-out
// of the grab events to reach the sender, and the run cannot pile up envelopes nobody grabs.
import type { EnvelopeBody, EnvelopeEvent, GrabOutcome, Message, RequestResult } from '../../../protocol/frames.ts';
import { nowMs, type DeliverySink, type Sender } from '../driver.ts';
import { LanternConnection, mintToken } from '../lantern-client.ts';
import { urlOf, type GrabReport, type RedEnvelopeConfig, type WorkerConfig } from '../messages.ts';
import { closeSockets, mapLimit } from '../socket.ts';
import { SETUP_CONCURRENCY, type ScenarioSetup } from './scenario.ts';

const DEVICE = 'bench';
const GREETING = 'bench';
/**
 * The start of an encoded `envelope` event after its map header: key "t", value "envelope" (the
 * server writes `t` first). Members who do not send skip these undecoded: on a 2-core machine the
 * generator's CPU is the server's, and each envelope sends its events to every member.
 */
const ENVELOPE_EVENT_PREFIX = Buffer.from([0xa1, 0x74, 0xa8, ...Buffer.from('envelope')]);

/** Whether a frame is an `envelope` event (false when unsure: the frame is then decoded). */
export function isEnvelopeEvent(data: Buffer): boolean {
  const head = data[0];
  // fixmap (0x80-0x8f) or map16 (0xde) header
  const offset = head !== undefined && head >= 0x80 && head <= 0x8f ? 1 : head === 0xde ? 3 : -1;
  return offset > 0 && data.length > offset + ENVELOPE_EVENT_PREFIX.length && data.compare(ENVELOPE_EVENT_PREFIX, 0, ENVELOPE_EVENT_PREFIX.length, offset, offset + ENVELOPE_EVENT_PREFIX.length) === 0;
}

export const GRAB_OUTCOMES: readonly GrabOutcome[] = ['grabbed', 'already', 'empty', 'expired'];

export function noOutcomes(): Record<GrabOutcome, number> {
  return { grabbed: 0, already: 0, empty: 0, expired: 0 };
}

function configOf(config: Pick<WorkerConfig, 'redenvelope'>): RedEnvelopeConfig {
  if (config.redenvelope === undefined) throw new Error('redenvelope needs config.redenvelope (the group and its senders)');
  return config.redenvelope;
}

/** The worker's clients that send, as indices into its clients, in order (the driver's sender order). */
export function localSenders(config: Pick<WorkerConfig, 'clients' | 'firstClient' | 'redenvelope'>): number[] {
  const end = config.firstClient + config.clients;
  return configOf(config).senders.filter((g) => g >= config.firstClient && g < end).sort((a, b) => a - b).map((g) => g - config.firstClient);
}

/** What one worker learns while the load runs (GrabReport, built up). */
class Tally {
  readonly window = noOutcomes();
  readonly all = noOutcomes();
  readonly envelopes = new Set<string>();
  readonly grabs: GrabReport['grabs'] = [];

  report(): GrabReport {
    return { window: { ...this.window }, all: { ...this.all }, envelopes: [...this.envelopes], grabs: this.grabs };
  }
}

/** One member's connection: its grabs in flight and, for a sender, its envelopes. */
class Member {
  /** Request id -> the grab. */
  private readonly grabs = new Map<number, { envelope: string; sentAt: number }>();
  /** Sender: request id of an envelope.send -> its send stamp. */
  private readonly sends = new Map<number, number>();
  /** Sender: own envelopes with shares left -> send stamp. */
  private readonly open = new Map<string, number>();
  /** Sender: envelopes seen without shares left while a send was unanswered (an event can overtake the res). */
  private readonly gone = new Set<string>();

  constructor(
    readonly conn: LanternConnection,
    /** The driver's index of this member when it sends, else undefined. */
    private readonly senderIndex: number | undefined,
    private readonly cfg: RedEnvelopeConfig,
    private readonly tally: Tally,
    private readonly sink: DeliverySink,
  ) {
    conn.onFrame = (frame) => this.onFrame(frame);
    conn.onClose = (description) => sink.failed(null, description);
    if (senderIndex === undefined) conn.skipFrame = isEnvelopeEvent;
  }

  /** The driver's send: one red envelope into the group. */
  sendEnvelope(stampMs: number): void {
    const { count, total, mode } = this.cfg.envelope;
    this.conn.fire((id) => {
      this.sends.set(id, stampMs);
      // A key per envelope: the request id is unique on this connection, the stamp across runs.
      return { t: 'envelope.send', id, conv: this.cfg.conv, total, count, mode, key: `k${id}-${Math.round(stampMs)}`, greeting: GREETING };
    });
  }

  private grab(envelope: string): void {
    const sentAt = nowMs();
    this.conn.fire((id) => {
      this.grabs.set(id, { envelope, sentAt });
      return { t: 'envelope.grab', id, envelope };
    });
    this.sink.reactiveSent();
  }

  private onFrame(frame: Record<string, unknown>): void {
    const user = this.conn.user;
    switch (frame['t']) {
      case 'msg': {
        const m = frame['m'] as Message;
        if (m.kind !== 'envelope') return; // notices (created, joined) are not load
        const envelope = (m.body as EnvelopeBody | undefined)?.envelope;
        if (m.conv !== this.cfg.conv || typeof envelope !== 'string') {
          this.sink.failed(null, `${user}: envelope card in ${m.conv} without an envelope id`);
          return;
        }
        this.tally.envelopes.add(envelope);
        this.grab(envelope);
        return;
      }
      case 'res': {
        const id = frame['id'] as number;
        const grab = this.grabs.get(id);
        if (grab !== undefined) {
          this.grabs.delete(id);
          this.answered(grab, frame['data'] as RequestResult<'envelope.grab'>);
          return;
        }
        const stamp = this.sends.get(id);
        if (stamp !== undefined) {
          this.sends.delete(id);
          this.sent((frame['data'] as RequestResult<'envelope.send'>).envelope, stamp);
          return;
        }
        this.sink.failed(null, `${user}: res to a request it did not make (${id})`);
        return;
      }
      case 'err': {
        const id = frame['id'] as number;
        const what = `${String(frame['error'])} (${String(frame['code'])}) ${String(frame['msg'])}`;
        if (this.grabs.delete(id)) this.sink.reactiveFailed(`${user}: envelope.grab: ${what}`);
        else if (this.sends.delete(id)) this.sink.failed(this.senderIndex!, `${user}: envelope.send: ${what}`);
        else this.sink.failed(null, `${user}: ${what}`);
        return;
      }
      case 'envelope': {
        const e = frame as unknown as EnvelopeEvent;
        if (e.left === 0 || e.luckiest !== undefined) this.allGone(e.envelope);
        return;
      }
      case 'lag':
        this.sink.failed(null, `${user}: lag (server dropped events for this connection)`);
        return;
      default:
        return; // presence, receipts
    }
  }

  private answered(grab: { envelope: string; sentAt: number }, data: RequestResult<'envelope.grab'>): void {
    const outcome = data.outcome;
    if (!GRAB_OUTCOMES.includes(outcome)) {
      this.sink.reactiveFailed(`${this.conn.user}: envelope.grab answered outcome ${String(outcome)}`);
      return;
    }
    this.tally.all[outcome]++;
    if (this.sink.inWindow(grab.sentAt)) this.tally.window[outcome]++;
    if (outcome === 'grabbed' || outcome === 'already') this.tally.grabs.push([grab.envelope, this.conn.user, data.amount ?? 0, outcome]);
    this.sink.reactiveAnswered(grab.sentAt);
    if (outcome === 'empty' || outcome === 'expired') this.allGone(grab.envelope);
  }

  private sent(envelope: string, stampMs: number): void {
    this.tally.envelopes.add(envelope);
    if (this.gone.delete(envelope)) this.sink.completed(this.senderIndex!, stampMs);
    else this.open.set(envelope, stampMs);
  }

  /** No shares left: completes the send if the envelope is this sender's. */
  private allGone(envelope: string): void {
    if (this.senderIndex === undefined) return;
    const stamp = this.open.get(envelope);
    if (stamp !== undefined) {
      this.open.delete(envelope);
      this.sink.completed(this.senderIndex, stamp);
    } else if (this.sends.size > 0) {
      this.gone.add(envelope);
    }
  }
}

export const setupRedEnvelope: ScenarioSetup = async (config, sink) => {
  const auth = config.chat;
  if (auth === undefined) throw new Error('redenvelope needs config.chat (jwtSecret, audience, userPrefix)');
  const cfg = configOf(config);
  const senders = localSenders(config);
  const senderIndexOf = new Map(senders.map((local, k) => [local, k]));
  const tally = new Tally();
  sink.expectReactive();

  const members = await mapLimit(Array.from({ length: config.clients }, (_, i) => i), SETUP_CONCURRENCY, async (i) => {
    const user = `${auth.userPrefix}${config.firstClient + i}`;
    const token = await mintToken(auth.jwtSecret, auth.audience, user);
    const conn = await LanternConnection.open(urlOf(config, config.firstClient + i), token, user, DEVICE, config.setupTimeoutMs);
    return new Member(conn, senderIndexOf.get(i), cfg, tally, sink);
  });
  const driverSenders: Sender[] = senders.map((local) => {
    const member = members[local]!;
    return { send: (stampMs) => member.sendEnvelope(stampMs), bufferedAmount: () => member.conn.ws.bufferedAmount };
  });
  return {
    senders: driverSenders,
    grabReport: () => tally.report(),
    close: async () => {
      for (const m of members) m.conn.markClosing();
      await closeSockets(members.map((m) => m.conn.ws));
    },
  };
};
