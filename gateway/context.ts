// What the socket handlers share: frozen settings, the token verifier, the engine (once
// attached), metrics, logging and the bookkeeping graceful shutdown needs.
import type { Engine } from '../engine/api.ts';
import type { Logger } from '../engine/ports.ts';
import type { FrameLimits } from '../protocol/limits.ts';
import type { TokenVerifier } from './auth.ts';
import type { Settings } from './config.ts';
import type { Socket } from './connection.ts';
import type { SocketDelivery } from './delivery.ts';
import type { GatewayMetrics } from './metrics.ts';

export interface GatewayContext {
  readonly settings: Settings;
  readonly limits: FrameLimits;
  readonly verifier: TokenVerifier;
  readonly metrics: GatewayMetrics;
  /** Which sockets belong to which user, for local fan-out. */
  readonly delivery: SocketDelivery;
  readonly log: Logger;
  /** Resolves once the engine is attached (hellos that arrive earlier wait for it). */
  engine(): Promise<Engine>;
  /** Open sockets, for the backpressure sweep and shutdown. */
  readonly sockets: Set<Socket>;
  /** Engine calls still running; shutdown waits for them before engine.close(). */
  track(work: Promise<unknown>): void;
  now(): number;
}
