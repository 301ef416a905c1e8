/**
 * Ablations of attention heads, MLP neurons and residual positions — zero, mean (over a reference
 * dataset) and resample — as in-graph interventions, and batched sweeps that ablate a different
 * head (neuron, position) in each block of rows.
 */
import type { HookedTransformer, ModelInput } from '../HookedTransformer.ts';
import { blockHook, type HookName } from '../hookPoints.ts';
import { RESID_HOOKS, type InterventionSpec } from '../interventions.ts';
import { Rng } from '../random.ts';
import { Tensor } from '../tensor.ts';
import { runVariants, type BatchOptions, type LogitsMetric, type Variant, type VariantEdit } from './batchedRuns.ts';

export type AblationKind = 'zero' | 'mean' | 'resample';

export interface AblationSource {
  /** 'zero' (default), 'mean' (the reference dataset's mean activation) or 'resample' (another prompt's activation). */
  kind?: AblationKind;
  /** The reference dataset for 'mean' and 'resample' (default: the prompts being run). */
  reference?: ModelInput;
  /** 'mean': average per position instead of over positions too (the reference must have the prompts' length). */
  perPosition?: boolean;
  /** 'resample': seed for drawing which reference prompt each prompt takes its activation from. */
  seed?: number;
}

/** What to ablate: heads (at hook_z by default), neurons (mlp.hook_post) and residual positions. */
export interface AblationTargets {
  heads?: readonly { layer: number; head: number; positions?: number | readonly number[] }[];
  neurons?: readonly { layer: number; neuron: number; positions?: number | readonly number[] }[];
  positions?: readonly { layer: number; pos: number | readonly number[]; at?: 'resid_pre' | 'resid_mid' | 'resid_post' }[];
  /** Hook for heads: 'z' (default, TL's usual choice) or 'result'. */
  headsAt?: 'z' | 'result';
}

function checkKind(kind: string): asserts kind is AblationKind {
  if (!['zero', 'mean', 'resample'].includes(kind)) throw new Error(`ablation kind '${kind}' is not allowed; use 'zero', 'mean' or 'resample'`);
}

function checkIndex(what: string, i: number, n: number): void {
  if (!Number.isInteger(i) || i < 0 || i >= n) throw new Error(`${what} ${i} is out of range; allowed 0…${n - 1}`);
}

/**
 * The replacement value for each hook, for a run on `tokens` ([batch, pos]): 0, the reference mean
 * ([1, 1, ...] or [1, pos, ...] with perPosition), or per-prompt resampled activations [batch, pos, ...].
 */
export async function ablationValues(
  model: HookedTransformer,
  hooks: readonly HookName[],
  tokens: readonly (readonly number[])[],
  source: AblationSource = {},
): Promise<Map<HookName, number | Tensor>> {
  const kind = source.kind ?? 'zero';
  checkKind(kind);
  const out = new Map<HookName, number | Tensor>();
  if (kind === 'zero' || hooks.length === 0) {
    for (const h of hooks) out.set(h, 0);
    return out;
  }
  const ref = model.prepareInput(source.reference ?? tokens.map((r) => [...r]));
  const [, cache] = await model.runWithCache(ref.tokens, { namesFilter: [...new Set(hooks)], returnType: 'none', ...(ref.attentionMask ? { attentionMask: ref.attentionMask } : {}) });
  const pos = tokens[0].length;
  const refPos = ref.tokens[0].length;
  if ((kind === 'resample' || source.perPosition) && refPos !== pos) {
    throw new Error(`ablation '${kind}'${source.perPosition ? ' per position' : ''}: the reference prompts have ${refPos} tokens but the prompts have ${pos}; they must match`);
  }
  for (const h of new Set(hooks)) {
    const act = cache.get(h); // [R, pos, ...]
    if (kind === 'mean') {
      let m = act.mean(0, { keepdim: true });
      if (!source.perPosition) m = m.mean(1, { keepdim: true });
      out.set(h, m);
    } else {
      const R = act.shape[0];
      const rng = new Rng(source.seed ?? 0);
      const sameData = source.reference === undefined;
      const picks = tokens.map((_, b) => {
        if (sameData && R > 1) {
          const r = rng.int(0, R - 1);
          return r >= b ? r + 1 : r; // never the prompt itself
        }
        return rng.int(0, R);
      });
      out.set(h, act.select(0, picks));
    }
  }
  return out;
}

