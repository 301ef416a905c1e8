/**
 * Trains an SAE on a model's activations at a hook point, SAELens's way: contexts of a text corpus
 * (its training part; the tail is held out for evaluation) run through the engine a batch at a time
 * (harvestActivations), rows mixed in a fixed-size buffer, normalised so that E‖x‖ = √d_in (the factor
 * folded into the weights at the end, as SAELens's expected_average_only_in), the step on onnxruntime
 * (saeTrainer.ts). Writes the SAE in SAELens's format with sparsity.safetensors (log10 feature densities
 * on the held-out text) and training.json (the options, throughput and the held-out evaluation).
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HookedTransformer } from '../../hooks/HookedTransformer.ts';
import type { HookName } from '../../hooks/hookPoints.ts';
import { formatDuration } from '../../hooks/loading/progress.ts';
import { corpusContexts, DEFAULT_CORPUS } from '../../hooks/sae/corpus.ts';
import { evaluateSae, type SaeEvalResult } from '../../hooks/sae/evaluate.ts';
import { harvestActivations, hookWidth } from '../../hooks/sae/harvest.ts';
import { Sae } from '../../hooks/sae/Sae.ts';
import { MixingBuffer } from './mixingBuffer.ts';
import { SaeTrainer, type StepMetrics } from './saeTrainer.ts';
import type { TrainArchitecture } from './stepGraph.ts';

export interface TrainSaeOptions {
  /** A model directory or name (HookedTransformer.fromPretrained, default processing). */
  model: string;
  hook: string;
  dSae: number;
  architecture: TrainArchitecture;
  k?: number;
  l1?: number;
  /** Training tokens (activation rows). */
  tokens: number;
  out: string;
  /** A text file (default: the repository's Tiny Shakespeare). */
  data?: string;
  /** Tokens per context, BOS included (default min(128, n_ctx)). */
  contextSize?: number;
  /** Rows per step (default 4096). */
  batchRows?: number;
  lr?: number;
  /** Mixing-buffer rows (default 32 × batchRows). */
  bufferRows?: number;
  /** Contexts per harvesting forward pass (default 32). */
  harvestBatch?: number;
  /** Held-out positions for the final evaluation (default 2^16). */
  evalTokens?: number;
  heldOutFraction?: number;
  seed?: number;
  threads?: number;
  /** Steps between progress reports (default 10). */
  logEvery?: number;
  /** Progress: a line per report, or a redrawn bar (`draw`). */
  log?: (line: string) => void;
  draw?: (line: string) => void;
}

export interface TrainSaeResult {
  sae: Sae;
  steps: number;
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
  scalingFactor: number;
  last: StepMetrics | null;
  heldOut: SaeEvalResult;
}


/** The line drawn for a step: loss, its parts, L0, dead fraction, explained variance, throughput, ETA. */
export function progressLine(m: StepMetrics, totalSteps: number, tokensPerSecond: number, etaSeconds: number): string {
  const pct = `${Math.floor((100 * m.step) / totalSteps)}%`.padStart(4);
  const width = 20;
  const filled = Math.round((width * m.step) / totalSteps);
  return `${pct} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] step ${m.step}/${totalSteps} loss ${m.loss.toFixed(4)} (mse ${m.mse.toFixed(4)} + ${m.sparsityLoss.toFixed(4)}) L0 ${m.l0.toFixed(1)} dead ${(100 * m.deadFraction).toFixed(1)}% EV ${m.explainedVariance.toFixed(3)} ${Math.round(tokensPerSecond).toLocaleString('en-US')} tok/s eta ${formatDuration(etaSeconds)}`;
}

