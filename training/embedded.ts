/**
 * `npm run train:embedded`: trains Lensboard's embedded GPT-2-architecture model from scratch on the
 * data mix of data/embeddedMix.ts and writes it to models/embedded/ (HF layout + tokenizer files).
 * Options: --recipe v1|v2|v3|v4 (default v4, the shipped model since issue 19; v1 the model before it, v2 and v3
 * the attempts that led to v4, see RECIPE_V2 …) --steps N --out DIR --work DIR --seed S --lr LR --resume --threads T --untied (an experiment: a
 * separate unembedding instead of GPT-2's tied one; exported in F16 to stay under 32 MB).
 */
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { gpt2Config } from '../hooks/init.ts';
import { Rng } from '../hooks/random.ts';
import { Gpt2Tokenizer } from '../hooks/tokenizer.ts';
import { Args } from './args.ts';
import { consecutiveWindows, rowsToBatch } from './data/batches.ts';
import { buildEmbeddedData, DEFAULT_MIX, type MixOptions, type MixPhase } from './data/embeddedMix.ts';
import { repeatedRandomTokens } from '../hooks/datasets/induction.ts';
import { IOI_HELDOUT_NAMES, randomIoiPrompt } from '../hooks/datasets/ioi.ts';
import { readTokenizedText } from './data/text.ts';
import { learningRate } from './optim.ts';
import { train, type EvalSet } from './trainer.ts';
import { embeddedProbe, wholeVocabulary } from './circuits.ts';
import { HookedTransformer } from '../hooks/HookedTransformer.ts';
import { exportHfCheckpoint, toTransformerWeights } from './export.ts';
import { cloneParams, countParams } from './model/params.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

type Weights = { text: number; induction: number; ioi: number };

/**
 * A training recipe: phase 0 (< triggerRowsTo) trains induction on trigger rows at TRIGGER_LR, where the circuit
 * forms; phase 1 (< phase2From) induction on whole rows with IOI at a constant learning rate `lr`; phases 2 and 3 the
 * full mix, then mostly IOI, each with a cosine decay (v1: after the induction-heavy phases the held-out IOI logit
 * difference was −0.1; the IOI-heavy phases made it work on held-out names).
 */
export interface EmbeddedRecipe {
  steps: number;
  lr: number;
  triggerRowsTo: number;
  phase2From: number;
  phase3From: number;
  weights: { phase0: Weights; phase1: Weights; phase2: Weights; phase3: Weights };
  /** The data mix (over DEFAULT_MIX). */
  mix: Partial<MixOptions>;
  /** Batch options from phase 1 on. */
  fromPhase1: MixPhase;
  /** From this step on, IOI_WORD_NAMES of the IOI prompts use two random words as names. */
  ioiWordNamesFrom: number;
  /**
   * v2: every token has its own embedding row and induction is trained and evaluated on random tokens from the whole
   * vocabulary; v1: unseen tokens share a row, and induction uses the 512 most frequent text tokens, which the export
   * names in training_vocab.json (read by v1-era Lensboard as randomTokenPool, retired with v4).
   */
  wholeVocabulary: boolean;
  /**
   * An optional last phase (v4): from `from` on, these weights and batch options (over fromPhase1's) with a cosine decay
   * from `lr` to lr/10; phase 3 then ends at `from`.
   */
  phase4?: { from: number; weights: Weights; options: MixPhase; lr: number };
  /** From this step on, embedding rows of tokens absent from a step's batch are not updated (lazy Adam, see adamWStep). */
  lazyEmbeddingFrom?: number;
}

const TRIGGER_LR = 1e-3;
/**
 * 50 % of IOI prompts (from `ioiWordNamesFrom`) use two random words as names: the IOI algorithm on tokens that
 * cannot be memorised as names (without them a release reached 90 % with training names, 63 % with held-out;
 * with 30 %, 87 % held-out).
 */
const IOI_WORD_NAMES = 0.5;

