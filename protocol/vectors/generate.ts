// Writes protocol/vectors/v1.json. Run: node --import tsx protocol/vectors/generate.ts
// The output is deterministic: running it twice gives the same file.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildVectors } from './build.ts';

export const VECTORS_PATH = fileURLToPath(new URL('./v1.json', import.meta.url));

export function renderVectors(): string {
  return JSON.stringify(buildVectors(), null, 2) + '\n';
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const text = renderVectors();
  writeFileSync(VECTORS_PATH, text);
  const v = buildVectors();
  process.stdout.write(`wrote ${VECTORS_PATH}: ${v.valid.length} valid, ${v.invalid.length} invalid vectors\n`);
}
