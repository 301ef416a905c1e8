/** Job handlers of the analysis endpoints: logit lens, ablations and head sweeps, activation and attribution patching, input saliency, head detection, IOI, circuits from the weights. */
import type { HookedTransformer } from '../../hooks/HookedTransformer.ts';
import { blockHook, type BlockHookSuffix, type HookName } from '../../hooks/hookPoints.ts';
import type { DifferentiableMetric } from '../../hooks/gradients.ts';
import type { Tensor } from '../../hooks/tensor.ts';
import {
  ablationSpecs, detectHead, directLogitAttribution, generateRepeatedTokens, getActPatchAttnHeadOutAllPos, getActPatchAttnHeadOutByPos,
  getActPatchAttnOut, getActPatchMlpOut, getActPatchResidPre, getAttrPatchAttnHeadOutAllPos, getAttrPatchAttnHeadOutByPos, getAttrPatchAttnOut,
  getAttrPatchMlpOut, getAttrPatchResidPre, headAblationSweep, inputSaliency, ioiDataset, logitLensFromCache, lossByPosition,
  logitDiffMetric, lossMetric, normalisedMetric, tokenLogprobMetric, tokenProbMetric, withModel, type AblationTargets, type HeadName,
  type LogitLensResult as LibLogitLens,
} from '../../hooks/analysis/index.ts';
import type {
  AblateRequest, AblateResult, AblateSweepRequest, AblateSweepResult, AblationMetricSpec, HeadsDetectRequest, HeadsDetectResult, IoiRequest, IoiResult, LogitLensRequest, LogitLensResult, PatchKind, PatchRequest,
  PatchResult, SaliencyRequest, SaliencyResult,
} from '../schemas.ts';
import { checkMemory, dlaFloatsPerToken, engineBytesPerToken, F32, rowsPerStep, type MemoryPart } from '../../services/common/budget.ts';
import { UserError, type JobContext, type JobHandler } from '../../services/context.ts';
import { buildMetric, checkIndex, checkSize, checkSweep, grid, passProgress, preparePrompt, resolvePos, strOf, strTokens, tokenId, userCall } from '../../services/common/requests.ts';
import { nest, range } from '../../services/common/select.ts';

/** The ablation source of a request; resample's reference prompts must have the prompt's token length. */
function ablationSource(model: HookedTransformer, p: { mode: 'zero' | 'mean' | 'resample'; reference?: string[]; seed: number }, pos: number) {
  if (p.reference && p.mode !== 'zero') {
    const ref = userCall('reference', () => model.prepareInput(p.reference!));
    const lengths = ref.attentionMask ? ref.attentionMask.map((r) => r.reduce((a, b) => a + b, 0)) : ref.tokens.map((r) => r.length);
    if (p.mode === 'resample' && lengths.some((n) => n !== pos)) {
      throw new UserError(`reference: resample needs reference prompts of the prompt's length (${pos} tokens); got ${lengths.join(', ')}`);
    }
  }
  return { kind: p.mode, ...(p.reference ? { reference: p.reference } : {}), seed: p.seed };
}

// ───────────────────────────── POST /api/logit-lens ─────────────────────────────

