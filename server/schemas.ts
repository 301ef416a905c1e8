/** Request and response schemas of the inference endpoints (zod): bodies are parsed with them and the OpenAPI document is generated from them. */
import { z } from 'zod';
import type { Limits } from './config.ts';
import { JsonNumber } from './nonFinite.ts';

const TokenId = z.number().int().min(0);
const Index = z.number().int();

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

const InputOptions = {
  /** Prepend BOS (<|endoftext|>) to text prompts; default the model's default_prepend_bos (true for GPT-2). */
  prependBos: z.boolean().optional().describe('prepend <|endoftext|> to text prompts (default true)'),
  paddingSide: z.enum(['left', 'right']).optional().describe('padding side of a batch of texts (default right)'),
};

export function tokenizeSchema(limits: Limits) {
  return z.strictObject({
    text: z.union([z.string(), z.array(z.string()).min(1).max(limits.maxBatch)], {
      error: `text must be a string or an array of 1..${limits.maxBatch} strings`,
    }),
    prependBos: InputOptions.prependBos,
  });
}
export type TokenizeRequest = z.infer<ReturnType<typeof tokenizeSchema>>;

export const TokenizeResponse = z.object({
  tokens: z.array(z.array(z.number().int())).describe('token ids per text, unpadded'),
  strTokens: z.array(z.array(z.string())).describe('each token decoded on its own'),
  nCtx: z.number().int(),
  fitsContext: z.array(z.boolean()).describe('whether each text fits the context (≤ n_ctx tokens)'),
});
export type TokenizeResult = z.infer<typeof TokenizeResponse>;

export function forwardSchema(limits: Limits) {
  return z.strictObject({
    prompt: batchPrompt(limits),
    ...InputOptions,
    topK: z.number().int().min(1).max(limits.maxTopK).default(10).describe(`top-k next tokens per position (1..${limits.maxTopK})`),
  });
}
export type ForwardRequest = z.infer<ReturnType<typeof forwardSchema>>;

const TopToken = z.object({ token: z.number().int(), str: z.string().nullable(), prob: JsonNumber, logit: JsonNumber });
export const ForwardResponse = z.object({
  tokens: z.array(z.array(z.number().int())).describe('[batch][pos] token ids (padded batches include pads)'),
  strTokens: z.array(z.array(z.string())).nullable(),
  attentionMask: z.array(z.array(z.number().int())).nullable().describe('[batch][pos] 1 = real token; null when nothing is padded'),
  top: z.array(z.array(z.array(TopToken))).describe('[batch][pos][k] next-token candidates, most probable first'),
  lossPerToken: z.array(z.array(JsonNumber.nullable())).describe('[batch][pos-1] loss predicting token pos+1; null where padded'),
  loss: JsonNumber.nullable().describe('mean of lossPerToken over real tokens; null with a single position'),
});
export type ForwardResult = z.infer<typeof ForwardResponse>;

export function attentionSchema() {
  return z.strictObject({
    prompt: singlePrompt(),
    prependBos: InputOptions.prependBos,
    layers: z.array(Index).min(1).max(512).optional().describe('layers to return (default all)'),
    heads: z.array(Index).min(1).max(512).optional().describe('heads to return in each layer (default all)'),
    scores: z.boolean().default(false).describe('also return the pre-softmax scores (masked entries are "-Infinity")'),
  });
}
export type AttentionRequest = z.infer<ReturnType<typeof attentionSchema>>;

export const AttentionResponse = z.object({
  tokens: z.array(z.number().int()),
  strTokens: z.array(z.string()).nullable(),
  layers: z.array(z.number().int()),
  heads: z.array(z.number().int()),
  patterns: z.array(z.array(z.array(z.array(JsonNumber)))).describe('[layer][head][query_pos][key_pos] attention probabilities'),
  scores: z.array(z.array(z.array(z.array(JsonNumber)))).optional().describe('[layer][head][query_pos][key_pos] pre-softmax scores'),
});
export type AttentionResult = z.infer<typeof AttentionResponse>;

const DimSelector = z.union(
  [
    Index,
    z.array(Index).min(1),
    z.strictObject({ start: Index.optional(), end: Index.optional() }),
  ],
  { error: 'a selector is an index (negative counts from the end), a non-empty array of indices, or {start, end}' },
);

export function activationsSchema(limits: Limits) {
  return z.strictObject({
    prompt: batchPrompt(limits),
    ...InputOptions,
    hook: z.string().min(1).max(200).describe('hook point name, e.g. blocks.0.attn.hook_pattern (see GET /api/model)'),
    select: z
      .record(z.string().max(40), DimSelector)
      .optional()
      .describe('per dim name (batch, pos, head, d_model, …): an index (dim dropped), an index list, or {start, end}'),
  });
}
export type ActivationsRequest = z.infer<ReturnType<typeof activationsSchema>>;

export const ActivationsResponse = z.object({
  hook: z.string(),
  fullShape: z.array(z.number().int()).describe('shape of the hook point for this input'),
  dims: z.array(z.string()).describe('names of the dims that remain'),
  shape: z.array(z.number().int()).describe('shape of values'),
  indices: z.array(z.array(z.number().int())).describe('for each remaining dim, the original index of each entry'),
  values: z.unknown().describe('nested arrays of numbers of the given shape (a number when every dim was indexed)'),
});
export type ActivationsResult = { hook: string; fullShape: number[]; dims: string[]; shape: number[]; indices: number[][]; values: unknown };
