/**
 * `npm run train -- --task addition`: trains the addition model (training/data/addition.ts) from scratch and
 * writes it to models/addition/ (HF layout, character-level tokenizer files). Problems are generated on the fly
 * from the seed; the 10,000 held-out problems (seed HELD_OUT_SEED) are never drawn for training.
 * Options: --out DIR --work DIR (checkpoints) --steps N --seed S --lr LR --batch B --layers L --d-model D --heads H --threads T --resume
 * --eval-every E.
 */
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HookedTransformer } from '../hooks/HookedTransformer.ts';
import { gpt2Config } from '../hooks/init.ts';
import { Rng } from '../hooks/random.ts';
import { Args } from './args.ts';
import { rowsToBatchWhere, stepSeed } from './data/batches.ts';
import {
  ADDITION_EOT_ID, ADDITION_EQUALS, ADDITION_VOCAB, additionPrompt, additionRow, additionTokenizerFiles, heldOutAdditionProblems, MAX_ROW, OPERAND_DIGITS, problemKey,
  randomAdditionProblem, type AdditionProblem,
} from './data/addition.ts';
import { exportHfCheckpoint } from './export.ts';
import { forwardBackward, fullVocabLogits, type ClassBatch } from './model/forwardBackward.ts';
import { countParams, type ParamSet } from './model/params.ts';
import { fullVocab } from './model/vocab.ts';
import { OrtKernels } from './ops/kernels.ts';
import { formatDuration, train, type TrainResult } from './trainer.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

export const ADDITION_OPTIONS = {
  task: 'string', out: 'string', work: 'string', steps: 'number', seed: 'number', lr: 'number', batch: 'number', layers: 'number', 'd-model': 'number',
  heads: 'number', threads: 'number', resume: 'flag', 'eval-every': 'number', 'init-std': 'number', 'sinusoids': 'number',
} as const;

/** The held-out problems: 10,000 with both operands uniform in [0, 99999], from this seed (the tests use the same). */
export const HELD_OUT_SEED = 20_000;
export const HELD_OUT_COUNT = 10_000;

/**
 * The training batch of `step`: `batch` problems (never a held-out one), each row [BOS] A+B= c₀…c₅ [EOS], padded
 * on the right with end-of-text; only the answer (6 digits and the end of text) is scored.
 */
export function additionBatch(seed: number, step: number, batch: number, heldOut: ReadonlySet<number>): ClassBatch {
  return additionRowsBatch(additionProblemsAt(seed, step, batch, heldOut).map(additionRow));
}

/** The problems of training step `step`: `batch` uniform draws from the step's seed, skipping held-out problems. */
export function additionProblemsAt(seed: number, step: number, batch: number, heldOut: ReadonlySet<number>): AdditionProblem[] {
  const rng = new Rng(stepSeed(seed, step));
  const out: AdditionProblem[] = [];
  while (out.length < batch) {
    const p = randomAdditionProblem(rng);
    if (!heldOut.has(problemKey(p))) out.push(p);
  }
  return out;
}

/** Rows → a class batch scoring the answer: input position p is scored when it is at or after the row's '='. */
function additionRowsBatch(rows: number[][]): ClassBatch {
  const vocab = fullVocab(ADDITION_VOCAB);
  const equals = rows.map((r) => r.indexOf(ADDITION_EQUALS));
  return rowsToBatchWhere(rows, vocab, ADDITION_EOT_ID, (r, p) => p >= equals[r]);
}

/**
 * Exact match of greedy decoding on `problems`, computed teacher-forced: greedy generation reproduces the answer
 * exactly when the argmax at each answer position (given the correct earlier digits) is the correct token.
 */
export async function teacherForcedExactMatch(cfg: ReturnType<typeof gpt2Config>, params: ParamSet, problems: readonly AdditionProblem[], mm: OrtKernels): Promise<number> {
  const vocab = fullVocab(ADDITION_VOCAB);
  let correct = 0;
  for (let i = 0; i < problems.length; i += 500) {
    const rows = problems.slice(i, i + 500).map(additionRow);
    const batch = additionRowsBatch(rows);
    const logits = await fullVocabLogits(cfg, vocab, params, batch, mm); // [batch·pos, d_vocab]
    const V = cfg.d_vocab;
    for (let r = 0; r < batch.batch; r++) {
      let ok = true;
      for (let p = 0; p < batch.pos && ok; p++) {
        const o = r * batch.pos + p;
        if (batch.targets[o] < 0) continue;
        let best = 0;
        for (let v = 1; v < V; v++) if (logits[o * V + v] > logits[o * V + best]) best = v;
        ok = best === batch.targets[o];
      }
      if (ok) correct++;
    }
  }
  return correct / problems.length;
}

/**
 * Greedy continuations (7 tokens: 6 digits and end-of-text) of the prompts `A+B=` through the public API (`toTokens`,
 * `generate` with doSample false), batched by prompt length (no padding).
 */
