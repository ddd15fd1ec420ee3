// Every CQL statement of the flash-sale store (CqlSaleStore), built once per keyspace and always
// executed prepared. The `sales` partition of a sale is written only by lightweight transactions
// (createSale's insert, and the conditional batches of sale-committer.ts), so no plain write ever
// shares a cell with a Paxos write there; the index tables are written only by plain statements.
export class SaleStatements {
  // ---- the sale partition: static columns ----
  /** LWT: stores the sale once; the failed insert returns the stored one. */
  readonly saleCreate: string;
  readonly saleStatic: string;
  /** One row per sale (DISTINCT reads the static columns only). */
  readonly salesScan: string;
  /** Batch parts: the counters, conditioned on the values they replace. */
  readonly takenUpdate: string;
  readonly soldUpdate: string;
  readonly countersUpdate: string;

  // ---- the sale partition: orders, buyers, listing ----
  /** Batch part: the order's commit point (the id is free). */
  readonly orderInsert: string;
  /** Batch part: the order's place in the sale's listing (createdAt, then id). */
  readonly orderListed: string;
  /** Batch parts: a transition, conditioned on the state it leaves (to paid or expired: settled at). */
  readonly orderMoveOpen: string;
  readonly orderSettle: string;
  readonly orderSelect: string;
  readonly ordersSelect: string;
  /** Batch parts: a buyer's first units, and later changes of them. */
  readonly userInsert: string;
  readonly userUpdate: string;
  readonly usersSelect: string;
  readonly listedFirst: string;
  readonly listedAfter: string;

  // ---- indexes (plain writes) ----
  readonly indexInsert: string;
  readonly indexSelect: string;
  readonly userOrderInsert: string;
  readonly userOrdersFirst: string;
  readonly userOrdersAfter: string;
  readonly userOrderDelete: string;
  readonly dueInsert: string;
  readonly dueSelect: string;
  readonly dueDelete: string;
  readonly hourInsert: string;
  readonly hoursSelect: string;
  readonly hourDelete: string;

  constructor(ks: string) {
    this.saleCreate = `INSERT INTO ${ks}.sales (sale, body, taken, sold) VALUES (?, ?, 0, 0) IF NOT EXISTS`;
    this.saleStatic = `SELECT body, taken, sold FROM ${ks}.sales WHERE sale = ? LIMIT 1`;
    this.salesScan = `SELECT DISTINCT sale, body, taken, sold FROM ${ks}.sales`;
    this.takenUpdate = `UPDATE ${ks}.sales SET taken = ? WHERE sale = ? IF taken = ?`;
    this.soldUpdate = `UPDATE ${ks}.sales SET sold = ? WHERE sale = ? IF sold = ?`;
    this.countersUpdate = `UPDATE ${ks}.sales SET taken = ?, sold = ? WHERE sale = ? IF taken = ? AND sold = ?`;

    const orderColumns = 'key, order_body, state, settled_at';
    this.orderInsert = `INSERT INTO ${ks}.sales (sale, kind, key, order_body, state) VALUES (?, 'o', ?, ?, 'reserved') IF NOT EXISTS`;
    this.orderListed = `INSERT INTO ${ks}.sales (sale, kind, key) VALUES (?, 'c', ?)`;
    this.orderMoveOpen = `UPDATE ${ks}.sales SET state = ? WHERE sale = ? AND kind = 'o' AND key = ? IF state = ?`;
    this.orderSettle = `UPDATE ${ks}.sales SET state = ?, settled_at = ? WHERE sale = ? AND kind = 'o' AND key = ? IF state = ?`;
    this.orderSelect = `SELECT ${orderColumns} FROM ${ks}.sales WHERE sale = ? AND kind = 'o' AND key = ?`;
    this.ordersSelect = `SELECT ${orderColumns} FROM ${ks}.sales WHERE sale = ? AND kind = 'o' AND key IN ?`;
    this.userInsert = `INSERT INTO ${ks}.sales (sale, kind, key, units) VALUES (?, 'u', ?, ?) IF NOT EXISTS`;
    this.userUpdate = `UPDATE ${ks}.sales SET units = ? WHERE sale = ? AND kind = 'u' AND key = ? IF units = ?`;
    this.usersSelect = `SELECT key, units FROM ${ks}.sales WHERE sale = ? AND kind = 'u' AND key IN ?`;
    this.listedFirst = `SELECT key FROM ${ks}.sales WHERE sale = ? AND kind = 'c' LIMIT ?`;
    this.listedAfter = `SELECT key FROM ${ks}.sales WHERE sale = ? AND kind = 'c' AND key > ? LIMIT ?`;

    this.indexInsert = `INSERT INTO ${ks}.sale_order_index (id, sale) VALUES (?, ?)`;
    this.indexSelect = `SELECT sale FROM ${ks}.sale_order_index WHERE id = ?`;
    const userOrderColumns = 'created_at, id, sale, WRITETIME(sale) AS wt';
    this.userOrderInsert = `INSERT INTO ${ks}.sale_user_orders (user, created_at, id, sale) VALUES (?, ?, ?, ?)`;
    // Clustered (created_at DESC, id DESC): newest first.
    this.userOrdersFirst = `SELECT ${userOrderColumns} FROM ${ks}.sale_user_orders WHERE user = ?`;
    this.userOrdersAfter = `SELECT ${userOrderColumns} FROM ${ks}.sale_user_orders WHERE user = ? AND (created_at, id) < (?, ?)`;
    this.userOrderDelete = `DELETE FROM ${ks}.sale_user_orders USING TIMESTAMP ? WHERE user = ? AND created_at = ? AND id = ?`;
    this.dueInsert = `INSERT INTO ${ks}.sale_due (hour, pay_by, id, sale) VALUES (?, ?, ?, ?)`;
    this.dueSelect = `SELECT pay_by, id, sale, WRITETIME(sale) AS wt FROM ${ks}.sale_due WHERE hour = ? AND pay_by >= ? AND pay_by <= ?`;
    this.dueDelete = `DELETE FROM ${ks}.sale_due USING TIMESTAMP ? WHERE hour = ? AND pay_by = ? AND id = ?`;
    this.hourInsert = `INSERT INTO ${ks}.sale_due_hours (scope, hour) VALUES ('orders', ?)`;
    this.hoursSelect = `SELECT hour FROM ${ks}.sale_due_hours WHERE scope = 'orders' AND hour <= ?`;
    this.hourDelete = `DELETE FROM ${ks}.sale_due_hours USING TIMESTAMP ? WHERE scope = 'orders' AND hour = ?`;
  }
}
