/** Request and response schemas of the analysis endpoints (zod): bodies are parsed with them and the OpenAPI document is generated from them. */
import { z } from 'zod';
import type { Limits } from '../services/limits.ts';
import { JsonNumber } from '../services/common/nonFinite.ts';
import {
  TokenId, Index, TokenIdOut, TokenSpec, Grid2, Grid3, singlePrompt, batchPrompt, InputOptions, AblationMetric, AblationMode, referencePrompts, Ablation, MetricEcho, PromptTokens,
} from '../services/common/schema.ts';
export { AblationMetric, batchPrompt, InputOptions, MetricEcho, PromptTokens, singlePrompt, TokenSpec } from '../services/common/schema.ts';
export type { AblationMetricSpec } from '../services/common/schema.ts';

// POST /api/logit-lens
export function logitLensSchema(limits: Limits) {
  return z.strictObject({
    prompt: singlePrompt(),
    prependBos: InputOptions.prependBos,
    inclMid: z.boolean().default(false).describe('also read resid_mid of every layer'),
    applyLn: z.boolean().default(true).describe("apply ln_final to each layer's residual (TL accumulated_resid(apply_ln=True))"),
    topK: z.number().int().min(1).max(limits.maxTopK).default(5).describe(`top-k tokens per layer and position (1..${limits.maxTopK})`),
    targets: z.array(TokenSpec).min(1).max(20).optional().describe('tokens to track (single-token strings or ids, at most 20)'),
  });
}
export type LogitLensRequest = z.infer<ReturnType<typeof logitLensSchema>>;

export const LogitLensResponse = z.object({
  ...PromptTokens,
  labels: z.array(z.string()).describe('row axis: 0_pre, (0_mid,) 1_pre, …, final_post'),
  positions: z.array(z.number().int()).describe('column axis: the positions read'),
  top: z.array(z.array(z.array(z.object({ token: TokenIdOut, str: z.string().nullable(), prob: JsonNumber }))))
    .describe('[label][pos][k] most probable tokens of the lens, most probable first'),
  targets: z.array(z.object({
    token: TokenIdOut,
    str: z.string().nullable(),
    prob: Grid2.describe('[label][pos]'),
    rank: Grid2.describe('[label][pos] 0 = the top token'),
    logit: Grid2.describe('[label][pos]'),
  })).describe('one entry per requested target, in request order'),
});
export type LogitLensResult = z.infer<typeof LogitLensResponse>;

// POST /api/ablate
export function ablateSchema(limits: Limits) {
  return z.strictObject({
    prompt: singlePrompt(),
    prependBos: InputOptions.prependBos,
    ablations: z.array(Ablation).min(1).max(1024).describe('what to ablate together in one run (1..1024)'),
    mode: AblationMode,
    reference: referencePrompts(limits),
    seed: z.number().int().min(0).default(0).describe('resample: seed for drawing the reference prompt'),
    metric: AblationMetric,
  });
}
export type AblateRequest = z.infer<ReturnType<typeof ablateSchema>>;

export const AblateResponse = z.object({
  ...PromptTokens,
  metric: MetricEcho,
  clean: JsonNumber.describe('the metric without ablation'),
  ablated: JsonNumber.describe('the metric with every listed ablation'),
  delta: JsonNumber.describe('ablated − clean'),
});
export type AblateResult = z.infer<typeof AblateResponse>;

// POST /api/ablate/sweep
export function ablateSweepSchema(limits: Limits) {
  return z.strictObject({
    prompt: singlePrompt(),
    prependBos: InputOptions.prependBos,
    mode: AblationMode,
    reference: referencePrompts(limits),
    seed: z.number().int().min(0).default(0).describe('resample: seed for drawing the reference prompt'),
    metric: AblationMetric,
    layers: z.array(Index).min(1).max(512).optional().describe('layers to sweep (default all); every head of each is ablated in turn'),
    chunkSize: z.number().int().min(1).max(256).optional().describe('heads per forward pass (default 32); each pass is one progress event'),
  });
}
export type AblateSweepRequest = z.infer<ReturnType<typeof ablateSweepSchema>>;

