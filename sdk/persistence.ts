// Writes SyncState snapshots to the app's CursorStore: saves never overlap, changes made in one
// tick share one save, and the last change is always saved. Store failures are reported, not
// thrown: losing a cursor costs a larger sync later, never a lost or duplicated message now.
import type { CursorStore, PersistedSyncState } from './sync-state.ts';

export class CursorPersistence {
  private running: Promise<void> | undefined;
  private dirty = false;

  constructor(
    private readonly store: CursorStore,
    private readonly snapshot: () => PersistedSyncState,
    private readonly report: (error: unknown, context: string) => void,
  ) {}

  /** Load the saved state; undefined (start empty) when there is none or the store fails. */
  async load(): Promise<PersistedSyncState | undefined> {
    try {
      return await this.store.load();
    } catch (error) {
      this.report(error, 'state.load');
      return undefined;
    }
  }

  /** Mark the state changed; a save follows shortly. */
  save(): void {
    this.dirty = true;
    this.running ??= this.loop();
  }

  /** Resolves once every change so far is saved (or failed and was reported). */
  async flushed(): Promise<void> {
    await this.running;
  }

  private async loop(): Promise<void> {
    await null; // let save() store this promise before the loop can finish
    while (this.dirty) {
      this.dirty = false;
      try {
        await this.store.save(this.snapshot());
      } catch (error) {
        this.report(error, 'state.save');
      }
    }
    this.running = undefined;
  }
}
