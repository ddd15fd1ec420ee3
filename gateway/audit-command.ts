// `lantern audit`: check the wallet ledger of a deployment (engine/wallet/audit.ts) and its flash
// sales against it (engine/sales/audit.ts), in one scan of the ledger. It reads the same settings
// as `start` and `worker`: in embedded mode the LMDB wallet at <dataDir>/wallet and sales at
// <dataDir>/sales; in worker or gateway mode the CQL keyspace the workers use (LANTERN_CQL_*).
// Exit codes: 0 no problem, 1 at least one problem, 2 the store could not be read (or bad
// arguments or settings): an audit that did not run must never look like a clean one.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { auditWalletAndSales, type SaleAuditReport } from '../engine/sales/audit.ts';
import type { SaleStore } from '../engine/sales/ports.ts';
import type { AuditReport } from '../engine/wallet/audit.ts';
import type { WalletStore } from '../engine/wallet/ports.ts';
import { ConfigError, loadSettings, type Settings } from './config.ts';

export interface AuditIo {
  out(line: string): void;
  err(line: string): void;
  env: Readonly<Record<string, string | undefined>>;
}

export const AUDIT_USAGE = 'lantern audit [--json] [--currency CUR] [--setting value ...]';

interface OpenedStores {
  wallet: WalletStore;
  sales: SaleStore;
  /** What was audited, for the output: `lmdb <path>` or `cql keyspace <ks> at <hosts>`. */
  walletSource: string;
  salesSource: string;
  close(): Promise<void>;
}

/** A reason the audit cannot run: printed, exit 2. */
class CannotAudit extends Error {
  override readonly name = 'CannotAudit';
}

export async function auditCommand(argv: readonly string[], io: AuditIo): Promise<number> {
  let opened: OpenedStores;
  let json: boolean;
  let currency: string | undefined;
  try {
    const parsed = auditFlags(argv);
    ({ json, currency } = parsed);
    const settings = loadSettings({ env: io.env, argv: parsed.settingsArgv });
    opened = await openStores(settings);
  } catch (error) {
    if (error instanceof ConfigError || error instanceof CannotAudit) {
      io.err(`lantern: audit: ${error.message}`);
      return 2;
    }
    io.err(`lantern: audit: cannot open the wallet and sale stores: ${describeError(error)}`);
    return 2;
  }

  const { walletSource, salesSource } = opened;
  let reports: { wallet: AuditReport; sales: SaleAuditReport };
  try {
    reports = await auditWalletAndSales(opened.wallet, opened.sales, currency === undefined ? {} : { currency });
  } catch (error) {
    io.err(`lantern: audit: reading ${walletSource} and ${salesSource} failed, nothing was checked to the end: ${describeError(error)}`);
    return 2;
  } finally {
    await opened.close().catch((error: unknown) => io.err(`lantern: audit: closing ${walletSource} and ${salesSource} failed: ${describeError(error)}`));
  }

  const { wallet, sales } = reports;
  const ok = wallet.ok && sales.ok;
  if (json) {
    // The wallet report's fields stay at the top (scripts read them), with `ok` and `problems` for
    // both audits; `sales` says what the sale part read.
    io.out(JSON.stringify({
      source: walletSource, ...wallet, ok, problems: [...wallet.problems, ...sales.problems],
      sales: { source: salesSource, ok: sales.ok, counts: sales.counts },
    }, null, 2));
  } else {
    for (const line of [...walletSummary(walletSource, wallet), ...salesSummary(salesSource, sales)]) io.out(line);
  }
  return ok ? 0 : 1;
}

/** Splits the audit's own flags from the settings flags (which loadSettings checks). */
function auditFlags(argv: readonly string[]): { json: boolean; currency: string | undefined; settingsArgv: string[] } {
  let json = false;
  let currency: string | undefined;
  const settingsArgv: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--json') json = true;
    else if (arg === '--currency' || arg.startsWith('--currency=')) {
      currency = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : argv[++i];
      if (currency === undefined || !/^[A-Z]{3}$/.test(currency)) throw new CannotAudit(`--currency needs a 3-letter currency code, got ${JSON.stringify(currency ?? '')} (usage: ${AUDIT_USAGE})`);
    } else settingsArgv.push(arg);
  }
  return { json, currency, settingsArgv };
}