/**
 * v1, the shipped models/embedded (see its model card): phase 0 (< 2,000) trigger rows — 64 short rows ([BOS] + 32
 * tokens; triggerRowWithMask: a few trigger tokens, each always followed by its own output token) at TRIGGER_LR: only
 * TransformerLens's induction stripe predicts their outputs, and 64 rows per step carry enough signal for the circuit
 * to form (pilots: 16 rows per step stayed on the "bag of context" plateau for 1,500+ steps). Without this phase,
 * alternating pairs and long copies built a "shifted" circuit. Induction rows: copies of earlier spans (6–20 tokens)
 * among random tokens from the 512 most frequent text tokens + names; 25 % are alternating pairs throughout.
 */
export const RECIPE_V1: EmbeddedRecipe = {
  steps: 4100, lr: 3e-3, triggerRowsTo: 2000, phase2From: 2800, phase3From: 3500,
  weights: {
    phase0: { text: 0, induction: 0.9, ioi: 0.1 }, phase1: { text: 0, induction: 0.9, ioi: 0.1 },
    phase2: { text: 0.3, induction: 0.3, ioi: 0.4 }, phase3: { text: 0.15, induction: 0.15, ioi: 0.7 },
  },
  mix: { inductionPoolSize: 512, inductionMinSpan: 6, inductionMaxSpan: 20, inductionAlternatingFraction: 0.25, inductionTripleFraction: 0 },
  fromPhase1: {}, ioiWordNamesFrom: 2800, wholeVocabulary: false,
};

/**
 * v2, the attempt of issue 19 (not shipped; its figures are in models/embedded/README.md, "v2: what was tried"):
 * induction rows of random tokens from GPT-2's whole vocabulary (every id but BOS; half of the draws uniform, half from
 * the training text's unigram distribution) with copies of earlier spans (6–20 tokens), 25 % alternating pairs; every
 * token has its own embedding row, so the tied unembedding is a 50,257-way softmax: scoring a random half of the copied
 * tokens of induction rows and a quarter of the Shakespeare positions keeps a step near 1 s of CPU. Phase 0 runs to
 * 2,500; after it half of the induction steps stay trigger rows and the learning rate stays at TRIGGER_LR (a first run
 * switched at step 2,500 to whole rows only at 3e-3, v1's phase 1, and within 250 steps the stripe on whole-vocabulary
 * random tokens fell from 0.36–0.40 to 0.12–0.17 and the drop on repeated random tokens from 6.0 to 1.5 nats: the
 * copying of rare tokens was lost); from phase 1 on 25 % of the induction rows are training text with copied spans,
 * and half of the IOI prompts get other articles, places and objects.
 */
export const RECIPE_V2: EmbeddedRecipe = {
  steps: 4000, lr: TRIGGER_LR, triggerRowsTo: 2500, phase2From: 3000, phase3From: 3500,
  weights: {
    phase0: { text: 0, induction: 0.9, ioi: 0.1 }, phase1: { text: 0, induction: 0.7, ioi: 0.3 },
    phase2: { text: 0.2, induction: 0.3, ioi: 0.5 }, phase3: { text: 0.15, induction: 0.15, ioi: 0.7 },
  },
  mix: {
    inductionPoolSize: 512, inductionMinSpan: 6, inductionMaxSpan: 20, inductionAlternatingFraction: 0.25, inductionTripleFraction: 0,
    inductionTokens: 'vocab', inductionTextFraction: 0.5, fullVocabulary: true, inductionTargetFraction: 0.5, textTargetFraction: 0.25,
  },
  fromPhase1: { inductionTriggerFraction: 0.5, inductionTextCopyFraction: 0.25, ioiVariety: 0.5 },
  ioiWordNamesFrom: 2500, wholeVocabulary: true,
};

