// Error codes carried by `err` frames and close codes carried by WebSocket close frames.
// The numeric range tells a client what to do without knowing every code:
//   error 1000-1999 the request is wrong: fix it, do not retry as is
//   error 2000-2999 not allowed for this user: do not retry
//   error 3000-3999 conflicts with current state: do not retry as is
//   error 5000-5999 the server could not do it now: retry the same request (same cid) later
//   close 4000-4099 terminal: do not reconnect with the same credentials/build
//   close 4100-4199 transient: reconnect with jittered backoff, then sync
//   close 4200-4299 credentials: obtain a fresh token, then reconnect
// PROTOCOL.md lists every code; a test fails when one is missing there.

export interface ErrorCodeInfo {
  readonly code: number;
  readonly retry: boolean;
  readonly description: string;
}

export const ErrorCodes = {
  bad_frame: { code: 1000, retry: false, description: 'The frame is not valid msgpack, has trailing bytes, or breaks a structural limit (depth, string, array or map size, forbidden key).' },
  unknown_type: { code: 1001, retry: false, description: 'The frame type `t` is not one this protocol version knows.' },
  invalid_field: { code: 1002, retry: false, description: 'A field is missing, has the wrong type, or is out of range. `field` names it.' },
  too_large: { code: 1003, retry: false, description: 'A value exceeds a size limit (text length, batch size, group size per call).' },
  not_ready: { code: 1004, retry: false, description: 'A request arrived before the `hello`/`welcome` exchange completed.' },
  duplicate_hello: { code: 1005, retry: false, description: 'A second `hello` on an authenticated connection.' },
  not_member: { code: 2000, retry: false, description: 'The user is not a member of the conversation.' },
  forbidden: { code: 2001, retry: false, description: 'The user lacks the role for this action (e.g. a member removing an admin).' },
  not_contact: { code: 2002, retry: false, description: 'Direct conversations need an accepted contact.' },
  blocked: { code: 2003, retry: false, description: 'One side has blocked the other.' },
  not_found: { code: 3000, retry: false, description: 'The conversation, message or user does not exist.' },
  recall_window_passed: { code: 3001, retry: false, description: 'Recall is only allowed within the recall window (default 2 minutes) of sending.' },
  group_full: { code: 3002, retry: false, description: 'Adding these users would exceed the maximum group size.' },
  conflict: { code: 3003, retry: false, description: 'The action conflicts with current state (e.g. recalling a system notice, accepting a request that does not exist).' },
  insufficient_funds: { code: 3004, retry: false, description: 'The wallet holds less than the envelope or transfer needs. Nothing was debited.' },
  key_reused: { code: 3005, retry: false, description: 'This idempotency `key` was already used by this user for a different request. Use a fresh key for a new request.' },
  already_settled: { code: 3006, retry: false, description: 'The transfer was already accepted or returned (the frame\'s `msg` says which).' },
  order_expired: { code: 3007, retry: false, description: 'The order\'s payment deadline (`payBy`) passed before it was paid: its stock went back to the sale. Nothing was debited (or the payment was refunded).' },
  internal: { code: 5000, retry: true, description: 'An unexpected server error. The request may be retried; sends are idempotent by `cid`.' },
  rate_limited: { code: 5001, retry: true, description: 'The connection exceeded its frame rate, or the user their message rate. The frame was not processed; `retryAfterMs` says when to retry.' },
  unavailable: { code: 5002, retry: true, description: 'Storage or a dependency is unavailable. Nothing was stored; retry with the same `cid`.' },
  busy: { code: 5004, retry: true, description: 'Too many requests are in flight on this connection (`maxInflightPerConnection`) or on the server (`maxInflightRequests`): load is shed early instead of queueing without bound. Not processed; retry after `retryAfterMs`.' },
  timeout: { code: 5003, retry: true, description: 'The server did not finish in time; the outcome is unknown. Retry with the same `cid` to learn it.' },
} as const satisfies Record<string, ErrorCodeInfo>;

export type ErrorName = keyof typeof ErrorCodes;

export const CloseCodes = {
  /** Standard: the server is going away (shutdown/restart). Reconnect. */
  going_away: { code: 1001, reconnect: true, description: 'The server is shutting down. Reconnect with backoff (another gateway may answer).' },
  /** Standard, sent by uWebSockets.js itself when a frame exceeds maxPayloadLength. */
  message_too_big: { code: 1009, reconnect: true, description: 'A frame exceeded `maxFrameBytes`; the connection is closed by the WebSocket layer. Reconnect, and do not resend that frame.' },
  protocol_violation: { code: 4000, reconnect: false, description: 'Too many invalid frames on one connection (`maxProtocolErrors`). A client bug: do not reconnect automatically.' },
  auth_failed: { code: 4001, reconnect: false, description: 'The token is invalid: bad signature, wrong algorithm, wrong audience, or missing claims.' },
  unsupported_version: { code: 4003, reconnect: false, description: 'No protocol version offered in `hello.v` is supported by the server.' },
  hello_timeout: { code: 4100, reconnect: true, description: 'No valid `hello` arrived within `helloTimeoutMs`.' },
  slow_consumer: { code: 4101, reconnect: true, description: 'The client read too slowly for too long (`slowConsumerCloseMs`). Reconnect and sync.' },
  flood: { code: 4102, reconnect: true, description: 'The client kept sending past its rate limit (`floodCloseAfter` rejected frames in a row). Reconnect after backoff.' },
  server_error: { code: 4103, reconnect: true, description: 'The server hit an unexpected error on this connection.' },
  token_expired: { code: 4200, reconnect: true, description: 'The token has expired (`exp`). Fetch a fresh token, then reconnect.' },
} as const;

export type CloseName = keyof typeof CloseCodes;

/** What a client should do after a close with this code. */
export function closeAdvice(code: number): 'stop' | 'reconnect' | 'refresh_token' {
  if (code >= 4000 && code <= 4099) return 'stop';
  if (code >= 4200 && code <= 4299) return 'refresh_token';
  return 'reconnect';
}

/** Error thrown by any layer that should become an `err` frame. */
export class LanternError extends Error {
  override readonly name = 'LanternError';
  readonly code: number;
  readonly error: ErrorName;
  readonly retry: boolean;
  readonly field: string | undefined;
  readonly retryAfterMs: number | undefined;

  constructor(error: ErrorName, message: string, opts: { field?: string; retryAfterMs?: number; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    const info: ErrorCodeInfo = ErrorCodes[error];
    this.error = error;
    this.code = info.code;
    this.retry = info.retry;
    this.field = opts.field;
    this.retryAfterMs = opts.retryAfterMs;
  }
}
