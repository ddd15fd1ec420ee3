// The bundles build, the browser bundle reaches no node built-in, and the built code works.
import t from 'tap';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { WebSocket } from 'ws';
import { buildSdk, NODE_BUILTINS } from './build.ts';
import { FakeServer } from './test/fake-server.ts';
import type * as Sdk from './index.ts';

const outDir = await mkdtemp(path.join(tmpdir(), 'lantern-sdk-build-'));
t.teardown(() => rm(outDir, { recursive: true, force: true }));
const built = await buildSdk(outDir);

t.test('the browser bundle does not require or import node built-ins', async (t) => {
  const code = await readFile(built.browser, 'utf8');
  t.ok(code.length > 1000, 'bundle is not empty');
  const requires = [...code.matchAll(/require\(\s*["']([^"']+)["']\s*\)/g)].map((m) => m[1]!);
  const builtins = new Set(NODE_BUILTINS);
  t.same(requires.filter((r) => r.startsWith('node:') || builtins.has(r)), [], 'no require() of a built-in');
  const imports = [
    ...code.matchAll(/\bimport\s*(?:[\w$*{},\s]+?from\s*)?["']([^"']+)["']/g),
    ...code.matchAll(/\bimport\(\s*["']([^"']+)["']/g),
  ].map((m) => m[1]!);
  t.same(imports, [], 'fully self-contained: no import statements left');
  t.notMatch(code, /\bprocess\.env\b/, 'no node process access');
  t.match(code, /sourceMappingURL=lantern-sdk\.js\.map/);
  const map = JSON.parse(await readFile(`${built.browser}.map`, 'utf8')) as { sources: string[] };
  t.ok(map.sources.some((s) => s.endsWith('sdk/client.ts')), 'source map points at the TypeScript sources');
  t.ok(map.sources.some((s) => s.endsWith('protocol/codec.ts')), 'the msgpack codec is bundled in');
});

t.test('the node bundle is self-contained ESM exporting the client', async (t) => {
  const mod = (await import(pathToFileURL(built.node).href)) as typeof Sdk;
  t.type(mod.LanternClient, 'function');
  t.equal(mod.closeAdvice(4001), 'stop');
  const bytes = mod.encodeFrame({ t: 'ping', id: 1 });
  t.same(mod.decodeFrame(bytes), { t: 'ping', id: 1 });
});

t.test('the minified browser bundle connects and sends against a server', async (t) => {
  const mod = (await import(pathToFileURL(built.browser).href)) as typeof Sdk;
  const server = await FakeServer.start();
  const client = new mod.LanternClient({ url: server.url, token: 'tok', device: 'browser', WebSocket, backoff: { initialMs: 5, maxMs: 20 } });
  t.teardown(async () => {
    await client.close();
    await server.stop();
  });
  const got: string[] = [];
  client.on('message', (m) => got.push(`${m.conv}#${m.seq}`));
  const welcome = await client.connect();
  t.equal(welcome.user, 'alice');
  const ack = await client.sendText('g', 'from the bundle');
  t.same({ seq: ack.seq, dup: ack.dup }, { seq: 1, dup: false });
  const cid = server.framesOfType('send')[0]?.['cid'];
  t.match(cid, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'a v4 UUID cid from Web Crypto');
  await server.until(() => got.length === 1, 'own message event');
  t.same(got, ['g#1']);
});
