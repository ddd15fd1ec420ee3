// The composition root: reads settings, picks and builds the adapters (store, presence,
// delivery, logger), creates the engine and the gateway, and wires them together. Nothing
// else in the codebase chooses an adapter or reads the environment.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import pino from 'pino';
import type { Engine } from '../engine/api.ts';
import { createChatEngine, type ChatEngineDeps } from '../engine/chat-engine.ts';
import type { ChatStore, Logger } from '../engine/ports.ts';
import type { WalletStore } from '../engine/wallet/ports.ts';
import type { SaleStore } from '../engine/sales/ports.ts';
import { MemorySaleStore } from '../storage/memory/sale-store.ts';
import { MemoryStockGate } from '../storage/memory/stock-gate.ts';
import { MemoryGrabDecider } from '../storage/memory/grab-decider.ts';
import { MemoryWalletStore } from '../storage/memory/wallet-store.ts';
import { MemoryChatStore } from '../storage/memory/chat-store.ts';
import { MemoryPresenceRegistry } from '../storage/memory/presence-registry.ts';
import { MemoryRateLimiter } from '../storage/memory/rate-limiter.ts';
import { createTokenVerifier, loadOrCreateDevSecret, warnDevAuth } from './auth.ts';
import { engineSettingsOf, loadSettings, type Settings } from './config.ts';
import { SALE_SIGNALS_SUBJECT, SaleBoard, withSaleFront } from './sale-front.ts';
import type { SaleEvent } from '../protocol/frames.ts';
import { createGateway } from './server.ts';
import { sweepWallet } from './wallet-sweep.ts';

export interface RunningLantern {
  port: number;
  host: string;
  /** WebSocket URL clients connect to. */
  url: string;
  /** The store epoch (welcome.epoch). */
  epoch: string;
  /** Set when dev auth is in use (no jwtSecret/jwtPublicKey): the HS256 secret tokens must be signed with. */
  devSecret?: string;
  settings: Settings;
  close(): Promise<void>;
}

export interface StartOptions {
  /** Environment to read LANTERN_* settings from (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  /** CLI flags (--kebab-case). */
  argv?: readonly string[];
  /** Logger to use instead of a pino logger at settings.logLevel. */
  log?: Logger;
  /** Engine factory (default createChatEngine); tests substitute a fake. */
  createEngine?: (deps: ChatEngineDeps) => Engine;
}

export async function startLantern(overrides: Partial<Settings> = {}, options: StartOptions = {}): Promise<RunningLantern> {
  const settings = loadSettings({ env: options.env ?? process.env, argv: options.argv ?? [], overrides });
  const log: Logger = options.log ?? pino({ name: 'lantern', level: settings.logLevel });

  let devSecret: string | undefined;
  if (!settings.jwtSecret && !settings.jwtPublicKey) {
    const dev = await loadOrCreateDevSecret(settings.dataDir);
    devSecret = dev.secret;
    warnDevAuth(log, dev.path, settings.dataDir);
  }
  const verifier = createTokenVerifier({
    secret: settings.jwtSecret ?? devSecret,
    publicKey: settings.jwtPublicKey,
    audience: settings.jwtAudience,
    clockToleranceSec: settings.jwtClockToleranceSec,
  });

  if (settings.mode === 'worker') throw new Error('mode "worker" is started with startWorker (lantern worker), not startLantern');
  const gateway = createGateway({ settings, verifier, log });
  // Listen before storage opens: /healthz answers and /readyz says 503 while starting.
  const port = await gateway.listen();
  let store: ChatStore | undefined;
  let walletStore: WalletStore | undefined;
  let saleStore: SaleStore | undefined;
  let engine: Engine;
  // What this gateway knows of each sale's state, to answer attempts that cannot win without a worker.
  const board = new SaleBoard();
  try {
    if (settings.mode === 'gateway') {
      engine = await remoteEngine(settings, gateway, board, log);
    } else {
      store = await openStore(settings);
      walletStore = await openWalletStore(settings);
      saleStore = await openSaleStore(settings);
      engine = (options.createEngine ?? createChatEngine)({
        store,
        // In one process the decider is a map in memory; it is rebuilt from the store's claims after a restart.
        wallet: { store: walletStore, decider: new MemoryGrabDecider() },
        // The gate is a map in memory too, rebuilt from the store's orders after a restart.
        sales: {
          store: saleStore, gate: new MemoryStockGate(), signals: board,
          attemptLimiter: new MemoryRateLimiter({ ratePerSec: settings.saleUserAttemptsPerSec, burst: settings.saleUserAttemptBurst }),
        },
        presence: new MemoryPresenceRegistry(),
        delivery: gateway.delivery,
        sendLimiter: new MemoryRateLimiter({ ratePerSec: settings.userSendRatePerSec, burst: settings.userSendBurst }),
        settings: engineSettingsOf(settings),
        log,
      });
    }
  } catch (err) {
    await gateway.close();
    if (store) await store.close();
    if (walletStore) await walletStore.close();
    if (saleStore) await saleStore.close();
    throw err;
  }
  gateway.attachEngine(withSaleFront(engine, board, {
    maxInflight: settings.saleMaxInflight, tryLaterMs: settings.saleTryLaterMs, counters: gateway.metrics.saleAttempts,
  }));
  const stopSweeping = settings.mode === 'embedded' ? sweepWallet(engine, settings.walletSweepMs, log) : () => {};

  const host = settings.host;
  const url = `ws://${urlHost(host)}:${port}/ws`;
  log.info({ host, port, url, store: settings.store, dataDir: settings.dataDir, epoch: engine.epoch, auth: verifier.algorithms }, 'listening');

  let closing: Promise<void> | undefined;
  const running: RunningLantern = {
    port, host, url, epoch: engine.epoch, settings,
    close() {
      closing ??= (async () => {
        // Drains sockets, then engine.close(), which closes the stores it was given.
        stopSweeping();
        await gateway.close();
        log.info({ port }, 'closed');
      })();
      return closing;
    },
  };
  if (devSecret !== undefined) running.devSecret = devSecret;
  return running;
}