/** The hook and `where` for each ablation target. */
function targetEdits(model: HookedTransformer, targets: AblationTargets): { hook: HookName; where: VariantEdit['where'] }[] {
  const { n_layers, n_heads, d_mlp } = model.cfg;
  const edits: { hook: HookName; where: VariantEdit['where'] }[] = [];
  for (const t of targets.heads ?? []) {
    checkIndex('ablation: layer', t.layer, n_layers);
    checkIndex('ablation: head', t.head, n_heads);
    edits.push({ hook: blockHook(t.layer, targets.headsAt === 'result' ? 'attn.hook_result' : 'attn.hook_z'), where: { head: t.head, ...(t.positions !== undefined ? { pos: t.positions } : {}) } });
  }
  for (const t of targets.neurons ?? []) {
    checkIndex('ablation: layer', t.layer, n_layers);
    checkIndex('ablation: neuron', t.neuron, d_mlp);
    edits.push({ hook: blockHook(t.layer, 'mlp.hook_post'), where: { d_mlp: t.neuron, ...(t.positions !== undefined ? { pos: t.positions } : {}) } });
  }
  for (const t of targets.positions ?? []) {
    checkIndex('ablation: layer', t.layer, n_layers);
    edits.push({ hook: blockHook(t.layer, RESID_HOOKS[t.at ?? 'resid_pre']), where: { pos: t.pos } });
  }
  return edits;
}

/**
 * Interventions that ablate the targets in a run on `input` (pass them to forward/runWithCache as
 * `interventions`, with the same input): zero, mean or resample.
 */
export async function ablationSpecs(model: HookedTransformer, input: ModelInput, targets: AblationTargets, source: AblationSource = {}): Promise<InterventionSpec[]> {
  const { tokens } = model.prepareInput(input);
  const edits = targetEdits(model, targets);
  const values = await ablationValues(model, edits.map((e) => e.hook), tokens, source);
  return edits.map((e) => ({ hook: e.hook, where: e.where, value: values.get(e.hook)! }));
}

export interface SweepOptions extends AblationSource, BatchOptions {}

/** Runs one variant per target list with the ablation values of `source`. */
async function sweep(model: HookedTransformer, input: ModelInput, metric: LogitsMetric, targets: AblationTargets[], opts: SweepOptions): Promise<Float32Array> {
  const { tokens, attentionMask } = model.prepareInput(input, { attentionMask: opts.attentionMask });
  const perTarget = targets.map((t) => targetEdits(model, t));
  const values = await ablationValues(model, [...new Set(perTarget.flat().map((e) => e.hook))], tokens, opts);
  const variants: Variant[] = perTarget.map((edits) => edits.map((e) => ({ hook: e.hook, where: e.where, value: values.get(e.hook)! })));
  return runVariants(model, tokens, variants, metric, { ...opts, ...(attentionMask ? { attentionMask } : {}) });
}

/**
 * Ablates each attention head on its own (all of them by default) and returns the metric per head,
 * [n_layers, n_heads] (heads not in `heads` are NaN). Batched: chunkSize heads per forward pass.
 */
export async function headAblationSweep(
  model: HookedTransformer,
  input: ModelInput,
  metric: LogitsMetric,
  opts: SweepOptions & { heads?: readonly { layer: number; head: number }[]; at?: 'z' | 'result'; positions?: number | readonly number[] } = {},
): Promise<Tensor> {
  const { n_layers, n_heads } = model.cfg;
  const heads = opts.heads ?? Array.from({ length: n_layers * n_heads }, (_, i) => ({ layer: Math.floor(i / n_heads), head: i % n_heads }));
  const scores = await sweep(model, input, metric, heads.map((h) => ({ heads: [{ ...h, positions: opts.positions }], headsAt: opts.at })), opts);
  const out = Tensor.full([n_layers, n_heads], NaN);
  heads.forEach((h, i) => out.set(scores[i], h.layer, h.head));
  return out;
}

/** Ablates each neuron of `layer` on its own (all d_mlp by default); returns the metric per listed neuron, [neurons.length]. */
export async function neuronAblationSweep(
  model: HookedTransformer,
  input: ModelInput,
  metric: LogitsMetric,
  opts: SweepOptions & { layer: number; neurons?: readonly number[]; positions?: number | readonly number[] },
): Promise<Tensor> {
  const neurons = opts.neurons ?? Array.from({ length: model.cfg.d_mlp }, (_, i) => i);
  const scores = await sweep(model, input, metric, neurons.map((n) => ({ neurons: [{ layer: opts.layer, neuron: n, positions: opts.positions }] })), opts);
  return new Tensor(scores, [neurons.length]);
}

/** Ablates each position of the residual stream at `layer` (resid_pre by default) on its own; returns the metric per position, [pos]. */
export async function positionAblationSweep(
  model: HookedTransformer,
  input: ModelInput,
  metric: LogitsMetric,
  opts: SweepOptions & { layer: number; at?: 'resid_pre' | 'resid_mid' | 'resid_post' },
): Promise<Tensor> {
  const { tokens } = model.prepareInput(input, { attentionMask: opts.attentionMask });
  const pos = tokens[0].length;
  const targets = Array.from({ length: pos }, (_, p) => ({ positions: [{ layer: opts.layer, pos: p, at: opts.at }] }));
  return new Tensor(await sweep(model, input, metric, targets, opts), [pos]);
}
