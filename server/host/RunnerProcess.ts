/**
 * One runner process (server/runner/main.ts) seen from the server: fork it, load the model in it, exchange messages,
 * and stop it — politely (`exit`, then SIGKILL after a moment) or at once (SIGKILL, always safe: nothing of the server
 * runs in that process). It knows nothing of jobs; ModelRunner builds the queue, cancellation and restarts on it.
 */
import { fork, type ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';
import type { ProgressEvent } from '../../hooks/loading/progress.ts';
import type { Limits } from '../../services/limits.ts';
import { CancelledError, HttpError } from '../errors.ts';
import type { FromRunner, LoadOptions, ModelInfo, ModelSource, ToRunner } from './protocol.ts';

const RUNNER_BOOT = new URL('../runner/boot.mjs', import.meta.url);

/**
 * glibc malloc settings for the runner: large blocks (≥ 128 KiB: activations, logits, caches) always come from mmap and
 * go back to the system when freed, instead of growing heaps that glibc keeps (its mmap threshold otherwise rises to
 * 32 MiB after the first large free). Measured on the 132 KB IOI request: see the README's "Memory" section.
 */
const MALLOC_ENV = { MALLOC_MMAP_THRESHOLD_: '131072', MALLOC_TRIM_THRESHOLD_: '131072', MALLOC_ARENA_MAX: '2' };

/** How long a runner asked to exit may take before it is killed. */
const EXIT_GRACE_MS = 1000;

export interface RunnerSpec {
  source: ModelSource;
  options: LoadOptions;
  limits: Limits;
}

/** Why a runner process ended, for logs and GET /api/health. */
export function exitReason(code: number | null, signal: NodeJS.Signals | null, lastStderr: string): string {
  const what = signal
    ? `killed by ${signal}${signal === 'SIGKILL' ? ' (by the out-of-memory killer or another process)' : signal === 'SIGABRT' ? ' (it crashed)' : ''}`
    : `exited with code ${code}`;
  return lastStderr ? `${what}: ${lastStderr}` : what;
}

export class RunnerProcess {
  /** Set when the server itself stops or kills the runner: its exit is then no crash. */
  private expected: string | null = null;
  private exited = false;
  private readonly exitListeners: ((reason: string, expected: boolean) => void)[] = [];
  /** The runner's last lines on stderr (a crash's message: "terminate called after …"). */
  private stderrTail: string[] = [];

  private constructor(
    private readonly child: ChildProcess,
    readonly info: ModelInfo,
    /** RSS right after loading (bytes): the baseline that recycling compares against. */
    readonly loadedRss: number,
  ) {
    // 'close' (not 'exit'): by then the runner's last stderr lines (a crash's message) have been read.
    child.on('close', (code, signal) => {
      this.exited = true;
      const reason = this.expected ?? exitReason(code, signal, this.lastStderrLine());
      for (const l of this.exitListeners) l(reason, this.expected !== null);
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  get alive(): boolean {
    return !this.exited;
  }

  /** Forks a runner and loads the model in it; `signal` aborts the load (the runner is killed). */
  static start(spec: RunnerSpec, log: Logger, onProgress: (e: ProgressEvent) => void = () => {}, signal?: AbortSignal): Promise<RunnerProcess> {
    return new Promise((resolve, reject) => {
      const child = fork(RUNNER_BOOT, [], {
        serialization: 'advanced',
        execArgv: ['--expose-gc'],
        env: { ...process.env, ...MALLOC_ENV },
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      });
      // A failed spawn, send or kill is an 'error' event, which would throw (and take the server down) without a
      // listener: this one stays for the process's whole life; what matters shows up as its exit.
      child.on('error', (e) => log.warn({ runner: child.pid, err: e.message }, 'model runner process error'));
      child.stdout?.on('error', () => {});
      child.stderr?.on('error', () => {});
      const tail: string[] = [];
      pipeLines(child, log, tail);
      let settled = false;
      const finish = (err: Error | null, runner?: RunnerProcess) => {
        if (settled) return;
        settled = true;
        child.off('message', onMessage);
        child.off('close', onExit);
        child.off('error', onError);
        signal?.removeEventListener('abort', onAbort);
        if (err) {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
          reject(err);
        } else resolve(runner!);
      };
      const onMessage = (m: FromRunner) => {
        if (m.type === 'loadProgress') onProgress(m.event);
        else if (m.type === 'loaded') {
          const runner = new RunnerProcess(child, m.info, m.rss);
          runner.stderrTail = tail;
          finish(null, runner);
        } else if (m.type === 'loadError') finish(new HttpError(m.error.status, m.error.message));
      };
      const onExit = (code: number | null, sig: NodeJS.Signals | null) =>
        finish(new Error(`the model runner ${exitReason(code, sig, tail.at(-1) ?? '')} while loading ${spec.source.name}`));
      const onError = (e: Error) => finish(new Error(`could not start a model runner for ${spec.source.name}: ${e.message}`));
      const onAbort = () => finish(new CancelledError(`load:${spec.source.name}`));
      child.on('message', onMessage);
      child.once('close', onExit);
      child.once('error', onError);
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort);
      child.send({ type: 'load', source: spec.source, options: spec.options, limits: spec.limits } satisfies ToRunner);
    });
  }

  onMessage(listener: (m: FromRunner) => void): void {
    this.child.on('message', listener);
  }

  /** Called once when the process has ended: why, and whether the server ended it. */
  onExit(listener: (reason: string, expected: boolean) => void): void {
    this.exitListeners.push(listener);
  }

  /** Sends a message; false when the runner is gone (its exit listeners then run, or have run). */
  send(m: ToRunner): boolean {
    if (this.exited || !this.child.connected) return false;
    try {
      this.child.send(m, (err) => void err); // a failure (the channel closed meanwhile) shows as the exit
      return true;
    } catch {
      return false;
    }
  }

  /** SIGKILL now; `reason` is what its exit reports. Safe whatever the runner is doing. */
  kill(reason: string): void {
    this.expected ??= reason;
    if (!this.exited) this.child.kill('SIGKILL');
  }

  /** Asks the runner to exit; kills it if it has not within a second. Resolves once it is gone. */
  stop(reason = 'stopped by the server'): Promise<void> {
    this.expected ??= reason;
    if (this.exited) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.child.kill('SIGKILL'), EXIT_GRACE_MS);
      this.child.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      if (!this.send({ type: 'exit' })) this.child.kill('SIGKILL');
    });
  }

  private lastStderrLine(): string {
    return this.stderrTail.at(-1) ?? '';
  }
}

/** Forwards the runner's stdout/stderr to the log, line by line, keeping the last few stderr lines in `tail`. */
function pipeLines(child: ChildProcess, log: Logger, tail: string[]): void {
  const pid = child.pid;
  for (const [stream, level] of [[child.stdout, 'info'], [child.stderr, 'warn']] as const) {
    let buffered = '';
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => {
      buffered += chunk;
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines.filter((l) => l.trim())) {
        log[level]({ runner: pid }, line.length > 2000 ? `${line.slice(0, 2000)}…` : line);
        if (stream === child.stderr) {
          tail.push(line.slice(0, 500));
          if (tail.length > 8) tail.shift();
        }
      }
    });
  }
}
