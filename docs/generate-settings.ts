// Writes docs/settings.md from the settings schema (gateway/config.ts): `node --import tsx docs/generate-settings.ts`.
import { writeFileSync } from 'node:fs';
import { renderSettingsMarkdown } from '../gateway/config.ts';

export const SETTINGS_DOC = new URL('./settings.md', import.meta.url);

export function settingsDoc(): string {
  return `# Settings

Every setting has a default, an environment variable and a command-line flag. Precedence:
defaults < environment < flags < programmatic overrides (\`startLantern({...})\`). Values are
validated once at start; an invalid one stops the server with a message naming it.
This file is generated from \`gateway/config.ts\` by \`node --import tsx docs/generate-settings.ts\`;
a test fails when it is out of date.

${renderSettingsMarkdown()}`;
}

if (import.meta.url === `file://${process.argv[1]}`) writeFileSync(SETTINGS_DOC, settingsDoc());