/**
 * v3: v2 with trigger rows of several lengths. v2's final checkpoint, read through the workbench API on whole-vocabulary
 * repeats, had its previous-token head (L0H3) only where phase 0's 33-token rows had trained it: attention to the
 * previous token 0.79 at query positions 1–9, 0.53 at 10–32 and 0.03 from position 33 on (the rest spread over tokens
 * far back), W_pos rows 0–32 of norm 0.97 against 0.46 beyond; the best layer-1 head's stripe was 0.55 / 0.49 / 0.30 /
 * 0.01 for earlier occurrences at positions 2–9 / 10–19 / 20–32 / 33+. So every trigger-row step (phase 0, and half
 * of the induction steps after it) draws its shape: half of them 64 rows of 33 tokens as before (where the circuit
 * forms), a quarter 32 rows of 65 (4–8 triggers), a quarter 16 rows of 129 (8–16 triggers), about the same tokens per
 * step, so the previous-token head and the stripe are trained at every position of n_ctx. And the embedding's rows are
 * updated only for tokens in the step's batch (lazy Adam, from step 0): v2's rows of tokens absent from the text had
 * drifted together (mean pairwise cosine 0.55 at step 2,000, 0.75 at 4,000; a shared component of norm 1.03 in rows
 * of norm 1.19), pushed along one direction by the tied softmax of every step in which they did not occur, and its
 * whole-vocabulary copying wore down once text and IOI entered (drop 5.98 → 3.03 nats). A first v3 run with lazy
 * rows only from phase 1 had them at cosine 0.64 by step 2,000, and its stripe was still 0.03–0.04 (keys at
 * positions 2–9: 0.13) then.
 */
export const RECIPE_V3: EmbeddedRecipe = {
  ...RECIPE_V2,
  // phase 0 500 steps longer than v2's (its stripe had barely begun by step 2,250: 0.12 for earlier occurrences at
  // positions 2–9), the later phases as long as v2's
  steps: 4500, triggerRowsTo: 3000, phase2From: 3500, phase3From: 4000, ioiWordNamesFrom: 3000,
  lazyEmbeddingFrom: 0,
  mix: {
    ...RECIPE_V2.mix,
    triggerShapes: [
      { ctx: 32, batch: 64, minTriggers: 2, maxTriggers: 4 }, { ctx: 32, batch: 64, minTriggers: 2, maxTriggers: 4 },
      { ctx: 64, batch: 32, minTriggers: 4, maxTriggers: 8 }, { ctx: 128, batch: 16, minTriggers: 8, maxTriggers: 16 },
    ],
  },
};

/**
 * v4: v3 (its 4,500 steps unchanged) then 1,000 steps that carry the circuit to later positions: at v3's step 4,250 the
 * stripe covered earlier occurrences up to about position 20 (0.88 / 0.85 / 0.25 / 0.09 for positions 2–9 / 10–19 /
 * 20–32 / 33+) and the previous-token heads attended 0.65 / 0.32 / 0.05 to the previous token at query positions 1–9 /
 * 10–32 / 33+. Induction-heavy (60 % of steps), its trigger rows only the long shapes (65 and 129 tokens), whole rows as
 * before (25 % alternating pairs over all 128 positions), IOI 30 %, text 10 %; learning rate 1e-3 → 1e-4.
 */
export const RECIPE_V4: EmbeddedRecipe = {
  ...RECIPE_V3,
  steps: 5500,
  phase4: {
    from: 4500, lr: 1e-3, weights: { text: 0.1, induction: 0.6, ioi: 0.3 },
    options: { triggerShapes: [{ ctx: 64, batch: 32, minTriggers: 4, maxTriggers: 8 }, { ctx: 128, batch: 16, minTriggers: 8, maxTriggers: 16 }] },
  },
};

export const RECIPES: Record<string, EmbeddedRecipe> = { v1: RECIPE_V1, v2: RECIPE_V2, v3: RECIPE_V3, v4: RECIPE_V4 };

/** The mix options of `recipe` at `step` (its phase's weights and batch options). */
export function recipePhase(recipe: EmbeddedRecipe, step: number): MixPhase {
  const { triggerRowsTo, phase2From, phase3From, weights } = recipe;
  return {
    weights: step < triggerRowsTo ? weights.phase0 : step < phase2From ? weights.phase1 : step < phase3From ? weights.phase2 : weights.phase3,
    ioiWordNameFraction: step < recipe.ioiWordNamesFrom ? 0 : IOI_WORD_NAMES,
    inductionTriggerRows: step < triggerRowsTo,
    ...(step < triggerRowsTo ? {} : recipe.fromPhase1),
    ...(recipe.phase4 && step >= recipe.phase4.from ? { ...recipe.phase4.options, weights: recipe.phase4.weights } : {}),
  };
}

