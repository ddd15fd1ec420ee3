// The payload every peer carries: the bytes of the stamp text that bench/loadgen/payload.ts
// renders (send time, then filler), so latency is read the same way whatever the server, and a
// message is the same size on every peer.
import { makeStamper, readStamp } from '../loadgen/payload.ts';

/** Returns a function that renders a stamp plus `padBytes` of filler as payload bytes. */
export function makeStampedPayload(padBytes: number): (stampMs: number) => Buffer {
  const stamp = makeStamper(padBytes);
  return (stampMs) => Buffer.from(stamp(stampMs), 'latin1');
}

/** The send timestamp in a payload made by makeStampedPayload, or NaN when there is none. */
export function readPayloadStamp(payload: Uint8Array): number {
  return readStamp(Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('latin1'));
}
