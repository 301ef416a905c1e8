/** POST /api/heads/detect: previous-token, duplicate-token and induction scores of every head (TL detect_head). */
import { z } from 'zod';
import { detectHead, generateRepeatedTokens, lossByPosition, type HeadName } from '../../hooks/analysis/index.ts';
import { headScoreFigure, lossByPositionFigure } from '../../hooks/figures/index.ts';
import type { Cell } from '../../hooks/figures/types.ts';
import { blockHook } from '../../hooks/hookPoints.ts';
import { UserError } from '../context.ts';
import type { Limits } from '../limits.ts';
import { defineService } from '../service.ts';
import { checkMemory, engineBytesPerToken, F32 } from '../common/budget.ts';
import { PREPEND_BOS_FLAG } from '../common/cli.ts';
import { JsonNumber, num } from '../common/nonFinite.ts';
import { grid, preparePrompt, userCall } from '../common/requests.ts';
import { Grid2, InputOptions, singlePrompt, TokenIdOut } from '../common/schema.ts';
import { range } from '../common/select.ts';

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

export const headsDetect = defineService({
  kind: 'headsDetect',
  route: {
    path: '/api/heads/detect',
    summary: 'Previous-token, duplicate-token and induction scores of every head (TL detect_head), on a prompt or repeated random tokens',
  },
  request: headsDetectSchema,
  response: HeadsDetectResponse,
  handler: async (model, p, ctx): Promise<HeadsDetectResult> => {
    const { n_layers, n_heads, n_ctx } = model.cfg;
    let tokens: number[][];
    if (p.repeated) {
      const r = p.repeated;
      tokens = userCall('repeated.seqLen', () => generateRepeatedTokens(model.cfg, { seqLen: r.seqLen, batch: r.batch, seed: r.seed }));
    } else {
      tokens = preparePrompt(model, p.prompt!, p).tokens;
    }
    const n = tokens[0].length;
    if (n < 2 || n >= n_ctx) {
      throw new UserError(`${p.repeated ? 'repeated.seqLen' : 'prompt'}: head detection needs 2..${n_ctx - 1} tokens (fewer than n_ctx = ${n_ctx}); got ${n}`);
    }
    const kinds = [...new Set(p.kinds)];
    const steps = kinds.length + (p.repeated ? 1 : 0);
    const patterns = range(n_layers).map((l) => blockHook(l, 'attn.hook_pattern'));
    const rows = tokens.length;
    checkMemory(ctx, [
      { what: `cached patterns ${n_layers} layers × ${rows} × ${n_heads} heads × ${n}² floats`, bytes: n_layers * rows * n_heads * n * n * F32 },
      { what: `onnxruntime working memory for ${rows * n} tokens`, bytes: rows * n * engineBytesPerToken(model.cfg, n) },
      ...(p.repeated ? [{ what: `logits for the loss ${rows} × ${n} × ${model.cfg.d_vocab} floats`, bytes: rows * n * model.cfg.d_vocab * F32 }] : []),
    ], p.repeated ? 'use a smaller repeated.batch or seqLen' : 'use a shorter prompt');
    ctx.checkCancelled();
    // One sequence: one run, its cache shared by every kind. Several: detectHead averages over them.
    const cache = tokens.length === 1 ? (await model.runWithCache(tokens, { namesFilter: patterns, returnType: 'none' }))[1] : undefined;
    const scores: HeadsDetectResult['scores'] = [];
    for (const kind of kinds) {
      ctx.checkCancelled();
      const name = `${kind}_head` as HeadName;
      const t = tokens.length === 1 ? await detectHead(model, tokens[0], name, { cache }) : await detectHead(model, tokens, name);
      scores.push({ kind, values: grid(t) });
      ctx.progress(scores.length, steps, kind);
    }
    let loss: HeadsDetectResult['lossByPosition'] = null;
    if (p.repeated) {
      ctx.checkCancelled();
      const seqLen = p.repeated.seqLen;
      const perPos = Array.from((await lossByPosition(model, tokens)).data); // [pos - 1]; entry q predicts token q + 1 (BOS at 0)
      const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
      loss = { loss: perPos, firstRepeat: mean(perPos.slice(0, seqLen)), secondRepeat: mean(perPos.slice(seqLen, 2 * seqLen)) };
      ctx.progress(steps, steps, 'loss');
    }
    return {
      tokens,
      strTokens: model.tokenizer ? tokens.map((row) => model.tokenizer!.toStrTokens(row)) : null,
      layers: range(n_layers),
      heads: range(n_heads),
      scores,
      lossByPosition: loss,
    };
  },
  /** Rows: a score per kind, layer and head; with repeated tokens also kind 'loss' per position (the loss predicting token position + 1). */
  table: (r) => {
    const rows: Cell[][] = [];
    for (const s of r.scores) r.layers.forEach((l) => r.heads.forEach((h) => rows.push([s.kind, l, h, null, num(s.values[l][h])])));
    r.lossByPosition?.loss.forEach((v, p) => rows.push(['loss', null, null, p, num(v)]));
    return { columns: ['kind', 'layer', 'head', 'position', 'value'], rows };
  },
  figures: (r) => [...r.scores.map((s) => headScoreFigure(r, s.kind)), ...(r.lossByPosition ? [lossByPositionFigure(r)] : [])],
  cli: {
    command: 'heads',
    summary: 'head detection: previous-token, duplicate-token and induction scores of every head (on a prompt or repeated random tokens)',
    flags: [
      { flag: 'prompt', type: 'string', path: 'prompt', help: 'score on this prompt (give this or --repeated)' },
      { flag: 'repeated', type: 'int', path: 'repeated.seqLen', help: 'score on BOS + span + span, a random span of N tokens' },
      { flag: 'batch', type: 'int', path: 'repeated.batch', help: 'repeated sequences to average over (default 1)' },
      { flag: 'seed', type: 'int', path: 'repeated.seed', help: 'seed of the random spans (default 0)' },
      { flag: 'kinds', type: 'list', path: 'kinds', help: 'previous_token,duplicate_token,induction (default all)' },
      PREPEND_BOS_FLAG,
    ],
  },
});
