/** The pieces the features' request and response schemas are built from: prompts, tokens, grids, metrics, ablations. */
import { z } from 'zod';
import type { Limits } from '../limits.ts';
import { JsonNumber } from './nonFinite.ts';

export const TokenId = z.number().int().min(0);
export const Index = z.number().int();

/** One prompt: text, or token ids. */
export function singlePrompt() {
  return z.union([z.string().min(1), z.array(TokenId).min(1)], {
    error: 'prompt must be a non-empty string or a non-empty array of token ids (integers ≥ 0)',
  });
}

/** One prompt or a batch: text, texts, token ids, or rows of token ids. */
export function batchPrompt(limits: Limits) {
  const max = limits.maxBatch;
  return z.union(
    [
      z.string().min(1),
      z.array(z.string().min(1)).min(1).max(max),
      z.array(TokenId).min(1),
      z.array(z.array(TokenId).min(1)).min(1).max(max),
    ],
    {
      error: (iss) => {
        const v = iss.input;
        if (Array.isArray(v) && v.length > max) return `a batch has at most ${max} prompts (maxBatch); got ${v.length}`;
        return 'prompt must be a non-empty string, an array of strings, an array of token ids, or an array of arrays of token ids';
      },
    },
  );
}

export const InputOptions = {
  /** Prepend BOS (<|endoftext|>) to text prompts; default the model's default_prepend_bos (true for GPT-2). */
  prependBos: z.boolean().optional().describe('prepend <|endoftext|> to text prompts (default true)'),
  paddingSide: z.enum(['left', 'right']).optional().describe('padding side of a batch of texts (default right)'),
};

// Grids are plain nested arrays, row-major, with their axis labels alongside (layers, heads, positions, labels).

/** A token given as a single-token string (" Mary") or a token id. */
export const TokenSpec = z.union([z.string().min(1), TokenId], {
  error: 'a token is a string that is exactly one token (e.g. " Mary", with its leading space) or a token id (integer ≥ 0)',
});
export const TokenIdOut = z.number().int();
export const Grid2 = z.array(z.array(JsonNumber));
export const Grid3 = z.array(z.array(z.array(JsonNumber)));

/** The metric of an ablation or a sweep, read from the run's logits. */
export const AblationMetric = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('logit_diff'),
    correct: TokenSpec.describe('the token whose logit counts positively'),
    incorrect: TokenSpec.describe('the token whose logit is subtracted'),
    position: Index.optional().describe('position read (negative counts from the end; default -1, the last)'),
  }),
  z.strictObject({ kind: z.literal('loss').describe('mean next-token cross-entropy loss over the prompt') }),
  z.strictObject({
    kind: z.literal('prob'),
    token: TokenSpec.describe('the token whose probability is read'),
    position: Index.optional().describe('position read (negative counts from the end; default -1, the last)'),
  }),
  z.strictObject({
    kind: z.literal('logprob'),
    token: TokenSpec.describe('the token whose log-probability is read'),
    position: Index.optional().describe('position read (negative counts from the end; default -1, the last)'),
  }),
], { error: "metric must be {kind: 'logit_diff', correct, incorrect, position?}, {kind: 'loss'}, {kind: 'prob', token, position?} or {kind: 'logprob', token, position?}" });
export type AblationMetricSpec = z.infer<typeof AblationMetric>;

export const AblationMode = z.enum(['zero', 'mean', 'resample']).default('zero')
  .describe("zero; mean (the mean activation over the reference prompts, and over positions); resample (a reference prompt's activation)");

export function referencePrompts(limits: Limits) {
  return z.array(z.string().min(1)).min(1).max(limits.maxBatch).optional()
    .describe(`reference prompts for mean / resample (1..${limits.maxBatch}; default the prompt itself). resample needs the prompt's token length`);
}

export const Ablation = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('head'), layer: Index, head: Index }),
  z.strictObject({ kind: z.literal('neuron'), layer: Index, neuron: Index }),
  z.strictObject({ kind: z.literal('position').describe('the residual stream (resid_pre of layer) at one position'), layer: Index, position: Index }),
], { error: "an ablation is {kind: 'head', layer, head}, {kind: 'neuron', layer, neuron} or {kind: 'position', layer, position}" });

export const MetricEcho = z.object({
  kind: z.enum(['logit_diff', 'loss', 'prob', 'logprob']),
  label: z.string().describe('e.g. "logit( Mary) − logit( John) @ pos 14"'),
  tokens: z.array(TokenIdOut).describe('the token ids the metric reads (correct, incorrect / token; none for loss)'),
  position: z.number().int().nullable().describe('the position read (resolved; null for loss)'),
});

export const PromptTokens = {
  tokens: z.array(TokenIdOut).describe('the prompt\'s token ids'),
  strTokens: z.array(z.string()).nullable().describe('each token as a string (null without a tokenizer)'),
};