export const AblateSweepResponse = z.object({
  ...PromptTokens,
  metric: MetricEcho,
  layers: z.array(z.number().int()).describe('row axis: the layers swept'),
  heads: z.array(z.number().int()).describe('column axis: 0..n_heads-1'),
  clean: JsonNumber.describe('the metric without ablation'),
  values: Grid2.describe('[layer][head] the metric with that head ablated (rows as in layers)'),
  delta: Grid2.describe('[layer][head] values − clean'),
});
export type AblateSweepResult = z.infer<typeof AblateSweepResponse>;

// POST /api/patch
export const PATCH_KINDS = ['resid_pre', 'attn_out', 'mlp_out', 'head_out_all_pos', 'head_out_by_pos'] as const;
export type PatchKind = (typeof PATCH_KINDS)[number];

export function patchSchema() {
  return z.strictObject({
    clean: singlePrompt().describe('the clean prompt (text or token ids)'),
    corrupted: singlePrompt().describe('the corrupted prompt; it must have the clean prompt\'s token length'),
    prependBos: InputOptions.prependBos,
    metric: z.strictObject({
      kind: z.literal('logit_diff'),
      correct: TokenSpec,
      incorrect: TokenSpec,
      position: Index.optional().describe('position read (negative counts from the end; default -1)'),
    }).describe('logit(correct) − logit(incorrect), normalised: clean run = 1, corrupted run = 0'),
    kinds: z.array(z.enum(PATCH_KINDS)).min(1).max(PATCH_KINDS.length).default([...PATCH_KINDS])
      .describe('resid_pre, attn_out, mlp_out ([layer][pos]); head_out_all_pos ([layer][head]); head_out_by_pos ([layer][pos][head]); default all'),
    chunkSize: z.number().int().min(1).max(256).optional().describe('patches per forward pass (default 32)'),
  });
}
export type PatchRequest = z.infer<ReturnType<typeof patchSchema>>;

export const PatchResponse = z.object({
  cleanTokens: z.array(TokenIdOut),
  corruptedTokens: z.array(TokenIdOut),
  cleanStrTokens: z.array(z.string()).nullable(),
  corruptedStrTokens: z.array(z.string()).nullable(),
  metric: MetricEcho,
  clean: JsonNumber.describe('the logit difference of the clean run'),
  corrupted: JsonNumber.describe('the logit difference of the corrupted run'),
  method: z.enum(['activation', 'attribution']).describe('activation patching (/api/patch), or its first-order estimate by attribution patching (/api/attribution-patch)'),
  results: z.array(z.object({
    kind: z.enum(PATCH_KINDS),
    dims: z.array(z.enum(['layer', 'pos', 'head'])).describe('axis names of values, e.g. [layer, pos]'),
    values: z.union([Grid2, Grid3]).describe('normalised metric with that slice of the clean run patched into the corrupted run (attribution: its linear estimate)'),
  })).describe('one entry per requested kind, in request order'),
});
export type PatchResult = z.infer<typeof PatchResponse>;

// POST /api/saliency
export const SALIENCY_METHODS = ['grad_x_input', 'integrated_gradients'] as const;

export function saliencySchema() {
  return z.strictObject({
    prompt: singlePrompt(),
    prependBos: InputOptions.prependBos,
    metric: AblationMetric,
    method: z.enum(SALIENCY_METHODS).default('grad_x_input')
      .describe('grad_x_input: embedding · gradient; integrated_gradients: (embedding − baseline) · the mean gradient along the path'),
    steps: z.number().int().min(1).max(1024).default(64).describe('integrated_gradients: points on the path (1..1024, default 64)'),
    baseline: z.union([z.literal('zero'), TokenSpec]).default('zero')
      .describe("integrated_gradients: 'zero' (the zero embedding) or a token whose embedding stands at every position"),
  });
}
export type SaliencyRequest = z.infer<ReturnType<typeof saliencySchema>>;

export const SaliencyResponse = z.object({
  ...PromptTokens,
  metric: MetricEcho,
  method: z.enum(SALIENCY_METHODS),
  steps: z.number().int().describe('points on the path (1 for grad_x_input)'),
  value: JsonNumber.describe('the metric of the prompt'),
  baselineValue: JsonNumber.nullable().describe('integrated_gradients: the metric at the baseline (null for grad_x_input)'),
  scores: z.array(JsonNumber).describe('[pos] each token\'s attribution, summed over d_model (integrated gradients: they add up to value − baselineValue)'),
});
export type SaliencyResult = z.infer<typeof SaliencyResponse>;

