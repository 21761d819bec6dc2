// Builds the field web app into fieldapp/static/ (git-ignored): app.js (esbuild bundle of enketo-core,
// PouchDB and our sources), app.css (Enketo's formhub theme compiled with sass + our styles), index.html,
// sw.js with a cache name derived from the built bytes. Run by `make` (see Makefile); node fieldapp/build.mjs.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, copyFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as esbuild from 'esbuild';
import * as sass from 'sass';

const here = dirname(fileURLToPath(import.meta.url));
const src = join(here, 'src');
const out = join(here, 'static');
mkdirSync(out, { recursive: true });

await esbuild.build({
  entryPoints: [join(src, 'app.js')],
  bundle: true,
  minify: true,
  sourcemap: false,
  format: 'iife',
  target: 'es2020',
  outfile: join(out, 'app.js'),
  // enketo-core's replaceable modules (its package.json "browser" field names them): ours store photos in
  // PouchDB and set the app's options; the rest keep Enketo's defaults.
  alias: {
    'enketo/config': join(src, 'enketo-config.js'),
    'enketo/file-manager': join(src, 'file-manager.js'),
  },
  define: { 'process.env.NODE_ENV': '"production"', global: 'window' },
  logLevel: 'warning',
});

const nm = join(here, '..', 'node_modules');
const core = join(nm, 'enketo-core', 'src', 'sass', 'formhub', 'formhub.scss');
// enketo-core's widget styles import their dependencies by monorepo paths (/packages/enketo-core/node_modules/…).
const monorepo = {
  findFileUrl(url) {
    const m = url.match(/^\/?packages\/enketo-core\/node_modules\/(.*)$/) || url.match(/^\/?node_modules\/(.*)$/);
    return m ? pathToFileURL(join(nm, m[1])) : null;
  },
};
const enketoCss = sass.compile(core, {
  style: 'compressed', quietDeps: true, importers: [monorepo], loadPaths: [nm],
  silenceDeprecations: ['import', 'mixed-decls', 'slash-div'], logger: sass.Logger.silent,
}).css;
writeFileSync(join(out, 'app.css'), enketoCss + '\n' + readFileSync(join(src, 'app.css'), 'utf8'));

const shell = ['index.html', 'app.js', 'app.css'];
copyFileSync(join(src, 'index.html'), join(out, 'index.html'));
const h = createHash('sha256');
for (const f of shell) h.update(readFileSync(join(out, f)));
h.update(readFileSync(join(src, 'sw.js')));
const version = h.digest('hex').slice(0, 12);
writeFileSync(join(out, 'sw.js'), readFileSync(join(src, 'sw.js'), 'utf8').replace('__BUILD__', version));
writeFileSync(join(out, 'build.json'), JSON.stringify({ version, files: readdirSync(out).sort() }) + '\n');
console.log(`fieldapp: built ${version} into ${out}`);
