// Builds the UI into dist/ (committed and embedded in the kiem binary by ui/embed.go), or with --check builds
// into a temporary directory and fails when dist/ differs, so `make test` proves the committed assets are what
// the sources make. The build is deterministic: same sources and same locked packages, same bytes.
import * as esbuild from 'esbuild';
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, copyFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const check = process.argv.includes('--check');
const out = check ? mkdtempSync(join(tmpdir(), 'kiem-ui-')) : join(here, 'dist');

// The GraphQL schema goes into GraphiQL's bundle so its docs and completion work with introspection off
// (kiem's default).
const schemaDir = join(here, '..', 'gql', 'schema');
const schemaSDL = readdirSync(schemaDir).filter((f) => f.endsWith('.graphqls')).sort()
  .map((f) => readFileSync(join(schemaDir, f), 'utf8')).join('\n');
const schemaPlugin = {
  name: 'kiem-schema',
  setup(build) {
    build.onResolve({ filter: /^kiem:schema$/ }, () => ({ path: 'schema', namespace: 'kiem-schema' }));
    build.onLoad({ filter: /.*/, namespace: 'kiem-schema' }, () => ({ contents: `export default ${JSON.stringify(schemaSDL)};`, loader: 'js' }));
  },
};

const common = {
  bundle: true, minify: true, sourcemap: false, legalComments: 'eof', target: ['chrome110', 'firefox110', 'safari16'],
  logLevel: 'warning', charset: 'utf8', define: { 'process.env.NODE_ENV': '"production"' },
};

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'assets'), { recursive: true });
await Promise.all([
  esbuild.build({ ...common, entryPoints: { app: 'src/main.tsx' }, outdir: join(out, 'assets'), format: 'esm',
    jsx: 'automatic', jsxImportSource: 'preact' }),
  esbuild.build({ ...common, entryPoints: { 'layout-worker': 'src/graph/layout-worker.ts' }, outdir: join(out, 'assets'), format: 'iife' }),
  esbuild.build({ ...common, entryPoints: { graphiql: 'src/graphiql/main.tsx' }, outdir: join(out, 'assets'), format: 'esm',
    jsx: 'automatic', jsxImportSource: 'react', plugins: [schemaPlugin], loader: { '.woff': 'file', '.woff2': 'file', '.svg': 'file' } }),
]);
for (const f of ['index.html', 'graphiql.html', 'favicon.svg']) copyFileSync(join(here, 'src', f), join(out, f));

if (check) {
  const list = (d) => readdirSync(d, { recursive: true }).filter((f) => statSync(join(d, f)).isFile()).sort();
  const want = list(out), have = list(join(here, 'dist'));
  const differ = [...new Set([...want, ...have])].filter((f) => {
    try { return !readFileSync(join(out, f)).equals(readFileSync(join(here, 'dist', f))); } catch { return true; }
  });
  rmSync(out, { recursive: true, force: true });
  if (differ.length) {
    console.error(`ui: dist/ is not what the sources build (${differ.join(', ')}); run 'make ui' and commit ui/dist`);
    process.exit(1);
  }
  console.log('ui: dist/ matches the sources');
} else {
  console.log(`ui: built ${relative(process.cwd(), out)}`);
}
