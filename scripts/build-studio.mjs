// Bundles the studio (studio/, Preact + uPlot) into dist/studio/: index.html and assets/ with content
// hashes in their names (served with long caching by src/api/studio.ts). No CDN, no network: every byte
// the pages load is in the package. Prints each file's size and the first page's gzipped total.
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const out = 'dist/studio';
rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'assets'), { recursive: true });

const result = await build({
  entryPoints: { app: 'studio/main.tsx' },
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['chrome110', 'firefox110', 'safari16'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  outdir: join(out, 'assets'),
  entryNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  metafile: true,
  legalComments: 'none',
  logLevel: 'warning',
  define: { 'process.env.NODE_ENV': '"production"' },
});

const files = Object.keys(result.metafile.outputs).map((p) => basename(p));
const js = files.find((f) => f.endsWith('.js'));
const css = files.find((f) => f.endsWith('.css'));
const html =
  '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<meta name="viewport" content="width=device-width,initial-scale=1">\n' +
  '<meta name="color-scheme" content="light dark">\n<title>infergate studio</title>\n' +
  (css ? `<link rel="stylesheet" href="/studio/assets/${css}">\n` : '') +
  `<script type="module" src="/studio/assets/${js}"></script>\n</head>\n<body>\n<div id="app"></div>\n</body>\n</html>\n`;
writeFileSync(join(out, 'index.html'), html);

let total = 0;
for (const f of ['index.html', ...files.map((f) => `assets/${f}`)]) {
  const bytes = readFileSync(join(out, f));
  const gz = gzipSync(bytes, { level: 9 }).length;
  // stderr: `npm pack --json` runs this (prepack) and its stdout must stay JSON.
  total += gz;
  console.error(`studio: ${f} ${(bytes.length / 1024).toFixed(1)} kB (${(gz / 1024).toFixed(1)} kB gzipped)`);
}
console.error(`studio: first page ${(total / 1024).toFixed(1)} kB gzipped`);
