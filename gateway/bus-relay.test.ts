// Group delivery across the bus: a worker's BusDelivery publishes each group event once on the
// group's subject; each gateway's BusRelay fans it out to its local members and keeps its view of
// membership current from join/leave notices, re-announcements and re-reads after a disconnect.
import t from 'tap';
import { decodeFrame } from '../protocol/codec.ts';
import type { ServerEvent } from '../protocol/frames.ts';
import type { DeviceSession, Engine } from '../engine/api.ts';
import { BusDelivery } from '../engine/bus-delivery.ts';
import { createChatEngine } from '../engine/chat-engine.ts';
import type { Bus, ChatStore, Delivery } from '../engine/ports.ts';
import { InProcessBus } from '../storage/memory/bus.ts';
import { MemoryChatStore } from '../storage/memory/chat-store.ts';
import { MemoryPresenceRegistry } from '../storage/memory/presence-registry.ts';
import { BusRelay, type GroupLoader } from './bus-relay.ts';

/** Counts publishes per subject kind so tests can check what crossed the bus. */
class CountingBus extends InProcessBus {
  readonly published = { group: 0, user: 0 };
  override publish(subject: string, data: Uint8Array): void {
    if (subject.startsWith('lantern.c.')) this.published.group++;
    if (subject.startsWith('lantern.u.')) this.published.user++;
    super.publish(subject, data);
  }
}

class Gateway {
  readonly got = new Map<string, ServerEvent[]>();
  readonly relay: BusRelay;
  constructor(bus: Bus, loader: GroupLoader) {
    this.relay = new BusRelay(bus, {
      relay: (user, bytes) => {
        const list = this.got.get(user) ?? [];
        list.push(decodeFrame(bytes) as unknown as ServerEvent);
        this.got.set(user, list);
      },
    }, loader, { debug() {}, info() {}, warn() {}, error() {} }, 10);
  }
  texts(user: string): string[] {
    return (this.got.get(user) ?? []).flatMap((e) => e.t === 'msg' && e.m.kind === 'text' ? [String((e.m.body as { text: string }).text)] : []);
  }
  notices(user: string): string[] {
    return (this.got.get(user) ?? []).flatMap((e) => e.t === 'msg' && e.m.kind === 'system' ? [String((e.m.body as { event: string }).event)] : []);
  }
}

const who = (user: string): DeviceSession => ({ user, device: 'phone', session: `s-${user}` });
const settle = () => new Promise((resolve) => setTimeout(resolve, 5));
const nullDelivery: Delivery = { toUsers() {}, toConversation() {} };

function world() {
  const bus = new CountingBus();
  const store: ChatStore = new MemoryChatStore();
  const worker = (delivery: Delivery = new BusDelivery(bus)): Engine =>
    createChatEngine({ store, presence: new MemoryPresenceRegistry(), delivery });
  const engine = worker();
  const loader: GroupLoader = (user) => engine.groups!(user);
  const gwA = new Gateway(bus, loader);
  const gwB = new Gateway(bus, loader);
  let cid = 0;
  const send = (engine: Engine, user: string, conv: string, text: string) =>
    engine.request(who(user), 'send', { conv, cid: `c${++cid}`, kind: 'text', body: { text } });
  return { bus, store, worker, engine, gwA, gwB, send };
}

t.test('a group event crosses the bus once and reaches every local member on each gateway', async (t) => {
  const { bus, engine, gwA, gwB, send } = world();
  const { conv } = await engine.request(who('alice'), 'group.create', { title: 'g', members: ['bob', 'carol'] });
  await Promise.all([gwA.relay.firstSocket('alice'), gwA.relay.firstSocket('bob'), gwB.relay.firstSocket('carol')]);
  bus.published.group = bus.published.user = 0;
  for (let i = 0; i < 5; i++) await send(engine, 'alice', conv, `m${i}`);
  await settle();
  t.equal(bus.published.group, 5, 'one publish per message on the group subject');
  t.equal(bus.published.user, 0, 'nothing per user');
  for (const [gw, user] of [[gwA, 'alice'], [gwA, 'bob'], [gwB, 'carol']] as const) {
    t.same(gw.texts(user), ['m0', 'm1', 'm2', 'm3', 'm4'], `${user} got each message once`);
  }
  t.same(gwB.relay.stats().groups, 1);

  await engine.request(who('bob'), 'typing', { conv, on: true });
  await settle();
  const typing = (gw: Gateway, user: string) => (gw.got.get(user) ?? []).filter((e) => e.t === 'typing').length;
  t.same([typing(gwA, 'alice'), typing(gwA, 'bob'), typing(gwB, 'carol')], [1, 0, 1], 'the typist does not get their own typing');
});