async function openStores(settings: Settings): Promise<OpenedStores> {
  if (settings.mode === 'embedded') {
    if (settings.store === 'memory') {
      throw new CannotAudit('--store memory keeps the wallet inside the running server and loses it on exit: there is nothing to audit from outside (use the default --store lmdb, or --mode worker for CQL)');
    }
    const path = join(settings.dataDir, 'wallet');
    // Opening would create an empty store, which audits clean: a wrong --data-dir must not pass.
    if (!existsSync(path)) throw new CannotAudit(`no wallet store at ${path} (is --data-dir / LANTERN_DATA_DIR the server's?)`);
    // Loaded only here: the CQL path never loads lmdb, and this path never loads cassandra-driver.
    const { LmdbWalletStore } = await import('../storage/lmdb/wallet-store.ts');
    const wallet = await LmdbWalletStore.open({ path });
    try {
      const { sales, salesSource } = await openLmdbSales(join(settings.dataDir, 'sales'));
      return { wallet, sales, walletSource: `lmdb ${path}`, salesSource, close: async () => { await wallet.close(); await sales.close(); } };
    } catch (error) {
      await wallet.close();
      throw error;
    }
  }
  const { createCqlClient } = await import('../storage/cql/client.ts');
  const { CqlWalletStore } = await import('../storage/cql/wallet-store.ts');
  const { CqlSaleStore } = await import('../storage/cql/sale-store.ts');
  const contactPoints = settings.cqlContactPoints.split(',');
  const client = createCqlClient({ contactPoints, localDataCenter: settings.cqlLocalDc });
  const source = `cql keyspace ${settings.cqlKeyspace} at ${contactPoints.join(',')}`;
  try {
    await client.connect();
    const wallet = await CqlWalletStore.open({ client, keyspace: settings.cqlKeyspace });
    const sales = await CqlSaleStore.open({ client, keyspace: settings.cqlKeyspace });
    return {
      wallet, sales, walletSource: source, salesSource: source,
      close: async () => { await wallet.close(); await sales.close(); await client.shutdown(); },
    };
  } catch (error) {
    await client.shutdown();
    throw new CannotAudit(`cannot open ${source}: ${describeError(error)}`);
  }
}

/**
 * The embedded sale store. A data directory from before flash sales has none: that is no sales
 * (any purchase txn in the ledger is then reported), and the audit does not create one.
 */
async function openLmdbSales(path: string): Promise<{ sales: SaleStore; salesSource: string }> {
  if (!existsSync(path)) {
    const { MemorySaleStore } = await import('../storage/memory/sale-store.ts');
    return { sales: new MemorySaleStore(), salesSource: `lmdb ${path} (absent: no sales)` };
  }
  const { LmdbSaleStore } = await import('../storage/lmdb/sale-store.ts');
  return { sales: await LmdbSaleStore.open({ path }), salesSource: `lmdb ${path}` };
}

function walletSummary(source: string, report: AuditReport): string[] {
  const { txns, accounts, envelopes, transfers } = report.counts;
  const lines = [
    `wallet audit of ${source}`,
    `checked ${txns} txns, ${accounts} accounts, ${envelopes} envelopes, ${transfers} transfers`,
  ];
  for (const [currency, { toppedUp, wallets, escrow }] of Object.entries(report.totals)) {
    lines.push(`${currency} (cents): topped up ${toppedUp} = wallets ${wallets} + escrow ${escrow}${toppedUp === wallets + escrow ? '' : ' (does not add up)'}`);
  }
  return [...lines, ...verdict(report.problems)];
}

function salesSummary(source: string, report: SaleAuditReport): string[] {
  const { sales, orders, txns } = report.counts;
  return [`sale audit of ${source}`, `checked ${sales} sales, ${orders} orders, ${txns} purchase txns`, ...verdict(report.problems)];
}

function verdict(problems: readonly string[]): string[] {
  return problems.length === 0 ? ['ok: no problems'] : ['problems:', ...problems.map((p) => `  ${p}`)];
}

function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause instanceof Error ? ` (${error.cause.message})` : '';
  return `${error.message}${cause}`;
}