export const logitLens: JobHandler<LogitLensRequest, LogitLensResult> = async (model, p, ctx) => {
  const { n_layers, d_model, d_vocab } = model.cfg;
  const { tokens } = preparePrompt(model, p.prompt, p);
  const targets = (p.targets ?? []).map((t, i) => tokenId(model, `targets[${i}]`, t));
  const pos = tokens[0].length;
  const L = n_layers * (p.inclMid ? 2 : 1) + 1;
  const k = Math.min(p.topK, d_vocab);
  checkSize(L * pos * (k * 2 + targets.length * 3), ctx, 'use a shorter prompt, a smaller topK or fewer targets');
  // The residual streams are cached once; the unembedding runs over a few positions at a time ([L · positions, d_vocab]
  // logits, kept in JavaScript too when targets are tracked).
  const positionsPerStep = rowsPerStep(ctx, {
    fixed: [
      { what: `cached residual streams ${L} × ${pos} × ${d_model} floats`, bytes: L * pos * d_model * F32 },
      { what: `onnxruntime working memory for ${pos} tokens`, bytes: pos * engineBytesPerToken(model.cfg, pos) },
    ],
    perRow: [{ what: `logits of ${L} residual streams × ${d_vocab} floats per position${targets.length ? ' (×3 with targets)' : ' (×2)'}`, bytes: L * d_vocab * F32 * (targets.length ? 3 : 2) }],
    rowTokens: L, rows: pos,
  }, 'use a shorter prompt');
  const names: HookName[] = [];
  for (let l = 0; l < n_layers; l++) {
    names.push(blockHook(l, 'hook_resid_pre'));
    if (p.inclMid) names.push(blockHook(l, 'hook_resid_mid'));
  }
  names.push(blockHook(n_layers - 1, 'hook_resid_post'), 'ln_final.hook_scale');
  ctx.checkCancelled();
  const [, raw] = await model.runWithCache(tokens, { namesFilter: names, returnType: 'none' });
  const cache = withModel(raw, model);
  let labels: string[] = [];
  const top: LogitLensResult['top'] = [];
  const planes = targets.map(() => ({ prob: [] as number[][], rank: [] as number[][], logit: [] as number[][] })); // [label][pos]
  for (let p0 = 0; p0 < pos; p0 += positionsPerStep) {
    ctx.checkCancelled();
    const p1 = Math.min(pos, p0 + positionsPerStep);
    // One unembedding for the top tokens and every target.
    const lens: LibLogitLens = await logitLensFromCache(cache, tokens, {
      inclMid: p.inclMid, applyLn: p.applyLn, topK: k, targets, positions: range(p1 - p0).map((i) => p0 + i),
    });
    labels = lens.labels;
    const P = p1 - p0;
    for (let l = 0; l < L; l++) {
      top[l] ??= [];
      for (let q = 0; q < P; q++) {
        const cands = [];
        for (let j = 0; j < k; j++) {
          const at = (l * P + q) * k + j;
          const token = lens.topTokens.data[at];
          cands.push({ token, str: strOf(model, token), prob: lens.topProbs.data[at] });
        }
        top[l].push(cands);
      }
    }
    (lens.targets ?? []).forEach((r, i) => {
      for (const key of ['prob', 'rank', 'logit'] as const) {
        for (let l = 0; l < L; l++) (planes[i][key][l] ??= []).push(...r[key].data.subarray(l * P, (l + 1) * P)); // [label, 1, P]
      }
    });
    ctx.progress(p1, pos, 'positions');
  }
  const tracked: LogitLensResult['targets'] = planes.map((pl, i) => ({ token: targets[i], str: strOf(model, targets[i]), ...pl }));
  return { tokens: tokens[0], strTokens: strTokens(model, tokens[0]), labels, positions: range(pos), top, targets: tracked };
};

// ───────────────────────────── POST /api/ablate, /api/ablate/sweep ─────────────────────────────

/** Upper bound of the in-graph masks and replacement values of a set of ablations on one prompt ([1, pos, …] per hook). */
function ablationMaskBytes(model: HookedTransformer, t: AblationTargets, pos: number): number {
  const { d_model, d_head, n_heads, d_mlp } = model.cfg;
  const layers = (xs: readonly { layer: number }[] = []) => new Set(xs.map((x) => x.layer)).size;
  return 2 * F32 * pos * (layers(t.heads) * n_heads * d_head + layers(t.neurons) * d_mlp + layers(t.positions) * d_model);
}

/** Per variant row of a batched sweep or patching pass: its tokens' working memory and its logits (one position, or all for a loss). */
function variantRow(model: HookedTransformer, pos: number, positioned: boolean): MemoryPart[] {
  const V = model.cfg.d_vocab;
  return [
    { what: `onnxruntime working memory for ${pos} tokens per variant`, bytes: pos * engineBytesPerToken(model.cfg, pos) },
    { what: `intervention mask and value per variant`, bytes: 2 * pos * model.cfg.d_model * F32 },
    positioned
      ? { what: `logits 1 × ${V} floats per variant`, bytes: V * F32 }
      : { what: `logits ${pos} × ${V} floats per variant (the loss reads every position)`, bytes: pos * V * F32 },
  ];
}

