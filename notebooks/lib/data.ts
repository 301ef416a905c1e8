/** Library results (tensors) → the plain data the figure builders of hooks/figures take (the shapes the server's answers have). */
import type { ActivationCache } from '../../hooks/ActivationCache.ts';
import type { HookedTransformer } from '../../hooks/HookedTransformer.ts';
import type { LogitLensResult } from '../../hooks/analysis/index.ts';
import type { AttentionData, HeadGrid, HeadsDetectData, IoiData, LogitLensData, PatchData } from '../../hooks/figures/index.ts';
import type { HookName } from '../../hooks/hookPoints.ts';
import type { Tensor } from '../../hooks/tensor.ts';

const range = (n: number) => Array.from({ length: n }, (_v, i) => i);

/** A [n_layers, n_heads] tensor as a head grid. */
export function headGrid(t: Tensor): HeadGrid {
  const [L, H] = t.shape;
  return { layers: range(L), heads: range(H), values: range(L).map((l) => range(H).map((h) => t.get(l, h))) };
}

/** One prompt (row `b`) of a logit-lens result, with token strings from the model's tokenizer. */
export function logitLensData(model: HookedTransformer, r: LogitLensResult, b = 0): LogitLensData {
  const dec = (id: number) => model.tokenizer?.decode([id]) ?? null;
  const [nL, , nP, k] = r.topTokens.shape; // [layer, batch, positions, k]
  const tokens = r.tokens[b];
  return {
    tokens,
    strTokens: model.tokenizer ? model.tokenizer.toStrTokens(tokens) : null,
    labels: r.labels,
    positions: r.positions,
    top: range(nL).map((l) => range(nP).map((p) => range(k).map((j) => {
      const token = r.topTokens.get(l, b, p, j);
      return { token, str: dec(token), prob: r.topProbs.get(l, b, p, j) };
    }))),
    targets: r.target
      ? [{
        token: r.target.tokens[b][0],
        str: dec(r.target.tokens[b][0]),
        prob: range(nL).map((l) => range(nP).map((p) => r.target!.prob.get(l, b, p))),
        rank: range(nL).map((l) => range(nP).map((p) => r.target!.rank.get(l, b, p))),
        logit: range(nL).map((l) => range(nP).map((p) => r.target!.logit.get(l, b, p))),
      }]
      : [],
  };
}

/** Attention patterns of every head from a cache holding `blocks.L.attn.hook_pattern` (row `b` of the batch). */
export function attentionData(model: HookedTransformer, cache: ActivationCache, tokens: number[], b = 0): AttentionData {
  const { n_layers, n_heads } = model.cfg;
  const n = tokens.length;
  const patterns = range(n_layers).map((l) => {
    const p = cache.get(`blocks.${l}.attn.hook_pattern` as HookName); // [batch, head, query_pos, key_pos]
    return range(n_heads).map((h) => range(n).map((q) => range(n).map((k) => p.get(b, h, q, k))));
  });
  return { tokens, strTokens: model.tokenizer ? model.tokenizer.toStrTokens(tokens) : null, layers: range(n_layers), heads: range(n_heads), patterns };
}

/** Loss by position on BOS + span + span ([2·seqLen] losses; entry i predicts token i + 1) as the head-detector answer's loss part. */
export function lossData(loss: Tensor, seqLen: number): HeadsDetectData {
  const l = Array.from(loss.data);
  const mean = (xs: number[]) => xs.reduce((a, v) => a + v, 0) / xs.length;
  return { layers: [], heads: [], scores: [], lossByPosition: { loss: l, firstRepeat: mean(l.slice(0, seqLen)), secondRepeat: mean(l.slice(seqLen, 2 * seqLen)) } };
}

/** IOI prompts, their logit differences [n] and the mean head attributions [n_layers, n_heads]. */
export function ioiData(prompts: { prompt: string; io: string; s: string }[], logitDiffs: Tensor, heads: Tensor): IoiData {
  const diffs = Array.from(logitDiffs.data);
  const g = headGrid(heads);
  return {
    prompts: prompts.map((p, i) => ({ text: p.prompt, io: p.io, s: p.s, logitDiff: diffs[i] })),
    meanLogitDiff: diffs.reduce((a, v) => a + v, 0) / diffs.length,
    accuracy: diffs.filter((d) => d > 0).length / diffs.length,
    layers: g.layers,
    heads: g.heads,
    headAttribution: g.values,
  };
}

/** Patching results ([layer, pos] or [layer, head] tensors) for patchingFigure. */
export function patchData(
  model: HookedTransformer, cleanTokens: number[], clean: number, corrupted: number,
  results: { kind: 'resid_pre' | 'attn_out' | 'mlp_out' | 'head_out_all_pos'; values: Tensor }[],
  method: 'activation' | 'attribution' = 'activation',
): PatchData {
  return {
    method,
    cleanTokens,
    cleanStrTokens: model.tokenizer ? model.tokenizer.toStrTokens(cleanTokens) : null,
    metric: { label: 'logit difference' },
    clean,
    corrupted,
    results: results.map((r) => ({
      kind: r.kind,
      dims: r.kind === 'head_out_all_pos' ? ['layer', 'head'] : ['layer', 'pos'],
      values: range(r.values.shape[0]).map((i) => range(r.values.shape[1]).map((j) => r.values.get(i, j))),
    })),
  };
}
