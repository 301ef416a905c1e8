/**
 * A sparse autoencoder as a piece of the graph, spliced in at a hook point the way TransformerLens's
 * HookedSAETransformer (with SAELens's SAE) splices one: the hook value x goes in, flattened to d_in
 * (hook_z's heads), through the SAE's hook points
 *
 *   hook_sae_input     x                                   [batch, pos, d_in]
 *   hook_sae_acts_pre  (norm(x) - b_dec) W_enc + b_enc     [batch, pos, d_sae]
 *   hook_sae_acts_post the architecture's activation       [batch, pos, d_sae]
 *   hook_sae_recons    acts W_dec + b_dec                  [batch, pos, d_in]
 *   hook_sae_error     x - the reconstruction without hooks (only with the error term)
 *   hook_sae_output    reconstruction (+ error)            x's shape
 *
 * and what flows on is hook_sae_output. The same piece, with no hook points (PlainContext), is the
 * SAE's own encode/decode and the SAE inside the KV-cache decoding graph.
 */
import { saeHook, type HookName, type ModelHookName, type SaeHookSuffix } from '../../hookPoints.ts';
import type { GraphBuilder } from '../../onnx/builder.ts';

/** SAELens's architectures: ReLU (standard), TopK, JumpReLU, gated. */
export type SaeArchitecture = 'standard' | 'topk' | 'jumprelu' | 'gated';

/** SAELens's run-time normalisations of the input (expected_average_only_in is folded into the weights at load). */
export type SaeRuntimeNorm = 'none' | 'constant_norm_rescale' | 'layer_norm';

/** What the graph of an SAE depends on (not its weights, which are fed). */
export interface SaeGraphSpec {
  architecture: SaeArchitecture;
  d_in: number;
  d_sae: number;
  /** TopK's k. */
  k?: number;
  /** sae_in = x - b_dec (SAELens's apply_b_dec_to_input). */
  applyBDecToInput: boolean;
  normalize: SaeRuntimeNorm;
}

/** An SAE spliced at a hook point. */
export interface SaeSplice {
  hook: ModelHookName;
  spec: SaeGraphSpec;
  /** Whether hook_sae_output adds the error term, so that downstream sees the clean value (up to hooked edits). */
  useErrorTerm: boolean;
}

/** The weight tensors of each architecture, in the layout the graph is fed (`W_enc` transposed: [d_sae, d_in]). */
export const SAE_WEIGHTS: Record<SaeArchitecture, readonly SaeWeightName[]> = {
  standard: ['W_enc', 'b_enc', 'W_dec', 'b_dec'],
  topk: ['W_enc', 'b_enc', 'W_dec', 'b_dec'],
  jumprelu: ['W_enc', 'b_enc', 'W_dec', 'b_dec', 'threshold'],
  gated: ['W_enc', 'W_dec', 'b_dec', 'b_gate', 'b_mag', 'r_mag'],
};
export type SaeWeightName = 'W_enc' | 'b_enc' | 'W_dec' | 'b_dec' | 'threshold' | 'b_gate' | 'b_mag' | 'r_mag';

/** The dims each weight is fed with: W_enc feature-major [d_sae, d_in] (Wᵀ, see linear.ts), W_dec [d_sae, d_in] as SAELens stores it. */
export function saeWeightDims(spec: Pick<SaeGraphSpec, 'd_in' | 'd_sae'>, name: SaeWeightName): number[] {
  switch (name) {
    case 'W_enc': case 'W_dec': return [spec.d_sae, spec.d_in];
    case 'b_dec': return [spec.d_in];
    default: return [spec.d_sae];
  }
}

/** The feed name of an SAE weight: `blocks.1.hook_resid_post::sae.W_enc` (`sae.W_enc` for an SAE on its own). */
export function saeWeightKey(hook: string | null, name: SaeWeightName): string {
  return hook === null ? `sae.${name}` : `${hook}::sae.${name}`;
}

