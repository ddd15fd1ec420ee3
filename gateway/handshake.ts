// hello → welcome: version negotiation, token check, engine.connected, subscription to the
// user's topic. Every step after an await re-checks that the socket is still open.
import { CloseCodes } from '../protocol/errors.ts';
import { SUPPORTED_VERSIONS, type HelloFrame, type WelcomeFrame } from '../protocol/frames.ts';
import { closeSocket, sendFrame, type Socket } from './connection.ts';
import type { GatewayContext } from './context.ts';

export function pickVersion(offered: readonly number[]): number | undefined {
  let best: number | undefined;
  for (const v of offered) if (SUPPORTED_VERSIONS.includes(v) && (best === undefined || v > best)) best = v;
  return best;
}

export async function handleHello(ctx: GatewayContext, ws: Socket, hello: HelloFrame): Promise<void> {
  const conn = ws.getUserData();
  conn.stage = 'checked';
  const v = pickVersion(hello.v);
  if (v === undefined) {
    closeSocket(ws, CloseCodes.unsupported_version.code, 'unsupported_version');
    return;
  }
  const verdict = await ctx.verifier.verify(hello.token);
  if (conn.closed) return;
  if (!verdict.ok) {
    ctx.log.info({ session: conn.session, device: hello.device, reason: verdict.reason, detail: verdict.detail }, 'token refused');
    const close = verdict.reason === 'expired' ? CloseCodes.token_expired : CloseCodes.auth_failed;
    closeSocket(ws, close.code, verdict.reason === 'expired' ? 'token_expired' : 'auth_failed');
    return;
  }
  const engine = await ctx.engine();
  if (conn.closed) return;
  const who = { user: verdict.user, device: hello.device, session: conn.session };
  conn.who = who;
  // The close handler chains engine.disconnected on this, so presence sees add before remove.
  conn.joined = engine.connected(who).then(
    () => true,
    (err: unknown) => {
      ctx.log.error({ err, ...who }, 'engine.connected failed');
      return false;
    },
  );
  const joined = await conn.joined;
  if (conn.closed) return;
  if (!joined) {
    closeSocket(ws, CloseCodes.server_error.code, 'server_error');
    return;
  }
  clearTimeout(conn.helloTimer);
  conn.stage = 'ready';
  try {
    await ctx.delivery.add(who.user, ws);
  } catch (err) {
    // Events could not be routed here (distributed mode: the engine did not list the user's groups).
    ctx.log.error({ err, ...who }, 'could not subscribe to the user\'s events');
    if (!conn.closed) closeSocket(ws, CloseCodes.server_error.code, 'server_error');
    return;
  }
  if (conn.closed) return;
  ctx.metrics.authenticatedConnections++;
  const s = ctx.settings;
  const welcome: WelcomeFrame = {
    t: 'welcome', id: hello.id, v, user: who.user, device: who.device, session: who.session,
    epoch: engine.epoch, ts: ctx.now(),
    limits: { maxFrameBytes: s.maxFrameBytes, ratePerSec: s.ratePerSec, rateBurst: s.rateBurst, maxSyncPage: s.syncPageMax, maxGroupMembers: s.maxGroupMembers },
  };
  sendFrame(ws, welcome, ctx.metrics);
}
