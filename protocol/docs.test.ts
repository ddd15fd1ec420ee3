// PROTOCOL.md is what SDK authors implement from: every code, limit, frame type and field the
// code knows must be documented there, with the same number, retry advice and default.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { CloseCodes, closeAdvice, ErrorCodes } from './errors.ts';
import { DEFAULT_FRAME_LIMITS } from './limits.ts';
import { FRAME_SPECS } from './schema.ts';

const doc = readFileSync(new URL('./PROTOCOL.md', import.meta.url), 'utf8');
const lines = doc.split('\n');
const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Table cells of the first row whose cells start with `first` and `second`, or undefined. */
function row(first: string, second: string): string[] | undefined {
  for (const line of lines) {
    if (!line.startsWith('|')) continue;
    const cells = line.split('|').slice(1, -1).map((c) => c.trim());
    if (cells[0] === first && cells[1] === second) return cells;
  }
  return undefined;
}

/** Lines of the section under `#### \`type\`` up to the next heading. */
function section(type: string): string[] | undefined {
  const start = lines.findIndex((l) => l === `#### \`${type}\``);
  if (start < 0) return undefined;
  const end = lines.findIndex((l, i) => i > start && l.startsWith('#'));
  return lines.slice(start + 1, end < 0 ? undefined : end);
}

const snake = (name: string): string => name.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase();

t.test('every error code is in the error table with its number and retry advice', async (t) => {
  for (const [name, info] of Object.entries(ErrorCodes)) {
    const cells = row(String(info.code), `\`${name}\``);
    if (!t.ok(cells, `row "| ${info.code} | \`${name}\` |"`)) continue;
    t.equal(cells![2], info.retry ? 'yes' : 'no', `${name} retry column`);
  }
});

t.test('every close code is in the close table with its number and advice', async (t) => {
  const words = { stop: 'stop', reconnect: 'reconnect', refresh_token: 'refresh token' } as const;
  for (const [name, info] of Object.entries(CloseCodes)) {
    const cells = row(String(info.code), `\`${name}\``);
    if (!t.ok(cells, `row "| ${info.code} | \`${name}\` |"`)) continue;
    t.equal(cells![2], words[closeAdvice(info.code)], `${name} action column`);
    t.equal(info.reconnect, closeAdvice(info.code) !== 'stop', `${name}: reconnect flag agrees with its range`);
  }
});

t.test('every structural limit is documented with its env var and default', async (t) => {
  for (const [name, value] of Object.entries(DEFAULT_FRAME_LIMITS)) {
    const cells = row(`\`${name}\``, `\`LANTERN_${snake(name)}\``);
    if (!t.ok(cells, `row for ${name}`)) continue;
    t.match(cells![2], new RegExp(`^${value}\\b`), `${name} default ${value}`);
  }
});

t.test('every client frame type has a section with a row per field and its result', async (t) => {
  for (const [type, spec] of Object.entries(FRAME_SPECS)) {
    const body = section(type);
    if (!t.ok(body, `section "#### \`${type}\`"`)) continue;
    const text = body!.join('\n');
    const fields = [...Object.entries(spec.required).map(([f]) => [f, 'yes']), ...Object.entries(spec.optional ?? {}).map(([f]) => [f, 'no'])];
    for (const [field, required] of fields) {
      const line = body!.find((l) => l.startsWith(`| \`${field}\` |`));
      if (!t.ok(line, `${type}.${field} has a row`)) continue;
      t.equal(line!.split('|')[3]!.trim(), required, `${type}.${field} required column`);
    }
    if (fields.length === 0) t.match(text, /No fields besides `id`/, `${type} says it has no fields`);
    t.match(text, /^Result/m, `${type} documents its result`);
  }
});

t.test('every server frame type has a section', async (t) => {
  for (const type of ['welcome', 'res', 'err', 'msg', 'receipt', 'typing', 'presence', 'contact', 'lag']) {
    t.ok(section(type), `section "#### \`${type}\`"`);
  }
  const welcome = section('welcome')!.join('\n');
  for (const limit of ['maxFrameBytes', 'ratePerSec', 'rateBurst', 'maxSyncPage', 'maxGroupMembers']) {
    t.match(welcome, new RegExp(`\`${esc(limit)}\``), `welcome.limits.${limit}`);
  }
});
