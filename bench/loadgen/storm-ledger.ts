// One client's copy of one conversation in the reconnect storm, kept the way a protocol v1 client
// keeps it (PROTOCOL.md 9.1): a cursor (the highest seq held contiguously) and the live messages
// buffered above it until the gap before them is filled. It also holds the server to its word:
// on one connection a conversation's `msg` events come in seq order, each once (8.1), and a sync
// reply holds the messages after the cursor it was asked from, gapless and without duplicates
// (9.2). Whatever breaks that is counted, and so is anything up to the head the client never got:
// the storm fails on any of them.

export class SeqLedger {
  /** The highest seq held contiguously (starts at the member's `joined`). */
  cursor: number;
  /** A seq pushed twice (or out of order) on one connection, or a sync reply's seq at or below the cursor asked from, or repeated. */
  duplicates = 0;
  /** Seqs a sync reply jumped over: it must be gapless from the cursor. */
  skipped = 0;
  /** Live messages above cursor + 1. */
  private readonly buffered = new Set<number>();
  /** The highest seq pushed live on the current connection. */
  private lastLive = 0;

  constructor(readonly joined = 0) {
    this.cursor = joined;
  }

  /** A message is held beyond a gap: the client must sync (PROTOCOL.md 9.4). */
  get behind(): boolean {
    return this.buffered.size > 0;
  }

  /** A new connection starts a new live stream. */
  newConnection(): void {
    this.lastLive = 0;
  }

  /** A `msg` event on the current connection; true when the client did not hold it yet. */
  live(seq: number): boolean {
    if (seq <= this.lastLive) this.duplicates++;
    else this.lastLive = seq;
    return this.hold(seq);
  }

  /**
   * This conversation's messages in one sync reply (in reply order), asked with cursor `since`;
   * returns how many the client did not hold yet (live ones may have arrived meanwhile).
   */
  synced(since: number, seqs: readonly number[]): number {
    let expected = since + 1;
    let fresh = 0;
    for (const seq of seqs) {
      if (seq < expected) {
        this.duplicates++;
        continue;
      }
      if (seq > expected) this.skipped += seq - expected;
      expected = seq + 1;
      if (this.hold(seq)) fresh++;
    }
    return fresh;
  }

  /** How many seqs in (joined, head] the client does not hold. */
  missing(head: number): number {
    if (head <= this.cursor) return 0;
    let held = 0;
    for (const seq of this.buffered) if (seq <= head) held++;
    return head - this.cursor - held;
  }

  /** Sequence numbers missing or duplicated, against the conversation's head. */
  gaps(head: number): number {
    return this.missing(head) + this.duplicates + this.skipped;
  }

  private hold(seq: number): boolean {
    if (seq <= this.cursor || this.buffered.has(seq)) return false;
    if (seq === this.cursor + 1) {
      this.cursor = seq;
      while (this.buffered.delete(this.cursor + 1)) this.cursor++;
    } else {
      this.buffered.add(seq);
    }
    return true;
  }
}
