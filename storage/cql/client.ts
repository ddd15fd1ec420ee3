// Building a cassandra-driver Client the way the CQL chat store expects, and turning driver
// errors into the port's StoreUnavailableError. The composition root (or a test) owns the client:
// it creates it here, injects it into CqlChatStore.open(), and shuts it down itself.
import cassandra from 'cassandra-driver';
import type { Client, ClientOptions } from 'cassandra-driver';
import { StoreUnavailableError } from '../../engine/ports.ts';

const { policies, types } = cassandra;
/** Protocol v5 error code, not in driver 4's table: a Paxos write whose outcome is unknown. */
const CAS_WRITE_UNKNOWN = 0x1700;
/** Longest wait between attempts to reconnect to a node that went down. */
export const RECONNECT_MAX_DELAY_MS = 5_000;

export interface CqlClientSettings {
  /** host:port list, e.g. ['10.0.0.1:9042']. ScyllaDB: list the plain CQL port (9042); the driver finds the shard-aware port (19042) itself only in Scylla's fork of the driver, see README.md. */
  contactPoints: readonly string[];
  /** The data center this process runs in: requests go to its replicas, LOCAL_* consistency counts only them. */
  localDataCenter: string;
  /** Connect and per-request socket timeouts (ms). Default 5000 / 12000. */
  connectTimeoutMs?: number;
  readTimeoutMs?: number;
  /** Extra driver options merged last (auth, ssl, pooling). */
  extra?: Partial<ClientOptions>;
}

/**
 * A Client with token-aware routing over DC-aware round robin: each request goes straight to a
 * replica of its partition in the local DC (no coordinator hop), and never to a remote DC.
 * Every statement of the store is prepared (prepare: true), which is what lets the driver
 * compute the routing key from the bound partition key columns.
 */
export function createCqlClient(settings: CqlClientSettings): Client {
  const loadBalancing = new policies.loadBalancing.TokenAwarePolicy(
    new policies.loadBalancing.DCAwareRoundRobinPolicy(settings.localDataCenter));
  return new cassandra.Client({
    contactPoints: [...settings.contactPoints],
    localDataCenter: settings.localDataCenter,
    // The driver's default waits up to 10 minutes between attempts to reach a node it saw go down,
    // so after a long outage the store would stay unavailable for about as long again. Capped here,
    // a worker is back within a few seconds of Cassandra.
    policies: { loadBalancing, reconnection: new policies.reconnection.ExponentialReconnectionPolicy(250, RECONNECT_MAX_DELAY_MS, false) },
    queryOptions: { prepare: true, consistency: types.consistencies.localQuorum, serialConsistency: types.consistencies.localSerial },
    socketOptions: { connectTimeout: settings.connectTimeoutMs ?? 5000, readTimeout: settings.readTimeoutMs ?? 12_000 },
    ...settings.extra,
  });
}

/**
 * Driver and server failures become StoreUnavailableError (retryable: no host, timeouts,
 * overload, unavailable replicas, and also schema errors such as a missing table, which a
 * `lantern migrate` fixes). Our own errors pass through unchanged.
 */
export function toStoreError(error: unknown, what: string): Error {
  if (!isDriverError(error)) return error instanceof Error ? error : new Error(String(error));
  const code = (error as { code?: number }).code;
  // A write timeout (including an LWT's, and OperationTimedOut on a write) leaves the outcome unknown.
  const unknown = code === types.responseErrorCodes.writeTimeout || code === CAS_WRITE_UNKNOWN
    || error instanceof cassandra.errors.OperationTimedOutError;
  const detail = unknown ? ' (a write may or may not have been applied)' : '';
  return new StoreUnavailableError(`cql: ${what} failed${detail}: ${(error as Error).message}`, { cause: error });
}

/** Refuses a call on a closed store, the same way in every CQL store. */
export function assertOpen(closed: boolean, what: string): void {
  if (closed) throw new StoreUnavailableError(`cql: ${what} on a closed store`);
}

/** Runs one store call: refused when closed, driver errors become StoreUnavailableError. */
export async function guarded<T>(closed: boolean, what: string, fn: () => Promise<T>): Promise<T> {
  assertOpen(closed, what);
  try {
    return await fn();
  } catch (error) {
    throw error instanceof StoreUnavailableError ? error : toStoreError(error, what);
  }
}

function isDriverError(error: unknown): boolean {
  return error instanceof cassandra.errors.DriverError;
}