export const ablate: JobHandler<AblateRequest, AblateResult> = async (model, p, ctx) => {
  const { n_layers, n_heads, d_mlp } = model.cfg;
  const { tokens } = preparePrompt(model, p.prompt, p);
  const pos = tokens[0].length;
  const metric = buildMetric(model, p.metric, tokens);
  const targets = {
    heads: [] as { layer: number; head: number }[],
    neurons: [] as { layer: number; neuron: number }[],
    positions: [] as { layer: number; pos: number }[],
  } satisfies AblationTargets;
  p.ablations.forEach((a, i) => {
    const f = `ablations[${i}]`;
    checkIndex(`${f}.layer`, a.layer, n_layers, 'n_layers');
    if (a.kind === 'head') {
      checkIndex(`${f}.head`, a.head, n_heads, 'n_heads');
      targets.heads.push({ layer: a.layer, head: a.head });
    } else if (a.kind === 'neuron') {
      checkIndex(`${f}.neuron`, a.neuron, d_mlp, 'd_mlp');
      targets.neurons.push({ layer: a.layer, neuron: a.neuron });
    } else {
      targets.positions.push({ layer: a.layer, pos: resolvePos(`${f}.position`, a.position, pos) });
    }
  });
  const source = ablationSource(model, p, pos);
  checkMemory(ctx, [
    { what: `logits ${pos} × ${model.cfg.d_vocab} floats`, bytes: pos * model.cfg.d_vocab * F32 },
    { what: `intervention masks and values of ${p.ablations.length} ablations`, bytes: ablationMaskBytes(model, targets, pos) },
    { what: `onnxruntime working memory for ${pos} tokens`, bytes: pos * engineBytesPerToken(model.cfg, pos) },
  ], 'use a shorter prompt');
  ctx.checkCancelled();
  const specs = await ablationSpecs(model, tokens, targets, source);
  ctx.progress(1, 3, 'runs');
  ctx.checkCancelled();
  const clean = metric.fn(await model.forward(tokens));
  ctx.progress(2, 3, 'runs');
  ctx.checkCancelled();
  const ablated = metric.fn(await model.forward(tokens, { interventions: specs }));
  ctx.progress(3, 3, 'runs');
  return { tokens: tokens[0], strTokens: strTokens(model, tokens[0]), metric: metric.echo, clean, ablated, delta: ablated - clean };
};

export const ablateSweep: JobHandler<AblateSweepRequest, AblateSweepResult> = async (model, p, ctx) => {
  const { n_layers, n_heads } = model.cfg;
  const { tokens } = preparePrompt(model, p.prompt, p);
  const pos = tokens[0].length;
  const metric = buildMetric(model, p.metric, tokens);
  const layers = p.layers ?? range(n_layers);
  layers.forEach((l, i) => checkIndex(`layers[${i}]`, l, n_layers, 'n_layers'));
  if (new Set(layers).size !== layers.length) throw new UserError('layers: each layer may be listed once');
  const heads = layers.flatMap((layer) => range(n_heads).map((head) => ({ layer, head })));
  checkSweep(heads.length, pos, ctx, 'sweep fewer layers or use a shorter prompt');
  const source = ablationSource(model, p, pos);
  const chunkSize = rowsPerStep(ctx, {
    fixed: [{ what: `clean logits ${pos} × ${model.cfg.d_vocab} floats`, bytes: pos * model.cfg.d_vocab * F32 }],
    perRow: variantRow(model, pos, p.metric.kind !== 'loss'),
    rowTokens: pos, rows: heads.length, requested: p.chunkSize ?? 32,
  }, 'use a shorter prompt');
  ctx.checkCancelled();
  const clean = metric.fn(await model.forward(tokens));
  ctx.checkCancelled();
  const scores = await headAblationSweep(model, tokens, metric.fn, {
    ...source, heads, chunkSize,
    onProgress: passProgress(ctx, 0, undefined, 'heads'),
  });
  const values = layers.map((l) => range(n_heads).map((h) => scores.get(l, h)));
  return {
    tokens: tokens[0], strTokens: strTokens(model, tokens[0]), metric: metric.echo, layers, heads: range(n_heads), clean,
    values, delta: values.map((row) => row.map((v) => v - clean)),
  };
};

// ───────────────────────────── POST /api/patch ─────────────────────────────

