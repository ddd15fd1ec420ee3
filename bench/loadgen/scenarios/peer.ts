// 'peer-chat' and 'peer-fanout': the chat and fan-out load driven through the peers' common client
// (bench/peers/peer-client.ts), so raw uWS, Socket.IO, Centrifugo and Lantern get the same load
// from the same generator. The payload is the stamp of peers/payload.ts; latency is read from it.
//
// peer-chat: clients in pairs (2k, 2k+1) of one worker send 1:1 messages to each other (Lantern
// pairs become contacts first). A message delivered to the peer is a delivery and frees its
// sender's window slot, as in chat-1to1.
//
// peer-fanout: the worker's clients form groups of `group.size`, each member joins its group, and
// the first `group.senders` members publish to it. Every copy reaching a member is a delivery,
// **the sender's own copy included** (a publish reaches every member on every peer, as in a Lantern
// group); the sender's own copy also completes the send (frees the window slot), and the drain
// waits for all `size` copies of each completed send.
import { makeStampedPayload, readPayloadStamp } from '../../peers/payload.ts';
import type { LanternPeer } from '../../peers/lantern-peer.ts';
import type { PeerClient } from '../../peers/peer-client.ts';
import type { Sender } from '../driver.ts';
import { mintToken } from '../lantern-client.ts';
import { urlOf, type PeerConfig, type WorkerConfig } from '../messages.ts';
import { mapLimit } from '../socket.ts';
import { groupSettingsOf } from './chat-group.ts';
import { SETUP_CONCURRENCY, type ScenarioInstance, type ScenarioSetup } from './scenario.ts';

/** How a worker reaches one target: open a client for a user, and (Lantern) prepare a 1:1 pair. */
interface PeerOpener {
  open(user: string, globalIndex: number): Promise<PeerClient>;
  pair?(a: PeerClient, b: PeerClient): Promise<void>;
}

function peerConfigOf(config: WorkerConfig): PeerConfig {
  if (config.peer === undefined) throw new Error(`${config.scenario} needs config.peer (the target and its credentials)`);
  return config.peer;
}

/** Imports only the target's client: a worker driving raw uWS does not load socket.io-client. */
async function openerFor(config: WorkerConfig): Promise<PeerOpener> {
  const { target } = peerConfigOf(config);
  const timeoutMs = config.setupTimeoutMs;
  const url = (i: number): string => urlOf(config, i);
  switch (target.kind) {
    case 'raw-uws': {
      const { BroadcastClient } = await import('../../peers/uws-broadcast.ts');
      return { open: (user, i) => BroadcastClient.open(url(i), user, timeoutMs) };
    }
    case 'socketio': {
      const { SocketIoClient } = await import('../../peers/socketio.ts');
      return { open: (user, i) => SocketIoClient.open(url(i), user, timeoutMs) };
    }
    case 'centrifugo': {
      const { CentrifugoClient, connectionToken } = await import('../../peers/centrifugo.ts');
      return { open: async (user, i) => CentrifugoClient.open(url(i), await connectionToken(target.secret, user), user, timeoutMs) };
    }
    case 'lantern': {
      const lantern = await import('../../peers/lantern-peer.ts');
      const groups = new lantern.LanternGroups();
      return {
        open: async (user, i) => lantern.LanternPeer.open(url(i), await mintToken(target.jwtSecret, target.audience, user), user, groups, timeoutMs),
        pair: (a, b) => lantern.LanternPeer.befriend(a as LanternPeer, b as LanternPeer),
      };
    }
  }
}

async function openClients(config: WorkerConfig, opener: PeerOpener): Promise<{ users: string[]; clients: PeerClient[] }> {
  const { userPrefix } = peerConfigOf(config);
  const users = Array.from({ length: config.clients }, (_, i) => `${userPrefix}${config.firstClient + i}`);
  // With several gateways, consecutive global indices sit on different ones (urlOf).
  const clients = await mapLimit(users, SETUP_CONCURRENCY, (user, i) => opener.open(user, config.firstClient + i));
  return { users, clients };
}

function instance(senders: Sender[], clients: readonly PeerClient[]): ScenarioInstance {
  return {
    senders,
    close: async () => { await Promise.all(clients.map((c) => c.close())); },
  };
}

export const setupPeerChat: ScenarioSetup = async (config, sink) => {
  if (config.clients % 2 !== 0) throw new Error(`peer-chat needs whole pairs per worker, got ${config.clients} clients`);
  const opener = await openerFor(config);
  const { users, clients } = await openClients(config, opener);
  if (opener.pair) {
    const pair = opener.pair;
    await mapLimit(Array.from({ length: clients.length / 2 }, (_, k) => k), SETUP_CONCURRENCY, (k) => pair(clients[2 * k]!, clients[2 * k + 1]!));
  }
  const payload = makeStampedPayload(config.load.payloadBytes);
  const senders = clients.map((client, i): Sender => {
    const peerIndex = i ^ 1;
    const peer = users[peerIndex]!;
    client.onError = (description) => sink.failed(null, description);
    client.onDelivery = (d) => {
      const sentAt = readPayloadStamp(d.payload);
      if (d.group !== null || d.from !== peer || Number.isNaN(sentAt)) {
        sink.failed(null, `${client.user}: unexpected delivery from ${d.from}${d.group === null ? '' : ` in ${d.group}`}`);
      } else {
        sink.delivered(peerIndex, sentAt);
      }
    };
    return { send: (stampMs) => client.sendDirect(peer, payload(stampMs)), bufferedAmount: () => client.bufferedAmount() };
  });
  return instance(senders, clients);
};

export const setupPeerFanout: ScenarioSetup = async (config, sink) => {
  const g = groupSettingsOf(config);
  const { userPrefix } = peerConfigOf(config);
  const opener = await openerFor(config);
  const { users, clients } = await openClients(config, opener);
  // Whole groups per worker, so the worker's first client starts a group (global group index).
  const groupName = (i: number): string => `${userPrefix}g${Math.floor((config.firstClient + i) / g.size)}`;
  await mapLimit(clients, SETUP_CONCURRENCY, (client, i) => client.join(groupName(i)));

  // Senders are the first g.senders members of each group, in the driver's order.
  const senderIndexOf = new Map<string, number>();
  for (let i = 0; i < users.length; i++) if (i % g.size < g.senders) senderIndexOf.set(users[i]!, senderIndexOf.size);

  sink.expectCopiesPerSend(g.size);
  const payload = makeStampedPayload(config.load.payloadBytes);
  const senders: Sender[] = [];
  for (const [i, client] of clients.entries()) {
    const group = groupName(i);
    const own = senderIndexOf.get(client.user);
    client.onError = (description) => sink.failed(null, description);
    client.onDelivery = (d) => {
      const sentAt = readPayloadStamp(d.payload);
      if (d.group !== group || !senderIndexOf.has(d.from) || Number.isNaN(sentAt)) {
        sink.failed(null, `${client.user}: unexpected delivery from ${d.from} in ${d.group ?? '(1:1)'}`);
        return;
      }
      sink.deliveredCopy(sentAt);
      if (d.from === client.user) sink.completed(own!, sentAt);
    };
    if (own !== undefined) senders.push({ send: (stampMs) => client.publish(group, payload(stampMs)), bufferedAmount: () => client.bufferedAmount() });
  }
  return instance(senders, clients);
};
