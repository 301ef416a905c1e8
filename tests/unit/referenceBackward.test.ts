/**
 * The reference backward pass (the oracle of the engine's gradients) against central finite
 * differences of the reference forward: at sampled entries of every hook point, with and without
 * LayerNorm weights, for every activation function, with padding, and with a forward hook that
 * patches in constants (the gradient of the forward as it ran: none through the patched entries).
 */
import { describe, expect, it } from 'vitest';
import type { ActFn, HookedTransformerConfig } from '../../hooks/config.ts';
import { listHookPoints, type HookName } from '../../hooks/hookPoints.ts';
import { gpt2Config, randomWeights } from '../../hooks/init.ts';
import { processWeights } from '../../hooks/processing.ts';
import { referenceForward, type ReferenceHookFn } from '../../hooks/reference.ts';
import { referenceBackward } from '../../hooks/referenceBackward.ts';
import { Tensor } from '../../hooks/tensor.ts';
import type { TransformerWeights } from '../../hooks/weights.ts';

const H = 3e-3; // central-difference step
const REL = 3e-3; // |fd - grad| ≤ REL · max |grad| of the hook point (the forward is float32: fd carries ~1e-4 of rounding)
const tokens = [[1, 5, 9, 3, 7], [2, 4, 6, 8, 10]];

function tinyCfg(actFn: ActFn): HookedTransformerConfig {
  return gpt2Config({ model_name: 'tiny', n_layers: 2, d_model: 8, n_heads: 2, d_vocab: 20, n_ctx: 16, act_fn: actFn });
}

/** A metric reading several logits (a logit difference at two positions plus another logit), with its constant gradient. */
type Read = [number, number, number, number][]; // [batch, pos, token, weight]
const READ: Read = [[0, 4, 3, 1], [1, 2, 7, -1], [1, 4, 1, 0.5]];
const metricOf = (read: Read) => (l: Tensor) => read.reduce((s, [b, p, t, w]) => s + w * l.get(b, p, t), 0);
const seedOf = (read: Read) => (l: Tensor) => {
  const g = Tensor.zeros(l.shape);
  for (const [b, p, t, w] of read) g.data[(b * l.shape[1] + p) * l.shape[2] + t] += w;
  return g;
};
const seed = seedOf(READ);

/** Worst |finite difference - gradient| / max |gradient| over sampled entries of every hook point; hook points listed where it exceeds REL. */
function finiteDifferenceMismatches(
  cfg: HookedTransformerConfig,
  w: TransformerWeights,
  opts: { attentionMask?: number[][]; hooks?: Partial<Record<HookName, ReferenceHookFn>>; read?: Read } = {},
): string[] {
  const read = opts.read ?? READ;
  const metric = metricOf(read);
  const { grads } = referenceBackward(cfg, w, tokens, { seed: seedOf(read), attentionMask: opts.attentionMask, hooks: opts.hooks });
  const bad: string[] = [];
  for (const { name } of listHookPoints(cfg)) {
    const g = grads.get(name)!;
    const scale = Math.max(...g.data.map(Math.abs));
    const idx = [0, 1, 2, 3, 4].map((s) => (s * 7919 + 13) % g.data.length);
    for (const i of idx) {
      const f = (d: number) => {
        const perturb: ReferenceHookFn = (a, n) => {
          const base = opts.hooks?.[n]?.(a, n) ?? a;
          const c = base.clone();
          c.data[i] += d;
          return c;
        };
        return metric(referenceForward(cfg, w, tokens, { attentionMask: opts.attentionMask, hooks: { ...opts.hooks, [name]: perturb } }).logits);
      };
      const fd = (f(H) - f(-H)) / (2 * H);
      const err = Math.abs(fd - g.data[i]);
      if (err > REL * scale + 1e-5) bad.push(`${name}[${i}]: fd ${fd} vs ${g.data[i]} (max |grad| ${scale})`);
    }
  }
  return bad;
}

describe('referenceBackward = finite differences of referenceForward', () => {
  for (const actFn of ['gelu_new', 'gelu', 'relu'] as const) {
    it(`every hook point, LayerNorm with weights, ${actFn}`, () => {
      const cfg = tinyCfg(actFn);
      expect(finiteDifferenceMismatches(cfg, randomWeights(cfg, { seed: 3, randomAffine: true, std: 0.3 }))).toEqual([]);
    });
  }

  it('every hook point, LayerNorms folded (LNPre) and weights centred', () => {
    const cfg = tinyCfg('gelu_new');
    const processed = processWeights(cfg, randomWeights(cfg, { seed: 4, randomAffine: true, std: 0.3 }), { foldLn: true, centerWritingWeights: true, centerUnembed: true, foldValueBiases: true });
    expect(processed.cfg.normalization_type).toBe('LNPre');
    expect(finiteDifferenceMismatches(processed.cfg, processed.weights)).toEqual([]);
  });

  it('with padding: every entry at a padded position has gradient 0, and the real ones match finite differences', () => {
    const cfg = tinyCfg('gelu_new');
    const w = randomWeights(cfg, { seed: 5, randomAffine: true, std: 0.3 });
    const attentionMask = [[1, 1, 1, 1, 0], [0, 1, 1, 1, 0]]; // right padding; left and right padding
    const read: Read = [[0, 3, 3, 1], [1, 2, 7, -1], [1, 3, 1, 0.5]]; // real positions only
    expect(finiteDifferenceMismatches(cfg, w, { attentionMask, read })).toEqual([]);
    const { grads } = referenceBackward(cfg, w, tokens, { seed: seedOf(READ), attentionMask }); // padded positions' logits read too: they pass nothing
    const pos = tokens[0].length;
    for (const { name, dims } of listHookPoints(cfg)) {
      const g = grads.get(name)!;
      const posAxes = dims.flatMap((d, a) => (d === 'pos' || d === 'query_pos' ? [a] : []));
      const stride = (a: number) => g.shape.slice(a + 1).reduce((x, y) => x * y, 1);
      for (let i = 0; i < g.data.length; i++) {
        const b = Math.floor(i / stride(0));
        const padded = posAxes.some((a) => attentionMask[b][Math.floor(i / stride(a)) % pos] === 0);
        if (padded) expect(Math.abs(g.data[i]), `${name}[${i}]`).toBe(0);
      }
    }
  });

  it('a forward hook that patches in constants: no gradient through the patched entries (finite differences agree)', () => {
    const cfg = tinyCfg('gelu_new');
    const w = randomWeights(cfg, { seed: 6, randomAffine: true, std: 0.3 });
    // Head 1 of layer 0's z replaced by constants at every position: perturbing what computes it changes nothing.
    const hooks: Partial<Record<HookName, ReferenceHookFn>> = {
      'blocks.0.attn.hook_z': (a) => {
        const c = a.clone();
        for (let i = 0; i < c.data.length; i++) if (Math.floor(i / cfg.d_head) % cfg.n_heads === 1) c.data[i] = 0.25;
        return c;
      },
    };
    expect(finiteDifferenceMismatches(cfg, w, { hooks })).toEqual([]);
    const { grads } = referenceBackward(cfg, w, tokens, { seed, hooks });
    expect(Math.max(...grads.get('blocks.0.attn.hook_z')!.data.map(Math.abs))).toBeGreaterThan(1e-3); // the gradient at the hook point itself is there
  });
});