const PATCHERS = {
  resid_pre: { fn: getActPatchResidPre, act: 'hook_resid_pre', dims: ['layer', 'pos'] },
  attn_out: { fn: getActPatchAttnOut, act: 'hook_attn_out', dims: ['layer', 'pos'] },
  mlp_out: { fn: getActPatchMlpOut, act: 'hook_mlp_out', dims: ['layer', 'pos'] },
  head_out_all_pos: { fn: getActPatchAttnHeadOutAllPos, act: 'attn.hook_z', dims: ['layer', 'head'] },
  head_out_by_pos: { fn: getActPatchAttnHeadOutByPos, act: 'attn.hook_z', dims: ['layer', 'pos', 'head'] },
} as const satisfies Record<PatchKind, { fn: unknown; act: BlockHookSuffix; dims: readonly ('layer' | 'pos' | 'head')[] }>;

/**
 * onnxruntime's working memory for a forward and backward pass over `pos` tokens: the forward's (engineBytesPerToken),
 * the forward values the backward pass reads, and the gradients it makes, about three forwards' worth.
 */
function backwardWorkingMemory(model: HookedTransformer, pos: number): MemoryPart {
  return { what: `onnxruntime working memory of a forward and backward pass over ${pos} tokens`, bytes: 3 * pos * engineBytesPerToken(model.cfg, pos) };
}

/**
 * What activation and attribution patching share: the prompts, the kinds, the memory plan (activation patching: its
 * variants per step; attribution patching: one forward and backward pass, checked against the budget), the metric
 * normalised on the clean and corrupted runs, and the clean cache.
 */
async function patchSetup(model: HookedTransformer, p: PatchRequest, ctx: JobContext, method: PatchResult['method']) {
  const { n_layers, n_heads } = model.cfg;
  const clean = userCall('clean', () => model.prepareInput(p.clean as never, { prependBos: p.prependBos })).tokens;
  const corrupted = userCall('corrupted', () => model.prepareInput(p.corrupted as never, { prependBos: p.prependBos })).tokens;
  const pos = clean[0].length;
  if (corrupted[0].length !== pos) {
    throw new UserError(`corrupted: the clean prompt has ${pos} tokens and the corrupted prompt ${corrupted[0].length}; they must have the same token length`);
  }
  const kinds = [...new Set(p.kinds)];
  const sizes: Record<PatchKind, number> = {
    resid_pre: n_layers * pos, attn_out: n_layers * pos, mlp_out: n_layers * pos, head_out_all_pos: n_layers * n_heads, head_out_by_pos: n_layers * pos * n_heads,
  };
  const total = kinds.reduce((a, k) => a + sizes[k], 0);
  if (method === 'activation') checkSweep(total, pos, ctx, 'ask for fewer kinds (head_out_by_pos is the largest) or use shorter prompts');
  checkSize(total, ctx, 'ask for fewer kinds or use shorter prompts');
  const metric = buildMetric(model, p.metric, clean);
  const names = [...new Set(kinds.flatMap((k) => range(n_layers).map((l) => blockHook(l, PATCHERS[k].act))))];
  const V = model.cfg.d_vocab;
  const cacheBytes = names.length * pos * model.cfg.d_model * F32;
  const fixed: MemoryPart[] = [
    { what: `the clean run's cache of ${names.length} hook points × ${pos} × ${model.cfg.d_model} floats`, bytes: cacheBytes },
    { what: `clean and corrupted logits 2 × ${pos} × ${V} floats`, bytes: 2 * pos * V * F32 },
  ];
  let chunkSize: number | undefined;
  if (method === 'activation') {
    chunkSize = rowsPerStep(ctx, {
      fixed, perRow: variantRow(model, pos, true), rowTokens: pos, rows: Math.max(...kinds.map((k) => sizes[k])), requested: p.chunkSize ?? 32,
    }, 'use shorter prompts');
  } else {
    checkMemory(ctx, [
      ...fixed,
      { what: `the corrupted run's cache of the same hook points and their gradients`, bytes: 2 * cacheBytes },
      backwardWorkingMemory(model, pos),
    ], 'use shorter prompts or ask for fewer kinds');
  }
  ctx.checkCancelled();
  const [cleanLogits, cache] = await model.runWithCache(clean, { namesFilter: names });
  const cleanValue = metric.fn(cleanLogits);
  ctx.checkCancelled();
  const corruptedValue = metric.fn(await model.forward(corrupted));
  if (!(Number.isFinite(cleanValue) && Number.isFinite(corruptedValue)) || cleanValue === corruptedValue) {
    throw new UserError(
      `metric: the clean and corrupted runs give logit differences ${cleanValue} and ${corruptedValue}; the normalised metric needs them to differ (choose other prompts or tokens)`,
    );
  }
  const normalised = normalisedMetric(metric.fn, cleanValue, corruptedValue);
  const answer = (method: PatchResult['method'], results: PatchResult['results']): PatchResult => ({
    cleanTokens: clean[0], corruptedTokens: corrupted[0], cleanStrTokens: strTokens(model, clean[0]), corruptedStrTokens: strTokens(model, corrupted[0]),
    metric: metric.echo, clean: cleanValue, corrupted: corruptedValue, method, results,
  });
  return { corrupted, kinds, sizes, total, names, cache, normalised, answer, chunkSize };
}

