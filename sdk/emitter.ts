// A minimal typed event emitter that runs in browsers and Node alike (no node:events).
// A handler that throws must not break delivery to the other handlers or the client's own
// state machine, so the error is handed to `onHandlerError` instead of propagating.

export type Handler<P> = (payload: P) => void;

export class TypedEmitter<Events extends { [K in keyof Events]: unknown }> {
  private readonly handlers = new Map<keyof Events, Set<Handler<never>>>();

  constructor(private readonly onHandlerError: (error: unknown, event: keyof Events) => void) {}

  /** Subscribe; returns a function that unsubscribes. */
  on<K extends keyof Events>(event: K, handler: Handler<Events[K]>): () => void {
    let set = this.handlers.get(event);
    if (set === undefined) {
      set = new Set();
      this.handlers.set(event, set);
    }
    set.add(handler as Handler<never>);
    return () => this.off(event, handler);
  }

  /** Subscribe for the next emission only. */
  once<K extends keyof Events>(event: K, handler: Handler<Events[K]>): () => void {
    const off = this.on(event, (payload) => {
      off();
      handler(payload);
    });
    return off;
  }

  off<K extends keyof Events>(event: K, handler: Handler<Events[K]>): void {
    this.handlers.get(event)?.delete(handler as Handler<never>);
  }

  listenerCount(event: keyof Events): number {
    return this.handlers.get(event)?.size ?? 0;
  }

  emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    const set = this.handlers.get(event);
    if (set === undefined) return;
    // Copy: a handler may unsubscribe itself (once) while we iterate.
    for (const handler of [...set]) {
      try {
        (handler as Handler<Events[K]>)(payload);
      } catch (error) {
        this.onHandlerError(error, event);
      }
    }
  }
}
