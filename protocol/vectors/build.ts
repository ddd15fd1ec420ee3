// The protocol v1 test vectors: fixed frames (no random ids or clocks) and their exact msgpack
// bytes, plus byte strings a server must reject. generate.ts writes them to v1.json for SDK
// authors in other languages; vectors.test.ts checks the file against the codec.
import { encodeFrame } from '../codec.ts';
import type { ErrorName } from '../errors.ts';
import { ErrorCodes } from '../errors.ts';
import { DEFAULT_FRAME_LIMITS } from '../limits.ts';
import type {
  ContactEvent, ContactInfo, ConversationInfo, EnvelopeEvent, EnvelopeInfo, ErrorFrame, HelloFrame, LagEvent, MemberInfo,
  Message, MessageEvent, PresenceEvent, PresenceInfo, ReceiptEvent, RequestFrame, RequestType, ResultFrame, TransferEvent,
  TransferInfo, TypingEvent, WelcomeFrame, OrderInfo, SaleInfo, SaleEvent,
} from '../frames.ts';

export interface ValidVector {
  name: string;
  description: string;
  direction: 'client' | 'server';
  frame: Record<string, unknown>;
  hex: string;
}

export interface InvalidVector {
  name: string;
  description: string;
  hex: string;
  expect: { error: Extract<ErrorName, 'bad_frame' | 'unknown_type' | 'invalid_field'>; field?: string };
}

export interface VectorFile {
  protocol: 1;
  /** Frames and their exact encoding: an encoder must produce `hex` from `frame`, a decoder `frame` from `hex`. */
  valid: ValidVector[];
  /** Bytes a server must answer with `err` (code from `expect.error`) and not process. */
  invalid: InvalidVector[];
}

const hexOf = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');

// ---------------------------------------------------------------- fixtures (fixed values)

const T0 = 1_700_000_000_000; // 2023-11-14T22:13:20Z: every timestamp is T0 + a few ms
const DIRECT = 'd:5:alice:bob';
const GROUP = 'g:7f3a9c2e';

const textMsg: Message = { conv: DIRECT, seq: 42, from: 'alice', dev: 'phone', cid: '0d1e2f30-4a5b-4c6d-8e7f-8091a2b3c4d5', kind: 'text', body: { text: 'Hello, Bob! 👋' }, ts: T0 + 42 };
const systemMsg: Message = { conv: GROUP, seq: 1, from: 'alice', dev: '', cid: '', kind: 'system', body: { event: 'created', by: 'alice', users: ['bob', 'carol'], title: 'Hiking' }, ts: T0 + 1 };
const recalledMsg: Message = { conv: GROUP, seq: 7, from: 'bob', dev: 'laptop-3f2a', cid: 'c-0007', kind: 'text', ts: T0 + 7, recalled: true };
const recallNotice: Message = { conv: GROUP, seq: 9, from: 'bob', dev: '', cid: '', kind: 'system', body: { event: 'recalled', by: 'bob', seq: 7 }, ts: T0 + 9 };

