/** POST /api/features: a prompt's SAE features, the most active at each token (hook_sae_acts_post, the SAE spliced with its error term). */
import { z } from 'zod';
import type { Cell } from '../../hooks/figures/types.ts';
import { promptFeaturesFigure } from '../../hooks/figures/sae.ts';
import { saeHook, type HookName, type ModelHookName } from '../../hooks/hookPoints.ts';
import { checkMemory, engineBytesPerToken, F32 } from '../common/budget.ts';
import { JsonNumber, num } from '../common/nonFinite.ts';
import { preparePrompt, strTokens } from '../common/requests.ts';
import { singlePrompt, TokenIdOut } from '../common/schema.ts';
import type { Limits } from '../limits.ts';
import { defineService } from '../service.ts';
import { SaeArg, saeFlag, SaeName, store } from './common.ts';

export function featuresSchema(limits: Limits) {
  return z.strictObject({
    sae: SaeName,
    prompt: singlePrompt(),
    prependBos: z.boolean().optional().describe('prepend <|endoftext|> to a text prompt (default true)'),
    topK: z.number().int().min(1).max(Math.min(100, limits.maxTopK)).default(8).describe('features listed per token, strongest first'),
  });
}
export type FeaturesRequest = z.infer<ReturnType<typeof featuresSchema>>;

const FeatureAct = z.object({ feature: TokenIdOut, act: JsonNumber });
export const FeaturesResponse = z.object({
  sae: z.string(),
  tokens: z.array(TokenIdOut),
  strTokens: z.array(z.string()).nullable(),
  perToken: z.array(z.array(FeatureAct)).describe('[pos][k]: the most active features at each position (hook_sae_acts_post), strongest first'),
  l0: z.array(z.number().int()).describe('[pos]: how many features are active at each position'),
  topFeatures: z.array(z.object({ feature: TokenIdOut, maxAct: JsonNumber, position: z.number().int(), positions: z.number().int() }))
    .describe('features of the whole prompt by their largest activation (positions: how many positions they fire at)'),
});
export type FeaturesResult = z.infer<typeof FeaturesResponse>;

export const features = defineService({
  kind: 'features',
  route: {
    path: '/api/features',
    summary: "A prompt's SAE features: the most active features at each token (hook_sae_acts_post, the SAE spliced with its error term)",
  },
  request: featuresSchema,
  response: FeaturesResponse,
  handler: async (model, p, ctx): Promise<FeaturesResult> => {
    const sae = await store(ctx).fitting(p.sae);
    const { tokens } = preparePrompt(model, p.prompt, p);
    const pos = tokens[0].length;
    const { d_sae } = sae.cfg;
    checkMemory(ctx, [
      { what: `features ${pos} × ${d_sae} floats`, bytes: pos * d_sae * F32 * 2 },
      { what: `onnxruntime working memory for ${pos} tokens`, bytes: pos * engineBytesPerToken(model.cfg, pos) },
    ], 'use a shorter prompt');
    ctx.checkCancelled();
    const acts = saeHook(sae.cfg.hook_name as ModelHookName, 'hook_sae_acts_post');
    const [, cache] = await model.runWithCacheWithSaes(tokens, { saes: sae, useErrorTerm: true, namesFilter: [acts as HookName], returnType: 'none' });
    const a = cache.get(acts).data; // [1, pos, d_sae]
    const perToken: FeaturesResult['perToken'] = [];
    const l0: number[] = [];
    const best = new Map<number, { maxAct: number; position: number; positions: number }>();
    for (let q = 0; q < pos; q++) {
      const row = a.subarray(q * d_sae, (q + 1) * d_sae);
      const active: { feature: number; act: number }[] = [];
      for (let f = 0; f < d_sae; f++) {
        if (row[f] <= 0) continue;
        active.push({ feature: f, act: row[f] });
        const b = best.get(f);
        if (!b) best.set(f, { maxAct: row[f], position: q, positions: 1 });
        else {
          b.positions++;
          if (row[f] > b.maxAct) { b.maxAct = row[f]; b.position = q; }
        }
      }
      active.sort((x, y) => y.act - x.act);
      perToken.push(active.slice(0, p.topK));
      l0.push(active.length);
    }
    const topFeatures = [...best].map(([feature, b]) => ({ feature, ...b })).sort((x, y) => y.maxAct - x.maxAct).slice(0, 64);
    return { sae: p.sae, tokens: tokens[0], strTokens: strTokens(model, tokens[0]), perToken, l0, topFeatures };
  },
  /** Rows: per position and rank, the feature and its activation. */
  table: (r) => {
    const rows: Cell[][] = [];
    r.perToken.forEach((list, p) => list.forEach((f, k) => rows.push([p, r.tokens[p], r.strTokens?.[p] ?? null, k, f.feature, num(f.act)])));
    return { columns: ['position', 'token', 'str', 'rank', 'feature', 'act'], rows };
  },
  figures: (r) => [promptFeaturesFigure(r)],
  cli: {
    command: 'features',
    summary: "a prompt's SAE features: the most active features at each token",
    flags: [
      saeFlag,
      { flag: 'prompt', type: 'string', path: 'prompt', help: 'the prompt (text)' },
      { flag: 'top-k', type: 'int', path: 'topK', help: 'features per token (default 8)' },
      { flag: 'no-prepend-bos', type: 'bool', negate: true, path: 'prependBos', help: 'do not prepend <|endoftext|>' },
    ],
    request: (limits) => featuresSchema(limits).extend({ sae: SaeArg }),
  },
});
