// Assembles web-dist/: the page (index.html), its entry (play.js) and the library modules it
// imports (lib/*.js), plain ES modules as tsc emitted them, no bundler. play.js is compiled
// from web/play.ts, which imports '../src/index.js'; here that one specifier prefix becomes
// './lib/'. The Rust server embeds this directory and serves it at /play.
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const out = path.join(root, 'web-dist');
const lib = path.join(out, 'lib');
rmSync(out, { recursive: true, force: true });
mkdirSync(lib, { recursive: true });

copyFileSync(path.join(root, 'web/index.html'), path.join(out, 'index.html'));

const play = readFileSync(path.join(root, 'build/web/play.js'), 'utf8');
const from = /(from\s+)(['"])\.\.\/src\//g;
if (!from.test(play)) throw new Error("build/web/play.js does not import '../src/': the page layout changed");
const rewritten = play.replace(from, '$1$2./lib/');
if (/['"]\.\.\//.test(rewritten)) throw new Error('play.js still imports a path outside web-dist');
writeFileSync(path.join(out, 'play.js'), rewritten);

const files = ['index.html', 'play.js'];
for (const f of readdirSync(path.join(root, 'build/src')).sort()) {
  if (!f.endsWith('.js')) continue;
  const text = readFileSync(path.join(root, 'build/src', f), 'utf8');
  if (/['"]\.\.\//.test(text)) throw new Error(`build/src/${f} imports a path outside its directory`);
  writeFileSync(path.join(lib, f), text);
  files.push(`lib/${f}`);
}
console.log(`web-dist: ${files.join(' ')}`);