// POST /api/heads/detect
export const DETECT_KINDS = ['previous_token', 'duplicate_token', 'induction'] as const;
export type DetectKind = (typeof DETECT_KINDS)[number];

export function headsDetectSchema(limits: Limits) {
  return z.strictObject({
    prompt: singlePrompt().optional().describe('a prompt to score on (give this or repeated)'),
    repeated: z.strictObject({
      seqLen: z.number().int().min(1).max(4096).describe('length of the random span; the sequence is BOS + span + span'),
      batch: z.number().int().min(1).max(limits.maxBatch).default(1).describe(`sequences (1..${limits.maxBatch}); scores are averaged`),
      seed: z.number().int().min(0).default(0),
    }).optional().describe('score on repeated random tokens (TL generate_repeated_tokens)'),
    prependBos: InputOptions.prependBos,
    kinds: z.array(z.enum(DETECT_KINDS)).min(1).max(DETECT_KINDS.length).default([...DETECT_KINDS]).describe('default all three'),
  }).refine((b) => (b.prompt === undefined) !== (b.repeated === undefined), {
    message: 'give exactly one of prompt and repeated',
    path: ['prompt'],
  });
}
export type HeadsDetectRequest = z.infer<ReturnType<typeof headsDetectSchema>>;

export const HeadsDetectResponse = z.object({
  tokens: z.array(z.array(TokenIdOut)).describe('[sequence][pos] the tokens scored on'),
  strTokens: z.array(z.array(z.string())).nullable(),
  layers: z.array(z.number().int()).describe('row axis'),
  heads: z.array(z.number().int()).describe('column axis'),
  scores: z.array(z.object({ kind: z.enum(DETECT_KINDS), values: Grid2.describe('[layer][head] TL detect_head score (mul)') })),
  lossByPosition: z.object({
    loss: z.array(JsonNumber).describe('[pos-1] mean over sequences of the loss predicting token pos+1'),
    firstRepeat: JsonNumber.describe('mean loss predicting the first copy of the span'),
    secondRepeat: JsonNumber.describe('mean loss predicting the second copy (induction makes it low)'),
  }).nullable().describe('repeated tokens only'),
});
export type HeadsDetectResult = z.infer<typeof HeadsDetectResponse>;

// POST /api/ioi
export function ioiSchema(limits: Limits) {
  return z.strictObject({
    n: z.number().int().min(1).max(limits.maxIoiPrompts).default(20).describe(`prompts to generate (1..${limits.maxIoiPrompts})`),
    seed: z.number().int().min(0).default(0),
    order: z.enum(['ABBA', 'BABA', 'both']).default('both').describe('name order; both alternates'),
    prependBos: InputOptions.prependBos,
    prompts: z.array(z.strictObject({
      text: z.string().min(1).describe('the prompt, ending just before the answer ("… gave a drink to")'),
      io: z.string().min(1).describe('the indirect object (the answer), without the leading space; " " + io must be one token'),
      s: z.string().min(1).describe('the subject (the repeated name), without the leading space; " " + s must be one token'),
    })).min(1).max(limits.maxIoiPrompts).optional().describe('your own prompts instead of generated ones (n, seed and order are then ignored)'),
  });
}
export type IoiRequest = z.infer<ReturnType<typeof ioiSchema>>;

export const IoiResponse = z.object({
  prompts: z.array(z.object({
    text: z.string(),
    io: z.string(),
    s: z.string(),
    logitDiff: JsonNumber.describe('logit(" "+io) − logit(" "+s) at the last token'),
  })),
  meanLogitDiff: JsonNumber,
  accuracy: JsonNumber.describe('share of prompts with logitDiff > 0'),
  layers: z.array(z.number().int()).describe('row axis'),
  heads: z.array(z.number().int()).describe('column axis'),
  headAttribution: Grid2.describe('[layer][head] direct logit attribution of the IO − S logit difference, mean over prompts'),
});
export type IoiResult = z.infer<typeof IoiResponse>;

