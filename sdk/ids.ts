// Client message ids (cid). Uses the Web Crypto API that both browsers and Node 20 expose on
// globalThis, so the browser bundle needs no node built-in.

/** A random RFC 4122 version 4 UUID. */
export function randomCid(): string {
  const c = globalThis.crypto;
  // randomUUID exists only in secure contexts (https, localhost); getRandomValues everywhere.
  if (typeof c?.randomUUID === 'function') return c.randomUUID();
  if (typeof c?.getRandomValues !== 'function') {
    throw new Error('no Web Crypto API on globalThis.crypto: pass { cid } to send() or run in a runtime with crypto.getRandomValues');
  }
  const b = c.getRandomValues(new Uint8Array(16));
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
