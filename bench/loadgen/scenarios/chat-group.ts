// 'chat-group': the worker's clients form groups of `group.size` members (one group.create by
// the first member naming the others); the first `group.senders` members of each group send
// text messages to it. Every copy reaching another member is a delivery (rate and latency);
// the sender's own copy, which comes back through the same fan-out, completes the send and
// frees its window slot in max mode. Setup waits until every member has seen the group's
// `created` notice, so all gateways listen to the group before the load starts.
import { LanternConnection, mintToken, withTimeout } from '../lantern-client.ts';
import { DEFAULT_GROUP_SETTINGS, urlOf, type GroupSettings, type WorkerConfig } from '../messages.ts';
import { closeSockets, mapLimit } from '../socket.ts';
import { makeStamper, readStamp, textSendFrame } from '../payload.ts';
import type { Message } from '../../../protocol/frames.ts';
import type { DeliverySink, Sender } from '../driver.ts';
import { SETUP_CONCURRENCY, type ScenarioSetup } from './scenario.ts';

const DEVICE = 'bench';

/** Settings in effect for a worker config; throws when its clients are not whole groups. */
export function groupSettingsOf(config: Pick<WorkerConfig, 'clients' | 'group'>): GroupSettings {
  const g = config.group ?? DEFAULT_GROUP_SETTINGS;
  if (!(g.size >= 2) || !(g.senders >= 1) || g.senders > g.size) throw new RangeError(`chat-group needs 2 <= size and 1 <= senders <= size, got ${JSON.stringify(g)}`);
  if (config.clients % g.size !== 0) throw new RangeError(`chat-group needs whole groups of ${g.size} per worker, got ${config.clients} clients`);
  return g;
}

/** How many of the worker's clients send (the driver's sender count). */
export function groupSenderCount(config: Pick<WorkerConfig, 'clients' | 'group'>): number {
  const g = groupSettingsOf(config);
  return (config.clients / g.size) * g.senders;
}

export const setupChatGroup: ScenarioSetup = async (config, sink) => {
  const auth = config.chat;
  if (auth === undefined) throw new Error('chat-group needs config.chat (jwtSecret, audience, userPrefix)');
  const g = groupSettingsOf(config);
  const users = Array.from({ length: config.clients }, (_, i) => `${auth.userPrefix}${config.firstClient + i}`);
  const conns = await mapLimit(users, SETUP_CONCURRENCY, async (user, i) => {
    const token = await mintToken(auth.jwtSecret, auth.audience, user);
    return LanternConnection.open(urlOf(config, config.firstClient + i), token, user, DEVICE, config.setupTimeoutMs);
  });

  // Sender index (driver order) of each sending user; senders are the first g.senders of each group.
  const senderIndexOf = new Map<string, number>();
  const groups = config.clients / g.size;
  for (let k = 0; k < groups; k++) for (let s = 0; s < g.senders; s++) senderIndexOf.set(users[k * g.size + s]!, senderIndexOf.size);

  // Every member must see the created notice (seq 1) before the load starts.
  let seen = 0;
  let allSeen: () => void = () => {};
  const ready = new Promise<void>((resolve) => { allSeen = resolve; });
  for (const conn of conns) {
    conn.onFrame = (frame) => {
      if (frame['t'] === 'msg' && (frame['m'] as Message).seq === 1 && ++seen === conns.length) allSeen();
    };
  }
  const convs = await mapLimit(Array.from({ length: groups }, (_, k) => k), SETUP_CONCURRENCY, async (k) => {
    const members = users.slice(k * g.size, (k + 1) * g.size);
    const info = await conns[k * g.size]!.request('group.create', { title: `bench ${members[0]}`, members: members.slice(1) });
    return info.conv;
  });
  await withTimeout(ready, config.setupTimeoutMs, `created notices of ${groups} group(s) reaching ${conns.length} members (seen ${seen})`);

  sink.expectCopiesPerSend(g.size - 1);
  const stamp = makeStamper(config.load.payloadBytes);
  const senders: Sender[] = [];
  for (const [i, conn] of conns.entries()) {
    conn.onFrame = measuringHandler(conn.user, senderIndexOf, sink);
    conn.onClose = (description) => sink.failed(null, description);
    const k = Math.floor(i / g.size);
    if (i - k * g.size >= g.senders) continue;
    const conv = convs[k]!;
    const cidPrefix = `${conn.user}-`;
    senders.push({
      send(stampMs: number): void {
        conn.fire((id) => textSendFrame(id, conv, cidPrefix + id, stamp(stampMs)));
      },
      bufferedAmount: () => conn.ws.bufferedAmount,
    });
  }
  return {
    senders,
    close: async () => {
      for (const c of conns) c.markClosing();
      await closeSockets(conns.map((c) => c.ws));
    },
  };
};

function measuringHandler(own: string, senderIndexOf: ReadonlyMap<string, number>, sink: DeliverySink) {
  const ownSenderIndex = senderIndexOf.get(own);
  return (frame: Record<string, unknown>): void => {
    switch (frame['t']) {
      case 'msg': {
        const m = frame['m'] as Message;
        if (m.kind !== 'text') return; // notices (created) are not load
        const sentAt = readStamp((m.body as { text?: unknown } | undefined)?.text);
        if (Number.isNaN(sentAt) || !senderIndexOf.has(m.from)) sink.failed(null, `${own}: unexpected msg from ${m.from}`);
        else if (m.from === own) sink.completed(ownSenderIndex!, sentAt);
        else sink.deliveredCopy(sentAt);
        return;
      }
      case 'err':
        sink.failed(frame['id'] === 0 || ownSenderIndex === undefined ? null : ownSenderIndex,
          `${own}: ${String(frame['error'])} (${String(frame['code'])}) ${String(frame['msg'])}`);
        return;
      case 'lag':
        sink.failed(null, `${own}: lag (server dropped events for this connection)`);
        return;
      default:
        return; // res of sends, receipts, presence
    }
  };
}
