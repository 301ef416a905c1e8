/**
 * `npm run dev`: the API server (tsx server/index.ts, port 7860 unless --port/LENSBOARD_PORT says otherwise) and Vite's dev server
 * for ui/ (http://127.0.0.1:5173, /api proxied to the API), with hot reload. Extra arguments go to the API server
 * (`npm run dev -- --model gpt2`). Ctrl-C stops both.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const portIdx = args.indexOf('--port');
const port = portIdx >= 0 ? args[portIdx + 1] : (process.env.LENSBOARD_PORT ?? '7860');
const bin = (name: string) => fileURLToPath(new URL(`../node_modules/.bin/${name}`, import.meta.url));

const children: ChildProcess[] = [
  spawn(bin('tsx'), ['server/index.ts', ...args], { cwd: root, stdio: 'inherit' }),
  spawn(bin('vite'), ['--config', 'ui/vite.config.ts'], { cwd: root, stdio: 'inherit', env: { ...process.env, LENSBOARD_API: `http://127.0.0.1:${port}` } }),
];
let stopping = false;
function stop(code: number): void {
  if (stopping) return;
  stopping = true;
  for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  process.exitCode = code;
}
for (const c of children) c.on('exit', (code) => stop(code ?? 0));
process.on('SIGINT', () => stop(0));
process.on('SIGTERM', () => stop(0));