const directInfo: ConversationInfo = { conv: DIRECT, type: 'direct', title: '', epoch: 'c1', head: 42, role: 'member', joined: 0, read: 40, peer: 'bob', members: 2 };
const groupInfo: ConversationInfo = { conv: GROUP, type: 'group', title: 'Hiking', epoch: 'c1', head: 9, role: 'owner', joined: 0, read: 9, members: 3 };
const ENVELOPE = 'eQm9Xc2LkP0aZr8TyV1wNb';
const TRANSFER = 'tH4sWq7Jd2FgKx9ZpL0aMe';
const SALE = 'sV8nQ2rT5wYx1ZaB3cD4eF';
const ORDER = 'oK7mN2pQ4rS6tU8vW0xY1z';
const orderInfo: OrderInfo = {
  order: ORDER, sale: SALE, user: 'bob', quantity: 1, amount: 99_900, currency: 'CNY', state: 'reserved', createdAt: T0 + 80_000, payBy: T0 + 980_000,
};
const saleInfo: SaleInfo = {
  sale: SALE, merchant: 'acme', conv: GROUP, item: 'Phone X, 128 GB', price: 99_900, currency: 'CNY', stock: 1_000,
  startAt: T0 + 60_000, endAt: T0 + 3_660_000, perUserLimit: 1, payWindowMs: 900_000, createdAt: T0,
  state: 'open', sold: 120, reserved: 380, remaining: 500,
};
const envelopeCard: Message = {
  conv: GROUP, seq: 14, from: 'alice', dev: 'phone', cid: ENVELOPE, kind: 'envelope', ts: T0 + 55_000,
  body: { envelope: ENVELOPE, greeting: 'Happy new year', total: 8888, count: 5, mode: 'lucky', currency: 'CNY' },
};
const envelopeInfo: EnvelopeInfo = {
  envelope: ENVELOPE, conv: GROUP, sender: 'alice', currency: 'CNY', total: 8888, count: 5, mode: 'lucky', greeting: 'Happy new year',
  createdAt: T0 + 55_000, expiresAt: T0 + 86_455_000,
  claims: [{ user: 'bob', amount: 1_777, ts: T0 + 56_000 }, { user: 'carol', amount: 1_901, ts: T0 + 56_010 }], left: 3,
};
const transferInfo: TransferInfo = {
  transfer: TRANSFER, from: 'alice', to: 'bob', currency: 'CNY', amount: 5200, note: 'dinner', conv: DIRECT,
  createdAt: T0 + 60_000, expiresAt: T0 + 86_460_000, state: 'pending',
};
const members: MemberInfo[] = [{ user: 'alice', role: 'owner', joined: 0 }, { user: 'bob', role: 'admin', joined: 0 }, { user: 'carol', role: 'member', joined: 3 }];
const bobContact: ContactInfo = { user: 'bob', state: 'friend', ts: T0 + 500 };
const bobPresence: PresenceInfo = { user: 'bob', online: false, lastSeen: T0 - 60_000 };

// ---------------------------------------------------------------- client frames

const req = <T extends RequestType>(frame: RequestFrame<T>): RequestFrame<T> => frame;
// RequestFrame<T> of a request without parameters ({t, id} & Record<string, never>) cannot be
// written in TypeScript (t would have to be never); see the report. Such frames are built here.
const bare = (t: 'ping' | 'contact.list' | 'conv.list', id: number): Record<string, unknown> => ({ t, id });

