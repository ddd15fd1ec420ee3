// Slow-consumer policy. uWS skips publishes to a socket whose send buffer is over
// maxBackpressure (slowConsumerBytes), which keeps memory bounded but loses events; this
// module notices it and tells the client to sync:
//  - buffer >= 75% of the bound: the connection is lagging (publishes may already be skipped)
//  - lagging and buffer < 50%: send `lag {}` (the client syncs) and clear
//  - lagging for longer than slowConsumerCloseMs: close 4101
// Checked by a periodic sweep and by the uWS drain handler.

export const LAG_MARK_RATIO = 0.75;
export const LAG_CLEAR_RATIO = 0.5;

export type LagAction = 'none' | 'lag' | 'close';

export interface LagState {
  laggingSince: number | undefined;
}

export function assessLag(state: LagState, buffered: number, now: number, boundBytes: number, closeAfterMs: number): LagAction {
  if (state.laggingSince === undefined) {
    if (buffered >= boundBytes * LAG_MARK_RATIO) state.laggingSince = now;
    return 'none';
  }
  if (buffered < boundBytes * LAG_CLEAR_RATIO) {
    state.laggingSince = undefined;
    return 'lag';
  }
  return now - state.laggingSince > closeAfterMs ? 'close' : 'none';
}
