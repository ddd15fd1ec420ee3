// Micro benchmark (not a test): durable single-message commits into LmdbChatStore.
//   node --import tsx storage/lmdb/bench-commit.ts [commits=20000] [convs=100] [rounds=3]
// Pattern "burst": every commit issued at once, each based on the head the previous one makes
// (lmdb-js runs queued txn callbacks in call order, so pipelined commits to one conversation
// all succeed). Pattern "per-conv": one writer per conversation that awaits each commit
// before the next, all conversations concurrently: bound by flush latency, not CPU.
// Prints the median of `rounds` runs after one warm-up run (the first run pays for JIT).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCommit, textMessage } from '../contract/fixtures.ts';
import { LmdbChatStore } from './chat-store.ts';

const total = Number(process.argv[2] ?? 20_000);
const convCount = Number(process.argv[3] ?? 100);
const rounds = Number(process.argv[4] ?? 3);
const perConv = Math.ceil(total / convCount);

async function run(pattern: 'burst' | 'per-conv'): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'lantern-bench-commit-'));
  const store = await LmdbChatStore.open({ path: dir });
  try {
    const convs = Array.from({ length: convCount }, (_, i) => `bench-${pattern}-${i}`);
    await Promise.all(convs.map((conv) => store.commit(createCommit(conv, 'owner', 0, ['peer']))));
    const commitAt = (conv: string, head: number) =>
      store.commit({ conv, expectHead: head, messages: [textMessage(conv, head + 1, 'owner', `cid-${head}`, 'hello there')] });
    const started = process.hrtime.bigint();
    if (pattern === 'burst') {
      await Promise.all(convs.flatMap((conv) => Array.from({ length: perConv }, (_, head) => commitAt(conv, head))));
    } else {
      await Promise.all(convs.map(async (conv) => {
        for (let head = 0; head < perConv; head++) await commitAt(conv, head);
      }));
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const check = await store.getConversation(convs[0]!);
    if (check?.head !== perConv) throw new Error(`bench: expected head ${perConv}, got ${check?.head}`);
    return (perConv * convCount) / seconds;
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await run('burst');
for (const pattern of ['burst', 'per-conv'] as const) {
  const rates: number[] = [];
  for (let i = 0; i < rounds; i++) rates.push(await run(pattern));
  rates.sort((a, b) => a - b);
  const median = Math.round(rates[Math.floor(rates.length / 2)]!);
  console.log(`${pattern}: ${perConv * convCount} commits across ${convCount} conversations: median ${median} commits/s ` +
    `(runs: ${rates.map(Math.round).join(', ')})`);
}
