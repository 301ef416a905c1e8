/** POST /api/steer: generation with α·W_dec[f] added at the SAE's hook point for each chosen feature, and without. */
import { z } from 'zod';
import { steerFeatures } from '../../hooks/sae/features.ts';
import { JsonNumber } from '../common/nonFinite.ts';
import { preparePrompt } from '../common/requests.ts';
import { TokenIdOut } from '../common/schema.ts';
import { UserError } from '../context.ts';
import { defineService } from '../service.ts';
import { Feature, SaeArg, saeFlag, SaeName, store } from './common.ts';

const FeatureStrength = z.strictObject({ feature: Feature, strength: z.number().finite().min(-1e4).max(1e4).describe('α: the multiple of W_dec[feature] added') });

export function steerSchema() {
  return z.strictObject({
    sae: SaeName,
    prompt: z.string().min(1).max(4000).describe('text to continue'),
    prependBos: z.boolean().optional(),
    features: z.array(FeatureStrength).min(1).max(32).describe('features to steer with and their strengths'),
    maxNewTokens: z.number().int().min(1).max(256).default(24),
    temperature: z.number().min(0).max(10).default(0).describe('0 = greedy (default); otherwise sampled with `seed`'),
    topK: z.number().int().min(1).max(1000).optional(),
    seed: z.number().int().min(0).default(0),
    freqPenalty: z.number().min(0).max(10).default(0),
  });
}
export type SteerRequest = z.infer<ReturnType<typeof steerSchema>>;

const Generation = z.object({ text: z.string(), tokens: z.array(TokenIdOut).describe('the new tokens only'), strTokens: z.array(z.string()) });
export const SteerResponse = z.object({
  sae: z.string(),
  hookName: z.string(),
  prompt: z.string(),
  features: z.array(z.object({ feature: z.number().int(), strength: JsonNumber })),
  steered: Generation,
  unsteered: Generation,
});
export type SteerResult = z.infer<typeof SteerResponse>;

export const steer = defineService({
  kind: 'steer',
  route: {
    path: '/api/steer', formats: ['json', 'sse'],
    summary: "Generates with α·W_dec[f] added at the SAE's hook point for each chosen feature, and without, from the same prompt and seed",
  },
  request: steerSchema,
  response: SteerResponse,
  handler: async (model, p, ctx): Promise<SteerResult> => {
    const sae = await store(ctx).fitting(p.sae);
    if (!model.tokenizer) throw new UserError('steering continues text: this model was loaded without tokenizer files');
    p.features.forEach((f, i) => {
      if (f.feature >= sae.cfg.d_sae) throw new UserError(`features[${i}].feature: ${f.feature} is not a feature of ${p.sae}; allowed 0…${sae.cfg.d_sae - 1}`);
    });
    const { tokens } = preparePrompt(model, p.prompt, p);
    const pos = tokens[0].length;
    if (pos + p.maxNewTokens - 1 > model.cfg.n_ctx) throw new UserError(`maxNewTokens: a prompt of ${pos} tokens leaves room for at most ${model.cfg.n_ctx - pos + 1} new tokens (n_ctx ${model.cfg.n_ctx})`);
    const spec = steerFeatures(sae, p.features, { nHeads: model.cfg.n_heads });
    const opts = {
      maxNewTokens: p.maxNewTokens, doSample: p.temperature > 0, temperature: p.temperature, topK: p.topK, seed: p.seed, freqPenalty: p.freqPenalty,
      stopAtEos: false, returnType: 'tokens' as const,
    };
    const run = async (steered: boolean, offset: number) => {
      let done = 0;
      const out = await model.generate(tokens, {
        ...opts, ...(steered ? { interventions: [spec] } : {}),
        onStep: () => {
          ctx.progress(offset + ++done, 2 * p.maxNewTokens, steered ? 'steered' : 'unsteered');
          ctx.checkCancelled();
        },
      });
      const fresh = (out as number[][])[0].slice(pos);
      return { text: model.tokenizer!.decode(fresh), tokens: fresh, strTokens: model.tokenizer!.toStrTokens(fresh) };
    };
    const steered = await run(true, 0);
    const unsteered = await run(false, p.maxNewTokens);
    return { sae: p.sae, hookName: sae.cfg.hook_name, prompt: p.prompt, features: p.features, steered, unsteered };
  },
  cli: {
    command: 'steer',
    summary: "generates with α·W_dec[f] added at the SAE's hook point, and without: --feature F:α (repeatable)",
    flags: [
      saeFlag,
      { flag: 'prompt', type: 'string', path: 'prompt', help: 'text to continue' },
      { flag: 'feature', type: 'string', path: 'features', multiple: true, help: 'FEATURE:STRENGTH, e.g. 12:8 (repeatable)' },
      { flag: 'max-new-tokens', type: 'int', path: 'maxNewTokens', help: 'tokens to generate (default 24)' },
      { flag: 'seed', type: 'int', path: 'seed', help: 'sampling seed (with --temperature > 0)' },
    ],
    request: () => steerSchema().extend({ sae: SaeArg }),
    /** --feature F:α → {feature, strength}. */
    prepare: (req) => {
      if (Array.isArray(req.features)) {
        req.features = req.features.map((f) => {
          if (typeof f !== 'string') return f;
          const m = /^(\d+):(-?[\d.]+(?:e-?\d+)?)$/.exec(f.trim());
          if (!m) throw new UserError(`--feature: '${f}' is not FEATURE:STRENGTH (e.g. 12:8)`);
          return { feature: Number(m[1]), strength: Number(m[2]) };
        });
      }
    },
  },
});
