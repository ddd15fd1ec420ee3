// Wallet, transfers and red envelopes end to end, in each deployment mode: money goes in through
// the admin HTTP API, moves over the wire protocol, and every cent is where the ledger says.
import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import type { EnvelopeEvent, ServerFrame, TransferEvent } from '../protocol/frames.ts';
import { startDeployment, testModes, type Deployment } from './support/deployment.ts';
import { befriend } from './support/server.ts';
import { WireError, type WireClient } from './support/wire-client.ts';

const ADMIN_TOKEN = randomBytes(24).toString('hex');
/** Clients grabbing one envelope at once in the crowd test. */
const CROWD = 2000;

async function topup(d: Deployment, body: unknown, token = ADMIN_TOKEN): Promise<{ status: number; json: Record<string, unknown> }> {
  const base = d.urls[0]!.replace(/^ws:/, 'http:').replace(/\/ws$/, '');
  const res = await fetch(`${base}/admin/wallet/topup`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: await res.json() as Record<string, unknown> };
}

async function cents(c: WireClient): Promise<number> {
  return (await c.req('wallet.balance', {})).balances[0]!.cents;
}

async function refused(t: Test, work: Promise<unknown>, error: string, what: string): Promise<void> {
  const err = await work.then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof WireError && err.error === error, `${what}: ${error} (got ${err instanceof Error ? err.message : 'success'})`);
}

