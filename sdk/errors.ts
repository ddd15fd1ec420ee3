// The error every failed request rejects with. Server `err` frames map onto it field by field;
// failures the client detects itself (no reply in time, connection lost, client closed) use
// the protocol's retryable codes so callers can branch on `retry` alone.
import { ErrorCodes } from '../protocol/errors.ts';
import type { ErrorFrame, RequestType } from '../protocol/frames.ts';

export interface LanternClientErrorInit {
  code: number;
  error: string;
  retry: boolean;
  field?: string | undefined;
  retryAfterMs?: number | undefined;
  /** The request type that failed, when the error answers a request. */
  request?: RequestType | 'hello' | undefined;
  /** The close code, when the error was caused by the connection closing. */
  closeCode?: number | undefined;
  cause?: unknown;
}

export class LanternClientError extends Error {
  override readonly name = 'LanternClientError';
  /** Numeric code; its range says whether to retry (see protocol/errors.ts). */
  readonly code: number;
  /** Code name, e.g. "invalid_field". */
  readonly error: string;
  /** True when the same request may be retried as is (sends: with the same cid). */
  readonly retry: boolean;
  readonly field: string | undefined;
  readonly retryAfterMs: number | undefined;
  readonly request: RequestType | 'hello' | undefined;
  readonly closeCode: number | undefined;

  constructor(message: string, init: LanternClientErrorInit) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.code = init.code;
    this.error = init.error;
    this.retry = init.retry;
    this.field = init.field;
    this.retryAfterMs = init.retryAfterMs;
    this.request = init.request;
    this.closeCode = init.closeCode;
  }

  static fromFrame(frame: ErrorFrame, request?: RequestType | 'hello'): LanternClientError {
    const what = request === undefined ? 'server error' : `${request} failed`;
    return new LanternClientError(`${what}: ${frame.error} (${frame.code}): ${frame.msg}`, {
      code: frame.code,
      error: frame.error,
      retry: frame.retry,
      field: frame.field,
      retryAfterMs: frame.retryAfterMs,
      request,
    });
  }

  /** No reply within requestTimeoutMs: the outcome is unknown (a send may have been stored). */
  static timeout(request: RequestType, timeoutMs: number): LanternClientError {
    return new LanternClientError(`${request} got no reply within ${timeoutMs} ms`, {
      code: ErrorCodes.timeout.code, error: 'timeout', retry: true, request,
    });
  }

  /** The connection closed or is not open: the request may or may not have reached the server. */
  static unavailable(message: string, request?: RequestType, closeCode?: number): LanternClientError {
    return new LanternClientError(message, {
      code: ErrorCodes.unavailable.code, error: 'unavailable', retry: true, request, closeCode,
    });
  }
}

/** Wrap anything thrown into an Error so 'error' events always carry one. */
export function toError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}
