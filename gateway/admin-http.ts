// The operator's admin API, next to /healthz on the gateway port:
//   POST /admin/wallet/topup          {user, amount, key, currency?}
//   POST /admin/sales                 {merchant, conv, item, price, stock, startAt, endAt, perUserLimit, key, currency?, payWindowMs?}
//   GET  /admin/sales/<id>/orders?after=&limit=
// Off unless `adminToken` is set; the caller sends it as `authorization: Bearer <token>`. Requests
// go to the engine like any other (over NATS in the distributed mode), so a top-up or a sale is
// idempotent by the operator's `key` wherever it lands. Errors are JSON {error, msg, field?} with
// the HTTP status of their kind.
import { timingSafeEqual } from 'node:crypto';
import type uWS from 'uWebSockets.js';
import { LanternError } from '../protocol/errors.ts';
import type { AdminRequestMap } from '../protocol/frames.ts';
import type { Engine } from '../engine/api.ts';
import type { Logger } from '../engine/ports.ts';

/** Largest admin request body; a sale is a few hundred bytes. */
export const ADMIN_MAX_BODY_BYTES = 4096;

export interface AdminDeps {
  adminToken: string | undefined;
  /** The engine once attached; undefined while starting. */
  engine(): Engine | undefined;
  log: Logger;
}

const STATUS: Record<string, string> = {
  invalid_field: '400 Bad Request', too_large: '400 Bad Request', unknown_type: '400 Bad Request',
  not_member: '403 Forbidden', forbidden: '403 Forbidden', blocked: '403 Forbidden',
  not_found: '404 Not Found', key_reused: '409 Conflict', conflict: '409 Conflict',
  unavailable: '503 Service Unavailable', timeout: '503 Service Unavailable', busy: '503 Service Unavailable', rate_limited: '503 Service Unavailable',
};

type Fields = Record<string, unknown>;
/** What a field must be: an id, a safe integer, or text; `?` suffix = optional. */
type FieldRule = 'id' | 'int' | 'text' | 'id?' | 'int?';

const RULES: Record<'wallet.topup' | 'sale.create', Record<string, FieldRule>> = {
  'wallet.topup': { user: 'id', amount: 'int', key: 'id', currency: 'id?' },
  'sale.create': {
    merchant: 'id', conv: 'id', item: 'text', price: 'int', stock: 'int', startAt: 'int', endAt: 'int',
    perUserLimit: 'int', key: 'id', currency: 'id?', payWindowMs: 'int?',
  },
};

class HttpError extends Error {
  constructor(readonly status: string, readonly error: string, msg: string, readonly field?: string) { super(msg); }
}

export function registerAdminRoutes(app: uWS.TemplatedApp, deps: AdminDeps): void {
  const route = (res: uWS.HttpResponse, req: uWS.HttpRequest, withBody: boolean, call: (engine: Engine, body: Fields) => Promise<unknown>): void => {
    let aborted = false;
    res.onAborted(() => { aborted = true; });
    const reply = (status: string, body: unknown): void => {
      if (aborted) return;
      res.cork(() => { res.writeStatus(status).writeHeader('content-type', 'application/json').end(JSON.stringify(body)); });
    };
    const fail = (e: HttpError): void => reply(e.status, { error: e.error, msg: e.message, ...(e.field ? { field: e.field } : {}) });

    if (deps.adminToken === undefined) return fail(new HttpError('404 Not Found', 'not_found', 'the admin API is off: set adminToken (LANTERN_ADMIN_TOKEN)'));
    if (!sameToken(req.getHeader('authorization'), deps.adminToken)) return fail(new HttpError('401 Unauthorized', 'unauthorized', 'authorization: Bearer <adminToken> required'));

    const run = async (raw: Buffer | undefined): Promise<void> => {
      try {
        const engine = deps.engine();
        if (!engine?.admin) throw new HttpError('503 Service Unavailable', 'unavailable', 'the engine is not ready');
        let body: Fields = {};
        if (raw) {
          try { body = (JSON.parse(raw.toString('utf8')) ?? {}) as Fields; } catch { throw new HttpError('400 Bad Request', 'invalid_field', 'the body must be JSON'); }
          if (typeof body !== 'object' || Array.isArray(body)) throw new HttpError('400 Bad Request', 'invalid_field', 'the body must be a JSON object');
        }
        reply('200 OK', await call(engine, body));
      } catch (err) {
        if (err instanceof HttpError) return fail(err);
        if (err instanceof LanternError) return fail(new HttpError(STATUS[err.error] ?? '500 Internal Server Error', err.error, err.message, err.field));
        deps.log.error({ err }, 'admin request failed');
        fail(new HttpError('500 Internal Server Error', 'internal', 'internal error; retry with the same key'));
      }
    };
    if (!withBody) return void run(undefined);
    const chunks: Buffer[] = [];
    let size = 0;
    res.onData((chunk, last) => {
      if (size < 0) return;
      size += chunk.byteLength;
      if (size > ADMIN_MAX_BODY_BYTES) {
        size = -1;
        return fail(new HttpError('413 Payload Too Large', 'too_large', `body above ${ADMIN_MAX_BODY_BYTES} bytes`));
      }
      chunks.push(Buffer.from(chunk.slice(0)));
      if (last) void run(Buffer.concat(chunks));
    });
  };

  const post = <T extends keyof typeof RULES>(path: string, type: T): void => {
    app.post(path, (res, req) => route(res, req, true, (engine, body) => engine.admin!(type, checked(body, RULES[type]) as AdminRequestMap[T]['params'])));
  };
  post('/admin/wallet/topup', 'wallet.topup');
  post('/admin/sales', 'sale.create');

  app.get('/admin/sales/:sale/orders', (res, req) => {
    const sale = req.getParameter(0) ?? '';
    const query = new URLSearchParams(req.getQuery() ?? '');
    route(res, req, false, (engine) => {
      const limit = query.get('limit');
      const after = query.get('after');
      if (!isId(sale)) throw new HttpError('400 Bad Request', 'invalid_field', 'the sale id is invalid', 'sale');
      if (limit !== null && !/^[1-9][0-9]{0,5}$/.test(limit)) throw new HttpError('400 Bad Request', 'invalid_field', 'limit must be a positive integer', 'limit');
      if (after !== null && !isId(after)) throw new HttpError('400 Bad Request', 'invalid_field', 'after must be an order id', 'after');
      return engine.admin!('sale.orders', { sale, ...(limit === null ? {} : { limit: Number(limit) }), ...(after === null ? {} : { after }) });
    });
  });
}

/** The body's fields that the rules name, each checked; anything else is ignored. */
function checked(body: Fields, rules: Record<string, FieldRule>): Fields {
  const out: Fields = {};
  for (const [field, rule] of Object.entries(rules)) {
    const v = body[field];
    const optional = rule.endsWith('?');
    if (v === undefined && optional) continue;
    const ok = rule.startsWith('id') ? isId(v) : rule.startsWith('int') ? Number.isSafeInteger(v) : typeof v === 'string';
    if (!ok) throw new HttpError('400 Bad Request', 'invalid_field', `field "${field}" is missing or invalid`, field);
    out[field] = v;
  }
  return out;
}

function isId(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= 128;
}

function sameToken(header: string, token: string): boolean {
  const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '');
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}
