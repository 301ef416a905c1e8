/**
 * A model runner process. The server forks one per loaded model (server/host/RunnerProcess.ts) and may SIGKILL it at
 * any moment: that is how a job stuck inside onnxruntime is stopped, since a thread must never be terminated inside a
 * native onnxruntime call. Inside, the model still runs on a worker thread (server/worker/entry.ts), so this main
 * thread stays free to relay IPC while onnxruntime computes: a `cancel` sets the model thread's shared cancel flag at
 * once, and the running job sees it at its next check (between steps), exactly as before the runner existed.
 *
 * After each job the runner reports the job's memory (RSS before, peak, after; after a full garbage collection when the
 * job grew the runner) with `idle`; the server decides from it whether to recycle the runner (restart it to give memory back).
 * It ignores SIGINT/SIGTERM (a terminal's Ctrl-C reaches the whole process group; the server shuts its runners down
 * itself) and exits when the server says `exit` or its IPC channel closes (the server died).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { FromRunner, FromWorker, JobMemory, ToRunner, WorkerData } from '../host/protocol.ts';

const WORKER_BOOT = new URL('../worker/boot.mjs', import.meta.url);

const flagBuffer = new SharedArrayBuffer(4);
const cancelFlag = new Int32Array(flagBuffer);
let worker: Worker | null = null;
/** The job the model thread is running (its seq), with its memory at the start; null when idle. */
let running: { seq: number; before: number } | null = null;
/** True while the model thread loads the model (onnxruntime sessions may be being created). */
let loading = false;

function send(m: FromRunner): void {
  try {
    process.send!(m);
  } catch {
    exitNow(); // the channel is closed: the server is gone
  }
}

/** Leaves at once. With the model thread busy (a job, or loading) a normal exit could tear it down inside onnxruntime. */
function exitNow(): never {
  if (running || loading) process.kill(process.pid, 'SIGKILL');
  process.exit(0);
}

/** Peak RSS since the last reset (Linux /proc; null elsewhere). */
function peakRss(): number | null {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Resets the kernel's peak-RSS counter (VmHWM) to the current RSS. */
function resetPeakRss(): void {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
  } catch {
    // not Linux, or not allowed: the peak then covers the runner's whole life
  }
}

/** A full garbage collection on the model thread, then on this one. */
function collectGarbage(): Promise<void> {
  return new Promise((resolve) => {
    const onMessage = (m: FromWorker) => {
      if (m.type !== 'gcDone') return;
      worker!.off('message', onMessage);
      (globalThis as { gc?: () => void }).gc?.();
      resolve();
    };
    worker!.on('message', onMessage);
    worker!.postMessage({ type: 'gc' });
  });
}

/** A job that grew the runner by this much (at its peak, or still after it) is followed by a full garbage collection. */
const GC_AFTER_BYTES = 32 * 2 ** 20;

/**
 * The job ended (its result, error or cancellation was relayed): after a job that grew the runner, collect garbage on
 * both threads (a full GC costs tens of milliseconds: small jobs skip it), then report the job's memory.
 */
async function jobEnded(seq: number, before: number): Promise<void> {
  const peak = peakRss();
  if (process.memoryUsage().rss - before > GC_AFTER_BYTES || (peak ?? 0) - before > GC_AFTER_BYTES) await collectGarbage();
  const memory: JobMemory = { before, peak, after: process.memoryUsage().rss };
  running = null;
  send({ type: 'idle', seq, memory });
}

function onWorkerMessage(m: FromWorker): void {
  if (m.type === 'gcDone') return;
  if (m.type === 'loaded' || m.type === 'loadError') loading = false;
  if (m.type === 'loaded') {
    // The baseline that recycling compares against: measured after loading's garbage is gone.
    void collectGarbage().then(() => send({ type: 'loaded', info: m.info, rss: process.memoryUsage().rss }));
    return;
  }
  send(m);
  if ((m.type === 'result' || m.type === 'error' || m.type === 'cancelled') && running?.seq === m.seq) {
    void jobEnded(m.seq, running.before);
  }
}

function startWorker(limits: WorkerData['limits']): Worker {
  const w = new Worker(WORKER_BOOT, { workerData: { cancelFlag: flagBuffer, limits } satisfies WorkerData, name: 'model' });
  w.on('message', onWorkerMessage);
  w.on('error', (e) => {
    process.stderr.write(`model thread failed: ${e.stack ?? e.message}\n`);
    process.exit(70);
  });
  w.on('exit', (code) => {
    process.stderr.write(`model thread exited with code ${code}\n`);
    process.exit(70);
  });
  return w;
}

process.on('message', (m: ToRunner) => {
  switch (m.type) {
    case 'load':
      loading = true;
      worker = startWorker(m.limits);
      worker.postMessage({ type: 'load', source: m.source, options: m.options });
      break;
    case 'job':
      Atomics.store(cancelFlag, 0, 0);
      resetPeakRss();
      running = { seq: m.seq, before: process.memoryUsage().rss };
      worker!.postMessage({ type: 'job', seq: m.seq, kind: m.kind, payload: m.payload });
      break;
    case 'cancel':
      Atomics.store(cancelFlag, 0, m.seq);
      break;
    case 'exit':
      exitNow();
  }
});
process.on('disconnect', exitNow);
process.on('SIGINT', () => {});
process.on('SIGTERM', () => {});
process.on('uncaughtException', (e) => {
  process.stderr.write(`runner failed: ${e.stack ?? e.message}\n`);
  process.exit(70);
});
