// A server for the connection-scale benchmark in a process of its own (forked by connections-bench.ts
// with `--import tsx --expose-gc`), so its RSS holds nothing but the server and its sockets:
// `lantern <store>` (embedded Lantern, bench settings) or `raw` (the bare uWebSockets.js server of
// baseline/uws-echo.ts). Tells its URL (and the token secret) when listening, answers `memory` with
// its V8 heap after a full GC, and closes on `close`.
import { start as startRaw } from './baseline/uws-echo.ts';
import { startBenchLantern } from './lantern-server.ts';

export type ServerCommand = { type: 'memory' } | { type: 'close' };
export type ServerMessage =
  | { type: 'ready'; url: string; auth?: { secret: string; audience: string }; settings?: Record<string, unknown> }
  | { type: 'memory'; heapUsedBytes: number; externalBytes: number; arrayBuffersBytes: number }
  | { type: 'closed' }
  | { type: 'failed'; error: string };

if (process.send === undefined) {
  console.error('bench/connections-server.ts runs as a child of the connections benchmark (it needs an IPC channel)');
  process.exit(2);
}

const tell = (m: ServerMessage): Promise<void> => new Promise((resolve) => { process.send!(m, undefined, {}, () => resolve()); });

async function main(): Promise<void> {
  const [kind, store] = process.argv.slice(2);
  let close: () => Promise<void>;
  if (kind === 'lantern') {
    if (store !== 'lmdb' && store !== 'memory') throw new Error(`store must be lmdb or memory, got ${String(store)}`);
    const lantern = await startBenchLantern(store);
    close = () => lantern.close();
    await tell({ type: 'ready', url: lantern.url, auth: { secret: lantern.chat.jwtSecret, audience: lantern.chat.audience }, settings: lantern.settings });
  } else if (kind === 'raw') {
    const raw = await startRaw();
    close = () => raw.close();
    await tell({ type: 'ready', url: raw.url });
  } else {
    throw new Error(`server kind must be lantern or raw, got ${String(kind)}`);
  }
  process.on('message', (c: ServerCommand) => {
    if (c.type === 'memory') {
      // Garbage the start left behind would otherwise count against the sockets (or hide them).
      const gc = (globalThis as { gc?: () => void }).gc;
      gc?.(); gc?.();
      const m = process.memoryUsage();
      void tell({ type: 'memory', heapUsedBytes: m.heapUsed, externalBytes: m.external, arrayBuffersBytes: m.arrayBuffers });
    } else if (c.type === 'close') {
      close().then(
        async () => { await tell({ type: 'closed' }); process.exit(0); },
        async (err: unknown) => { await tell({ type: 'failed', error: String(err) }); process.exit(1); },
      );
    }
  });
}

main().catch(async (err: unknown) => {
  await tell({ type: 'failed', error: err instanceof Error ? err.stack ?? err.message : String(err) });
  process.exit(1);
});
process.on('disconnect', () => process.exit(1));
