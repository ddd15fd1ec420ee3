// Reads the request `id` of a msgpack frame without decoding it, so a frame refused by the
// rate limiter can still be answered with its id. Looks only at the first few map entries
// and only through scalar values (what every client writes first: `t`, then `id`); returns
// 0 whenever it would have to parse anything more, which the protocol allows for errors.

const MAX_ENTRIES = 4;

export function peekFrameId(bytes: Uint8Array): number {
  let p = 0;
  const n = bytes.length;
  if (n === 0) return 0;
  const head = bytes[p++]!;
  let entries: number;
  if (head >= 0x80 && head <= 0x8f) entries = head & 0x0f;
  else if (head === 0xde && n >= 3) { entries = (bytes[1]! << 8) | bytes[2]!; p = 3; }
  else return 0;
  for (let i = 0; i < Math.min(entries, MAX_ENTRIES); i++) {
    // key: must be a short string
    if (p >= n) return 0;
    const k = bytes[p]!;
    let klen: number;
    if (k >= 0xa0 && k <= 0xbf) { klen = k & 0x1f; p += 1; }
    else if (k === 0xd9 && p + 1 < n) { klen = bytes[p + 1]!; p += 2; }
    else return 0;
    const isId = klen === 2 && p + 2 <= n && bytes[p] === 0x69 /* i */ && bytes[p + 1] === 0x64; /* d */
    p += klen;
    if (p >= n) return 0;
    const v = bytes[p]!;
    if (isId) return readPositiveInt(bytes, p);
    // skip a scalar value
    if (v <= 0x7f || v >= 0xe0 || v === 0xc0 || v === 0xc2 || v === 0xc3) p += 1;
    else if (v >= 0xa0 && v <= 0xbf) p += 1 + (v & 0x1f);
    else if (v === 0xd9 && p + 1 < n) p += 2 + bytes[p + 1]!;
    else if (v === 0xda && p + 2 < n) p += 3 + ((bytes[p + 1]! << 8) | bytes[p + 2]!);
    else if (v === 0xcc || v === 0xd0) p += 2;
    else if (v === 0xcd || v === 0xd1) p += 3;
    else if (v === 0xce || v === 0xd2 || v === 0xca) p += 5;
    else if (v === 0xcf || v === 0xd3 || v === 0xcb) p += 9;
    else return 0;
  }
  return 0;
}

function readPositiveInt(b: Uint8Array, p: number): number {
  const v = b[p]!;
  if (v >= 0x01 && v <= 0x7f) return v;
  if (v === 0xcc && p + 1 < b.length) return b[p + 1]!;
  if (v === 0xcd && p + 2 < b.length) return (b[p + 1]! << 8) | b[p + 2]!;
  if (v === 0xce && p + 4 < b.length) return ((b[p + 1]! << 24) >>> 0) + ((b[p + 2]! << 16) | (b[p + 3]! << 8) | b[p + 4]!);
  return 0; // wider, negative or non-integer ids: let the full decoder judge them
}
