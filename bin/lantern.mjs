#!/usr/bin/env node
// Entry point of the `lantern` command: load TypeScript through tsx, then run the CLI.
import { register } from 'tsx/esm/api';

register();
const { runCli } = await import('../gateway/cli.ts');
const code = await runCli(process.argv.slice(2));
// Exit explicitly: after `start` has shut down gracefully nothing left should keep us alive.
process.exit(code);
