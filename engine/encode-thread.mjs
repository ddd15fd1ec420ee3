// A piscina worker thread: encodes a large bus reply off the worker's event loop. Plain ESM so the
// thread can start without a loader; it registers tsx to import the TypeScript codec (threads do
// not inherit a loader registered through tsx's API).
import { register } from 'tsx/esm/api';
import Piscina from 'piscina';

register();
const { encodeFrame } = await import('../protocol/codec.ts');

/** Encode and hand the bytes back without copying them (the buffer moves to the caller). */
export default function encode(value) {
  const bytes = encodeFrame(value);
  return Piscina.move(bytes);
}