/** Gateway mode: the engine lives in workers across NATS; events for local users are relayed from it. */
async function remoteEngine(settings: Settings, gateway: ReturnType<typeof createGateway>, board: SaleBoard, log: Logger): Promise<Engine> {
  const { connect } = await import('@nats-io/transport-node');
  const { NatsBus } = await import('../storage/nats/bus.ts');
  const { BusEngine } = await import('../engine/bus-engine.ts');
  const { BusRelay } = await import('./bus-relay.ts');
  // noAsyncTraces: otherwise every request captures a stack trace for an error it rarely raises
  // (12-19% of a gateway's CPU in the red-envelope benchmark); BusEngine replaces those errors anyway.
  const nc = await connect({ servers: settings.natsUrl.split(','), maxReconnectAttempts: -1, reconnectTimeWait: 250, name: 'lantern-gateway', noAsyncTraces: true });
  const bus = new NatsBus(nc, log);
  const engine = await BusEngine.connect(bus, { partitions: settings.partitions, requestTimeoutMs: settings.engineTimeoutMs });
  const relay = new BusRelay(bus, gateway.delivery, (user) => engine.groups(user), log);
  // Every gateway hears every sale's state (sold out, reopened): the storm stops here.
  const { decodeFrame } = await import('../protocol/codec.ts');
  const saleSignals = bus.subscribe(SALE_SIGNALS_SUBJECT, (data) => {
    try {
      const event = decodeFrame(data) as unknown as SaleEvent;
      if (event.t === 'sale' && typeof event.sale === 'string') board.publish(event);
    } catch (err) {
      log.warn({ err }, 'unreadable sale signal ignored');
    }
  });
  gateway.delivery.setInterest(relay);
  // Notices published while we were disconnected are lost: the relay re-reads membership.
  void (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') relay.connectionLost();
      else if (status.type === 'reconnect') relay.connectionRestored();
    }
  })().catch((err: unknown) => log.error({ err }, 'bus status watch failed'));
  // The gateway owns the bus: closing the engine (last step of gateway.close) drains it.
  return {
    epoch: engine.epoch,
    request: (who, type, params) => engine.request(who, type, params),
    connected: (who) => engine.connected(who),
    disconnected: (who) => engine.disconnected(who),
    refresh: (sessions) => engine.refresh(sessions),
    admin: (type, params) => engine.admin(type, params),
    async close() { saleSignals.unsubscribe(); relay.close(); await bus.close(); },
  };
}

async function openStore(settings: Settings): Promise<ChatStore> {
  if (settings.store === 'memory') return new MemoryChatStore();
  await mkdir(settings.dataDir, { recursive: true });
  // Loaded only when chosen, so a memory-store process never loads the native LMDB binding.
  const { LmdbChatStore } = await import('../storage/lmdb/chat-store.ts');
  return LmdbChatStore.open({ path: join(settings.dataDir, 'lmdb') });
}

async function openWalletStore(settings: Settings): Promise<WalletStore> {
  if (settings.store === 'memory') return new MemoryWalletStore();
  const { LmdbWalletStore } = await import('../storage/lmdb/wallet-store.ts');
  return LmdbWalletStore.open({ path: join(settings.dataDir, 'wallet') });
}

async function openSaleStore(settings: Settings): Promise<SaleStore> {
  if (settings.store === 'memory') return new MemorySaleStore();
  const { LmdbSaleStore } = await import('../storage/lmdb/sale-store.ts');
  return LmdbSaleStore.open({ path: join(settings.dataDir, 'sales') });
}

function urlHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}