export const patch: JobHandler<PatchRequest, PatchResult> = async (model, p, ctx) => {
  const { corrupted, kinds, sizes, total, cache, normalised, answer, chunkSize } = await patchSetup(model, p, ctx, 'activation');
  const results: PatchResult['results'] = [];
  let done = 0;
  for (const kind of kinds) {
    ctx.checkCancelled();
    const t = await PATCHERS[kind].fn(model, corrupted, cache, normalised, {
      chunkSize,
      onProgress: passProgress(ctx, done, total, kind),
    });
    done += sizes[kind];
    results.push({ kind, dims: [...PATCHERS[kind].dims], values: nest(t.data, t.shape) as number[][] | number[][][] });
  }
  return answer('activation', results);
};

// ───────────────────────────── POST /api/attribution-patch ─────────────────────────────

const ATTRIBUTORS = {
  resid_pre: getAttrPatchResidPre,
  attn_out: getAttrPatchAttnOut,
  mlp_out: getAttrPatchMlpOut,
  head_out_all_pos: getAttrPatchAttnHeadOutAllPos,
  head_out_by_pos: getAttrPatchAttnHeadOutByPos,
} as const satisfies Record<PatchKind, unknown>;

/** Attribution patching (one forward + backward pass of the corrupted prompt) for the kinds of /api/patch, in its shape and units. */
export const attributionPatch: JobHandler<PatchRequest, PatchResult> = async (model, p, ctx) => {
  const { corrupted, kinds, names, cache, normalised, answer } = await patchSetup(model, p, ctx, 'attribution');
  ctx.progress(0, 1, 'forward and backward pass of the corrupted prompt');
  const [, corruptedCache] = await model.runWithCache(corrupted, { returnType: 'none', inclBwd: true, backwardFrom: normalised, namesFilter: names });
  const results: PatchResult['results'] = [];
  for (const kind of kinds) {
    ctx.checkCancelled();
    const t = await ATTRIBUTORS[kind](model, corrupted, cache, normalised, { corruptedCache });
    results.push({ kind, dims: [...PATCHERS[kind].dims], values: nest(t.data, t.shape) as number[][] | number[][][] });
  }
  ctx.progress(1, 1);
  return answer('attribution', results);
};

// ───────────────────────────── POST /api/saliency ─────────────────────────────

/** Gradient × input or integrated gradients of the metric per prompt token. */
export const saliency: JobHandler<SaliencyRequest, SaliencyResult> = async (model, p, ctx) => {
  const { tokens } = preparePrompt(model, p.prompt, p);
  const metric = buildMetric(model, p.metric, tokens);
  const baseline = p.baseline === 'zero' ? 'zero' : tokenId(model, 'baseline', p.baseline);
  const pos = tokens[0].length;
  const V = model.cfg.d_vocab;
  // One forward and backward pass per point on the path (copies of the prompt, as many per pass as fit).
  const perRow: MemoryPart[] = [
    backwardWorkingMemory(model, pos),
    { what: `the embeddings on the path, their mask and gradient 3 × ${pos} × ${model.cfg.d_model} floats`, bytes: 3 * pos * model.cfg.d_model * F32 },
    p.metric.kind === 'loss'
      ? { what: `logits and their gradient 2 × ${pos} × ${V} floats (the loss reads every position)`, bytes: 2 * pos * V * F32 }
      : { what: `logits and their gradient 2 × ${V} floats`, bytes: 2 * V * F32 },
  ];
  const rowsPerPass = rowsPerStep(ctx, { fixed: [], perRow, rowTokens: pos, rows: p.method === 'integrated_gradients' ? p.steps : 1, requested: 32 }, 'use a shorter prompt');
  const r = await inputSaliency(model, tokens, metric.fn, {
    method: p.method, steps: p.steps, baseline, rowsPerPass,
    onProgress: passProgress(ctx, 0, undefined, 'points on the path'),
  });
  return {
    tokens: tokens[0], strTokens: strTokens(model, tokens[0]), metric: metric.echo, method: p.method, steps: r.steps,
    value: r.value, baselineValue: r.baselineValue, scores: Array.from(r.scores.data),
  };
};