/** What the SAE piece needs from a graph context (GraphContext has it; so does the SAE's own standalone context). */
export interface SaeGraphContext {
  readonly b: GraphBuilder;
  hook(name: HookName, compute: (out: string) => void): string;
  /** Whether `name`'s value is asked for (cached, hooked, intervened on): it must then exist. */
  needs(name: HookName): boolean;
  /** Whether the value at `name` may be replaced or edited (hooked from JS, intervened on, added to). */
  replaced(name: HookName): boolean;
}

/** The SAE's weights as graph inputs, declared on first use. */
interface Weights {
  get(name: SaeWeightName): string;
}

function weightsOf(b: GraphBuilder, hook: string | null, spec: SaeGraphSpec): Weights {
  return { get: (name) => b.input(saeWeightKey(hook, name), 'float32', saeWeightDims(spec, name)) };
}

/** The run-time normalisation of x [..., d_in]: the normalised value and how to undo it on the output. */
function normalizeIn(b: GraphBuilder, spec: SaeGraphSpec, x: string): { x: string; undo: (y: string) => string } {
  switch (spec.normalize) {
    case 'none':
      return { x, undo: (y) => y };
    case 'constant_norm_rescale': {
      // SAELens: x · sqrt(d_in) / ‖x‖, and the output divided by the same coefficient.
      const coeff = b.div(b.f32(Math.sqrt(spec.d_in)), b.op('ReduceL2', [x, b.i64([-1])], { keepdims: { i: 1 } })); // [..., 1]
      return { x: b.mul(x, coeff), undo: (y) => b.div(y, coeff) };
    }
    case 'layer_norm': {
      // SAELens: (x - μ) / (σ + 1e-5) with torch's unbiased σ, and the output times σ plus μ.
      const mu = b.reduceMean(x, [-1], true); // [..., 1]
      const centred = b.sub(x, mu);
      const std = b.op('Sqrt', [b.div(b.reduceSum(b.mul(centred, centred), [-1], true), b.f32(spec.d_in - 1))]); // [..., 1]
      return { x: b.div(centred, b.add(std, b.f32(1e-5))), undo: (y) => b.add(b.mul(y, std), mu) };
    }
  }
}

/** sae_in [..., d_in] -> the pre-activations [..., d_sae] (gated: the magnitude path) and, for gated, the gate. */
function preActivations(b: GraphBuilder, spec: SaeGraphSpec, w: Weights, saeIn: string, out: string): { gate: string | null } {
  const projected = b.matmul(saeIn, b.transpose(w.get('W_enc'), [1, 0])); // [..., d_sae]
  if (spec.architecture !== 'gated') {
    b.add(projected, w.get('b_enc'), out);
    return { gate: null };
  }
  // Gated (Rajamanoharan et al.): gate = sae_in W_enc + b_gate; magnitude = sae_in (W_enc ⊙ exp(r_mag)) + b_mag,
  // which is the same projection scaled per feature.
  b.add(b.mul(projected, b.op('Exp', [w.get('r_mag')])), w.get('b_mag'), out);
  return { gate: b.add(projected, w.get('b_gate')) };
}

/** TopK's k largest pre-activations, through a ReLU: values and indices [..., k]. */
function topK(b: GraphBuilder, spec: SaeGraphSpec, pre: string): { values: string; indices: string } {
  const [values, indices] = b.opMulti('TopK', [pre, b.i64([spec.k!])], [b.tmp('topk_values'), b.tmp('topk_indices')], { axis: { i: -1 }, largest: { i: 1 }, sorted: { i: 0 } });
  return { values: b.op('Relu', [values]), indices };
}

