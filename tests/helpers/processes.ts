/** Test (and bench) helpers for dataset experiments: the `lensboard` bin as a child process, a real redis-server on a free loopback port. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = join(ROOT, 'cli', 'bin.mjs');

/** A child process whose output is collected, with waits on what it prints. */
export class Proc {
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;

  constructor(readonly child: ChildProcess) {
    child.stdout?.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(signal ? null : code)));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Resolves once stdout + stderr match `pattern` (checked from `from` characters on), or rejects after `ms`. */
  async waitFor(pattern: RegExp, ms = 60_000, from = 0): Promise<void> {
    const t0 = Date.now();
    while (!pattern.test((this.stdout + this.stderr).slice(from))) {
      if (!this.running) throw new Error(`process exited (${this.child.exitCode}) before printing ${pattern}:\n${this.stdout}\n${this.stderr}`);
      if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${pattern}:\n${this.stdout}\n${this.stderr}`);
      await sleep(50);
    }
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.running) this.child.kill(signal);
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `node cli/bin.mjs …args` (the `lensboard` bin). */
export function lens(args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  return new Proc(spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...process.env, NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] }));
}

/** Runs the bin to the end. */
export async function lensRun(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = lens(args, env);
  const code = await p.exited;
  return { code, stdout: p.stdout, stderr: p.stderr };
}

/** A free TCP port on 127.0.0.1 (redis-server has no --port 0). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** Debian's redis-server on 127.0.0.1:`port`, no persistence, its files in `dir`; with `password`, requiring it. */
export async function startRedis(port: number, dir: string, password?: string): Promise<Proc> {
  await mkdir(dir, { recursive: true });
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...(password ? ['--requirepass', password] : [])];
  const p = new Proc(spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] }));
  await p.waitFor(/Ready to accept connections/, 20_000);
  return p;
}
