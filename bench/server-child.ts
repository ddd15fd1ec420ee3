// A benchmark server (embedded Lantern or raw uWebSockets.js, connections-server.ts) in a child
// process of its own, so its memory and CPU are its alone and it never shares an event loop with
// the generators or the bench. Used by the connection-scale and storm benches.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ServerCommand, ServerMessage } from './connections-server.ts';
import { ChildInbox, killChild } from './loadgen/child-inbox.ts';

const SERVER_PATH = fileURLToPath(new URL('./connections-server.ts', import.meta.url));
const TSX_LOADER = import.meta.resolve('tsx');
const READY_TIMEOUT_MS = 60_000;
const CLOSE_TIMEOUT_MS = 30_000;
const MEMORY_TIMEOUT_MS = 30_000;

export class ServerChild {
  private constructor(
    private readonly child: ChildProcess,
    private readonly inbox: ChildInbox<ServerMessage>,
    readonly ready: Extract<ServerMessage, { type: 'ready' }>,
  ) {}

  get pid(): number { return this.child.pid!; }

  /** `--expose-gc` lets heapUsed() collect first, so a heap figure is live objects, not garbage. */
  static async start(kind: 'lantern' | 'raw', store: 'lmdb' | 'memory'): Promise<ServerChild> {
    const child = fork(SERVER_PATH, [kind, store], { execArgv: ['--import', TSX_LOADER, '--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const inbox = new ChildInbox<ServerMessage>(child, `benchmark server (${kind})`);
    try {
      return new ServerChild(child, inbox, await inbox.next('ready', READY_TIMEOUT_MS));
    } catch (err) {
      killChild(child);
      throw err;
    }
  }

  async heapUsed(): Promise<number> {
    const answer = this.inbox.next('memory', MEMORY_TIMEOUT_MS);
    this.child.send({ type: 'memory' } satisfies ServerCommand);
    return (await answer).heapUsedBytes;
  }

  async close(): Promise<void> {
    try {
      if (this.child.connected) {
        const closed = this.inbox.next('closed', CLOSE_TIMEOUT_MS);
        this.child.send({ type: 'close' } satisfies ServerCommand);
        await closed.catch((err: unknown) => { if (!this.inbox.exitedCleanly) throw err; });
      }
    } finally {
      killChild(this.child);
    }
  }
}