for (const mode of testModes()) {
  t.test(mode, async (t) => {
    const d = await startDeployment(mode, { adminToken: ADMIN_TOKEN, ratePerSec: 1000, rateBurst: 1000, maxGroupMembers: CROWD + 1 });
    t.teardown(() => d.close());

    t.test('admin top-up: token required, amounts checked, idempotent by key', async (t) => {
      t.equal((await topup(d, { user: 'z', amount: 100, key: 'k' }, 'x'.repeat(48))).status, 401, 'a wrong token is refused');
      t.same((await topup(d, { user: 'z', amount: 1.5, key: 'k' })).json['field'], 'amount', 'a float amount is refused');
      t.equal((await topup(d, { user: 'z', amount: -1, key: 'k' })).status, 400, 'a negative amount is refused');
      const ok = await topup(d, { user: 'z', amount: 700, key: 'op-1' });
      t.same([ok.status, ok.json['balance'], ok.json['applied']], [200, 700, true]);
      const again = await topup(d, { user: 'z', amount: 700, key: 'op-1' });
      t.same([again.status, again.json['balance'], again.json['applied']], [200, 700, false], 'a retry moves nothing');
      t.equal((await topup(d, { user: 'z', amount: 1, key: 'op-1' })).status, 409, 'the same key for another top-up');
    });

    t.test('a group red envelope grabbed from every gateway at once: shares exact, one each, everyone sees it', async (t) => {
      const users = Array.from({ length: 8 }, (_, i) => `re${i}`);
      const clients = await Promise.all(users.map((u) => d.connect(u)));
      const [sender] = clients;
      const { conv } = await sender!.req('group.create', { title: 'new year', members: users.slice(1) });
      t.equal((await topup(d, { user: users[0], amount: 10_000, key: `env-${mode}` })).status, 200);
      const sent = await sender!.req('envelope.send', { conv, total: 6_666, count: 5, mode: 'lucky', key: 'first', greeting: '恭喜发财' });
      t.equal(await cents(sender!), 10_000 - 6_666, 'debited at send');
      const card = await clients[3]!.waitFor((f) => f.t === 'msg' && f.m.conv === conv && f.m.kind === 'envelope');
      t.same((card as { m: { body: unknown } }).m.body, { envelope: sent.envelope, greeting: '恭喜发财', total: 6_666, count: 5, mode: 'lucky', currency: 'CNY' });

      const answers = await Promise.all(clients.map((c) => c.req('envelope.grab', { envelope: sent.envelope })));
      const grabbed = answers.filter((a) => a.outcome === 'grabbed');
      t.equal(grabbed.length, 5, 'five shares for eight grabbers');
      t.equal(answers.filter((a) => a.outcome === 'empty').length, 3);
      t.equal(grabbed.reduce((s, a) => s + a.amount!, 0), 6_666, 'the shares sum to the total');
      for (const [i, c] of clients.entries()) {
        const expect = (answers[i]!.amount ?? 0) + (i === 0 ? 10_000 - 6_666 : 0);
        t.equal(await cents(c), expect, `${users[i]} holds what the grab said`);
      }
      const isEnvelope = (f: ServerFrame) => f.t === 'envelope' && f.envelope === sent.envelope;
      // Grabs close together share an event: wait until the member has seen all five.
      const grabsSeen = (): EnvelopeEvent['grabs'] & object => (clients[7]!.frames.filter(isEnvelope) as EnvelopeEvent[]).flatMap((e) => e.grabs ?? []);
      for (const deadline = Date.now() + 5000; grabsSeen().length < 5 && Date.now() < deadline;) await new Promise((r) => setTimeout(r, 20));
      const seen = clients[7]!.frames.filter(isEnvelope) as EnvelopeEvent[];
      const grabbers = users.filter((_, i) => answers[i]!.outcome === 'grabbed').sort();
      t.same(grabsSeen().map((g) => g.user).sort(), grabbers, 'a member saw every grab, with who grabbed');
      t.same(grabsSeen().map((g) => g.amount).sort(), grabbed.map((a) => a.amount).sort(), 'and how much');
      const info = await clients[7]!.req('envelope.info', { envelope: sent.envelope });
      const max = Math.max(...info.claims.map((c) => c.amount));
      t.equal(info.luckiest, info.claims.find((c) => c.amount === max)!.user, 'the luckiest is named');
      t.equal(seen.find((e) => e.left === 0)!.luckiest, info.luckiest, 'and announced with the last share');
      const retry = await clients[1]!.req('envelope.grab', { envelope: sent.envelope });
      t.equal(retry.outcome, answers[1]!.outcome === 'grabbed' ? 'already' : 'empty', 'grabbing again pays nothing more');

      const held = await cents(sender!);
      await refused(t, sender!.req('envelope.send', { conv, total: held + 1, count: 2, mode: 'lucky', key: 'too-much' }), 'insufficient_funds', 'more than the wallet holds');
      await refused(t, sender!.req('envelope.send', { conv, total: 100, count: 9, mode: 'lucky', key: 'many' }), 'invalid_field', 'more shares than members');
      await refused(t, sender!.req('envelope.send', { conv, total: 100.5, count: 2, mode: 'lucky', key: 'float' } as never), 'invalid_field', 'a float total');
      await refused(t, sender!.req('envelope.send', { conv, total: 2 ** 60, count: 2, mode: 'lucky', key: 'huge' }), 'invalid_field', 'a total beyond 2^53');
      await refused(t, sender!.req('envelope.send', { conv, total: 1, count: 2, mode: 'lucky', key: 'thin' }), 'invalid_field', 'total below count cents');
      const outsider = await d.connect('outsider');
      await refused(t, outsider.req('envelope.grab', { envelope: sent.envelope }), 'not_member', 'someone outside the group');
      await refused(t, outsider.req('envelope.grab', { envelope: 'e-made-up' }), 'not_found', 'an unknown envelope');
      t.equal(await cents(sender!), held, 'no refused send moved money');
      await Promise.all([...clients, outsider].map((c) => c.close()));
    });

    t.test(`${CROWD} clients grab one envelope at the same moment through every gateway`, async (t) => {
      const users = Array.from({ length: CROWD }, (_, i) => `crowd${i}`);
      const clients: WireClient[] = [];
      for (let i = 0; i < users.length; i += 100) clients.push(...await Promise.all(users.slice(i, i + 100).map((u) => d.connect(u))));
      const { conv } = await clients[0]!.req('group.create', { title: 'crowd', members: users.slice(1, 100) });
      for (let i = 100; i < users.length; i += 100) await clients[0]!.req('group.add', { conv, users: users.slice(i, i + 100) });
      await topup(d, { user: users[0], amount: 20_000, key: `crowd-${mode}` });
      const { envelope } = await clients[0]!.req('envelope.send', { conv, total: 20_000, count: 100, mode: 'lucky', key: 'crowd' });
      const answers = await Promise.all(clients.map((c) => c.req('envelope.grab', { envelope })));
      const grabbed = answers.filter((a) => a.outcome === 'grabbed');
      t.equal(grabbed.length, 100, 'exactly the 100 shares were handed out');
      t.equal(answers.filter((a) => a.outcome === 'empty').length, CROWD - 100, 'everyone else: empty');
      t.equal(grabbed.reduce((s, a) => s + a.amount!, 0), 20_000, 'the shares sum to the total');
      const info = await clients[1]!.req('envelope.info', { envelope });
      t.equal(new Set(info.claims.map((c) => c.user)).size, 100, 'no user twice');
      const winners = users.filter((_, i) => answers[i]!.outcome === 'grabbed');
      t.same(info.claims.map((c) => c.user).sort(), winners.sort(), 'the store paid exactly those told they grabbed');
      const sample = winners.slice(0, 10);
      for (const u of sample) t.equal(await cents(clients[users.indexOf(u)]!), answers[users.indexOf(u)]!.amount!, `${u} holds the share`);
      await Promise.all(clients.map((c) => c.close()));
    });

    t.test('a transfer between gateways: escrow, accept, both told', async (t) => {
      const [a, b] = [await d.connect('tx-a', 'phone', 0), await d.connect('tx-b', 'phone', d.urls.length - 1)];
      const conv = await befriend(a, 'tx-a', b, 'tx-b');
      await topup(d, { user: 'tx-a', amount: 1_000, key: `tx-${mode}` });
      const sent = await a.req('transfer.send', { user: 'tx-b', amount: 420, key: 'dinner', note: 'dinner' });
      t.same([sent.conv, await cents(a), await cents(b)], [conv, 580, 0]);
      const accepted = await b.req('transfer.accept', { transfer: sent.transfer.transfer });
      t.equal(accepted.state, 'accepted');
      t.same([await cents(a), await cents(b)], [580, 420]);
      for (const c of [a, b]) {
        const e = await c.waitFor((f) => f.t === 'transfer') as TransferEvent;
        t.equal(e.transfer.state, 'accepted');
      }
      await refused(t, b.req('transfer.return', { transfer: sent.transfer.transfer }), 'already_settled', 'returning an accepted transfer');
      const statement = await b.req('wallet.statement', {});
      t.same(statement.entries.map((e) => [e.kind, e.amount, e.balance]), [['accept', 420, 420]]);
      await Promise.all([a.close(), b.close()]);
    });

    t.test('money survives a restart of every process', async (t) => {
      await topup(d, { user: 'keep', amount: 123, key: `keep-${mode}` });
      await d.restart();
      const c = await d.connect('keep');
      t.equal(await cents(c), 123);
      await c.close();
    });
  });
}