t.test('joins and removals: new members get the notice and what follows; removed ones their removal and nothing after', async (t) => {
  const { engine, gwA, gwB, send } = world();
  const { conv } = await engine.request(who('alice'), 'group.create', { title: 'g', members: ['carol'] });
  await Promise.all([gwA.relay.firstSocket('alice'), gwB.relay.firstSocket('carol'), gwB.relay.firstSocket('dave')]);
  t.same(gwB.relay.stats().groups, 1);

  await engine.request(who('alice'), 'group.add', { conv, users: ['dave'] });
  await send(engine, 'alice', conv, 'welcome dave');
  await settle();
  t.same(gwB.notices('dave'), ['joined'], 'dave gets the notice that added him, once');
  t.same(gwB.texts('dave'), ['welcome dave']);
  t.same(gwB.notices('carol'), ['joined'], 'carol sees the join once, on the same gateway as dave');

  await engine.request(who('alice'), 'group.remove', { conv, users: ['carol', 'dave'] });
  await send(engine, 'alice', conv, 'after');
  await settle();
  t.same(gwB.notices('carol'), ['joined', 'removed'], 'carol gets her removal once');
  t.same(gwB.texts('carol'), ['welcome dave'], 'and nothing after it');
  t.same(gwB.texts('dave'), ['welcome dave']);
  t.same(gwA.texts('alice'), ['welcome dave', 'after']);
  t.equal(gwB.relay.stats().groups, 0, 'gateway B stops listening to the group: no local member left');
});

t.test('a change committed but never published (worker crash) is corrected by the next owner\'s re-announcement', async (t) => {
  const { engine, worker, gwA, gwB, send } = world();
  const { conv } = await engine.request(who('alice'), 'group.create', { title: 'g', members: ['carol'] });
  await Promise.all([gwA.relay.firstSocket('alice'), gwB.relay.firstSocket('carol')]);
  // The owner that removes carol dies before publishing: nothing reaches the gateways.
  await worker(nullDelivery).request(who('alice'), 'group.remove', { conv, users: ['carol'] });
  // The next owner loads the group afresh; its first event carries the member list.
  const next = worker();
  await send(next, 'alice', conv, 'secret');
  await send(next, 'alice', conv, 'secret 2');
  await settle();
  t.same(gwA.texts('alice'), ['secret', 'secret 2']);
  t.same(gwB.texts('carol'), [], 'the removed member gets nothing');
  t.equal(gwB.relay.stats().groups, 0);
});

t.test('after a bus disconnect group events are dropped until membership is re-read, then flow again', async (t) => {
  const { engine, worker, gwA, gwB, send } = world();
  const { conv } = await engine.request(who('alice'), 'group.create', { title: 'g', members: ['carol', 'erin'] });
  await Promise.all([gwA.relay.firstSocket('alice'), gwB.relay.firstSocket('carol'), gwB.relay.firstSocket('erin')]);
  gwB.relay.connectionLost();
  // Missed while disconnected: erin's removal.
  await worker(nullDelivery).request(who('alice'), 'group.remove', { conv, users: ['erin'] });
  const next = worker();
  await send(next, 'alice', conv, 'while stale');
  await settle();
  t.same(gwB.texts('carol'), [], 'not delivered on a membership view that may be wrong');
  t.equal(gwB.relay.stats().droppedWhileStale, 1);
  gwB.relay.connectionRestored();
  await settle();
  await send(next, 'alice', conv, 'fresh');
  await settle();
  t.same(gwB.texts('carol'), ['fresh'], 'carol gets events again (and syncs the gap)');
  t.same(gwB.texts('erin'), [], 'erin, removed meanwhile, does not');
});

t.test('a join notice that arrives while the gateway reads the user\'s groups is not lost', async (t) => {
  const { engine, gwA, bus, send } = world();
  const { conv } = await engine.request(who('alice'), 'group.create', { title: 'g', members: [] });
  await gwA.relay.firstSocket('alice');
  let release!: () => void;
  const gate = new Promise<void>((resolve) => { release = resolve; });
  // Gateway B reads frank's groups before he is added, and the answer arrives after the notice.
  const gwB = new Gateway(bus, async (user) => { const groups = await engine.groups!(user); await gate; return groups; });
  const connecting = gwB.relay.firstSocket('frank');
  await settle();
  await engine.request(who('alice'), 'group.add', { conv, users: ['frank'] });
  await settle();
  release();
  await connecting;
  await send(engine, 'alice', conv, 'hello frank');
  await settle();
  t.same(gwB.notices('frank'), ['joined']);
  t.same(gwB.texts('frank'), ['hello frank']);
});

t.test('users who leave the gateway stop its subscriptions', async (t) => {
  const { engine, gwA } = world();
  await engine.request(who('alice'), 'group.create', { title: 'g1', members: ['bob'] });
  await engine.request(who('alice'), 'group.create', { title: 'g2', members: ['bob'] });
  await Promise.all([gwA.relay.firstSocket('alice'), gwA.relay.firstSocket('bob')]);
  t.same(gwA.relay.stats(), { users: 2, groups: 2, droppedWhileStale: 0 });
  gwA.relay.lastSocket('alice');
  t.same(gwA.relay.stats(), { users: 1, groups: 2, droppedWhileStale: 0 }, 'bob still listens to both');
  gwA.relay.lastSocket('bob');
  t.same(gwA.relay.stats(), { users: 0, groups: 0, droppedWhileStale: 0 });
});
