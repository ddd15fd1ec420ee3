// The events LanternClient emits and their payloads.
import type {
  ContactEvent, ConversationInfo, EnvelopeEvent, Message, PresenceEvent, ReceiptEvent, SaleEvent, TransferInfo, TypingEvent, WelcomeFrame,
} from '../protocol/frames.ts';

export type Welcome = Omit<WelcomeFrame, 't' | 'id'>;
export type Receipt = Omit<ReceiptEvent, 't'>;
export type Typing = Omit<TypingEvent, 't'>;
export type Presence = Omit<PresenceEvent, 't'>;
export type ContactChange = Omit<ContactEvent, 't'>;
export type EnvelopeUpdate = Omit<EnvelopeEvent, 't'>;
export type SaleUpdate = Omit<SaleEvent, 't'>;

export interface Disconnected {
  /** WebSocket close code (1006 when the socket failed without a close frame). */
  code: number;
  reason: string;
  /** False after close(), a terminal code (4000-4099) or an expired fixed token. */
  willReconnect: boolean;
  /** When willReconnect: the backoff delay before the next attempt. */
  delayMs?: number;
}

export interface Synced {
  /** What started the sync: 'welcome', 'gap', 'lag', 'manual' or 'retry'. */
  reason: string;
  /** Messages this sync emitted as 'message' events. */
  messages: number;
  /** Conversations the server reported as changed. */
  conversations: number;
}

export interface ClientErrorEvent {
  error: Error;
  /** Where it happened: 'socket', 'decode', 'protocol', 'reply', 'hello', 'token', 'sync',
   *  'outbox', 'connection', 'state.load', 'state.save' or 'handler:<event>'. */
  context: string;
}

export interface ClientEvents {
  /** A message, exactly once per (conv, seq) and in seq order per conversation. */
  message: Message;
  receipt: Receipt;
  typing: Typing;
  presence: Presence;
  contact: ContactChange;
  /** A red envelope in one of your conversations: grabs (the last with `luckiest`) or its refund. */
  envelope: EnvelopeUpdate;
  /** A transfer you sent or received was accepted or returned. */
  transfer: TransferInfo;
  /** A flash sale in one of your conversations changed state or stock (coarse, throttled). */
  sale: SaleUpdate;
  /** A conversation the server reported during sync (new, changed head, or changed epoch). */
  conversation: ConversationInfo;
  /** The user no longer belongs to this conversation; its cursor was dropped. */
  removed: { conv: string };
  /** Drop locally stored messages: of one conversation (its epoch changed) or of all
   *  conversations (conv undefined: the server's data set changed). They reload via 'message'. */
  reset: { conv: string | undefined };
  connected: Welcome;
  disconnected: Disconnected;
  synced: Synced;
  error: ClientErrorEvent;
}
