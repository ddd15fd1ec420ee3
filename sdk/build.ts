// Bundles the SDK with esbuild:
//   dist/lantern-sdk.js       ESM for browsers (platform neutral, minified, no imports left)
//   dist/lantern-sdk.node.js  ESM for Node 20+ (same code resolved for node, also standalone)
// Both inline protocol/ and any package it uses (the msgpack codec), so each file stands alone.
// Run: `node --import tsx sdk/build.ts [outDir]` (npm run build:sdk).
import { build, type BuildOptions, type Metafile } from 'esbuild';
import { builtinModules } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));

export interface BuildResult {
  browser: string;
  node: string;
}

/** Node built-ins a browser bundle must not reach (plain and node: forms). */
export const NODE_BUILTINS: readonly string[] = builtinModules.filter((m) => !m.startsWith('_'));

export async function buildSdk(outDir: string = path.join(here, 'dist')): Promise<BuildResult> {
  const common: BuildOptions = {
    entryPoints: [path.join(here, 'index.ts')],
    bundle: true,
    format: 'esm',
    target: 'es2022',
    sourcemap: true,
    minify: true,
    legalComments: 'eof',
    metafile: true,
    logLevel: 'warning',
  };
  const browser = path.join(outDir, 'lantern-sdk.js');
  const node = path.join(outDir, 'lantern-sdk.node.js');
  const browserResult = await build({
    ...common,
    outfile: browser,
    platform: 'neutral',
    // Packages with a "browser" entry (e.g. msgpackr) resolve to their code without node imports.
    mainFields: ['browser', 'module', 'main'],
    conditions: ['browser', 'import', 'default'],
  });
  assertNoNodeBuiltins(browserResult.metafile);
  await build({ ...common, outfile: node, platform: 'node' });
  return { browser, node };
}

/** Fail the build if anything in the browser bundle imports a node built-in. */
function assertNoNodeBuiltins(meta: Metafile | undefined): void {
  if (meta === undefined) throw new Error('esbuild returned no metafile');
  const builtins = new Set(NODE_BUILTINS);
  for (const [file, input] of Object.entries(meta.inputs)) {
    for (const imp of input.imports) {
      const bare = imp.path.replace(/^node:/, '');
      if (imp.path.startsWith('node:') || builtins.has(bare)) {
        throw new Error(`browser bundle: ${file} imports node built-in "${imp.path}"`);
      }
    }
  }
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = await buildSdk(process.argv[2] === undefined ? undefined : path.resolve(process.argv[2]));
  console.log(`built ${path.relative(process.cwd(), out.browser)} and ${path.relative(process.cwd(), out.node)}`);
}