// ───────────────────────────── POST /api/heads/detect ─────────────────────────────

export const headsDetect: JobHandler<HeadsDetectRequest, HeadsDetectResult> = async (model, p, ctx) => {
  const { n_layers, n_heads, n_ctx } = model.cfg;
  let tokens: number[][];
  if (p.repeated) {
    const r = p.repeated;
    tokens = userCall('repeated.seqLen', () => generateRepeatedTokens(model.cfg, { seqLen: r.seqLen, batch: r.batch, seed: r.seed, pool: model.randomTokenPool ?? undefined }));
  } else {
    tokens = preparePrompt(model, p.prompt!, p).tokens;
  }
  const n = tokens[0].length;
  if (n < 2 || n >= n_ctx) {
    throw new UserError(`${p.repeated ? 'repeated.seqLen' : 'prompt'}: head detection needs 2..${n_ctx - 1} tokens (fewer than n_ctx = ${n_ctx}); got ${n}`);
  }
  const kinds = [...new Set(p.kinds)];
  const steps = kinds.length + (p.repeated ? 1 : 0);
  const patterns = range(n_layers).map((l) => blockHook(l, 'attn.hook_pattern'));
  const rows = tokens.length;
  checkMemory(ctx, [
    { what: `cached patterns ${n_layers} layers × ${rows} × ${n_heads} heads × ${n}² floats`, bytes: n_layers * rows * n_heads * n * n * F32 },
    { what: `onnxruntime working memory for ${rows * n} tokens`, bytes: rows * n * engineBytesPerToken(model.cfg, n) },
    ...(p.repeated ? [{ what: `logits for the loss ${rows} × ${n} × ${model.cfg.d_vocab} floats`, bytes: rows * n * model.cfg.d_vocab * F32 }] : []),
  ], p.repeated ? 'use a smaller repeated.batch or seqLen' : 'use a shorter prompt');
  ctx.checkCancelled();
  // One sequence: one run, its cache shared by every kind. Several: detectHead averages over them.
  const cache = tokens.length === 1 ? (await model.runWithCache(tokens, { namesFilter: patterns, returnType: 'none' }))[1] : undefined;
  const scores: HeadsDetectResult['scores'] = [];
  for (const kind of kinds) {
    ctx.checkCancelled();
    const name = `${kind}_head` as HeadName;
    const t = tokens.length === 1 ? await detectHead(model, tokens[0], name, { cache }) : await detectHead(model, tokens, name);
    scores.push({ kind, values: grid(t) });
    ctx.progress(scores.length, steps, kind);
  }
  let loss: HeadsDetectResult['lossByPosition'] = null;
  if (p.repeated) {
    ctx.checkCancelled();
    const seqLen = p.repeated.seqLen;
    const perPos = Array.from((await lossByPosition(model, tokens)).data); // [pos - 1]; entry q predicts token q + 1 (BOS at 0)
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    loss = { loss: perPos, firstRepeat: mean(perPos.slice(0, seqLen)), secondRepeat: mean(perPos.slice(seqLen, 2 * seqLen)) };
    ctx.progress(steps, steps, 'loss');
  }
  return {
    tokens,
    strTokens: model.tokenizer ? tokens.map((row) => model.tokenizer!.toStrTokens(row)) : null,
    layers: range(n_layers),
    heads: range(n_heads),
    scores,
    lossByPosition: loss,
  };
};

// ───────────────────────────── POST /api/ioi ─────────────────────────────

/** The hook points directLogitAttribution caches, in floats per token. */

