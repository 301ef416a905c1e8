/**
 * logitAttribution: the components add up to the model's logit (difference) (1e-4); each equals TransformerLens's
 * logit_attrs of get_full_resid_decomposition(expand_neurons=False); each head, MLP layer and the biases equal an
 * independent float64 computation from the reference forward's cache and the raw weights; neurons refine their layer.
 * On a model with folded LayerNorms (TL's default processing) and on one without any processing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withModel } from '../../../hooks/analysis/cache.ts';
import { logitAttribution, type LogitAttributionResult } from '../../../hooks/analysis/logitAttribution.ts';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { blockHook, type HookName } from '../../../hooks/hookPoints.ts';
import { referenceForward } from '../../../hooks/reference.ts';
import type { Tensor } from '../../../hooks/tensor.ts';
import type { TransformerWeights } from '../../../hooks/weights.ts';
import { cloneWeights, tinyConfig, tinyWeights, tokenBatch } from '../engine/helpers.ts';

const cfg = tinyConfig({ n_layers: 3, d_model: 16, n_heads: 4, d_vocab: 60 });
const original = tinyWeights(cfg, 41);
const [prompt] = tokenBatch(1, 9, cfg.d_vocab, 3);
const DEFAULT = { foldLn: true, centerWritingWeights: true, centerUnembed: true, foldValueBiases: true };
let folded: HookedTransformer;
let raw: HookedTransformer;

beforeAll(async () => {
  folded = await HookedTransformer.fromWeights(cfg, cloneWeights(original), { threads: 1, ...DEFAULT });
  raw = await HookedTransformer.fromWeights(cfg, cloneWeights(original), { threads: 1 });
});
afterAll(async () => {
  await folded?.dispose();
  await raw?.dispose();
});

const inTotal = (r: LogitAttributionResult) => r.components.filter((c) => c.kind !== 'neuron');
const sum = (xs: { value: number }[]) => xs.reduce((a, c) => a + c.value, 0);
const byLabel = (r: LogitAttributionResult, label: string) => {
  const c = r.components.find((x) => x.label === label);
  if (!c) throw new Error(`no component ${label}`);
  return c.value;
};

/**
 * Each component computed from the reference forward's activations and the model's own weights (Lensboard's [in, out]
 * layout, rawWeights), in float64: part · (w ⊙ (W_U[:, t] − W_U[:, v])), centred, / ln_final's cached scale.
 */
function independent(model: HookedTransformer, tokens: number[], p: number, t: number, v: number | null): Map<string, number> {
  const w: TransformerWeights = model.rawWeights;
  const { n_layers, n_heads, d_head, d_model, d_mlp } = model.cfg;
  const { cache } = referenceForward(model.cfg, w, [tokens]);
  const get = (n: HookName): Tensor => cache.get(n)!;
  const ln = w.ln_final;
  const dir = Array.from({ length: d_model }, (_v, d) => (w.W_U[d * cfg.d_vocab + t] - (v === null ? 0 : w.W_U[d * cfg.d_vocab + v])) * (ln ? ln.w[d] : 1));
  const mean = dir.reduce((a, b) => a + b, 0) / d_model;
  const scale = get('ln_final.hook_scale').get(0, p, 0);
  const along = (x: (d: number) => number) => {
    let s = 0;
    for (let d = 0; d < d_model; d++) s += x(d) * (dir[d] - mean);
    return s / scale;
  };
  const out = new Map<string, number>();
  out.set('embed', along((d) => get('hook_embed').get(0, p, d)));
  out.set('pos_embed', along((d) => get('hook_pos_embed').get(0, p, d)));
  let bias = 0;
  for (let l = 0; l < n_layers; l++) {
    const z = get(blockHook(l, 'attn.hook_z'));
    const b = w.blocks[l];
    for (let h = 0; h < n_heads; h++) {
      // z[p, h] @ W_O[h]: W_O is [n_heads · d_head, d_model] in this layout.
      out.set(`L${l}H${h}`, along((d) => {
        let s = 0;
        for (let e = 0; e < d_head; e++) s += z.get(0, p, h, e) * b.W_O[(h * d_head + e) * d_model + d];
        return s;
      }));
    }
    const post = get(blockHook(l, 'mlp.hook_post'));
    out.set(`${l}_mlp_out`, along((d) => {
      let s = b.b_out[d];
      for (let n = 0; n < d_mlp; n++) s += post.get(0, p, n) * b.W_out[n * d_model + d];
      return s;
    }));
    for (const n of [0, 7, d_mlp - 1]) out.set(`L${l}N${n}`, along((d) => post.get(0, p, n) * b.W_out[n * d_model + d]));
    bias += along((d) => b.b_O[d]);
  }
  out.set('bias', bias);
  out.set('b_U', w.b_U[t] - (v === null ? 0 : w.b_U[v]));
  if (ln) out.set('ln_final.b', Array.from({ length: d_model }, (_x, d) => ln.b[d] * (w.W_U[d * cfg.d_vocab + t] - (v === null ? 0 : w.W_U[d * cfg.d_vocab + v]))).reduce((a, b) => a + b, 0));
  return out;
}

