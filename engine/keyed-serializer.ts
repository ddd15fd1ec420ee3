// Runs async tasks one at a time per key, in arrival order, and forgets a key once its queue is
// empty. For read-then-write operations on shared rows (both edges of a contact pair) that would
// otherwise interleave at their awaits and lose one side's write.
export class KeyedSerializer {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    // A failed task must not fail the ones queued behind it.
    const result = previous.then(task, task);
    const tail = result.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => { if (this.tails.get(key) === tail) this.tails.delete(key); });
    return result;
  }

  /** Keys with a task running or queued (for tests and metrics). */
  get size(): number {
    return this.tails.size;
  }
}