export async function greedyAdditionAnswers(model: HookedTransformer, problems: readonly AdditionProblem[]): Promise<string[]> {
  const out = new Array<string>(problems.length);
  const byLength = new Map<number, number[]>();
  problems.forEach((p, i) => byLength.set(additionPrompt(p).length, [...(byLength.get(additionPrompt(p).length) ?? []), i]));
  for (const idx of byLength.values()) {
    const tokens = idx.map((i) => model.toTokens(additionPrompt(problems[i]))[0]);
    const generated = (await model.generate(tokens, { maxNewTokens: 7, doSample: false, returnType: 'tokens' })) as number[][];
    idx.forEach((i, k) => { out[i] = model.toString(generated[k].slice(tokens[k].length)); });
  }
  return out;
}

/** Runs the addition task with these arguments (`--task addition` already checked by the caller). */
export async function runAdditionTask(argv: readonly string[], log: (l: string) => void = console.log): Promise<TrainResult> {
  const args = new Args(argv, ADDITION_OPTIONS);
  const out = args.string('out', join(ROOT, 'models', 'addition'));
  const work = args.string('work', join(ROOT, '.cache', 'addition-run'));
  const steps = args.number('steps', 2000, { integer: true, min: 1 });
  const seed = args.number('seed', 0, { integer: true, min: 0 });
  const lr = args.number('lr', 2e-3, { min: 0 });
  const batch = args.number('batch', 128, { integer: true, min: 1 });
  const cfg = gpt2Config({
    model_name: 'lensboard-addition', n_layers: args.number('layers', 3, { integer: true, min: 1 }), d_model: args.number('d-model', 128, { integer: true, min: 1 }),
    n_heads: args.number('heads', 4, { integer: true, min: 1 }), n_ctx: MAX_ROW, d_vocab: ADDITION_VOCAB, bos_token_id: ADDITION_EOT_ID, eos_token_id: ADDITION_EOT_ID,
  });
  if (cfg.d_model % cfg.n_heads !== 0) throw new Error(`--d-model (${cfg.d_model}) must be divisible by --heads (${cfg.n_heads})`);
  const heldOut = heldOutAdditionProblems(HELD_OUT_COUNT, HELD_OUT_SEED);
  const heldOutKeys = new Set(heldOut.map(problemKey));
  const probe = heldOut.slice(0, 1000);
  const vocab = fullVocab(ADDITION_VOCAB);
  const mm = await OrtKernels.create(args.number('threads', 0, { integer: true, min: 0 }));
  const evalBatch = additionRowsBatch(probe.map(additionRow));
  const exact: { step: number; exactMatch: number; answerLoss: number }[] = [];
  const res = await train({
    cfg, vocab, steps, seed, lr, warmupSteps: 100, minLrRatio: 0.1,
    initStd: args.number('init-std', 0.1, { min: 0 }), sinusoidalPositions: args.number('sinusoids', 0.05, { min: 0 }), batchAt: (step) => additionBatch(seed, step, batch, heldOutKeys),
    adamw: { weightDecay: 0.1, beta2: 0.98 }, clipNorm: 1, kernels: mm, log, logEvery: 50,
    evalEvery: args.number('eval-every', 250, { integer: true, min: 1 }), outDir: work, checkpointEvery: 500, resume: args.has('resume'),
    exportOptions: { dtype: 'F32', tokenizerFiles: additionTokenizerFiles(cfg.n_ctx) },
    info: { task: 'addition', batch, operandDigits: OPERAND_DIGITS, heldOutSeed: HELD_OUT_SEED },
    onEval: async (step, params) => {
      const answerLoss = (await forwardBackward(cfg, vocab, params, evalBatch, mm)).loss;
      const exactMatch = await teacherForcedExactMatch(cfg, params, probe, mm);
      exact.push({ step, exactMatch, answerLoss });
      log(`eval step ${step}: held-out answer loss ${answerLoss.toFixed(4)}  exact match (1,000 held-out, teacher-forced greedy) ${(100 * exactMatch).toFixed(1)} %`);
    },
  });
  await mm.dispose();
  await mkdir(out, { recursive: true });
  for (const f of await readdir(out)) if (f !== 'README.md') await rm(join(out, f), { recursive: true, force: true });
  await exportHfCheckpoint(out, cfg, vocab, res.params, { dtype: 'F32', tokenizerFiles: additionTokenizerFiles(cfg.n_ctx), metadata: { producer: 'lensboard training/addition.ts', steps: String(res.step), seed: String(seed) } });
  const summary = {
    config: cfg, parameters_trained: countParams(res.params), steps: res.step, seed, lr, batch, operand_digits: OPERAND_DIGITS,
    held_out: { seed: HELD_OUT_SEED, count: HELD_OUT_COUNT }, tokens: res.tokens, wall_seconds: Math.round(res.wallSeconds),
    cpu_seconds: Math.round(res.cpuSeconds), evals: exact,
  };
  await writeFile(join(out, 'training_summary.json'), JSON.stringify(summary, null, 2) + '\n');
  log(`wrote ${out}: ${res.step} steps in ${formatDuration(res.wallSeconds)} (CPU ${formatDuration(res.cpuSeconds)})`);
  return res;
}
