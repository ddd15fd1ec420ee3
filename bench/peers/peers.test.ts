// Smoke test of the peer baselines at tiny scale: each server starts, three clients connect, a
// 1:1 message reaches only its peer and a group publish reaches every member (the sender
// included), payload and timestamp intact. Centrifugo's part builds the pinned binary first
// (bench/peers/install-centrifugo.sh: minutes with `go install` the first time, cached after).
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { nowMs } from '../loadgen/driver.ts';
import { CentrifugoClient, connectionToken, installCentrifugo, startCentrifugo } from './centrifugo.ts';
import { makeStampedPayload, readPayloadStamp } from './payload.ts';
import type { PeerClient, PeerDelivery } from './peer-client.ts';
import { BroadcastClient, start as startBroadcast } from './uws-broadcast.ts';

// The first `go install` of Centrifugo on a busy 2-core machine; cached runs take seconds.
t.setTimeout(20 * 60_000);

const run = promisify(execFile);
const INSTALL_SCRIPT = fileURLToPath(new URL('./install-centrifugo.sh', import.meta.url));
const USERS = ['alice', 'bob', 'carol'] as const;
const GROUP = 'room1';
const CONNECT_TIMEOUT_MS = 5_000;
/** After the expected messages arrived, how long to wait for copies that should not come. */
const QUIET_MS = 150;

/** Collects every client's deliveries and errors; waits until each has at least the expected count. */
function watch(clients: readonly PeerClient[]) {
  const got = new Map<string, PeerDelivery[]>(clients.map((c) => [c.user, []]));
  const errors: string[] = [];
  for (const c of clients) {
    c.onDelivery = (d) => got.get(c.user)!.push(d);
    c.onError = (e) => errors.push(e);
  }
  return {
    got,
    errors,
    async until(expected: Record<string, number>, timeoutMs = 5_000): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      const reached = (): boolean => Object.entries(expected).every(([user, n]) => got.get(user)!.length >= n);
      while (!reached() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      await new Promise((resolve) => setTimeout(resolve, QUIET_MS));
    },
    clear(): void {
      for (const list of got.values()) list.length = 0;
    },
  };
}

/** The checks every peer must pass, with clients for alice, bob and carol already connected. */
async function chatAndFanOut(t: Test, clients: readonly PeerClient[]): Promise<void> {
  const [alice, bob] = clients;
  const w = watch(clients);
  const payload = makeStampedPayload(32);

  const directStamp = Number(nowMs().toFixed(3)); // the stamp text keeps 3 decimals
  const direct = payload(directStamp);
  alice!.sendDirect('bob', direct);
  await w.until({ bob: 1 });
  t.equal(w.got.get('bob')!.length, 1, 'bob gets the 1:1 message once');
  const d = w.got.get('bob')![0];
  t.equal(d?.from, 'alice', 'from alice');
  t.equal(d?.group, null, 'as a 1:1 message');
  t.ok(d?.payload.equals(direct), 'payload intact');
  t.equal(d === undefined ? NaN : readPayloadStamp(d.payload), directStamp, 'timestamp readable');
  t.equal(w.got.get('alice')!.length + w.got.get('carol')!.length, 0, 'nobody else gets it');

  w.clear();
  await Promise.all(clients.map((c) => c.join(GROUP)));
  const groupStamp = Number(nowMs().toFixed(3));
  const fanOut = payload(groupStamp);
  bob!.publish(GROUP, fanOut);
  await w.until({ alice: 1, bob: 1, carol: 1 });
  for (const user of USERS) {
    const copies = w.got.get(user)!;
    t.equal(copies.length, 1, `${user} gets the group message once`);
    t.equal(copies[0]?.from, 'bob', `${user}: from bob`);
    t.equal(copies[0]?.group, GROUP, `${user}: in ${GROUP}`);
    t.ok(copies[0]?.payload.equals(fanOut), `${user}: payload intact`);
    t.equal(copies[0] === undefined ? NaN : readPayloadStamp(copies[0].payload), groupStamp, `${user}: timestamp readable`);
  }
  t.same(w.errors, [], 'no errors');
}

t.test('raw uWS broadcast', async (t) => {
  const server = await startBroadcast();
  t.teardown(() => server.close());
  const clients = await Promise.all(USERS.map((u) => BroadcastClient.open(server.url, u, CONNECT_TIMEOUT_MS)));
  t.teardown(() => Promise.all(clients.map((c) => c.close())));
  await chatAndFanOut(t, clients);
});

t.test('Socket.IO', async (t) => {
  // Imported here so that a missing socket.io package fails this part only.
  const { start, SocketIoClient } = await import('./socketio.ts');
  const server = await start();
  t.teardown(() => server.close());
  const clients = await Promise.all(USERS.map((u) => SocketIoClient.open(server.url, u, CONNECT_TIMEOUT_MS)));
  t.teardown(() => Promise.all(clients.map((c) => c.close())));
  await chatAndFanOut(t, clients);
});

t.test('Centrifugo', async (t) => {
  const bin = await installCentrifugo();
  t.match(bin, /\/centrifugo$/, 'install prints the binary path');

  // Installed now: a second run must not call `go install` (a go on PATH that logs its commands).
  const stubDir = await mkdtemp(join(tmpdir(), 'lantern-go-stub-'));
  t.teardown(() => rm(stubDir, { recursive: true, force: true }));
  const { stdout: realGo } = await run('bash', ['-c', 'command -v go']);
  await writeFile(join(stubDir, 'go'), `#!/bin/sh\necho "$*" >> "${stubDir}/calls"\nexec "${realGo.trim()}" "$@"\n`, { mode: 0o755 });
  const again = await run('bash', [INSTALL_SCRIPT], { env: { ...process.env, PATH: `${stubDir}:${process.env['PATH']}` } });
  t.equal(again.stdout.trim(), bin, 'a second install prints the same path');
  const calls = await readFile(join(stubDir, 'calls'), 'utf8');
  t.notMatch(calls, /^install/m, `without running go install (go calls: ${calls.trim()})`);

  const server = await startCentrifugo({ bin });
  t.teardown(() => server.close());
  const clients = await Promise.all(USERS.map(async (u) => CentrifugoClient.open(server.url, await server.tokenFor(u), u, CONNECT_TIMEOUT_MS)));
  t.teardown(() => Promise.all(clients.map((c) => c.close())));
  await chatAndFanOut(t, clients);

  const forged = await connectionToken('not-the-secret', 'mallory');
  await t.rejects(CentrifugoClient.open(server.url, forged, 'mallory', CONNECT_TIMEOUT_MS), 'a token signed with another secret is refused');

  await Promise.all(clients.map((c) => c.close()));
  await server.close();
  t.throws(() => process.kill(server.pid, 0), { code: 'ESRCH' }, 'close stops the server process');
});