export const EMBEDDED_CONFIG = gpt2Config({ model_name: 'lensboard-embedded', n_layers: 3, d_model: 128, n_heads: 4, n_ctx: 128 });

async function main(): Promise<void> {
  const args = new Args(process.argv.slice(2), { recipe: 'string', steps: 'number', out: 'string', work: 'string', seed: 'number', resume: 'flag', threads: 'number', lr: 'number', untied: 'flag' });
  const recipeName = args.string('recipe', 'v4');
  const recipe = RECIPES[recipeName];
  if (!recipe) throw new Error(`--recipe must be one of ${Object.keys(RECIPES).join(', ')}; got ${JSON.stringify(recipeName)}`);
  const untied = args.has('untied');
  const dtype = untied ? 'auto' : 'F32'; // an untied model is F16 when F32 would pass 32 MB
  const steps = args.number('steps', recipe.steps, { integer: true, min: 1 });
  const seed = args.number('seed', 1234, { integer: true, min: 0 });
  const out = args.string('out', join(ROOT, 'models', 'embedded'));
  const work = args.string('work', join(ROOT, '.cache', 'embedded-run'));
  const lr = args.number('lr', recipe.lr, { min: 0 });
  const cfg = EMBEDDED_CONFIG;
  const tok = await Gpt2Tokenizer.default();
  const text = await readTokenizedText(tok, join(ROOT, 'data', 'tinyshakespeare.txt'));
  const { triggerRowsTo, phase2From, phase3From, weights } = recipe;
  const mix = { ...DEFAULT_MIX, ...recipe.mix, seed, ctx: cfg.n_ctx };
  const data = buildEmbeddedData(tok, text, { ...mix, weights: weights.phase0 });
  const batchAt = (step: number) => data.batchAt(step, recipePhase(recipe, step));
  // phases 0 and 1: warmup 100, then constant (TRIGGER_LR in phase 0, lr in phase 1); phase 2: cosine from lr to lr/10
  const lrAt = (step: number) =>
    step < phase2From
      ? (step < triggerRowsTo ? TRIGGER_LR : lr) * Math.min(1, (step + 1) / 100)
      : step < phase3From
        ? learningRate({ lr, warmupSteps: 0, totalSteps: phase3From - phase2From, minRatio: 0.1 }, step - phase2From)
        : !recipe.phase4 || step < recipe.phase4.from
          ? learningRate({ lr: lr / 2, warmupSteps: 0, totalSteps: Math.max(1, (recipe.phase4?.from ?? steps) - phase3From), minRatio: 0.1 }, step - phase3From)
          : learningRate({ lr: recipe.phase4.lr, warmupSteps: 0, totalSteps: Math.max(1, steps - recipe.phase4.from), minRatio: 0.1 }, step - recipe.phase4.from);
  const { vocab } = data;

  // fixed held-out evaluation sets
  const erng = new Rng(seed + 777);
  const BOS = data.bos;
  const evalSets: EvalSet[] = [
    { name: 'shakespeare_val', batches: [rowsToBatch(consecutiveWindows(text.heldOut, 16, cfg.n_ctx, [BOS]), vocab, BOS)] },
  ];
  const indRows: number[][] = [];
  const indFrom: number[] = [];
  for (let i = 0; i < 32; i++) {
    const { tokens, span } = repeatedRandomTokens(erng, recipe.wholeVocabulary ? wholeVocabulary(cfg) : data.pool, { minSpan: 20, maxSpan: 40 });
    indRows.push([BOS, ...tokens]);
    indFrom.push(span + 1);
  }
  evalSets.push({ name: 'induction_2nd_half', batches: [rowsToBatch(indRows, vocab, BOS, indFrom)] });
  const ioiRows: number[][] = [];
  const ioiFrom: number[] = [];
  for (let i = 0; i < 64; i++) {
    const p = randomIoiPrompt(erng, { names: IOI_HELDOUT_NAMES });
    const row = [BOS, ...tok.encode(p.prompt), ...tok.encode(p.answer)];
    ioiRows.push(row);
    ioiFrom.push(row.length - 2);
  }
  evalSets.push({ name: 'ioi_heldout_answer', batches: [rowsToBatch(ioiRows, vocab, BOS, ioiFrom)] });

  // the recipe's phases, as recorded in the trainer state and the training summary
  const phases = {
    recipe: recipeName,
    phase0: { to: triggerRowsTo, lr: TRIGGER_LR, weights: weights.phase0, triggerRows: { batch: mix.triggerBatch, ctx: mix.triggerCtx } },
    phase1: { weights: weights.phase1, ...recipe.fromPhase1 },
    phase2: { from: phase2From, weights: weights.phase2 },
    phase3: { from: phase3From, weights: weights.phase3 },
    ...(recipe.phase4 ? { phase4: recipe.phase4 } : {}),
    ...(recipe.lazyEmbeddingFrom !== undefined ? { lazyEmbeddingFrom: recipe.lazyEmbeddingFrom } : {}),
    ioiWordNames: { from: recipe.ioiWordNamesFrom, fraction: IOI_WORD_NAMES },
  };
  const inductionPool = recipe.wholeVocabulary ? {} : { inductionPool: Array.from(data.pool) };
  const log = (l: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${l}`);
  log(`embedded model (recipe ${recipeName}): ${cfg.n_layers} layers, d_model ${cfg.d_model}, ${cfg.n_heads} heads, n_ctx ${cfg.n_ctx}; ${vocab.nUnseen > 0 ? `${vocab.seen.length} seen tokens (${vocab.nUnseen} unseen share one row)` : `${vocab.nClasses} embedding rows (every token its own)`}`);
  const res = await train({
    cfg, vocab, batchAt, steps, seed, lr, lrAt, lazyEmbeddingFrom: recipe.lazyEmbeddingFrom, sinusoidalPositions: 0.05, initStd: 0.1, untied,
    adamw: { weightDecay: 0.1, beta2: 0.98 }, clipNorm: 1, evalSets, evalEvery: 250, logEvery: 50,
    outDir: work, checkpointEvery: 250, resume: args.has('resume'), threads: args.number('threads', 0, { integer: true, min: 0 }),
    onEval: async (step, params) => {
      // the circuits so far, through the workbench API (a copy of the weights; training is unaffected)
      const m = await HookedTransformer.fromWeights(cfg, await toTransformerWeights(cfg, vocab, cloneParams(params)), { tokenizer: tok, threads: 1 });
      log(`probe step ${step}: ${await embeddedProbe(m)}`);
      await m.dispose();
    },
    exportOptions: { dtype }, log, info: { mix, ...phases, ...inductionPool },
  });

  // replace the previous export, keeping the hand-written model card (README.md)
  await mkdir(out, { recursive: true });
  for (const f of await readdir(out)) if (f !== 'README.md') await rm(join(out, f), { recursive: true, force: true });
  await exportHfCheckpoint(out, cfg, vocab, res.params, { dtype, metadata: { producer: 'lensboard training/embedded.ts', recipe: recipeName, steps: String(res.step), seed: String(seed) } });
  if (!recipe.wholeVocabulary) await writeFile(join(out, 'training_vocab.json'), JSON.stringify({ seen_tokens: Array.from(vocab.seen), induction_pool: Array.from(data.pool) }) + '\n');
  const last = res.evals[res.evals.length - 1];
  const tail = res.trainLosses.slice(-50);
  const summary = {
    config: cfg, untied_unembedding: untied, parameters_trained: countParams(res.params), steps: res.step, seed, lr, mix, ...phases,
    tokens: res.tokens, wall_seconds: Math.round(res.wallSeconds), cpu_seconds: Math.round(res.cpuSeconds), tokens_per_second_last_session: Math.round(res.tokensPerSecond),
    final_train_loss_mean_last_50_steps: tail.reduce((a, b) => a + b.loss, 0) / tail.length,
    final_eval: last?.losses, evals: res.evals,
  };
  await writeFile(join(out, 'training_summary.json'), JSON.stringify(summary, null, 2) + '\n');
  log(`wrote ${out} (${res.step} steps, ${Math.round(res.wallSeconds)} s, ${Math.round(res.tokensPerSecond)} tok/s)`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    console.error(e instanceof Error ? e.message : e);
    process.exit(1);
  });
}