/** The activation function: pre [..., d_sae] -> acts [..., d_sae] (TopK: from its values and indices). */
function activation(b: GraphBuilder, spec: SaeGraphSpec, w: Weights, pre: string, gate: string | null, top: { values: string; indices: string } | null, out: string): void {
  const zero = b.f32(0);
  switch (spec.architecture) {
    case 'standard':
      b.op('Relu', [pre], undefined, out);
      return;
    case 'topk':
      // SAELens's TopK: the k largest pre-activations, through a ReLU, every other feature 0.
      b.op('ScatterElements', [b.op('ConstantOfShape', [b.op('Shape', [pre])]), top!.indices, top!.values], { axis: { i: -1 } }, out);
      return;
    case 'jumprelu':
      // ReLU(pre) where pre > threshold, else 0.
      b.where(b.op('Greater', [pre, w.get('threshold')]), b.op('Relu', [pre]), zero, out);
      return;
    case 'gated':
      b.where(b.op('Greater', [gate!, zero]), b.op('Relu', [pre]), zero, out);
      return;
  }
}

/** The SAE's features after encoding: dense (the hook point's value), and for TopK its k values and indices. */
interface Encoded {
  /** [..., d_sae], or null when nothing needs the dense features (TopK decoding from `top`). */
  acts: string | null;
  /** TopK's values and indices [..., k], when they still describe the features (nothing replaced them). */
  top: { values: string; indices: string } | null;
  undo: (y: string) => string;
}

/**
 * features -> features W_dec + b_dec [..., d_in]. From TopK's k values and indices when given: the k
 * rows of W_dec are gathered and mixed (k·d_in per position instead of d_sae·d_in).
 */
function decodeInto(b: GraphBuilder, w: Weights, features: Encoded, out?: string): string {
  if (features.top) {
    const rows = b.gather(w.get('W_dec'), features.top.indices, 0); // [..., k, d_in]
    const mixed = b.squeeze(b.matmul(b.unsqueeze(features.top.values, [-2]), rows), [-2]); // [..., d_in]
    return b.add(mixed, w.get('b_dec'), out);
  }
  return b.add(b.matmul(features.acts!, w.get('W_dec')), w.get('b_dec'), out);
}

/**
 * encode: x [..., d_in] (already flattened) -> hook_sae_input, acts_pre, acts_post through `hook`.
 * `dense`: emit hook_sae_acts_post (else, for TopK, only its values and indices are made);
 * `sparse`: the decoder may read TopK's values and indices (hook_sae_acts_post is not replaced).
 */
function encode(
  ctx: SaeGraphContext,
  spec: SaeGraphSpec,
  w: Weights,
  x: string,
  hook: (suffix: SaeHookSuffix, compute: (out: string) => void) => string,
  opts: { dense: boolean; sparse: boolean },
): Encoded {
  const { b } = ctx;
  const input = hook('hook_sae_input', (out) => b.op('Identity', [x], undefined, out)); // [..., d_in]
  const norm = normalizeIn(b, spec, input);
  const saeIn = spec.applyBDecToInput ? b.sub(norm.x, w.get('b_dec')) : norm.x; // [..., d_in]
  let gate: string | null = null;
  const pre = hook('hook_sae_acts_pre', (out) => ({ gate } = preActivations(b, spec, w, saeIn, out))); // [..., d_sae]
  const top = spec.architecture === 'topk' ? topK(b, spec, pre) : null; // [..., k]
  const dense = opts.dense || top === null;
  const acts = dense ? hook('hook_sae_acts_post', (out) => activation(b, spec, w, pre, gate, top, out)) : null; // [..., d_sae]
  return { acts, top: opts.sparse ? top : null, undo: norm.undo };
}

/** Flattens a head axis: x [batch, pos, head, d] -> [batch, pos, head·d] (hook_z SAEs); else x itself. */
function flattenIn(b: GraphBuilder, x: string, rank: number): string {
  return rank === 3 ? x : b.reshape(x, [0, 0, -1]);
}

