/** Request and response schemas of the SAE endpoints (/api/saes, /api/features, /api/steer): parsed with zod, documented in OpenAPI. */
import { z } from 'zod';
import type { Limits } from '../services/limits.ts';
import { JsonNumber } from '../services/common/nonFinite.ts';
import { AblationMetric, MetricEcho, singlePrompt } from '../services/common/schema.ts';

/** An SAE's name: a directory under the model's saes/ folder, or a hub repo `org/name` with its subfolder (`org/name/blocks.8.hook_resid_pre`). */
export const SaeName = z.string().min(1).max(300)
  .regex(/^[\w.-]+(\/[\w.-]+)*$/, 'an SAE name is a directory name under the model\'s saes/ folder, or org/repo[/subfolder] for a hub SAE; no paths')
  .refine((s) => !s.split('/').some((seg) => seg === '.' || seg === '..'), 'an SAE name has no "." or ".." segment')
  .describe("the SAE: a directory name under the model's saes/ folder (GET /api/saes), or org/repo/subfolder of a hub SAE");

const TokenIdOut = z.number().int();
const Feature = z.number().int().min(0).describe('a feature index (0 ≤ feature < d_sae)');

const EvalMetrics = z.object({
  tokens: z.number().int(),
  explainedVariance: JsonNumber,
  l0: JsonNumber,
  deadFraction: JsonNumber,
  denseFraction: JsonNumber,
  ceLossRecovered: JsonNumber,
  ceLossClean: JsonNumber,
  ceLossSpliced: JsonNumber,
  ceLossZeroAblated: JsonNumber,
}).describe('held-out evaluation written by the trainer (training.json), when there is one');

export const SaeInfo = z.object({
  name: z.string(),
  source: z.enum(['local', 'hub']),
  architecture: z.string(),
  hookName: z.string(),
  hookLayer: z.number().int().nullable(),
  dIn: z.number().int(),
  dSae: z.number().int(),
  k: z.number().int().nullable(),
  modelName: z.string().nullable().describe('the model it was trained on, as its cfg.json names it'),
  fits: z.boolean().describe('whether it can be spliced into the loaded model (its hook point exists and has d_in values)'),
  problem: z.string().nullable().describe('why it does not fit, when it does not'),
  dashboards: z.boolean().describe('whether feature dashboards (feature_dashboards.json.gz) are there'),
  metrics: EvalMetrics.nullable(),
});
export type SaeInfoResult = z.infer<typeof SaeInfo>;

// GET /api/saes
export const SaeListResponse = z.object({ saes: z.array(SaeInfo) });
export type SaeListResult = z.infer<typeof SaeListResponse>;

// POST /api/saes/load
export function saeLoadSchema() {
  return z.strictObject({
    name: SaeName.optional().describe("a local SAE's name (checked and loaded)"),
    repo: z.string().regex(/^[\w.-]+\/[\w.-]+$/, 'repo must be a hub repo id org/name').optional().describe('a hub repo holding SAELens-format SAEs'),
    subfolder: z.string().max(200).regex(/^[\w.-]+(\/[\w.-]+)*$/, 'subfolder is a folder path inside the repo (no leading /)').optional()
      .refine((s) => s === undefined || !s.split('/').includes('..'), 'subfolder has no ".." segment').describe('the SAE\'s folder in the repo (e.g. blocks.8.hook_resid_pre)'),
    revision: z.string().max(100).regex(/^[\w.-]+$/).optional().describe('branch, tag or commit (default main)'),
  }).refine((b) => (b.name === undefined) !== (b.repo === undefined), { message: 'give exactly one of name (a local SAE) and repo (a hub SAE, with subfolder)' });
}
export type SaeLoadRequest = z.infer<ReturnType<typeof saeLoadSchema>>;

// POST /api/features (a prompt's features)
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