describe.each([
  ['folded LayerNorms (TL default processing)', () => folded],
  ['no processing', () => raw],
])('logitAttribution, %s', (_name, model) => {
  for (const [target, vs, position] of [[4, 11, -1], [17, null, 5], [33, 2, 0]] as const) {
    it(`target ${target}${vs === null ? '' : ` vs ${vs}`} at ${position}: components add up to the model's logit${vs === null ? '' : ' difference'} and equal the reference (1e-4)`, async () => {
      const m = model();
      const r = await logitAttribution(m, [prompt], { target, vs, position, topNeurons: 5 });
      const p = position < 0 ? prompt.length + position : position;
      expect(r.position).toBe(p);
      const logits = await m.forward([prompt]);
      const expected = logits.get(0, p, target) - (vs === null ? 0 : logits.get(0, p, vs));
      expect(r.total).toBeCloseTo(expected, 5);
      expect(Math.abs(sum(inTotal(r)) - r.total)).toBeLessThan(1e-4);
      const labels = inTotal(r).map((c) => c.label);
      const heads = Array.from({ length: 3 * 4 }, (_v, i) => `L${Math.floor(i / 4)}H${i % 4}`);
      expect(labels).toEqual(['embed', 'pos_embed', ...heads, '0_mlp_out', '1_mlp_out', '2_mlp_out', 'bias', 'b_U', ...(m === raw ? ['ln_final.b'] : [])]);
      const ref = independent(m, prompt, p, target, vs);
      for (const c of r.components) {
        if (ref.has(c.label)) expect(c.value, c.label).toBeCloseTo(ref.get(c.label)!, 4);
      }
      expect([...ref.keys()].filter((k) => !k.includes('N')).every((k) => labels.includes(k))).toBe(true);
      // The top neurons: by |value|, each a term of its layer (Σ neurons + b_out = the layer).
      const neurons = r.components.filter((c) => c.kind === 'neuron');
      expect(neurons).toHaveLength(5);
      for (let i = 1; i < neurons.length; i++) expect(Math.abs(neurons[i - 1].value)).toBeGreaterThanOrEqual(Math.abs(neurons[i].value));
      for (const n of neurons) {
        if (ref.has(n.label)) expect(n.value, n.label).toBeCloseTo(ref.get(n.label)!, 4);
        expect(n.label).toBe(`L${n.layer}N${n.neuron}`);
      }
    });
  }

  it('unknown tokens and positions are refused with the allowed range', async () => {
    await expect(logitAttribution(model(), [prompt], { target: 60 })).rejects.toThrow(/target 60 is not a token id in \[0, 60\)/);
    await expect(logitAttribution(model(), [prompt], { target: 1, position: 9 })).rejects.toThrow(/position 9 is out of range .*allowed -9\.\.8/);
  });
});

describe("logitAttribution is TransformerLens's decomposition", () => {
  it("each component equals logit_attrs(get_full_resid_decomposition(expand_neurons=False)) and b_U is what logit_attrs leaves out (1e-5)", async () => {
    const [target, vs, p] = [4, 11, 8];
    const r = await logitAttribution(folded, [prompt], { target, vs, position: p, topNeurons: 0 });
    const [, c] = await folded.runWithCache([prompt]);
    const cache = withModel(c, folded);
    const [stack, labels] = cache.getFullResidDecomposition({ expandNeurons: false, returnLabels: true });
    const attrs = cache.logitAttrs(stack, target, vs); // [component, batch, pos]
    labels.forEach((label, i) => expect(byLabel(r, label), label).toBeCloseTo(attrs.get(i, 0, p), 5));
    const b_U = folded.weights.vector('b_U');
    expect(byLabel(r, 'b_U')).toBeCloseTo(b_U[target] - b_U[vs], 6);
    expect(r.components.map((x) => x.label).sort()).toEqual([...labels, 'b_U'].sort());
  });
});
