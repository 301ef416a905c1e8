/**
 * The training loop: deterministic batches per step, forward/backward on onnxruntime, global-norm
 * clipping, AdamW with warmup + cosine LR, a progress line (loss, tokens/s, ETA), periodic held-out
 * evaluation, and resumable Hugging Face–layout checkpoints.
 */
import type { HookedTransformerConfig } from '../hooks/config.ts';
import { hasCheckpoint, loadCheckpoint, saveCheckpoint } from './checkpoint.ts';
import type { ExportOptions } from './export.ts';
import { forwardBackward, type ClassBatch } from './model/forwardBackward.ts';
import { initParams, unembedParamName, type ParamSet } from './model/params.ts';
import type { SeenVocab } from './model/vocab.ts';
import { OrtKernels, type Kernels } from './ops/kernels.ts';
import { adamWState, adamWStep, clipGradNorm, DEFAULT_ADAMW, learningRate, type AdamWConfig } from './optim.ts';

export interface EvalSet {
  name: string;
  batches: ClassBatch[];
}

export interface TrainOptions {
  cfg: HookedTransformerConfig;
  vocab: SeenVocab;
  /** The batch for optimisation step `step` (0-based); must depend only on (seed, step) for exact resumes. */
  batchAt: (step: number) => ClassBatch;
  steps: number;
  seed: number;
  lr: number;
  warmupSteps?: number;
  minLrRatio?: number;
  /** A custom learning-rate schedule (step → lr), replacing warmup + cosine. */
  lrAt?: (step: number) => number;
  adamw?: Partial<Omit<AdamWConfig, 'lr'>>;
  /** Clip the global gradient norm to this (default 1; 0 = off). */
  clipNorm?: number;
  evalSets?: EvalSet[];
  evalEvery?: number;
  logEvery?: number;
  /** Checkpoint directory (HF layout + trainer/ side files); none = no checkpoints. */
  outDir?: string;
  checkpointEvery?: number;
  /** Continue from the checkpoint in outDir (its step, weights and optimizer state). */
  resume?: boolean;
  exportOptions?: ExportOptions;
  /** onnxruntime intra-op threads (0 = one per physical core). */
  threads?: number;
  kernels?: Kernels;
  log?: (line: string) => void;
  /** Kept in the checkpoint's state.json. */
  info?: Record<string, unknown>;
  /** Initial weight std (default cfg.initializer_range). */
  initStd?: number;
  /** Sinusoidal initial positional embeddings of this amplitude (see params.ts). */
  sinusoidalPositions?: number;
  /** Train a separate unembedding (`lm_head.weight`) instead of tying it to the embedding (GPT-2 ties them). */
  untied?: boolean;
  /**
   * From this step on, rows of the embedding (and of an untied unembedding) whose class occurs neither as an input nor
   * as a target of the step's batch are not updated (lazy Adam; see adamWStep). Absent: every row is updated.
   */
  lazyEmbeddingFrom?: number;
  /** Called after each evaluation (every `evalEvery` steps) with the current parameters, e.g. to probe circuits. */
  onEval?: (step: number, params: ParamSet) => Promise<void>;
}

export interface EvalRecord {
  step: number;
  losses: Record<string, number>;
}

export interface TrainResult {
  params: ParamSet;
  step: number;
  trainLosses: { step: number; loss: number }[];
  evals: EvalRecord[];
  tokensPerSecond: number;
  wallSeconds: number;
  /** CPU seconds (user + system, all threads) of the training processes, resumed sessions included. */
  cpuSeconds: number;
  tokens: number;
}

/** Mean loss of each eval set (weighted by the number of scored positions). */
export async function evaluate(cfg: HookedTransformerConfig, vocab: SeenVocab, params: ParamSet, sets: EvalSet[], mm: Kernels): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const set of sets) {
    let sum = 0;
    let count = 0;
    for (const b of set.batches) {
      const r = await forwardBackward(cfg, vocab, params, b, mm);
      sum += r.loss * r.count;
      count += r.count;
    }
    out[set.name] = sum / count;
  }
  return out;
}

/** One flag per class: 1 where the class occurs in `batch` as an input or a target ([batch, pos] each). */
export function batchClasses(batch: ClassBatch, nClasses: number): Uint8Array {
  const present = new Uint8Array(nClasses);
  for (const c of batch.inputs) present[c] = 1;
  for (const c of batch.targets) if (c >= 0) present[c] = 1;
  return present;
}

export function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  const sec = Math.round(s - m * 60);
  return m > 0 ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