export async function trainSae(o: TrainSaeOptions): Promise<TrainSaeResult> {
  const log = o.log ?? (() => undefined);
  const data = o.data ?? DEFAULT_CORPUS;
  /** The corpus as cfg.json and training.json name it: the repository's Tiny Shakespeare by its path in the repository. */
  const datasetPath = data === DEFAULT_CORPUS ? 'data/tinyshakespeare.txt' : data;
  const model = await HookedTransformer.fromPretrained(o.model, { threads: o.threads });
  try {
    if (!model.tokenizer) throw new Error(`${o.model}: training an SAE on text needs the model's tokenizer files`);
    const hook = o.hook as HookName;
    const d_in = hookWidth(model, hook);
    const contextSize = o.contextSize ?? Math.min(128, model.cfg.n_ctx);
    const batchRows = o.batchRows ?? 4096;
    const totalSteps = Math.ceil(o.tokens / batchRows);
    const seed = o.seed ?? 0;
    const trainContexts = corpusContexts(data, model.tokenizer, { contextSize, split: 'train', loop: true, seed, heldOutFraction: o.heldOutFraction });
    let harvested = 0;
    const source = (async function* () {
      for await (const batch of harvestActivations(model, hook, trainContexts, { batchSize: o.harvestBatch ?? 32 })) {
        harvested += batch.rows;
        yield batch;
      }
    })();
    const buffer = new MixingBuffer(o.bufferRows ?? 32 * batchRows, d_in, seed + 1);
    const batches = buffer.batches(source, batchRows);

    // The first batch sets the normalisation (SAELens: √d_in / mean ‖x‖) and b_dec (the mean input).
    const first = (await batches.next()).value as Float32Array | undefined;
    if (!first) throw new Error('no training activations');
    let normSum = 0;
    const mean = new Float64Array(d_in);
    for (let r = 0; r < batchRows; r++) {
      let sq = 0;
      for (let i = 0; i < d_in; i++) {
        sq += first[r * d_in + i] ** 2;
        mean[i] += first[r * d_in + i] / batchRows;
      }
      normSum += Math.sqrt(sq);
    }
    const scale = Math.sqrt(d_in) / (normSum / batchRows);
    const trainer = new SaeTrainer(
      {
        architecture: o.architecture,
        d_in,
        d_sae: o.dSae,
        k: o.k,
        l1: o.l1,
        l1WarmupSteps: Math.ceil(totalSteps * 0.05),
        lr: o.lr ?? 4e-4,
        warmupSteps: Math.min(100, Math.ceil(totalSteps / 20)),
        decayFraction: 0.2,
        totalSteps,
        deadWindow: Math.min(2 ** 20, Math.max(batchRows * 20, Math.floor(o.tokens / 10))),
        seed,
        threads: o.threads,
      },
      { b_dec: Float32Array.from(mean, (v) => v * scale) },
    );
    log(`training a ${o.architecture}${o.k ? ` (k ${o.k})` : ''} SAE of ${o.dSae} features on ${hook} (d_in ${d_in}) of ${o.model}: ${totalSteps} steps × ${batchRows} rows from ${data} (contexts of ${contextSize}); normalisation factor ${scale.toFixed(4)}`);
    const started = performance.now();
    let last: StepMetrics | null = null;
    const logEvery = o.logEvery ?? 10;
    const resampleAt = o.architecture === 'standard' ? new Set([0.25, 0.5, 0.75].map((f) => Math.floor(totalSteps * f))) : new Set<number>();
    let x: Float32Array | undefined = first;
    try {
      for (let step = 0; step < totalSteps; step++) {
        if (!x) x = (await batches.next()).value as Float32Array | undefined;
        if (!x) throw new Error('the activation stream ended early');
        for (let i = 0; i < x.length; i++) x[i] *= scale;
        if (resampleAt.has(step)) {
          const n = await trainer.resampleDead(x, Math.min(batchRows, 1024));
          if (n > 0) log(`step ${step}: resampled ${n} dead features`);
        }
        last = await trainer.trainStep(x, batchRows);
        x = undefined;
        if (last.step % logEvery === 0 || last.step === totalSteps) {
          const seconds = (performance.now() - started) / 1000;
          const tps = (last.step * batchRows) / seconds;
          const line = progressLine(last, totalSteps, tps, ((totalSteps - last.step) * batchRows) / tps);
          if (o.draw) o.draw(line);
          else log(line);
        }
      }
    } finally {
      await batches.return(undefined);
      await trainer.dispose();
    }
    const seconds = (performance.now() - started) / 1000;

    // Fold the normalisation into the weights (SAELens's fold_activation_norm_scaling_factor).
    const p = trainer.params;
    const W_enc = p.W_enc.map((v) => v * scale);
    const W_dec = p.W_dec.map((v) => v / scale);
    const b_dec = p.b_dec.map((v) => v / scale);
    const sae = Sae.fromWeights(
      {
        architecture: o.architecture,
        d_in,
        d_sae: o.dSae,
        hook_name: hook,
        k: o.architecture === 'topk' ? o.k! : null,
        model_name: model.cfg.model_name,
        context_size: contextSize,
        prepend_bos: true,
        dataset_path: datasetPath,
        normalize_activations: 'none',
        extra: { lensboard_trainer: { tokens: totalSteps * batchRows, steps: totalSteps, batch_rows: batchRows, lr: o.lr ?? 4e-4, l1: o.l1 ?? null, normalization_factor_folded: scale, seed } },
      },
      { W_enc, b_enc: p.b_enc, W_dec, b_dec },
      { name: o.out.split('/').filter(Boolean).pop() },
    );
    log(`trained in ${formatDuration(seconds)} (${Math.round((totalSteps * batchRows) / seconds).toLocaleString('en-US')} tok/s, ${harvested.toLocaleString('en-US')} rows harvested); evaluating on held-out text`);
    const heldOut = await evaluateSae(
      model,
      sae,
      corpusContexts(data, model.tokenizer, { contextSize, split: 'heldOut', heldOutFraction: o.heldOutFraction }),
      { maxTokens: o.evalTokens ?? 2 ** 16, batchSize: 16 },
    );
    const logSparsity = Float32Array.from(heldOut.featureDensity, (d) => Math.log10(d + 1e-10)); // SAELens's sparsity.safetensors
    await sae.save(o.out, { logSparsity });
    const summary = {
      command: 'train:sae',
      model: o.model,
      hook,
      architecture: o.architecture,
      k: o.k ?? null,
      l1: o.l1 ?? null,
      d_in,
      d_sae: o.dSae,
      tokens: totalSteps * batchRows,
      steps: totalSteps,
      batchRows,
      lr: o.lr ?? 4e-4,
      contextSize,
      data: datasetPath,
      seed,
      seconds,
      tokensPerSecond: (totalSteps * batchRows) / seconds,
      normalizationFactor: scale,
      lastStep: last,
      heldOut: { ...heldOut, featureDensity: undefined },
    };
    await writeFile(join(o.out, 'training.json'), `${JSON.stringify(summary, null, 2)}\n`);
    log(`held out (${heldOut.tokens} tokens): explained variance ${heldOut.explainedVariance.toFixed(4)}, L0 ${heldOut.l0.toFixed(2)}, dead ${(100 * heldOut.deadFraction).toFixed(1)}%, dense ${(100 * heldOut.denseFraction).toFixed(1)}%, CE loss recovered ${heldOut.ceLossRecovered.toFixed(4)} (clean ${heldOut.ceLossClean.toFixed(4)}, spliced ${heldOut.ceLossSpliced.toFixed(4)}, zero-ablated ${heldOut.ceLossZeroAblated.toFixed(4)}); saved to ${o.out}`);
    return { sae, steps: totalSteps, tokens: totalSteps * batchRows, seconds, tokensPerSecond: (totalSteps * batchRows) / seconds, scalingFactor: scale, last, heldOut };
  } finally {
    await model.dispose();
  }
}