const hello: HelloFrame = { t: 'hello', id: 1, v: [1], token: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImF1ZCI6ImxhbnRlcm4iLCJleHAiOjE3MDAwMDM2MDB9.c2lnbmF0dXJl', device: 'phone', client: 'lantern-sdk-ts/0.1.0' };

const clientFrames: Array<[string, string, Record<string, unknown>]> = [
  ['hello', 'First frame: protocol versions spoken, JWT, device id and an optional client name.', { ...hello }],
  ['ping', 'RTT probe.', bare('ping', 2)],
  ['send.text', 'Send a text message; cid makes retries idempotent.', req({ t: 'send', id: 3, conv: DIRECT, cid: textMsg.cid, kind: 'text', body: { text: 'Hello, Bob! 👋' } })],
  ['send.sticker', 'Send a sticker.', req({ t: 'send', id: 4, conv: GROUP, cid: 'c-0004', kind: 'sticker', body: { pack: 'animals', sticker: 'otter-wave' } })],
  ['send.image', 'Send an image already uploaded elsewhere.', req({ t: 'send', id: 5, conv: GROUP, cid: 'c-0005', kind: 'image', body: { url: 'https://cdn.example.com/i/5.jpg', mime: 'image/jpeg', size: 482133, width: 1920, height: 1080, thumb: 'https://cdn.example.com/i/5-t.jpg' } })],
  ['send.file', 'Send a file reference.', req({ t: 'send', id: 6, conv: GROUP, cid: 'c-0006', kind: 'file', body: { url: 'https://cdn.example.com/f/6.pdf', mime: 'application/pdf', size: 5_000_000_000, name: 'trail-map.pdf' } })],
  ['send.location', 'Send a location; lat/lng are float64.', req({ t: 'send', id: 7, conv: GROUP, cid: 'c-0007', kind: 'location', body: { lat: 52.5163, lng: 13.3777, name: 'Brandenburger Tor' } })],
  ['recall', 'Recall own message 7.', req({ t: 'recall', id: 8, conv: GROUP, seq: 7 })],
  ['history', 'The 20 messages below seq 40.', req({ t: 'history', id: 9, conv: DIRECT, before: 40, limit: 20 })],
  ['sync', 'Sync after reconnect: cursors per conversation.', req({ t: 'sync', id: 10, since: { [DIRECT]: 40, [GROUP]: 0 }, limit: 200 })],
  ['sync.empty', 'First sync of a fresh install (or after an epoch change).', req({ t: 'sync', id: 11, since: {} })],
  ['read', 'Mark everything up to seq 42 read.', req({ t: 'read', id: 12, conv: DIRECT, seq: 42 })],
  ['receipts', 'Read cursors of all members.', req({ t: 'receipts', id: 13, conv: GROUP })],
  ['typing', 'Typing started.', req({ t: 'typing', id: 14, conv: DIRECT, on: true })],
  ['presence', 'Presence of contacts.', req({ t: 'presence', id: 15, users: ['bob', 'carol'] })],
  ['contact.request', 'Ask bob to become a contact.', req({ t: 'contact.request', id: 16, user: 'bob', note: 'Hi, it is Alice from the hike' })],
  ['contact.accept', 'Accept an incoming request.', req({ t: 'contact.accept', id: 17, user: 'bob' })],
  ['contact.remove', 'Remove, decline or cancel.', req({ t: 'contact.remove', id: 18, user: 'carol' })],
  ['contact.block', 'Block a user.', req({ t: 'contact.block', id: 19, user: 'mallory' })],
  ['contact.unblock', 'Unblock a user.', req({ t: 'contact.unblock', id: 20, user: 'mallory' })],
  ['contact.list', 'List contacts.', bare('contact.list', 21)],
  ['conv.direct', 'Open (or create) the direct conversation with bob.', req({ t: 'conv.direct', id: 22, user: 'bob' })],
  ['conv.list', 'List conversations.', bare('conv.list', 23)],
  ['conv.info', 'A conversation and its members.', req({ t: 'conv.info', id: 24, conv: GROUP })],
  ['group.create', 'Create a group; the creator becomes owner.', req({ t: 'group.create', id: 25, title: 'Hiking', members: ['bob', 'carol'] })],
  ['group.add', 'Add members.', req({ t: 'group.add', id: 26, conv: GROUP, users: ['dave'] })],
  ['group.remove', 'Remove members.', req({ t: 'group.remove', id: 27, conv: GROUP, users: ['dave'] })],
  ['group.leave', 'Leave a group.', req({ t: 'group.leave', id: 28, conv: GROUP })],
  ['group.role', 'Make bob an admin.', req({ t: 'group.role', id: 29, conv: GROUP, user: 'bob', role: 'admin' })],
  ['wallet.balance', 'Balances in every currency.', req({ t: 'wallet.balance', id: 31 })],
  ['wallet.statement', 'The next page of the CNY statement.', req({ t: 'wallet.statement', id: 32, currency: 'CNY', before: 17, limit: 20 })],
  ['transfer.send', 'Send bob 52.00 CNY (integer cents), idempotent by key.', req({ t: 'transfer.send', id: 33, user: 'bob', amount: 5200, key: 'tx-7f3a', note: 'dinner' })],
  ['transfer.accept', 'bob accepts a transfer.', req({ t: 'transfer.accept', id: 34, transfer: TRANSFER })],
  ['transfer.return', 'bob declines a transfer.', req({ t: 'transfer.return', id: 35, transfer: TRANSFER })],
  ['transfer.info', 'A transfer, for its sender or recipient.', req({ t: 'transfer.info', id: 36, transfer: TRANSFER })],
  ['envelope.send', 'A lucky envelope of 88.88 CNY in 5 shares.', req({ t: 'envelope.send', id: 37, conv: GROUP, total: 8888, count: 5, mode: 'lucky', key: 'env-1', greeting: 'Happy new year' })],
  ['envelope.grab', 'Grab a share.', req({ t: 'envelope.grab', id: 38, envelope: ENVELOPE })],
  ['envelope.info', 'An envelope and its claims.', req({ t: 'envelope.info', id: 39, envelope: ENVELOPE })],
  ['sale.buy', 'A purchase attempt: one unit, idempotent by key.', req({ t: 'sale.buy', id: 50, sale: SALE, quantity: 1, key: 'tap-1' })],
  ['sale.buy.retry', 'The same attempt resent after no answer: a worker answers, never the gateway board.', req({ t: 'sale.buy', id: 51, sale: SALE, quantity: 1, key: 'tap-1', retry: true })],
  ['sale.pay', 'Pay a reserved order from the wallet.', req({ t: 'sale.pay', id: 52, order: ORDER })],
  ['sale.info', 'A sale with exact counts.', req({ t: 'sale.info', id: 53, sale: SALE })],
  ['sale.orders', 'The caller\'s own orders, newest first.', req({ t: 'sale.orders', id: 54, limit: 20 })],
];

// ---------------------------------------------------------------- server frames

const res = <T extends RequestType>(id: number, data: ResultFrame<T>['data']): ResultFrame<T> => ({ t: 'res', id, data });
const err = (id: number, error: ErrorName, msg: string, extra: Partial<ErrorFrame> = {}): ErrorFrame =>
  ({ t: 'err', id, code: ErrorCodes[error].code, error, msg, retry: ErrorCodes[error].retry, ...extra });

const welcome: WelcomeFrame = {
  t: 'welcome', id: 1, v: 1, user: 'alice', device: 'phone', session: 's-0001', epoch: 'e-2023-11-14', ts: T0,
  limits: { maxFrameBytes: DEFAULT_FRAME_LIMITS.maxFrameBytes, ratePerSec: 50, rateBurst: 100, maxSyncPage: 1000, maxGroupMembers: 500 },
};

const serverFrames: Array<[string, string, Record<string, unknown>]> = [
  ['welcome', 'Answer to hello: the session is authenticated.', { ...welcome }],
  ['res.ping', 'Server time in ms.', { ...res<'ping'>(2, { ts: T0 + 2 }) }],
  ['res.send', 'The ack: the message is durable as seq 42.', { ...res<'send'>(3, { conv: DIRECT, seq: 42, ts: T0 + 42, dup: false }) }],
  ['res.send.dup', 'A retried send (same conv and cid): the original result with dup true.', { ...res<'send'>(3, { conv: DIRECT, seq: 42, ts: T0 + 42, dup: true }) }],
  ['res.recall', 'Seq of the recall notice.', { ...res<'recall'>(8, { conv: GROUP, seq: 9 }) }],
  ['res.history', 'A history page, ascending.', { ...res<'history'>(9, { msgs: [recalledMsg, recallNotice], more: true }) }],
  ['res.sync', 'A sync page.', { ...res<'sync'>(10, { convs: [directInfo, groupInfo], msgs: [textMsg, systemMsg], removed: ['g:old'], more: false }) }],
  ['res.read', 'The read cursor after the call.', { ...res<'read'>(12, { conv: DIRECT, read: 42 }) }],
  ['res.receipts', 'Read cursor per member.', { ...res<'receipts'>(13, { conv: GROUP, reads: { alice: 9, bob: 7, carol: 3 } }) }],
  ['res.typing', 'Empty result.', { ...res<'typing'>(14, {}) }],
  ['res.presence', 'Presence of the contacts among the users asked for.', { ...res<'presence'>(15, { presence: [bobPresence] }) }],
  ['res.contact.request', 'The relation after the call.', { ...res<'contact.request'>(16, { user: 'bob', state: 'requested', ts: T0 + 16 }) }],
  ['res.contact.accept', 'The relation after the call.', { ...res<'contact.accept'>(17, bobContact) }],
  ['res.contact.remove', 'The relation after the call.', { ...res<'contact.remove'>(18, { user: 'carol', state: 'none', ts: T0 + 18 }) }],
  ['res.contact.block', 'The relation after the call.', { ...res<'contact.block'>(19, { user: 'mallory', state: 'blocked', ts: T0 + 19 }) }],
  ['res.contact.unblock', 'The relation after the call.', { ...res<'contact.unblock'>(20, { user: 'mallory', state: 'none', ts: T0 + 20 }) }],
  ['res.contact.list', 'All relations of the user.', { ...res<'contact.list'>(21, { contacts: [bobContact, { user: 'carol', state: 'incoming', ts: T0 + 3 }] }) }],
  ['res.conv.direct', 'The direct conversation.', { ...res<'conv.direct'>(22, directInfo) }],
  ['res.conv.list', 'Every conversation of the user.', { ...res<'conv.list'>(23, { convs: [directInfo, groupInfo] }) }],
  ['res.conv.info', 'A conversation and its members.', { ...res<'conv.info'>(24, { conv: groupInfo, members }) }],
  ['res.group.create', 'The new group.', { ...res<'group.create'>(25, { ...groupInfo, head: 1, read: 0 }) }],
  ['res.group.add', 'Seq of the `joined` notice.', { ...res<'group.add'>(26, { conv: GROUP, seq: 10 }) }],
  ['res.group.remove', 'Seq of the `removed` notice.', { ...res<'group.remove'>(27, { conv: GROUP, seq: 11 }) }],
  ['res.group.leave', 'Seq of the `left` notice.', { ...res<'group.leave'>(28, { conv: GROUP, seq: 12 }) }],
  ['res.group.role', 'Seq of the `role` notice.', { ...res<'group.role'>(29, { conv: GROUP, seq: 13 }) }],
  ['res.wallet.balance', 'One currency configured.', { ...res<'wallet.balance'>(31, { balances: [{ currency: 'CNY', cents: 12_345 }] }) }],
  ['res.wallet.statement', 'Newest first; `before` the last seq for the next page.', {
    ...res<'wallet.statement'>(32, { entries: [
      { seq: 16, kind: 'grab', amount: 1_777, balance: 12_345, ref: ENVELOPE, ts: T0 + 60_000 },
      { seq: 15, kind: 'topup', amount: 10_568, balance: 10_568, ts: T0 + 50_000 },
    ], more: false }),
  }],
  ['res.transfer.send', 'The pending transfer and the seq of its card.', { ...res<'transfer.send'>(33, { transfer: transferInfo, conv: DIRECT, seq: 44 }) }],
  ['res.transfer.accept', 'Accepted.', { ...res<'transfer.accept'>(34, { ...transferInfo, state: 'accepted', settledAt: T0 + 70_000 }) }],
  ['res.transfer.return', 'Returned to the sender.', { ...res<'transfer.return'>(35, { ...transferInfo, state: 'returned', settledAt: T0 + 70_000 }) }],
  ['res.transfer.info', 'Still pending.', { ...res<'transfer.info'>(36, transferInfo) }],
  ['res.envelope.send', 'The envelope and the seq of its card.', { ...res<'envelope.send'>(37, { envelope: ENVELOPE, conv: GROUP, seq: 14, expiresAt: T0 + 86_400_000 }) }],
  ['res.envelope.grab', 'This call took 17.77 CNY.', { ...res<'envelope.grab'>(38, { envelope: ENVELOPE, outcome: 'grabbed', amount: 1_777, currency: 'CNY' }) }],
  ['res.envelope.grab.empty', 'Every share was taken.', { ...res<'envelope.grab'>(38, { envelope: ENVELOPE, outcome: 'empty', currency: 'CNY' }) }],
  ['res.envelope.info', 'Two of five shares grabbed.', { ...res<'envelope.info'>(39, envelopeInfo) }],
  ['res.sale.buy', 'One unit reserved: pay it before payBy.', { ...res<'sale.buy'>(50, { sale: SALE, outcome: 'reserved', order: orderInfo }) }],
  ['res.sale.buy.sold_out', 'Sold out (answered by the gateway).', { ...res<'sale.buy'>(50, { sale: SALE, outcome: 'sold_out' }) }],
  ['res.sale.buy.try_later', 'Shed by the gateway\'s admission limit: nothing was decided; resend the same key after 200 ms.', { ...res<'sale.buy'>(50, { sale: SALE, outcome: 'try_later', retryAfterMs: 200 }) }],
  ['res.sale.buy.duplicate', 'The key was seen: the earlier answer.', { ...res<'sale.buy'>(51, { sale: SALE, outcome: 'reserved', order: orderInfo, duplicate: true }) }],
  ['res.sale.pay', 'Paid.', { ...res<'sale.pay'>(52, { ...orderInfo, state: 'paid', settledAt: T0 + 95_000 }) }],
  ['res.sale.info', 'An open sale, half gone.', { ...res<'sale.info'>(53, saleInfo) }],
  ['res.sale.orders', 'One page, the last.', { ...res<'sale.orders'>(54, { orders: [orderInfo] }) }],
  ['err.insufficient_funds', 'The wallet cannot pay: nothing moved.', { ...err(37, 'insufficient_funds', 'the CNY wallet holds 500 cents; the envelope needs 8888', { field: 'total' }) }],
  ['err.invalid_field', 'A request error naming the field.', { ...err(12, 'invalid_field', 'field "seq" of "read" must be a non-negative integer', { field: 'seq' }) }],
  ['err.rate_limited', 'Over the frame rate: not processed, retry later.', { ...err(30, 'rate_limited', 'rate limit exceeded', { retryAfterMs: 20 }) }],
  ['err.bad_frame', 'A frame that could not be decoded: id 0.', { ...err(0, 'bad_frame', 'not valid msgpack') }],
  ['msg.text', 'A new message (also sent to the sender\'s own devices).', { ...({ t: 'msg', m: textMsg } satisfies MessageEvent) }],
  ['msg.system', 'A membership notice.', { ...({ t: 'msg', m: systemMsg } satisfies MessageEvent) }],
  ['msg.recall', 'A recall notice: seq 7 is now recalled.', { ...({ t: 'msg', m: recallNotice } satisfies MessageEvent) }],
  ['receipt', 'bob has read up to 42.', { ...({ t: 'receipt', conv: DIRECT, user: 'bob', seq: 42 } satisfies ReceiptEvent) }],
  ['typing', 'bob is typing.', { ...({ t: 'typing', conv: DIRECT, user: 'bob', on: true } satisfies TypingEvent) }],
  ['presence', 'bob went offline.', { ...({ t: 'presence', user: 'bob', online: false, lastSeen: T0 + 90_000 } satisfies PresenceEvent) }],
  ['contact', 'carol sent a contact request.', { ...({ t: 'contact', user: 'carol', state: 'incoming', note: 'Hi!' } satisfies ContactEvent) }],
  ['lag', 'Events were dropped for this connection: sync now.', { ...({ t: 'lag' } satisfies LagEvent) }],
  ['msg.envelope', 'A red envelope card.', { ...({ t: 'msg', m: envelopeCard } satisfies MessageEvent) }],
  ['envelope', 'Two grabs since the last event; three shares left.', {
    ...({ t: 'envelope', conv: GROUP, envelope: ENVELOPE, grabs: envelopeInfo.claims, left: 3 } satisfies EnvelopeEvent),
  }],
  ['envelope.refunded', 'Expired: the rest went back to the sender.', { ...({ t: 'envelope', conv: GROUP, envelope: ENVELOPE, left: 0, refunded: 5_210 } satisfies EnvelopeEvent) }],
  ['sale', 'The sale is sold out (coarse remaining).', { ...({ t: 'sale', sale: SALE, conv: GROUP, state: 'sold_out', remaining: 0, startAt: T0 + 60_000, endAt: T0 + 3_660_000, ts: T0 + 61_500 } satisfies SaleEvent) }],
  ['transfer', 'bob accepted the transfer.', { ...({ t: 'transfer', transfer: { ...transferInfo, state: 'accepted', settledAt: T0 + 70_000 } } satisfies TransferEvent) }],
];

// ---------------------------------------------------------------- invalid frames

/** Raw msgpack pieces for frames the encoder refuses to produce. */
const fixstr = (s: string): number[] => [0xa0 | s.length, ...Buffer.from(s, 'utf8')];
const bytes = (...parts: Array<number | number[]>): Uint8Array => Uint8Array.from(parts.flat());
const enc = (frame: object): Uint8Array => encodeFrame(frame);

function nested(depth: number): Record<string, unknown> {
  let v: Record<string, unknown> = {};
  for (let i = 1; i < depth; i++) v = { a: v };
  return v;
}

const L = DEFAULT_FRAME_LIMITS;
const invalidFrames: Array<[string, string, Uint8Array, InvalidVector['expect']]> = [
  ['reserved_c1', 'The never-used byte 0xc1 as a value.', bytes(0x82, fixstr('t'), fixstr('ping'), fixstr('id'), 0xc1), { error: 'bad_frame' }],
  ['truncated_map', 'A map header announcing 2 pairs followed by 1.', bytes(0x82, fixstr('t'), fixstr('ping')), { error: 'bad_frame' }],
  ['truncated_string', 'A str8 header longer than the bytes left.', bytes(0x81, fixstr('t'), 0xd9, 10, ...Buffer.from('ping')), { error: 'bad_frame' }],
  ['trailing_bytes', 'A valid ping followed by one more byte.', bytes([...enc({ t: 'ping', id: 1 })], 0x00), { error: 'bad_frame' }],
  ['empty', 'Zero bytes.', bytes(), { error: 'bad_frame' }],
  ['top_level_array', 'The frame is an array, not a map.', enc(['ping', 1]), { error: 'bad_frame' }],
  ['top_level_string', 'The frame is a string, not a map.', bytes(fixstr('ping')), { error: 'bad_frame' }],
  ['ext_fixext1', 'An extension value (fixext 1, type 1).', bytes(0x82, fixstr('t'), fixstr('ping'), fixstr('id'), 0xd4, 0x01, 0x01), { error: 'bad_frame' }],
  ['ext_timestamp', 'The msgpack timestamp extension (type -1) is an extension too.', bytes(0x83, fixstr('t'), fixstr('ping'), fixstr('id'), 0x01, fixstr('at'), 0xd6, 0xff, 0x65, 0x53, 0xf1, 0x00), { error: 'bad_frame' }],
  ['key___proto__', 'A "__proto__" key (prototype pollution in naive JS decoders).', bytes(0x83, fixstr('t'), fixstr('ping'), fixstr('id'), 0x01, fixstr('__proto__'), 0x80), { error: 'bad_frame' }],
  ['key_constructor', 'A "constructor" key, here nested inside body.', enc({ t: 'send', id: 1, conv: 'd:5:alice:bob', cid: 'c1', kind: 'text', body: { text: 'x', constructor: 1 } }), { error: 'bad_frame' }],
  ['key_prototype', 'A "prototype" key.', enc({ t: 'ping', id: 1, prototype: {} }), { error: 'bad_frame' }],
  ['key_not_string', 'A map key that is an integer.', bytes(0x82, fixstr('t'), fixstr('ping'), 0x01, 0x01), { error: 'bad_frame' }],
  ['key_duplicate', 'The same key twice in one map.', bytes(0x83, fixstr('t'), fixstr('ping'), fixstr('id'), 0x01, fixstr('id'), 0x02), { error: 'bad_frame' }],
  ['too_deep', `Maps nested ${L.maxDepth + 1} deep (the frame is depth 1; maxDepth is ${L.maxDepth}).`, enc({ t: 'send', id: 1, conv: 'g:1', cid: 'c1', kind: 'text', body: nested(L.maxDepth) }), { error: 'bad_frame' }],
  ['string_too_long', `A string of maxStringLength+1 = ${L.maxStringLength + 1} characters.`, enc({ t: 'send', id: 1, conv: 'g:1', cid: 'c1', kind: 'text', body: { text: 'x'.repeat(L.maxStringLength + 1) } }), { error: 'bad_frame' }],
  ['array_too_long', `An array of maxArrayLength+1 = ${L.maxArrayLength + 1} items.`, enc({ t: 'presence', id: 1, users: Array.from({ length: L.maxArrayLength + 1 }, () => 'u') }), { error: 'bad_frame' }],
  ['invalid_utf8', 'A str holding the byte 0xff.', bytes(0x83, fixstr('t'), fixstr('ping'), fixstr('id'), 0x01, fixstr('x'), 0xa1, 0xff), { error: 'bad_frame' }],
  ['float_nan', 'A float64 NaN.', bytes(0x83, fixstr('t'), fixstr('read'), fixstr('id'), 0x01, fixstr('seq'), 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0), { error: 'bad_frame' }],
  ['float_infinity', 'A float32 +Infinity.', bytes(0x83, fixstr('t'), fixstr('read'), fixstr('id'), 0x01, fixstr('seq'), 0xca, 0x7f, 0x80, 0, 0), { error: 'bad_frame' }],
  ['uint64_2pow53', 'uint64 2^53: beyond the safe integer range.', bytes(0x82, fixstr('t'), fixstr('ping'), fixstr('id'), 0xcf, 0x00, 0x20, 0, 0, 0, 0, 0, 0), { error: 'bad_frame' }],
  ['int64_below_min', 'int64 -(2^53): beyond the safe integer range.', bytes(0x82, fixstr('t'), fixstr('ping'), fixstr('id'), 0xd3, 0xff, 0xe0, 0, 0, 0, 0, 0, 0), { error: 'bad_frame' }],
  ['unknown_type', 'A frame type this version does not know.', enc({ t: 'chat.send', id: 1 }), { error: 'unknown_type', field: 't' }],
  ['missing_type', 'No `t` field.', enc({ id: 1 }), { error: 'invalid_field', field: 't' }],
  ['missing_id', 'A request without `id`.', enc({ t: 'ping' }), { error: 'invalid_field', field: 'id' }],
  ['zero_id', 'Request ids are positive.', enc({ t: 'ping', id: 0 }), { error: 'invalid_field', field: 'id' }],
  ['non_integer_id', 'Request ids are integers (here float64 1.5).', enc({ t: 'ping', id: 1.5 }), { error: 'invalid_field', field: 'id' }],
  ['missing_field', 'send without body.', enc({ t: 'send', id: 1, conv: 'g:1', cid: 'c1', kind: 'text' }), { error: 'invalid_field', field: 'body' }],
  ['wrong_field_type', 'typing.on must be a boolean.', enc({ t: 'typing', id: 1, conv: 'g:1', on: 'yes' }), { error: 'invalid_field', field: 'on' }],
  ['negative_seq', 'read.seq must be >= 0.', enc({ t: 'read', id: 1, conv: 'g:1', seq: -1 }), { error: 'invalid_field', field: 'seq' }],
  ['zero_count', 'recall.seq must be >= 1.', enc({ t: 'recall', id: 1, conv: 'g:1', seq: 0 }), { error: 'invalid_field', field: 'seq' }],
  ['unknown_kind', 'Clients cannot send system messages.', enc({ t: 'send', id: 1, conv: 'g:1', cid: 'c1', kind: 'system', body: { event: 'created', by: 'x' } }), { error: 'invalid_field', field: 'kind' }],
  ['id_too_long', 'Identifiers are at most 128 characters.', enc({ t: 'conv.info', id: 1, conv: 'g'.repeat(129) }), { error: 'invalid_field', field: 'conv' }],
  ['empty_users', 'Id lists are non-empty.', enc({ t: 'presence', id: 1, users: [] }), { error: 'invalid_field', field: 'users' }],
  ['bad_since', 'sync.since maps ids to non-negative integers.', enc({ t: 'sync', id: 1, since: { 'g:1': -5 } }), { error: 'invalid_field', field: 'since' }],
  ['bad_versions', 'hello.v is a non-empty array of positive integers.', enc({ ...hello, v: [] }), { error: 'invalid_field', field: 'v' }],
  ['bad_role', 'group.role takes admin or member (owner cannot be granted).', enc({ t: 'group.role', id: 1, conv: 'g:1', user: 'bob', role: 'owner' }), { error: 'invalid_field', field: 'role' }],
  ['float_amount', 'Money is integer cents: 52.5 is refused.', enc({ t: 'transfer.send', id: 1, user: 'bob', amount: 52.5, key: 'k' }), { error: 'invalid_field', field: 'amount' }],
  ['zero_amount', 'Amounts are positive.', enc({ t: 'envelope.send', id: 1, conv: 'g:1', total: 0, count: 1, mode: 'lucky', key: 'k' }), { error: 'invalid_field', field: 'total' }],
  ['unsafe_amount', 'Amounts above 2^53 - 1 are refused (here float64 2^60).', enc({ t: 'envelope.send', id: 1, conv: 'g:1', total: 2 ** 60, count: 1, mode: 'lucky', key: 'k' }), { error: 'invalid_field', field: 'total' }],
  ['bad_mode', 'Envelope mode is lucky or equal.', enc({ t: 'envelope.send', id: 1, conv: 'g:1', total: 100, count: 1, mode: 'random', key: 'k' }), { error: 'invalid_field', field: 'mode' }],
];

export function buildVectors(): VectorFile {
  const valid: ValidVector[] = [
    ...clientFrames.map(([name, description, frame]): ValidVector => ({ name: `client.${name}`, description, direction: 'client', frame, hex: hexOf(encodeFrame(frame)) })),
    ...serverFrames.map(([name, description, frame]): ValidVector => ({ name: `server.${name}`, description, direction: 'server', frame, hex: hexOf(encodeFrame(frame)) })),
  ];
  const invalid = invalidFrames.map(([name, description, b, expect]): InvalidVector => ({ name: `invalid.${name}`, description, hex: hexOf(b), expect }));
  return { protocol: 1, valid, invalid };
}
