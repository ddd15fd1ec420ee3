// Protocol v1 frame types. PROTOCOL.md is the normative description; these types mirror it.
// Every frame is one msgpack map with a string field `t` naming its type.

export const PROTOCOL_VERSION = 1;
export const SUPPORTED_VERSIONS: readonly number[] = [1];

export type MessageKind = 'text' | 'sticker' | 'image' | 'file' | 'location' | 'system' | 'envelope' | 'transfer' | 'sale';
export type ConversationType = 'direct' | 'group';
export type MemberRole = 'owner' | 'admin' | 'member';
/** A contact relation as seen by the user who lists it. */
export type ContactState = 'requested' | 'incoming' | 'friend' | 'blocked' | 'none';

export interface TextBody { text: string }
export interface StickerBody { pack: string; sticker: string }
export interface ImageBody { url: string; mime: string; size: number; width: number; height: number; thumb?: string }
export interface FileBody { url: string; mime: string; size: number; name: string }
export interface LocationBody { lat: number; lng: number; name?: string }
/** Server-generated notices; `event` says what happened. */
export interface SystemBody {
  event: 'created' | 'joined' | 'left' | 'removed' | 'role' | 'recalled';
  by: string;
  users?: string[];
  role?: MemberRole;
  /** For `recalled`: the seq of the recalled message. */
  seq?: number;
  title?: string;
}
/** The card of a flash sale (posted by the admin `sale.create` in the merchant's name). Cents. */
export interface SaleBody { sale: string; item: string; price: number; currency: string; stock: number; startAt: number; endAt: number; perUserLimit: number }
/** The card of a red envelope (posted by `envelope.send`). Amounts are integer cents. */
export interface EnvelopeBody { envelope: string; greeting: string; total: number; count: number; mode: EnvelopeMode; currency: string }
/** The card of a transfer (posted by `transfer.send`). */
export interface TransferBody { transfer: string; amount: number; currency: string; note: string }
/** Kinds a client may `send`; system notices and money cards are posted by the server. */
export type ClientMessageKind = Exclude<MessageKind, 'system' | 'envelope' | 'transfer' | 'sale'>;
export type MessageBody = TextBody | StickerBody | ImageBody | FileBody | LocationBody | SystemBody | EnvelopeBody | TransferBody | SaleBody;

/** A stored message as delivered to clients. (conv, seq) identifies it. */
export interface Message {
  conv: string;
  seq: number;
  from: string;
  /** Sending device; '' for server-generated notices. */
  dev: string;
  /** Client-supplied id of the send ('' for notices); unique per (conv, from). */
  cid: string;
  kind: MessageKind;
  /** Absent once recalled. */
  body?: MessageBody;
  /** Server time in ms since the epoch when the message was sequenced. */
  ts: number;
  recalled?: true;
}

export interface ConversationInfo {
  conv: string;
  type: ConversationType;
  title: string;
  /** Changes when the conversation's history lost continuity: the client must drop what it holds and reload. */
  epoch: string;
  /** Highest seq in the conversation. */
  head: number;
  /** This user's role. */
  role: MemberRole;
  /** Messages with seq <= joined are not visible to this user. */
  joined: number;
  /** This user's read cursor. */
  read: number;
  /** For direct conversations: the other user. */
  peer?: string;
  members: number;
}

export interface MemberInfo { user: string; role: MemberRole; joined: number }
export interface ContactInfo { user: string; state: ContactState; ts: number }
export interface PresenceInfo { user: string; online: boolean; lastSeen: number }

