// The Bus contract, run against every adapter (in-process, NATS). `make` returns two bus
// handles that stand for two processes (two NATS connections; the same in-process bus twice).
import { BusNoRespondersError, BusTimeoutError, type Bus } from '../../engine/ports.ts';

type Tap = typeof import('tap').default;
export interface BusPair { a: Bus; b: Bus; cleanup(): Promise<void> }

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const text = (b: Uint8Array): string => new TextDecoder().decode(b);
let unique = 0;
const subject = (name: string): string => `contract.${process.pid}.${++unique}.${name}`;

/** Resolve once `check` holds, polling every few ms; fail after `ms`. */
async function until(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

export function busContract(t: Tap, name: string, make: () => Promise<BusPair>): void {
  const withPair = (title: string, fn: (p: BusPair, t: Tap) => Promise<void>) =>
    t.test(`${name}: ${title}`, async (tt) => {
      const pair = await make();
      tt.teardown(() => pair.cleanup());
      await fn(pair, tt as unknown as Tap);
    });

  withPair('messages from one publisher arrive in order, across processes', async ({ a, b }, t) => {
    const s = subject('order');
    const got: string[] = [];
    b.subscribe(s, (d) => got.push(text(d)));
    await b.flush();
    for (let i = 0; i < 1000; i++) a.publish(s, bytes(String(i)));
    await a.flush();
    await until(() => got.length === 1000, '1000 messages');
    t.same(got, Array.from({ length: 1000 }, (_, i) => String(i)));
  });

  withPair('wildcards: * matches one token, > the rest', async ({ a, b }, t) => {
    const base = subject('wild');
    const star: string[] = [];
    const rest: string[] = [];
    b.subscribe(`${base}.*`, (_, s) => star.push(s));
    b.subscribe(`${base}.>`, (_, s) => rest.push(s));
    await b.flush();
    a.publish(`${base}.x`, bytes('1'));
    a.publish(`${base}.x.y`, bytes('2'));
    a.publish(`${base}`, bytes('3'));
    await a.flush();
    await until(() => rest.length === 2, 'two > matches');
    t.same(star, [`${base}.x`]);
    t.same(rest.sort(), [`${base}.x`, `${base}.x.y`]);
  });

  withPair('a queue group gets each message once; plain subscribers get all', async ({ a, b }, t) => {
    const s = subject('queue');
    const byMember = [0, 0];
    const seen = new Set<string>();
    let plain = 0;
    let dupes = 0;
    const onQueue = (member: number) => (d: Uint8Array) => {
      byMember[member]!++;
      if (seen.has(text(d))) dupes++;
      seen.add(text(d));
    };
    a.subscribe(s, onQueue(0), { queue: 'workers' });
    b.subscribe(s, onQueue(1), { queue: 'workers' });
    b.subscribe(s, () => { plain++; });
    await Promise.all([a.flush(), b.flush()]);
    for (let i = 0; i < 200; i++) a.publish(s, bytes(String(i)));
    await a.flush();
    await until(() => plain === 200 && seen.size === 200, 'all deliveries');
    t.equal(dupes, 0, 'no message twice within the group');
    t.equal(byMember[0]! + byMember[1]!, 200);
    t.ok(byMember[0]! > 0 && byMember[1]! > 0, `both members share the load (${byMember.join('/')})`);
  });

  withPair('request/reply: exactly one member of a serving queue group answers', async ({ a, b }, t) => {
    const s = subject('rpc');
    let calls = 0;
    const handler = async (d: Uint8Array) => { calls++; return bytes(`re:${text(d)}`); };
    a.serve(s, handler, { queue: 'svc' });
    b.serve(s, handler, { queue: 'svc' });
    await Promise.all([a.flush(), b.flush()]);
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => a.request(s, bytes(String(i)), { timeoutMs: 2000 })));
    t.same(replies.map(text), Array.from({ length: 20 }, (_, i) => `re:${i}`));
    t.equal(calls, 20);
  });

  withPair('no responders fails fast; a silent responder times out', async ({ a, b }, t) => {
    const started = Date.now();
    await t.rejects(a.request(subject('nobody'), bytes('x'), { timeoutMs: 3000 }), BusNoRespondersError);
    t.ok(Date.now() - started < 2000, 'no-responders does not wait for the timeout');
    const s = subject('silent');
    b.serve(s, () => new Promise<Uint8Array>(() => {}));
    await b.flush();
    await t.rejects(a.request(s, bytes('x'), { timeoutMs: 200 }), BusTimeoutError);
  });

  withPair('unsubscribe stops delivery; a throwing handler does not end its subscription', async ({ a, b }, t) => {
    const s = subject('unsub');
    let kept = 0;
    let dropped = 0;
    const sub = b.subscribe(s, () => { dropped++; });
    b.subscribe(s, () => { kept++; if (kept === 1) throw new Error('handler bug'); });
    await b.flush();
    a.publish(s, bytes('1'));
    await a.flush();
    await until(() => kept === 1 && dropped === 1, 'first message');
    sub.unsubscribe();
    await b.flush();
    a.publish(s, bytes('2'));
    await a.flush();
    await until(() => kept === 2, 'second message');
    t.equal(dropped, 1, 'nothing after unsubscribe');
  });

  withPair('payloads up to 512 KiB round-trip intact', async ({ a, b }, t) => {
    const s = subject('big');
    b.serve(s, async (d) => d);
    await b.flush();
    const big = new Uint8Array(512 * 1024).map((_, i) => i % 251);
    const back = await a.request(s, big, { timeoutMs: 5000 });
    t.equal(back.byteLength, big.byteLength);
    t.ok(back.every((v, i) => v === big[i]), 'same bytes');
  });
}
