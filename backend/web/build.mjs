#!/usr/bin/env node
// Builds the page into backend/web/dist/: app.js (src/ bundled by esbuild), app.css,
// index.html and icon.svg. The backend serves dist/index.html at `/` and dist/* at
// `/assets/<name>`.
//
//   node backend/web/build.mjs            production build (minified, no source maps)
//   node backend/web/build.mjs --dev      readable output with linked source maps
//   node backend/web/build.mjs --watch    rebuild on change (implies --dev)

import { copyFile, mkdir, readFile, rm, stat } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

import * as esbuild from 'esbuild';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');
const args = new Set(process.argv.slice(2));
const watch = args.has('--watch');
const dev = watch || args.has('--dev');

/** Guard the CSP: the HTML must not carry inline scripts, inline styles or foreign URLs. */
async function checkHtml(file) {
  const html = await readFile(file, 'utf8');
  const problems = [];
  if (/<script(?![^>]*\bsrc=)[^>]*>/i.test(html)) problems.push('an inline <script>');
  if (/<style[\s>]/i.test(html)) problems.push('an inline <style>');
  if (/\sstyle\s*=/i.test(html)) problems.push('a style="" attribute');
  if (/\son[a-z]+\s*=/i.test(html)) problems.push('an inline event handler');
  if (/(src|href)\s*=\s*["']?(https?:)?\/\//i.test(html)) problems.push('a URL to another origin');
  if (problems.length) {
    throw new Error(`${relative(process.cwd(), file)} breaks the CSP: ${problems.join(', ')}`);
  }
}

const assetsPlugin = {
  name: 'slt-static-assets',
  setup(build) {
    build.onEnd(async (result) => {
      if (result.errors.length) return;
      await checkHtml(join(here, 'index.html'));
      await copyFile(join(here, 'index.html'), join(dist, 'index.html'));
      await copyFile(join(here, 'icon.svg'), join(dist, 'icon.svg'));
    });
  },
};

const common = {
  absWorkingDir: here,
  outdir: dist,
  bundle: true,
  minify: !dev,
  sourcemap: dev ? 'linked' : false,
  legalComments: 'eof',
  charset: 'utf8',
  logLevel: 'warning',
};

// The script: src/main.js and what it imports (viem, mipd) as one ES module.
const jsOptions = {
  ...common,
  entryPoints: { app: join(here, 'src/main.js') },
  format: 'esm',
  platform: 'browser',
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  define: { 'process.env.NODE_ENV': dev ? '"development"' : '"production"' },
  plugins: [assetsPlugin],
};

// The style sheet (plain CSS; esbuild only bundles @imports and minifies).
const cssOptions = {
  ...common,
  entryPoints: { app: join(here, 'app.css') },
  target: ['chrome100', 'firefox100', 'safari15'],
};

await rm(dist, { recursive: true, force: true });
await mkdir(dist, { recursive: true });

if (watch) {
  const contexts = await Promise.all([esbuild.context(jsOptions), esbuild.context(cssOptions)]);
  await Promise.all(contexts.map((c) => c.watch()));
  console.log(`watching ${relative(process.cwd(), here)} -> ${relative(process.cwd(), dist)}`);
} else {
  await Promise.all([esbuild.build(jsOptions), esbuild.build(cssOptions)]);
  const sizes = [];
  for (const name of ['index.html', 'app.js', 'app.css', 'icon.svg']) {
    sizes.push(`${name} ${((await stat(join(dist, name))).size / 1024).toFixed(1)} KiB`);
  }
  console.log(`built ${relative(process.cwd(), dist) || dist}: ${sizes.join(', ')}`);
}