export type EnvelopeMode = 'lucky' | 'equal';
export interface EnvelopeClaimInfo { user: string; amount: number; ts: number }
export interface EnvelopeInfo {
  envelope: string; conv: string; sender: string; currency: string; total: number; count: number;
  mode: EnvelopeMode; greeting: string; createdAt: number; expiresAt: number;
  /** In the order they were made. */
  claims: EnvelopeClaimInfo[];
  /** Shares not yet claimed (0 once refunded). */
  left: number;
  /** Cents returned to the sender at expiry, once refunded. */
  refunded?: number;
  /** Who got the largest share (the earliest on a tie), once every share is claimed. */
  luckiest?: string;
}
export type GrabOutcome = 'grabbed' | 'already' | 'empty' | 'expired';
export type TransferState = 'pending' | 'accepted' | 'returned';
export interface TransferInfo {
  transfer: string; from: string; to: string; currency: string; amount: number; note: string; conv: string;
  createdAt: number; expiresAt: number; state: TransferState; settledAt?: number;
}
/** Where a sale is: scheduled (before startAt), open, sold_out (may reopen when unpaid reservations expire), closed (from endAt). */
export type SaleState = 'scheduled' | 'open' | 'sold_out' | 'closed';
export interface SaleInfo {
  sale: string; merchant: string; conv: string; item: string; price: number; currency: string; stock: number;
  startAt: number; endAt: number; perUserLimit: number; payWindowMs: number; createdAt: number;
  state: SaleState;
  /** Units in paid orders, in reserved (unpaid) orders, and left; stock == sold + reserved + remaining. */
  sold: number; reserved: number; remaining: number;
}
export type OrderState = 'reserved' | 'paying' | 'paid' | 'expired';
export interface OrderInfo {
  order: string; sale: string; user: string; quantity: number; amount: number; currency: string;
  state: OrderState; createdAt: number; payBy: number; settledAt?: number;
}
/** What a purchase attempt got. `reserved` carries the order (pay it before `payBy`). */
export type BuyOutcome = 'reserved' | 'sold_out' | 'limit_reached' | 'not_open' | 'closed' | 'try_later';
export interface BuyResult {
  sale: string;
  outcome: BuyOutcome;
  order?: OrderInfo;
  /** The attempt's key was seen before: this is the earlier answer (the order in its current state). */
  duplicate?: true;
  /** not_open: when the sale starts. */
  startAt?: number;
  /** try_later: wait this long before retrying with the same key. */
  retryAfterMs?: number;
}
export interface BalanceInfo { currency: string; cents: number }
export interface StatementEntry {
  /** Paging cursor: pass as `before` for older entries. */
  seq: number;
  kind: 'topup' | 'envelope' | 'grab' | 'refund' | 'transfer' | 'accept' | 'return' | 'purchase' | 'purchase_refund';
  /** Signed cents: positive into the wallet. */
  amount: number;
  /** The wallet's balance right after this entry. */
  balance: number;
  /** The envelope or transfer it belongs to. */
  ref?: string;
  ts: number;
}

// ---------------------------------------------------------------- client -> server

export interface HelloFrame { t: 'hello'; id: number; v: number[]; token: string; device: string; client?: string }

/** Parameters and result of every request type. */
export interface RequestMap {
  ping: { params: Record<never, never>; result: { ts: number } };
  send: { params: { conv: string; cid: string; kind: ClientMessageKind; body: MessageBody }; result: { conv: string; seq: number; ts: number; dup: boolean } };
  recall: { params: { conv: string; seq: number }; result: { conv: string; seq: number } };
  history: { params: { conv: string; before?: number; limit?: number }; result: { msgs: Message[]; more: boolean } };
  sync: { params: { since: Record<string, number>; limit?: number }; result: SyncResult };
  read: { params: { conv: string; seq: number }; result: { conv: string; read: number } };
  receipts: { params: { conv: string }; result: { conv: string; reads: Record<string, number> } };
  typing: { params: { conv: string; on: boolean }; result: Record<string, never> };
  presence: { params: { users: string[] }; result: { presence: PresenceInfo[] } };
  'contact.request': { params: { user: string; note?: string }; result: ContactInfo };
  'contact.accept': { params: { user: string }; result: ContactInfo };
  'contact.remove': { params: { user: string }; result: ContactInfo };
  'contact.block': { params: { user: string }; result: ContactInfo };
  'contact.unblock': { params: { user: string }; result: ContactInfo };
  'contact.list': { params: Record<never, never>; result: { contacts: ContactInfo[] } };
  'conv.direct': { params: { user: string }; result: ConversationInfo };
  'conv.list': { params: Record<never, never>; result: { convs: ConversationInfo[] } };
  'conv.info': { params: { conv: string }; result: { conv: ConversationInfo; members: MemberInfo[] } };
  'group.create': { params: { title: string; members: string[] }; result: ConversationInfo };
  'group.add': { params: { conv: string; users: string[] }; result: { conv: string; seq: number } };
  'group.remove': { params: { conv: string; users: string[] }; result: { conv: string; seq: number } };
  'group.leave': { params: { conv: string }; result: { conv: string; seq: number } };
  'group.role': { params: { conv: string; user: string; role: 'admin' | 'member' }; result: { conv: string; seq: number } };
  'wallet.balance': { params: Record<never, never>; result: { balances: BalanceInfo[] } };
  'wallet.statement': { params: { currency?: string; before?: number; limit?: number }; result: { entries: StatementEntry[]; more: boolean } };
  'transfer.send': { params: { user: string; amount: number; key: string; currency?: string; note?: string }; result: { transfer: TransferInfo; conv: string; seq: number } };
  'transfer.accept': { params: { transfer: string }; result: TransferInfo };
  'transfer.return': { params: { transfer: string }; result: TransferInfo };
  'transfer.info': { params: { transfer: string }; result: TransferInfo };
  'envelope.send': {
    params: { conv: string; total: number; count: number; mode: EnvelopeMode; key: string; greeting?: string; currency?: string };
    result: { envelope: string; conv: string; seq: number; expiresAt: number };
  };
  'envelope.grab': { params: { envelope: string }; result: { envelope: string; outcome: GrabOutcome; amount?: number; currency: string } };
  'envelope.info': { params: { envelope: string }; result: EnvelopeInfo };
  /** `retry`: set when resending a key that got no answer; a gateway then never answers from its local sale state. */
  'sale.buy': { params: { sale: string; quantity: number; key: string; retry?: boolean }; result: BuyResult };
  'sale.pay': { params: { order: string }; result: OrderInfo };
  'sale.info': { params: { sale: string }; result: SaleInfo };
  /** With `sale`: that sale's orders, oldest first (its merchant only). Without: the caller's orders, newest first. */
  'sale.orders': { params: { sale?: string; after?: string; limit?: number }; result: { orders: OrderInfo[]; next?: string } };
}