/**
 * Splices `splice`'s SAE at the value `x` of its hook point (of rank `rank`: 3, or 4 for a head axis
 * that the SAE reads flattened) and returns the value that flows on (hook_sae_output).
 */
export function spliceSae(ctx: SaeGraphContext, splice: SaeSplice, x: string, rank: number): string {
  const { b } = ctx;
  const { spec, hook: base } = splice;
  const w = weightsOf(b, base, spec);
  const name = (suffix: SaeHookSuffix) => saeHook(base, suffix);
  const hooked = (suffix: SaeHookSuffix, compute: (out: string) => void) => ctx.hook(name(suffix), compute);
  const unflatten = (y: string) => (rank === 3 ? y : b.op('Reshape', [y, b.op('Shape', [x])])); // [..., d_in] -> x's shape

  const flat = flattenIn(b, x, rank); // [batch, pos, d_in]
  const actsPost = name('hook_sae_acts_post');
  const features = encode(ctx, spec, w, flat, hooked, { dense: ctx.needs(actsPost) || ctx.replaced(actsPost), sparse: !ctx.replaced(actsPost) });
  const recons = hooked('hook_sae_recons', (out) => decodeInto(b, w, features, out)); // [batch, pos, d_in]
  const reconstruction = unflatten(features.undo(recons)); // x's shape
  if (!splice.useErrorTerm) return hooked('hook_sae_output', (out) => b.op('Identity', [reconstruction], undefined, out));

  // SAELens: the error term is x minus the reconstruction computed without hooks, so an edit to the
  // features changes the output by exactly the edit's decoded difference. Recomputed only when an
  // edit can make the two differ.
  const edited = (['hook_sae_input', 'hook_sae_acts_pre', 'hook_sae_acts_post', 'hook_sae_recons'] as const).some((s) => ctx.replaced(name(s)));
  let clean = reconstruction;
  if (edited) {
    const again = encode(ctx, spec, w, flat, plainValue(b), { dense: false, sparse: true });
    clean = unflatten(again.undo(decodeInto(b, w, again)));
  }
  const error = hooked('hook_sae_error', (out) => b.sub(x, clean, out)); // x's shape
  return hooked('hook_sae_output', (out) => b.add(reconstruction, error, out));
}

/** Names a value without a hook point (the SAE outside a hooked graph). */
function plainValue(b: GraphBuilder): (suffix: SaeHookSuffix, compute: (out: string) => void) => string {
  return (_suffix, compute) => {
    const out = b.tmp('sae');
    compute(out);
    return out;
  };
}

/**
 * The SAE on its own (`Sae.encode`, `Sae.decode`, `Sae.forward`), with the weights `sae.*` as inputs:
 * 'encode': `x` [n, d_in] -> `acts` [n, d_sae]; 'decode': `acts` -> `recons` = acts W_dec + b_dec
 * [n, d_in] (SAELens's decode without the run-time normalisation, which needs the encoded x);
 * 'forward': `x` -> `acts` and `output` [n, d_in] (the reconstruction, normalisation undone).
 */
export function standaloneSae(b: GraphBuilder, spec: SaeGraphSpec, what: 'encode' | 'decode' | 'forward'): string[] {
  const w = weightsOf(b, null, spec);
  if (what === 'decode') {
    decodeInto(b, w, { acts: b.input('acts', 'float32', ['n', spec.d_sae]), top: null, undo: (y) => y }, 'recons');
    return ['recons'];
  }
  const ctx: SaeGraphContext = { b, hook: () => { throw new Error('internal: no hook points here'); }, needs: () => false, replaced: () => false };
  const features = encode(ctx, spec, w, b.input('x', 'float32', ['n', spec.d_in]), plainValue(b), { dense: true, sparse: true });
  b.op('Identity', [features.acts!], undefined, 'acts');
  if (what === 'encode') return ['acts'];
  b.op('Identity', [features.undo(decodeInto(b, w, features))], undefined, 'output');
  return ['acts', 'output'];
}
