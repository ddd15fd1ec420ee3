// 'chat-1to1': clients in pairs (2k, 2k+1) of one worker become contacts and open their
// direct conversation; then each sends text messages to its peer. Delivery is measured at
// the peer (send -> msg event); each sender also gets res and its own msg, which are
// only checked for errors.
import { LanternConnection, mintToken } from '../lantern-client.ts';
import { urlOf } from '../messages.ts';
import { closeSockets, mapLimit } from '../socket.ts';
import { makeStamper, readStamp, textSendFrame } from '../payload.ts';
import type { Message } from '../../../protocol/frames.ts';
import type { DeliverySink } from '../driver.ts';
import { SETUP_CONCURRENCY, type ScenarioSetup } from './scenario.ts';

const DEVICE = 'bench';

export const setupChat1to1: ScenarioSetup = async (config, sink) => {
  const auth = config.chat;
  if (auth === undefined) throw new Error('chat-1to1 needs config.chat (jwtSecret, audience, userPrefix)');
  if (config.clients % 2 !== 0) throw new Error(`chat-1to1 needs whole pairs per worker, got ${config.clients} clients`);
  const users = Array.from({ length: config.clients }, (_, i) => `${auth.userPrefix}${config.firstClient + i}`);
  const indexOfUser = new Map(users.map((u, i) => [u, i]));

  // With several gateways the two ends of a pair sit on different ones (consecutive global indices).
  const conns = await mapLimit(users, SETUP_CONCURRENCY, async (user, i) => {
    const token = await mintToken(auth.jwtSecret, auth.audience, user);
    return LanternConnection.open(urlOf(config, config.firstClient + i), token, user, DEVICE, config.setupTimeoutMs);
  });
  const pairs = Array.from({ length: config.clients / 2 }, (_, k) => k);
  const convOfPair = await mapLimit(pairs, SETUP_CONCURRENCY, async (k) => {
    const a = conns[2 * k]!;
    const b = conns[2 * k + 1]!;
    await a.request('contact.request', { user: b.user });
    await b.request('contact.accept', { user: a.user });
    const [fromA, fromB] = await Promise.all([a.request('conv.direct', { user: b.user }), b.request('conv.direct', { user: a.user })]);
    if (fromA.conv !== fromB.conv) throw new Error(`conv.direct disagrees for ${a.user}/${b.user}: ${fromA.conv} vs ${fromB.conv}`);
    return fromA.conv;
  });

  const stamp = makeStamper(config.load.payloadBytes);
  const senders = conns.map((conn, i) => {
    conn.onFrame = measuringHandler(conn.user, i, indexOfUser, sink);
    conn.onClose = (description) => sink.failed(null, description);
    const conv = convOfPair[i >> 1]!;
    const cidPrefix = `${conn.user}-`;
    return {
      send(stampMs: number): void {
        conn.fire((id) => textSendFrame(id, conv, cidPrefix + id, stamp(stampMs)));
      },
      bufferedAmount: () => conn.ws.bufferedAmount,
    };
  });
  return {
    senders,
    close: async () => {
      for (const c of conns) c.markClosing();
      await closeSockets(conns.map((c) => c.ws));
    },
  };
};

function measuringHandler(own: string, ownIndex: number, indexOfUser: ReadonlyMap<string, number>, sink: DeliverySink) {
  return (frame: Record<string, unknown>): void => {
    switch (frame['t']) {
      case 'msg': {
        const m = frame['m'] as Message;
        if (m.from === own) return; // our own send echoed to our device: not a delivery
        const sender = indexOfUser.get(m.from);
        const sentAt = readStamp((m.body as { text?: unknown } | undefined)?.text);
        if (sender === undefined || Number.isNaN(sentAt)) sink.failed(null, `${own}: unexpected msg from ${m.from} (${m.kind})`);
        else sink.delivered(sender, sentAt);
        return;
      }
      case 'err':
        // Only sends are fired without bookkeeping, so an unmatched err refuses one of ours.
        sink.failed(frame['id'] === 0 ? null : ownIndex, `${own}: ${String(frame['error'])} (${String(frame['code'])}) ${String(frame['msg'])}`);
        return;
      case 'lag':
        sink.failed(null, `${own}: lag (server dropped events for this connection)`);
        return;
      default:
        return; // res of sends, receipts, presence, contact events
    }
  };
}
