/**
 * `npm start`'s prestart step: builds the dashboard (ui/) when it exists and has a `build` script and its build
 * output (ui/dist) is missing or older than its sources; otherwise does nothing. The server serves ui/dist when present.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const UI_DIR = fileURLToPath(new URL('../ui/', import.meta.url));
export const UI_DIST = join(UI_DIR, 'dist');

/** Newest modification time under `dir` (skipping node_modules and dist), 0 when empty. */
function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name === 'node_modules' || e.name === 'dist' || e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

function main(): void {
  const pkgPath = join(UI_DIR, 'package.json');
  if (!existsSync(pkgPath)) {
    console.log('prestart: no ui/package.json — skipping the UI build (API only)');
    return;
  }
  const pkg = JSON.parse(readFileSync(pkgPath, 'utf8')) as { scripts?: Record<string, string> };
  if (!pkg.scripts?.build) {
    console.log('prestart: ui/package.json has no build script — skipping the UI build');
    return;
  }
  const built = existsSync(join(UI_DIST, 'index.html')) ? statSync(join(UI_DIST, 'index.html')).mtimeMs : 0;
  if (built > 0 && built >= newest(UI_DIR)) {
    console.log('prestart: ui/dist is up to date');
    return;
  }
  console.log('prestart: building the UI (npm --prefix ui run build)');
  const r = spawnSync('npm', ['--prefix', UI_DIR, 'run', 'build'], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
