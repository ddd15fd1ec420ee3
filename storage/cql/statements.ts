// Every CQL statement of the chat store, built once per keyspace. All are executed with
// prepare: true (the driver prepares each text once per host and caches it), which also gives
// token-aware routing its routing key. Writes of commit-derived rows take USING TIMESTAMP ?
// (see chat-store.ts); read cursors take USING TIMESTAMP = seq.
export class Statements {
  readonly metaInsert: string;
  readonly conversationSelect: string;
  readonly createInsert: string;
  readonly commitUpdate: string;
  readonly messageInsert: string;
  readonly messageRecall: string;
  readonly messagesRange: string;
  readonly clientIdInsert: string;
  readonly clientIdSelect: string;
  readonly memberInsert: string;
  readonly memberDelete: string;
  readonly memberSelect: string;
  readonly membersSelect: string;
  readonly membersIn: string;
  readonly userConvInsert: string;
  readonly userConvDelete: string;
  readonly userConvsSelect: string;
  readonly cursorUpdate: string;
  readonly cursorSelect: string;
  readonly cursorsSelect: string;
  readonly contactInsert: string;
  readonly contactDelete: string;
  readonly contactSelect: string;
  readonly contactsSelect: string;
  readonly lastSeenInsert: string;
  readonly lastSeenSelect: string;

  constructor(ks: string) {
    this.metaInsert = `INSERT INTO ${ks}.meta (key, value) VALUES (?, ?) IF NOT EXISTS`;
    this.conversationSelect = `SELECT conv, type, title, epoch, created_by, created_at, head, member_count, version, pending FROM ${ks}.conversations WHERE conv = ?`;
    this.createInsert = `INSERT INTO ${ks}.conversations (conv, type, title, epoch, created_by, created_at, head, member_count, version, pending) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) IF NOT EXISTS`;
    this.commitUpdate = `UPDATE ${ks}.conversations SET head = ?, member_count = ?, version = ?, pending = ? WHERE conv = ? IF version = ?`;
    this.messageInsert = `INSERT INTO ${ks}.messages (conv, bucket, seq, sender, dev, cid, kind, body, ts, recalled) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?`;
    this.messageRecall = `UPDATE ${ks}.messages USING TIMESTAMP ? SET body = null, recalled = true WHERE conv = ? AND bucket = ? AND seq = ?`;
    this.messagesRange = `SELECT seq, sender, dev, cid, kind, body, ts, recalled FROM ${ks}.messages WHERE conv = ? AND bucket = ? AND seq >= ? AND seq <= ?`;
    this.clientIdInsert = `INSERT INTO ${ks}.client_ids (conv, sender, cid, seq) VALUES (?, ?, ?, ?) USING TIMESTAMP ?`;
    // Clustered by seq ascending: the first commit of a client id reads first.
    this.clientIdSelect = `SELECT seq FROM ${ks}.client_ids WHERE conv = ? AND sender = ? AND cid = ? LIMIT 1`;
    this.memberInsert = `INSERT INTO ${ks}.members (conv, user, role, joined) VALUES (?, ?, ?, ?) USING TIMESTAMP ?`;
    this.memberDelete = `DELETE FROM ${ks}.members USING TIMESTAMP ? WHERE conv = ? AND user = ?`;
    this.memberSelect = `SELECT conv, user, role, joined FROM ${ks}.members WHERE conv = ? AND user = ?`;
    this.membersSelect = `SELECT conv, user, role, joined FROM ${ks}.members WHERE conv = ?`;
    this.membersIn = `SELECT user FROM ${ks}.members WHERE conv = ? AND user IN ?`;
    this.userConvInsert = `INSERT INTO ${ks}.user_conversations (user, conv, role, joined) VALUES (?, ?, ?, ?) USING TIMESTAMP ?`;
    this.userConvDelete = `DELETE FROM ${ks}.user_conversations USING TIMESTAMP ? WHERE user = ? AND conv = ?`;
    this.userConvsSelect = `SELECT conv, user, role, joined FROM ${ks}.user_conversations WHERE user = ?`;
    this.cursorUpdate = `UPDATE ${ks}.read_cursors USING TIMESTAMP ? SET seq = ? WHERE conv = ? AND user = ?`;
    this.cursorSelect = `SELECT seq FROM ${ks}.read_cursors WHERE conv = ? AND user = ?`;
    this.cursorsSelect = `SELECT user, seq FROM ${ks}.read_cursors WHERE conv = ?`;
    this.contactInsert = `INSERT INTO ${ks}.contacts (owner, other, state, ts, note) VALUES (?, ?, ?, ?, ?)`;
    this.contactDelete = `DELETE FROM ${ks}.contacts WHERE owner = ? AND other = ?`;
    this.contactSelect = `SELECT owner, other, state, ts, note FROM ${ks}.contacts WHERE owner = ? AND other = ?`;
    this.contactsSelect = `SELECT owner, other, state, ts, note FROM ${ks}.contacts WHERE owner = ?`;
    this.lastSeenInsert = `INSERT INTO ${ks}.last_seen (user, ts) VALUES (?, ?)`;
    this.lastSeenSelect = `SELECT user, ts FROM ${ks}.last_seen WHERE user = ?`;
  }
}
