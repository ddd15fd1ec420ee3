// Docs are part of the product: the settings table must match the schema.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { SETTINGS_DOC, settingsDoc } from '../docs/generate-settings.ts';

t.equal(readFileSync(SETTINGS_DOC, 'utf8'), settingsDoc(), 'docs/settings.md is current (regenerate: node --import tsx docs/generate-settings.ts)');
