// The measured payload: a text message whose body starts with the send timestamp, so the
// receiver (in any process) computes latency without per-message state at the sender.
import type { RequestFrame } from '../../protocol/frames.ts';

/** Returns a function that renders a stamp plus `padBytes` of filler as message text. */
export function makeStamper(padBytes: number): (stampMs: number) => string {
  const pad = padBytes > 0 ? ' ' + 'x'.repeat(padBytes - 1) : '';
  return (stampMs) => stampMs.toFixed(3) + pad;
}

/** The send timestamp in a text rendered by makeStamper, or NaN when there is none. */
export function readStamp(text: unknown): number {
  return typeof text === 'string' ? Number.parseFloat(text) : NaN;
}

/** The `send` frame both scenarios put on the wire (echo reflects it, Lantern sequences it). */
export function textSendFrame(id: number, conv: string, cid: string, text: string): RequestFrame<'send'> {
  return { t: 'send', id, conv, cid, kind: 'text', body: { text } };
}
