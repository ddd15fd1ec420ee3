// The bytes a worker publishes for gateways (docs/decisions/0006, delivery): a small header the
// gateway reads to keep its view of who is in a conversation, then the client frame, encoded once
// by the worker and relayed to sockets as is. Layout: u32 big-endian header length, the header
// (msgpack map, absent when length is 0), the frame bytes.
import { decodeFrame, encodeFrame } from '../protocol/codec.ts';
import { DEFAULT_FRAME_LIMITS, type FrameLimits } from '../protocol/limits.ts';

export interface DeliveryHeader {
  /** On a user subject: the user just became a member of this group (subscribe to it). */
  j?: string;
  /** On a user subject: the user just left or was removed from this group (unsubscribe). */
  l?: string;
  /** On a group subject: local members who must not get this copy (the typist; users who just
   *  joined or left, who get the event on their own subject with j / l). */
  x?: string[];
  /** The full member list, re-announced after the worker (re)loaded the conversation. */
  m?: string[];
}

/** A header may list a full group (maxGroupMembers is at most a few thousand). */
const HEADER_LIMITS: FrameLimits = Object.freeze({
  ...DEFAULT_FRAME_LIMITS, maxFrameBytes: 4 * 1024 * 1024, maxArrayLength: 100_000,
});

const EMPTY = new Uint8Array(0);

export function encodeEnvelope(frame: Uint8Array, header?: DeliveryHeader): Uint8Array {
  const head = header && Object.keys(header).length ? encodeFrame(header) : EMPTY;
  const out = new Uint8Array(4 + head.length + frame.length);
  new DataView(out.buffer).setUint32(0, head.length);
  out.set(head, 4);
  out.set(frame, 4 + head.length);
  return out;
}

export interface Envelope {
  header: DeliveryHeader | undefined;
  frame: Uint8Array;
}

/** Throws on a malformed envelope (a bug or a foreign publisher on our subjects). */
export function decodeEnvelope(bytes: Uint8Array): Envelope {
  if (bytes.length < 4) throw new Error(`delivery envelope too short (${bytes.length} bytes)`);
  const length = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0);
  if (4 + length > bytes.length) throw new Error(`delivery envelope header length ${length} exceeds the envelope`);
  const header = length ? decodeFrame(bytes.subarray(4, 4 + length), HEADER_LIMITS) as DeliveryHeader : undefined;
  return { header, frame: bytes.subarray(4 + length) };
}