/** Requests only the operator's admin API may make (never accepted on a client connection). */
export interface AdminRequestMap {
  'wallet.topup': { params: { user: string; amount: number; key: string; currency?: string }; result: { user: string; currency: string; amount: number; balance: number; applied: boolean } };
  'sale.create': {
    params: {
      merchant: string; conv: string; item: string; price: number; stock: number; startAt: number; endAt: number;
      perUserLimit: number; key: string; currency?: string; payWindowMs?: number;
    };
    result: SaleInfo & { applied: boolean };
  };
  'sale.orders': { params: { sale: string; after?: string; limit?: number }; result: { orders: OrderInfo[]; next?: string } };
}

export type RequestType = keyof RequestMap;
export type RequestParams<T extends RequestType> = RequestMap[T]['params'];
export type RequestResult<T extends RequestType> = RequestMap[T]['result'];
export type RequestFrame<T extends RequestType = RequestType> = { t: T; id: number } & RequestParams<T>;
export type ClientFrame = HelloFrame | RequestFrame;

export interface SyncResult {
  /** Conversations that changed since the cursor, or that the cursor did not name. */
  convs: ConversationInfo[];
  /** Missed messages, ordered by (conv, seq); gapless from each conv's cursor. */
  msgs: Message[];
  /** Conversations in the cursor this user no longer belongs to. */
  removed: string[];
  /** True when a page limit cut the result: sync again with the advanced cursor. */
  more: boolean;
}

// ---------------------------------------------------------------- server -> client

export interface WelcomeFrame {
  t: 'welcome'; id: number; v: number; user: string; device: string; session: string;
  /** Changes when the server's storage was replaced: drop all local state and reload. */
  epoch: string;
  ts: number;
  limits: { maxFrameBytes: number; ratePerSec: number; rateBurst: number; maxSyncPage: number; maxGroupMembers: number };
}
export interface ResultFrame<T extends RequestType = RequestType> { t: 'res'; id: number; data: RequestResult<T> }
export interface ErrorFrame {
  t: 'err';
  /** The request's id; 0 when the frame could not be read far enough to know it. */
  id: number;
  code: number;
  error: string;
  msg: string;
  retry: boolean;
  field?: string;
  retryAfterMs?: number;
}
export interface MessageEvent { t: 'msg'; m: Message }
export interface ReceiptEvent { t: 'receipt'; conv: string; user: string; seq: number }
export interface TypingEvent { t: 'typing'; conv: string; user: string; on: boolean }
export interface PresenceEvent { t: 'presence'; user: string; online: boolean; lastSeen: number }
export interface ContactEvent { t: 'contact'; user: string; state: ContactState; note?: string }
/** The server dropped events for this connection (it read too slowly): sync now. */
export interface LagEvent { t: 'lag' }
/** A red envelope changed: shares were grabbed (the last one with `luckiest`), or the rest was refunded. */
export interface EnvelopeEvent {
  t: 'envelope'; conv: string; envelope: string;
  /** Grabs since the previous event of this envelope, in the order made. */
  grabs?: EnvelopeClaimInfo[];
  /** Shares not yet claimed (absent if the server could not read it just then). */
  left?: number;
  luckiest?: string;
  refunded?: number;
}
/**
 * A sale's live state, to the members of its conversation: throttled (`saleStateThrottleMs`), so
 * `remaining` is coarse; `sale.info` is exact. Every gateway also answers purchase attempts from it.
 */
export interface SaleEvent { t: 'sale'; sale: string; conv: string; state: SaleState; remaining: number; startAt: number; endAt: number; ts: number }
/** A transfer was accepted or returned (to both parties). */
export interface TransferEvent { t: 'transfer'; transfer: TransferInfo }

export type ServerEvent = MessageEvent | ReceiptEvent | TypingEvent | PresenceEvent | ContactEvent | LagEvent | EnvelopeEvent | TransferEvent | SaleEvent;
export type ServerFrame = WelcomeFrame | ResultFrame | ErrorFrame | ServerEvent;
