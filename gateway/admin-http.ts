// The operator's admin API, next to /healthz on the gateway port: POST /admin/wallet/topup.
// Off unless `adminToken` is set; the caller sends it as `authorization: Bearer <token>`. The
// request goes to the engine like any other (over NATS in the distributed mode), so a top-up is
// idempotent by the operator's `key` wherever it lands.
import { timingSafeEqual } from 'node:crypto';
import type uWS from 'uWebSockets.js';
import { LanternError } from '../protocol/errors.ts';
import type { Engine } from '../engine/api.ts';
import type { Logger } from '../engine/ports.ts';

/** Largest admin request body; a top-up is a few dozen bytes. */
export const ADMIN_MAX_BODY_BYTES = 4096;

export interface AdminDeps {
  adminToken: string | undefined;
  /** The engine once attached; undefined while starting. */
  engine(): Engine | undefined;
  log: Logger;
}

const STATUS: Record<string, string> = {
  invalid_field: '400 Bad Request', too_large: '400 Bad Request', unknown_type: '400 Bad Request',
  not_found: '404 Not Found', key_reused: '409 Conflict', conflict: '409 Conflict',
  unavailable: '503 Service Unavailable', timeout: '503 Service Unavailable', busy: '503 Service Unavailable', rate_limited: '503 Service Unavailable',
};

export function registerAdminRoutes(app: uWS.TemplatedApp, deps: AdminDeps): void {
  app.post('/admin/wallet/topup', (res, req) => {
    let aborted = false;
    res.onAborted(() => { aborted = true; });
    const reply = (status: string, body: unknown): void => {
      if (aborted) return;
      res.cork(() => { res.writeStatus(status).writeHeader('content-type', 'application/json').end(JSON.stringify(body)); });
    };
    const fail = (status: string, error: string, msg: string, field?: string): void => reply(status, { error, msg, ...(field ? { field } : {}) });

    if (deps.adminToken === undefined) return fail('404 Not Found', 'not_found', 'the admin API is off: set adminToken (LANTERN_ADMIN_TOKEN)');
    if (!sameToken(req.getHeader('authorization'), deps.adminToken)) return fail('401 Unauthorized', 'unauthorized', 'authorization: Bearer <adminToken> required');

    const chunks: Buffer[] = [];
    let size = 0;
    res.onData((chunk, last) => {
      if (size < 0) return;
      size += chunk.byteLength;
      if (size > ADMIN_MAX_BODY_BYTES) {
        size = -1;
        return fail('413 Payload Too Large', 'too_large', `body above ${ADMIN_MAX_BODY_BYTES} bytes`);
      }
      chunks.push(Buffer.from(chunk.slice(0)));
      if (last) void handle(Buffer.concat(chunks));
    });

    const handle = async (raw: Buffer): Promise<void> => {
      const engine = deps.engine();
      if (!engine?.admin) return fail('503 Service Unavailable', 'unavailable', 'the engine is not ready');
      let body: unknown;
      try { body = JSON.parse(raw.toString('utf8')); } catch { return fail('400 Bad Request', 'invalid_field', 'the body must be JSON'); }
      const b = (body ?? {}) as Record<string, unknown>;
      for (const [field, ok] of [['user', isId(b['user'])], ['key', isId(b['key'])], ['amount', Number.isSafeInteger(b['amount'])], ['currency', b['currency'] === undefined || isId(b['currency'])]] as const) {
        if (!ok) return fail('400 Bad Request', 'invalid_field', `field "${field}" is missing or invalid`, field);
      }
      try {
        const result = await engine.admin('wallet.topup', {
          user: b['user'] as string, amount: b['amount'] as number, key: b['key'] as string,
          ...(b['currency'] === undefined ? {} : { currency: b['currency'] as string }),
        });
        reply('200 OK', result);
      } catch (err) {
        if (err instanceof LanternError) return fail(STATUS[err.error] ?? '500 Internal Server Error', err.error, err.message, err.field);
        deps.log.error({ err }, 'admin top-up failed');
        fail('500 Internal Server Error', 'internal', 'internal error; retry with the same key');
      }
    };
  });
}

function isId(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= 128;
}

function sameToken(header: string, token: string): boolean {
  const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '');
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}
