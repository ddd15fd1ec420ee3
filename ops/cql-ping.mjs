// Readiness probe for Cassandra: runs a real CQL query (SELECT release_version FROM
// system.local) and prints the server version. Exit 0 = ready, 1 = not (reason on stderr).
// Uses the `cassandra-driver` package when the project has it installed; otherwise speaks
// just enough of the native protocol (v4: STARTUP, QUERY, one text column) itself, so a
// fresh CI machine needs no extra package (LANTERN_CQL_PING_RAW=1 forces that path).
//   node ops/cql-ping.mjs [host=127.0.0.1] [port=9042] [timeoutMs=3000]
import { createRequire } from 'node:module';
import net from 'node:net';

const [host = '127.0.0.1', portArg = '9042', timeoutArg = '3000'] = process.argv.slice(2);
const port = Number(portArg);
const timeoutMs = Number(timeoutArg);
const QUERY = 'SELECT release_version FROM system.local';

async function withDriver(cassandra) {
  const client = new cassandra.Client({
    contactPoints: [`${host}:${port}`],
    localDataCenter: 'datacenter1',
    socketOptions: { connectTimeout: timeoutMs, readTimeout: timeoutMs },
  });
  try {
    const rs = await client.execute(QUERY);
    return rs.first().release_version;
  } finally {
    await client.shutdown();
  }
}

// --- minimal native protocol v4 client -------------------------------------------------
const OP = { ERROR: 0x00, STARTUP: 0x01, READY: 0x02, AUTHENTICATE: 0x03, QUERY: 0x07, RESULT: 0x08 };

function frame(stream, opcode, body) {
  const header = Buffer.alloc(9);
  header.writeUInt8(0x04, 0); // request, protocol v4
  header.writeUInt8(0, 1); // no flags
  header.writeInt16BE(stream, 2);
  header.writeUInt8(opcode, 4);
  header.writeInt32BE(body.length, 5);
  return Buffer.concat([header, body]);
}

const shortString = (s) => {
  const b = Buffer.from(s, 'utf8');
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.length);
  return Buffer.concat([len, b]);
};

function startupBody() {
  const count = Buffer.alloc(2);
  count.writeUInt16BE(1);
  return Buffer.concat([count, shortString('CQL_VERSION'), shortString('3.0.0')]);
}

function queryBody(cql) {
  const q = Buffer.from(cql, 'utf8');
  const len = Buffer.alloc(4);
  len.writeInt32BE(q.length);
  const tail = Buffer.from([0x00, 0x01, 0x00]); // consistency ONE, no query flags
  return Buffer.concat([len, q, tail]);
}

class Reader {
  constructor(buf) { this.buf = buf; this.pos = 0; }
  int() { const v = this.buf.readInt32BE(this.pos); this.pos += 4; return v; }
  short() { const v = this.buf.readUInt16BE(this.pos); this.pos += 2; return v; }
  string() { const n = this.short(); const s = this.buf.toString('utf8', this.pos, this.pos + n); this.pos += n; return s; }
  bytes() { const n = this.int(); if (n < 0) return null; const b = this.buf.subarray(this.pos, this.pos + n); this.pos += n; return b; }
}

// Reads the first text cell of a ROWS result (the query selects exactly one text column).
function firstCell(body) {
  const r = new Reader(body);
  const kind = r.int();
  if (kind !== 2) throw new Error(`expected ROWS result, got kind ${kind}`);
  const flags = r.int();
  const columns = r.int();
  if (flags & 0x0002) r.bytes(); // paging state
  if (!(flags & 0x0004)) { // metadata present
    const globalSpec = flags & 0x0001;
    if (globalSpec) { r.string(); r.string(); }
    for (let i = 0; i < columns; i++) {
      if (!globalSpec) { r.string(); r.string(); }
      r.string(); // column name
      const type = r.short();
      if (type === 0x0000) r.string(); // custom type carries a class name
    }
  }
  const rows = r.int();
  if (rows < 1) throw new Error('system.local returned no rows');
  const cell = r.bytes();
  return cell === null ? null : cell.toString('utf8');
}

function errorMessage(body) {
  const r = new Reader(body);
  const code = r.int();
  return `server error 0x${code.toString(16)}: ${r.string()}`;
}

function withRawProtocol() {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    let pending = Buffer.alloc(0);
    const fail = (err) => { socket.destroy(); reject(err); };
    socket.setTimeout(timeoutMs, () => fail(new Error(`no answer within ${timeoutMs} ms`)));
    socket.on('error', fail);
    socket.on('connect', () => socket.write(frame(0, OP.STARTUP, startupBody())));
    socket.on('data', (chunk) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 9) {
        const length = pending.readInt32BE(5);
        if (pending.length < 9 + length) return;
        const opcode = pending.readUInt8(4);
        const body = pending.subarray(9, 9 + length);
        pending = pending.subarray(9 + length);
        try {
          if (opcode === OP.ERROR) return fail(new Error(errorMessage(body)));
          if (opcode === OP.AUTHENTICATE) return fail(new Error('server requires authentication'));
          if (opcode === OP.READY) { socket.write(frame(1, OP.QUERY, queryBody(QUERY))); continue; }
          if (opcode === OP.RESULT) { socket.end(); return resolve(firstCell(body)); }
          return fail(new Error(`unexpected opcode 0x${opcode.toString(16)}`));
        } catch (err) {
          return fail(err);
        }
      }
    });
  });
}

function loadDriver() {
  if (process.env.LANTERN_CQL_PING_RAW === '1') return null; // exercise the built-in client
  // Resolve from the project root (ops/..), where npm would have installed it.
  const require = createRequire(new URL('../package.json', import.meta.url));
  try {
    return require('cassandra-driver');
  } catch (err) {
    if (err.code === 'MODULE_NOT_FOUND') return null;
    throw err;
  }
}

try {
  const driver = loadDriver();
  const version = driver ? await withDriver(driver) : await withRawProtocol();
  console.log(`cql ok: ${host}:${port} Cassandra ${version}${driver ? ' (cassandra-driver)' : ''}`);
} catch (err) {
  console.error(`cql not ready: ${host}:${port}: ${err.message}`);
  process.exit(1);
}
