// A load generator process's messages to the bench, awaited by type. The generators (flash-sale
// storms, idle connections) report over IPC; a `failed` message, a spawn error or the process's
// exit rejects whoever waits, so a dead generator never leaves the bench hanging.
import type { ChildProcess } from 'node:child_process';

type Message = { type: string; error?: string };

export class ChildInbox<M extends Message> {
  private readonly queue: M[] = [];
  private waiter: { type: M['type']; resolve(m: M): void; reject(e: Error): void } | undefined;
  private dead: Error | undefined;
  exitedCleanly = false;

  /** `label` names the generator in errors, e.g. "flash-sale generator 2". */
  constructor(child: ChildProcess, private readonly label: string) {
    child.on('message', (m: M) => {
      if (m.type === 'failed') this.die(new Error(`${label} failed: ${m.error}`));
      else if (this.waiter?.type === m.type) { const w = this.waiter; this.waiter = undefined; w.resolve(m); }
      else this.queue.push(m);
    });
    child.on('error', (err) => this.die(new Error(`${label}: ${err.message}`, { cause: err })));
    child.on('exit', (code, signal) => {
      if (code === 0) this.exitedCleanly = true;
      this.die(new Error(`${label} exited (${signal ?? code})`));
    });
  }

  next<T extends M['type']>(type: T, timeoutMs: number): Promise<Extract<M, { type: T }>> {
    const i = this.queue.findIndex((m) => m.type === type);
    if (i >= 0) return Promise.resolve(this.queue.splice(i, 1)[0] as Extract<M, { type: T }>);
    if (this.dead) return Promise.reject(this.dead);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        reject(new Error(`no '${type}' from ${this.label} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiter = {
        type,
        resolve: (m) => { clearTimeout(timer); resolve(m as Extract<M, { type: T }>); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      };
    });
  }

  private die(err: Error): void {
    this.dead ??= err;
    const w = this.waiter;
    this.waiter = undefined;
    w?.reject(this.dead);
  }
}

/** SIGKILL unless it has exited already. */
export function killChild(child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}