export const ioi: JobHandler<IoiRequest, IoiResult> = async (model, p, ctx) => {
  const { n_layers, n_heads, n_ctx, d_vocab } = model.cfg;
  const tok = model.tokenizer;
  if (!tok) throw new UserError('this model was loaded without tokenizer files; /api/ioi needs a tokenizer');
  const prependBos = p.prependBos ?? model.cfg.default_prepend_bos;
  let prompts: { text: string; io: string; s: string }[];
  let ds: { tokens: number[][]; attentionMask: number[][]; ioTokens: number[]; sTokens: number[]; endPos: number[] };
  ctx.checkCancelled();
  if (p.prompts) {
    prompts = p.prompts;
    const one = (field: string, w: string) => {
      const ids = tok.encode(` ${w}`);
      if (ids.length !== 1) throw new UserError(`${field}: ' ${w}' is ${ids.length} tokens; IOI names must be single tokens with a leading space`);
      return ids[0];
    };
    const ioTokens = prompts.map((q, i) => one(`prompts[${i}].io`, q.io));
    const sTokens = prompts.map((q, i) => one(`prompts[${i}].s`, q.s));
    const { tokens, attentionMask } = tok.toTokens(prompts.map((q) => q.text), { prependBos, paddingSide: 'right' });
    if (tokens[0].length > n_ctx) throw new UserError(`prompts: the longest prompt has ${tokens[0].length} tokens; the model's context is n_ctx = ${n_ctx}`);
    const endPos = attentionMask.map((row) => row.reduce((a, b) => a + b, 0) - 1);
    ds = { tokens, attentionMask, ioTokens, sTokens, endPos };
  } else {
    const gen = userCall('n', () => ioiDataset(tok, { n: p.n, seed: p.seed, order: p.order === 'both' ? 'mixed' : p.order, prependBos }));
    prompts = gen.prompts.map((q) => ({ text: q.prompt, io: q.io, s: q.s }));
    ds = gen;
  }
  // What ioiHeadAttribution does, a few prompts at a time: the logit difference is read at each prompt's last token
  // only (logits [rows, 1, d_vocab]), and each step caches what the attribution needs for its prompts alone.
  const n = ds.tokens.length;
  const pos = ds.tokens[0].length;
  const step = rowsPerStep(ctx, {
    fixed: [],
    perRow: [
      { what: `cached activations for attribution, ${pos} tokens × ${dlaFloatsPerToken(model)} floats per prompt`, bytes: pos * dlaFloatsPerToken(model) * F32 },
      { what: `onnxruntime working memory for ${pos} tokens per prompt`, bytes: pos * engineBytesPerToken(model.cfg, pos) },
      { what: `logits 1 × ${d_vocab} floats per prompt`, bytes: d_vocab * F32 },
    ],
    rowTokens: pos, rows: n,
  }, 'use shorter prompts');
  const diffs: number[] = [];
  const headSum = new Float64Array(n_layers * n_heads);
  for (let b0 = 0; b0 < n; b0 += step) {
    ctx.checkCancelled();
    const b1 = Math.min(n, b0 + step);
    const rows = range(b1 - b0).map((i) => b0 + i);
    const len = Math.max(...rows.map((b) => ds.endPos[b])) + 1; // right-padded: this step's longest prompt
    const mask = rows.map((b) => ds.attentionMask[b].slice(0, len));
    const padded = mask.some((r) => r.some((m) => m === 0));
    const dla = await directLogitAttribution(model, rows.map((b) => ds.tokens[b].slice(0, len)), {
      correct: rows.map((b) => ds.ioTokens[b]), incorrect: rows.map((b) => ds.sTokens[b]), positions: rows.map((b) => ds.endPos[b]),
      ...(padded ? { attentionMask: mask } : {}),
    });
    diffs.push(...dla.logitDiff.data);
    const heads = dla.heads.data; // [rows, n_layers, n_heads]
    for (let r = 0; r < rows.length; r++) for (let i = 0; i < headSum.length; i++) headSum[i] += heads[r * headSum.length + i];
    ctx.progress(b1, n, 'prompts');
  }
  const headMean = Float32Array.from(headSum, (v) => v / n);
  return {
    prompts: prompts.map((q, i) => ({ text: q.text, io: q.io, s: q.s, logitDiff: diffs[i] })),
    meanLogitDiff: diffs.reduce((a, b) => a + b, 0) / n,
    accuracy: diffs.filter((d) => d > 0).length / n,
    layers: range(n_layers),
    heads: range(n_heads),
    headAttribution: nest(headMean, [n_layers, n_heads]) as number[][],
  };
};
