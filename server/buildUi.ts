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

/** The dashboard's sources: ui/ itself and the figure builders it bundles from hooks/figures/. */
const UI_SOURCES = [UI_DIR, fileURLToPath(new URL('../hooks/figures/', import.meta.url))];
/** The notebooks its guides link (bundled as assets): only the .ipynb files count (running them writes elsewhere). */
const NOTEBOOKS_DIR = fileURLToPath(new URL('../notebooks/', import.meta.url));

function newestNotebook(): number {
  if (!existsSync(NOTEBOOKS_DIR)) return 0;
  return Math.max(0, ...readdirSync(NOTEBOOKS_DIR).filter((f) => f.endsWith('.ipynb')).map((f) => statSync(join(NOTEBOOKS_DIR, f)).mtimeMs));
}

/** Whether ui/dist is missing or older than any of the dashboard's sources. */
export function uiIsStale(): boolean {
  const index = join(UI_DIST, 'index.html');
  const built = existsSync(index) ? statSync(index).mtimeMs : 0;
  return built === 0 || built < Math.max(...UI_SOURCES.map(newest), newestNotebook());
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
  if (!uiIsStale()) {
    console.log('prestart: ui/dist is up to date');
    return;
  }
  console.log('prestart: building the UI (npm --prefix ui run build)');
  const r = spawnSync('npm', ['--prefix', UI_DIR, 'run', 'build'], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
