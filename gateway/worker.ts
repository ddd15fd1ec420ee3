// Composition root of an engine worker (distributed mode): the chat engine over the CQL store,
// the Redis presence registry and bus delivery, serving requests that gateways send over NATS.
import { connect } from '@nats-io/transport-node';
import { Redis } from 'ioredis';
import pino from 'pino';
import { randomUUID } from 'node:crypto';
import { USER_SUBJECT, conversationSubject, partitionOf, serveEngine } from '../engine/bus-engine.ts';
import { PartitionOwnership } from '../engine/partition-leases.ts';
import { NatsKvLeaseStore } from '../storage/nats/lease-store.ts';
import { BusDelivery } from '../engine/bus-delivery.ts';
import { createChatEngine } from '../engine/chat-engine.ts';
import { createReplyEncoder } from '../engine/reply-encoder.ts';
import type { Logger } from '../engine/ports.ts';
import { CqlChatStore } from '../storage/cql/chat-store.ts';
import { CqlWalletStore } from '../storage/cql/wallet-store.ts';
import { RedisStockGate } from '../storage/redis/stock-gate.ts';
import { encodeFrame } from '../protocol/codec.ts';
import { SALE_SIGNALS_SUBJECT } from './sale-front.ts';
import { RedisGrabDecider } from '../storage/redis/grab-decider.ts';
import { createCqlClient } from '../storage/cql/client.ts';
import { NatsBus } from '../storage/nats/bus.ts';
import { redisResilienceOptions } from '../storage/redis/client-options.ts';
import { RedisPresenceRegistry } from '../storage/redis/presence-registry.ts';
import { RedisRateLimiter } from '../storage/redis/rate-limiter.ts';
import { engineSettingsOf, loadSettings, type Settings } from './config.ts';
import { sweepWallet } from './wallet-sweep.ts';

export interface RunningWorker {
  settings: Settings;
  epoch: string;
  /** Partitions this worker serves right now. */
  owned(): number[];
  close(): Promise<void>;
}

export interface WorkerOptions {
  env?: Readonly<Record<string, string | undefined>>;
  argv?: readonly string[];
  log?: Logger;
}

export async function startWorker(overrides: Partial<Settings> = {}, options: WorkerOptions = {}): Promise<RunningWorker> {
  const settings = loadSettings({ env: options.env ?? process.env, argv: options.argv ?? [], overrides: { ...overrides, mode: 'worker' } });
  const log: Logger = options.log ?? pino({ name: 'lantern-worker', level: settings.logLevel });

  const nc = await connect({ servers: settings.natsUrl.split(','), maxReconnectAttempts: -1, reconnectTimeWait: 250, name: 'lantern-worker', noAsyncTraces: true });
  const bus = new NatsBus(nc, log);
  const redis = new Redis(settings.redisUrl, { ...redisResilienceOptions });
  redis.on('error', (err) => log.warn({ err }, 'redis connection error'));
  const cql = createCqlClient({ contactPoints: settings.cqlContactPoints.split(','), localDataCenter: settings.cqlLocalDc });
  try {
    await cql.connect();
    const store = await CqlChatStore.open({ client: cql, keyspace: settings.cqlKeyspace });
    const walletStore = await CqlWalletStore.open({ client: cql, keyspace: settings.cqlKeyspace });
    const { CqlSaleStore } = await import('../storage/cql/sale-store.ts');
    const saleStore = await CqlSaleStore.open({ client: cql, keyspace: settings.cqlKeyspace });
    // Partitions this worker serves: it caches (and is the single writer of) only their conversations.
    const serving = new Set<string>();
    const { partitions } = settings;
    const engine = createChatEngine({
      ownsConversation: (conv) => serving.has(conversationSubject(partitionOf(conv, partitions))),
      store,
      presence: new RedisPresenceRegistry(redis, { keyPrefix: `lantern:${settings.cqlKeyspace}:`, sessionTtlMs: settings.presenceSessionTtlMs }),
      delivery: new BusDelivery(bus),
      sendLimiter: new RedisRateLimiter(redis, {
        keyPrefix: `lantern:${settings.cqlKeyspace}:`, name: 'send', ratePerSec: settings.userSendRatePerSec, burst: settings.userSendBurst,
      }),
      // Grabs go to any worker: the Redis script decides who gets which share, the store's claim is the truth.
      wallet: { store: walletStore, decider: new RedisGrabDecider(redis, { keyPrefix: `lantern:${settings.cqlKeyspace}:` }) },
      // Attempts go to any worker: the Redis gate admits in arrival order, the store's reservation is the truth.
      sales: {
        store: saleStore,
        gate: new RedisStockGate(redis, { keyPrefix: `lantern:${settings.cqlKeyspace}:` }),
        signals: { publish: (event) => bus.publish(SALE_SIGNALS_SUBJECT, encodeFrame(event)) },
        attemptLimiter: new RedisRateLimiter(redis, {
          keyPrefix: `lantern:${settings.cqlKeyspace}:`, name: 'sale', ratePerSec: settings.saleUserAttemptsPerSec, burst: settings.saleUserAttemptBurst,
        }),
      },
      settings: engineSettingsOf(settings),
      log,
    });
    // Any worker answers user requests; each conversation partition has one owner at a time
    // (leases in NATS KV), the single writer of its sequences. The store's compare-and-set on the
    // head fences a paused former owner.
    const encoder = createReplyEncoder({ threads: settings.encodeThreads, minItems: settings.encodeOffloadItems });
    const served = serveEngine(bus, engine, [USER_SUBJECT], log, encoder);
    const ownership = new PartitionOwnership({
      leases: await NatsKvLeaseStore.open(nc, { ttlMs: settings.partitionLeaseMs }),
      bus,
      workerId: randomUUID(),
      partitions,
      serve: (subject) => {
        const served = serveEngine(bus, engine, [subject], log, encoder);
        serving.add(subject);
        return { unsubscribe: () => { serving.delete(subject); served.unsubscribe(); } };
      },
      onAcquire: (p) => engine.forget?.((conv) => partitionOf(conv, partitions) === p),
      log,
    });
    await ownership.start();
    // Every worker sweeps; the registry hands each expired user to one of them.
    let sweeping = false;
    const sweeper = setInterval(() => {
      if (sweeping) return;
      sweeping = true;
      engine.sweep!()
        .then((n) => { if (n) log.info({ users: n }, 'announced offline: sessions expired without a disconnect'); })
        .catch((err: unknown) => log.warn({ err }, 'presence sweep failed; retrying next interval'))
        .finally(() => { sweeping = false; });
    }, settings.presenceSweepMs);
    sweeper.unref();
    // Every worker sweeps expired envelopes and transfers too; each refund is one idempotent store operation.
    const stopWalletSweep = sweepWallet(engine, settings.walletSweepMs, log);
    await bus.flush();
    log.info({ nats: settings.natsUrl, keyspace: settings.cqlKeyspace, epoch: engine.epoch }, 'worker serving');
    let closing: Promise<void> | undefined;
    return {
      settings,
      epoch: engine.epoch,
      owned: () => ownership.owned(),
      close() {
        closing ??= (async () => {
          clearInterval(sweeper);
          stopWalletSweep();
          await ownership.stop();
          served.unsubscribe();
          await bus.close();
          await engine.close();
          await encoder.close();
          await cql.shutdown();
          redis.disconnect();
        })();
        return closing;
      },
    };
  } catch (err) {
    await nc.close();
    await cql.shutdown();
    redis.disconnect();
    throw err;
  }
}