/** Trains (or resumes) and returns the final parameters and statistics. */
export async function train(o: TrainOptions): Promise<TrainResult> {
  if (!Number.isInteger(o.steps) || o.steps < 1) throw new Error(`train: steps must be a positive integer; got ${o.steps}`);
  if (!(o.lr > 0)) throw new Error(`train: lr must be positive; got ${o.lr}`);
  const log = o.log ?? ((l: string) => console.log(l));
  const adamCfg: AdamWConfig = { ...DEFAULT_ADAMW, ...o.adamw, lr: o.lr };
  const schedule = { lr: o.lr, warmupSteps: o.warmupSteps ?? Math.min(100, Math.ceil(o.steps / 10)), totalSteps: o.steps, minRatio: o.minLrRatio ?? 0.1 };
  const mm = o.kernels ?? (await OrtKernels.create(o.threads ?? 0));
  const ownMm = o.kernels === undefined;
  const { cfg, vocab } = o;

  let params = initParams(cfg, vocab.nClasses, { seed: o.seed, std: o.initStd, sinusoidalPositions: o.sinusoidalPositions, untied: o.untied });
  let opt = adamWState(params);
  let step = 0;
  let history: { trainLosses: { step: number; loss: number }[]; evals: EvalRecord[]; wallSeconds: number; cpuSeconds?: number; tokens: number } = { trainLosses: [], evals: [], wallSeconds: 0, cpuSeconds: 0, tokens: 0 };
  if (o.resume) {
    if (!o.outDir || !hasCheckpoint(o.outDir)) throw new Error(`train: --resume needs a checkpoint in ${o.outDir ?? '(no out dir)'}`);
    const s = await loadCheckpoint(o.outDir);
    // the model's name is a label, not a shape: a pilot run resumed under its final name continues the same run
    const shape = (c: HookedTransformerConfig) => JSON.stringify({ ...c, model_name: undefined });
    if (shape(s.cfg) !== shape(cfg)) throw new Error(`train: the checkpoint in ${o.outDir} has a different model config; resume with the same sizes`);
    if (s.vocab.seen.length !== vocab.seen.length || s.vocab.seen.some((t, i) => t !== vocab.seen[i])) throw new Error(`train: the checkpoint in ${o.outDir} was trained on a different vocabulary (different data)`);
    const savedUntied = unembedParamName(s.params) === 'lm_head.weight';
    if (savedUntied !== (o.untied ?? false)) throw new Error(`train: the checkpoint in ${o.outDir} has ${savedUntied ? 'an untied' : 'a tied'} unembedding; resume with the same setting`);
    params = s.params;
    opt = s.opt;
    step = s.step;
    const h = s.info.history as typeof history | undefined;
    if (h) history = h;
    log(`resumed from ${o.outDir} at step ${step}`);
  }

  const save = async () => {
    if (!o.outDir) return;
    await saveCheckpoint(o.outDir, { step, cfg, vocab, params, opt, info: { ...o.info, history, options: { steps: o.steps, lr: o.lr, seed: o.seed, schedule, adamw: adamCfg, clipNorm: o.clipNorm ?? 1 } } }, o.exportOptions);
  };

  const startStep = step;
  const t0 = performance.now();
  const wallBefore = history.wallSeconds;
  const cpuBefore = history.cpuSeconds ?? 0;
  const cpu0 = process.cpuUsage();
  let tokensThisRun = 0;
  let lossAcc = 0;
  let lossN = 0;
  const logEvery = o.logEvery ?? 10;
  while (step < o.steps) {
    const batch = o.batchAt(step);
    const { loss, grads } = await forwardBackward(cfg, vocab, params, batch, mm, { backward: true });
    if (!Number.isFinite(loss)) throw new Error(`train: loss became ${loss} at step ${step}; lower the learning rate`);
    const norm = clipGradNorm(grads!, o.clipNorm ?? 1);
    const lr = o.lrAt ? o.lrAt(step) : learningRate(schedule, step);
    let lazyRows: Map<string, Uint8Array> | undefined;
    if (o.lazyEmbeddingFrom !== undefined && step >= o.lazyEmbeddingFrom) {
      const present = batchClasses(batch, vocab.nClasses);
      lazyRows = new Map(['wte.weight', 'lm_head.weight'].filter((n) => params.data.has(n)).map((n) => [n, present]));
    }
    adamWStep(params, grads!, opt, adamCfg, lr, lazyRows);
    step++;
    const ntok = batch.batch * batch.pos;
    tokensThisRun += ntok;
    history.tokens += ntok;
    lossAcc += loss;
    lossN++;
    history.trainLosses.push({ step, loss });
    const elapsed = (performance.now() - t0) / 1000;
    history.wallSeconds = wallBefore + elapsed;
    const cpu = process.cpuUsage(cpu0);
    history.cpuSeconds = cpuBefore + (cpu.user + cpu.system) / 1e6;
    if (step % logEvery === 0 || step === o.steps) {
      const tps = tokensThisRun / elapsed;
      log(
        `step ${step}/${o.steps}  loss ${(lossAcc / lossN).toFixed(4)}  lr ${lr.toExponential(2)}  |g| ${norm.toFixed(3)}  ` +
          `${Math.round(tps).toLocaleString('en-US')} tok/s  elapsed ${formatDuration(history.wallSeconds)} (CPU ${formatDuration(history.cpuSeconds)})  ETA ${formatDuration((o.steps - step) * (elapsed / (step - startStep)))}`,
      );
      lossAcc = 0;
      lossN = 0;
    }
    if (o.evalEvery && (step % o.evalEvery === 0 || step === o.steps)) {
      if (o.evalSets && o.evalSets.length > 0) {
        const losses = await evaluate(cfg, vocab, params, o.evalSets, mm);
        history.evals.push({ step, losses });
        log(`eval step ${step}: ` + Object.entries(losses).map(([k, v]) => `${k} ${v.toFixed(4)}`).join('  '));
      }
      if (o.onEval) await o.onEval(step, params);
    }
    if (o.outDir && o.checkpointEvery && step % o.checkpointEvery === 0 && step < o.steps) await save();
  }
  await save();
  if (ownMm) await mm.dispose();
  const elapsed = (performance.now() - t0) / 1000;
  return {
    params,
    step,
    trainLosses: history.trainLosses,
    evals: history.evals,
    tokensPerSecond: tokensThisRun / Math.max(elapsed, 1e-9),
    wallSeconds: history.wallSeconds,
    cpuSeconds: history.cpuSeconds ?? 0,
    tokens: history.tokens,
  };
}
