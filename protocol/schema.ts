// Field-level validation of client frames: after decodeFrame has checked structure, parseClientFrame
// checks that the frame is a known type with the fields that type needs, and nothing the
// handlers would misread. Errors name the field.
import { LanternError } from './errors.ts';
import type { ClientFrame, RequestType } from './frames.ts';

export const MAX_ID_LENGTH = 128;

type FieldSpec =
  | 'id'        // non-empty identifier string, <= MAX_ID_LENGTH
  | 'string'    // any string (length bounded by frame limits and the engine's own settings)
  | 'seq'       // non-negative safe integer
  | 'count'     // positive safe integer
  | 'bool'
  | 'ids'       // non-empty array of identifiers
  | 'versions'  // non-empty array of positive integers
  | 'seqMap'    // map id -> seq
  | 'map'       // any map (validated further by the engine)
  | 'kind'      // client message kind
  | 'role'      // 'admin' | 'member'
  | 'mode';     // red envelope split: 'lucky' | 'equal'

interface FrameSpec { readonly required: Readonly<Record<string, FieldSpec>>; readonly optional?: Readonly<Record<string, FieldSpec>> }

const none: FrameSpec = { required: {} };

export const FRAME_SPECS: Readonly<Record<'hello' | RequestType, FrameSpec>> = {
  hello: { required: { v: 'versions', token: 'string', device: 'id' }, optional: { client: 'string' } },
  ping: none,
  send: { required: { conv: 'id', cid: 'id', kind: 'kind', body: 'map' } },
  recall: { required: { conv: 'id', seq: 'count' } },
  history: { required: { conv: 'id' }, optional: { before: 'count', limit: 'count' } },
  sync: { required: { since: 'seqMap' }, optional: { limit: 'count' } },
  read: { required: { conv: 'id', seq: 'seq' } },
  receipts: { required: { conv: 'id' } },
  typing: { required: { conv: 'id', on: 'bool' } },
  presence: { required: { users: 'ids' } },
  'contact.request': { required: { user: 'id' }, optional: { note: 'string' } },
  'contact.accept': { required: { user: 'id' } },
  'contact.remove': { required: { user: 'id' } },
  'contact.block': { required: { user: 'id' } },
  'contact.unblock': { required: { user: 'id' } },
  'contact.list': none,
  'conv.direct': { required: { user: 'id' } },
  'conv.list': none,
  'conv.info': { required: { conv: 'id' } },
  'group.create': { required: { title: 'string', members: 'ids' } },
  'group.add': { required: { conv: 'id', users: 'ids' } },
  'group.remove': { required: { conv: 'id', users: 'ids' } },
  'group.leave': { required: { conv: 'id' } },
  'group.role': { required: { conv: 'id', user: 'id', role: 'role' } },
  // Amounts are 'count': positive safe integers of cents (floats, zero, negatives and 64-bit
  // integers beyond 2^53 are refused here; the engine applies the per-operation limits).
  'wallet.balance': none,
  'wallet.statement': { required: {}, optional: { currency: 'id', before: 'count', limit: 'count' } },
  'transfer.send': { required: { user: 'id', amount: 'count', key: 'id' }, optional: { currency: 'id', note: 'string' } },
  'transfer.accept': { required: { transfer: 'id' } },
  'transfer.return': { required: { transfer: 'id' } },
  'transfer.info': { required: { transfer: 'id' } },
  'envelope.send': { required: { conv: 'id', total: 'count', count: 'count', mode: 'mode', key: 'id' }, optional: { greeting: 'string', currency: 'id' } },
  'envelope.grab': { required: { envelope: 'id' } },
  'envelope.info': { required: { envelope: 'id' } },
  'sale.buy': { required: { sale: 'id', quantity: 'count', key: 'id' }, optional: { retry: 'bool' } },
  'sale.pay': { required: { order: 'id' } },
  'sale.info': { required: { sale: 'id' } },
  'sale.orders': { optional: { sale: 'id', after: 'id', limit: 'count' }, required: {} },
};

const KINDS = new Set(['text', 'sticker', 'image', 'file', 'location']);
const ROLES = new Set(['admin', 'member']);
const MODES = new Set(['lucky', 'equal']);

export function isId(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= MAX_ID_LENGTH;
}

function isSeq(v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0;
}

function checkField(spec: FieldSpec, v: unknown): boolean {
  switch (spec) {
    case 'id': return isId(v);
    case 'string': return typeof v === 'string';
    case 'seq': return isSeq(v);
    case 'count': return isSeq(v) && v > 0;
    case 'bool': return typeof v === 'boolean';
    case 'ids': return Array.isArray(v) && v.length > 0 && v.every(isId);
    case 'versions': return Array.isArray(v) && v.length > 0 && v.every((x) => Number.isSafeInteger(x) && x > 0);
    case 'seqMap': return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array)
      && Object.entries(v).every(([k, s]) => isId(k) && isSeq(s));
    case 'map': return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array);
    case 'kind': return typeof v === 'string' && KINDS.has(v);
    case 'role': return typeof v === 'string' && ROLES.has(v);
    case 'mode': return typeof v === 'string' && MODES.has(v);
  }
}

const DESCRIBE: Record<FieldSpec, string> = {
  id: `a non-empty string of at most ${MAX_ID_LENGTH} characters`,
  string: 'a string',
  seq: 'a non-negative integer',
  count: 'a positive integer',
  bool: 'a boolean',
  ids: `a non-empty array of strings (each at most ${MAX_ID_LENGTH} characters)`,
  versions: 'a non-empty array of positive integers',
  seqMap: 'a map of id to non-negative integer',
  map: 'a map',
  kind: 'one of text, sticker, image, file, location',
  role: 'one of admin, member',
  mode: 'one of lucky, equal',
};

/** Read the request id of a decoded frame, or 0 when it has none (errors then carry id 0). */
export function frameId(frame: Record<string, unknown>): number {
  const id = frame['id'];
  return Number.isSafeInteger(id) && (id as number) > 0 ? (id as number) : 0;
}

/** Validate a decoded frame against its type's spec. Unknown extra fields are ignored (forward compatibility). */
export function parseClientFrame(frame: Record<string, unknown>): ClientFrame {
  const t = frame['t'];
  if (typeof t !== 'string') throw new LanternError('invalid_field', 'field "t" must be a string naming the frame type', { field: 't' });
  if (!Object.hasOwn(FRAME_SPECS, t)) throw new LanternError('unknown_type', `unknown frame type "${t}"`, { field: 't' });
  if (frameId(frame) === 0) throw new LanternError('invalid_field', 'field "id" must be a positive integer', { field: 'id' });
  const spec = FRAME_SPECS[t as keyof typeof FRAME_SPECS];
  for (const [name, fs] of Object.entries(spec.required)) {
    const v = frame[name];
    if (v === undefined) throw new LanternError('invalid_field', `"${t}" needs field "${name}" (${DESCRIBE[fs]})`, { field: name });
    if (!checkField(fs, v)) throw new LanternError('invalid_field', `field "${name}" of "${t}" must be ${DESCRIBE[fs]}`, { field: name });
  }
  for (const [name, fs] of Object.entries(spec.optional ?? {})) {
    const v = frame[name];
    if (v !== undefined && v !== null && !checkField(fs, v)) {
      throw new LanternError('invalid_field', `field "${name}" of "${t}" must be ${DESCRIBE[fs]}`, { field: name });
    }
  }
  return frame as unknown as ClientFrame;
}