// GET /api/features/:id?sae=…
export const FeatureQuery = z.strictObject({ sae: SaeName });
const Context = z.object({
  tokens: z.array(TokenIdOut),
  strTokens: z.array(z.string()),
  acts: z.array(JsonNumber),
  at: z.number().int().describe('index of the maximum in the window'),
  value: JsonNumber,
});
const LogitWeight = z.object({ token: TokenIdOut, str: z.string().nullable(), value: JsonNumber });
export const FeatureResponse = z.object({
  sae: z.string(),
  feature: z.number().int(),
  density: JsonNumber.nullable().describe('share of corpus positions it fires on (dashboards, else sparsity.safetensors), null when neither is there'),
  maxAct: JsonNumber.nullable(),
  meanAct: JsonNumber.nullable(),
  top: z.array(Context).describe('top activating contexts over the dashboards\' corpus (empty without dashboards)'),
  histogram: z.object({ edges: z.array(JsonNumber), counts: z.array(z.number().int()) }).nullable(),
  logits: z.object({ top: z.array(LogitWeight), bottom: z.array(LogitWeight) }).describe('W_dec[f] · W_U: the most promoted and suppressed tokens'),
  corpus: z.object({ name: z.string(), split: z.string(), tokens: z.number().int() }).nullable(),
});
export type FeatureResult = z.infer<typeof FeatureResponse>;

const FeatureStrength = z.strictObject({ feature: Feature, strength: z.number().finite().min(-1e4).max(1e4).describe('α: the multiple of W_dec[feature] added') });

// POST /api/steer
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

// POST /api/features/ablate
export function featureAblateSchema() {
  return z.strictObject({
    sae: SaeName,
    prompt: singlePrompt(),
    prependBos: z.boolean().optional(),
    features: z.array(Feature).min(1).max(256).describe('features set to 0 at hook_sae_acts_post'),
    positions: z.array(z.number().int()).min(1).max(1024).optional().describe('positions to ablate at (negative counts from the end; default all)'),
    metric: AblationMetric,
  });
}
export type FeatureAblateRequest = z.infer<ReturnType<typeof featureAblateSchema>>;

export const FeatureAblateResponse = z.object({
  sae: z.string(),
  tokens: z.array(TokenIdOut),
  strTokens: z.array(z.string()).nullable(),
  metric: MetricEcho,
  clean: JsonNumber.describe('the metric of the clean run (the SAE spliced with its error term: the same as without it)'),
  spliced: JsonNumber.describe('the metric with the SAE spliced without its error term (its reconstruction)'),
  ablated: JsonNumber.describe('the metric with the features ablated (error term kept: only the ablation changes the run)'),
  delta: JsonNumber.describe('ablated − clean'),
});
export type FeatureAblateResult = z.infer<typeof FeatureAblateResponse>;

// POST /api/saes/eval
export function saeEvalSchema() {
  return z.strictObject({
    sae: SaeName,
    tokens: z.number().int().min(64).max(1_000_000).default(16_384).describe('positions evaluated (BOS left out)'),
    split: z.enum(['heldOut', 'train', 'all']).default('heldOut').describe("part of Tiny Shakespeare (the repository's corpus): its held-out last 10 %, the rest, or all"),
    contextSize: z.number().int().min(8).max(1024).optional().describe("tokens per context (default the SAE's context_size, at most n_ctx)"),
  });
}
export type SaeEvalRequest = z.infer<ReturnType<typeof saeEvalSchema>>;

export const SaeEvalResponse = z.object({
  sae: z.string(),
  corpus: z.object({ name: z.string(), split: z.string(), contextSize: z.number().int() }),
  tokens: z.number().int(),
  contexts: z.number().int(),
  explainedVariance: JsonNumber,
  mse: JsonNumber,
  l0: JsonNumber,
  deadFraction: JsonNumber,
  denseFraction: JsonNumber,
  denseThreshold: JsonNumber,
  ceLossClean: JsonNumber,
  ceLossSpliced: JsonNumber,
  ceLossZeroAblated: JsonNumber,
  ceLossRecovered: JsonNumber,
  densityHistogram: z.object({ edges: z.array(JsonNumber), counts: z.array(z.number().int()), dead: z.number().int() }),
});
export type SaeEvalResult = z.infer<typeof SaeEvalResponse>;
