// Public API of the Lantern TypeScript SDK (Node 20+ and browsers).
export { LanternClient, type ClientStatus } from './client.ts';
export { LanternApi } from './api.ts';
export type { LanternClientOptions, TokenSource, UrlSource } from './options.ts';
export { SDK_VERSION, CLIENT_FRAME_LIMITS } from './options.ts';
export type {
  ClientEvents, ClientErrorEvent, ContactChange, Disconnected, Presence, Receipt, Synced, Typing, Welcome,
} from './events.ts';
export { LanternClientError, type LanternClientErrorInit } from './errors.ts';
export { Backoff, DEFAULT_BACKOFF, backoffCeiling, jitteredDelay, type BackoffOptions } from './backoff.ts';
export { MemoryCursorStore, SyncState, type CursorStore, type PersistedSyncState } from './sync-state.ts';
export type { SendResult } from './outbox.ts';
export type { WebSocketConstructor, WebSocketLike } from './connection.ts';
export { randomCid } from './ids.ts';

// Protocol types and constants, so apps need only this package.
export type * from '../protocol/frames.ts';
export { PROTOCOL_VERSION, SUPPORTED_VERSIONS } from '../protocol/frames.ts';
export { CloseCodes, ErrorCodes, closeAdvice, type CloseName, type ErrorName } from '../protocol/errors.ts';
export { encodeFrame, decodeFrame } from '../protocol/codec.ts';
export { DEFAULT_FRAME_LIMITS, type FrameLimits } from '../protocol/limits.ts';
