/** POST /api/ioi: indirect object identification — the IO − S logit difference per prompt, accuracy, per-head direct logit attribution. */
import { z } from 'zod';
import { directLogitAttribution, ioiDataset } from '../../hooks/analysis/index.ts';
import { ioiAttributionFigure, ioiLogitDiffFigure } from '../../hooks/figures/index.ts';
import type { Cell } from '../../hooks/figures/types.ts';
import { UserError } from '../context.ts';
import type { Limits } from '../limits.ts';
import { defineService } from '../service.ts';
import { dlaFloatsPerToken, engineBytesPerToken, F32, rowsPerStep } from '../common/budget.ts';
import { PREPEND_BOS_FLAG, SEED_FLAG } from '../common/cli.ts';
import { JsonNumber, num } from '../common/nonFinite.ts';
import { userCall } from '../common/requests.ts';
import { Grid2, InputOptions } from '../common/schema.ts';
import { nest, range } from '../common/select.ts';

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

export const ioi = defineService({
  kind: 'ioi',
  route: { path: '/api/ioi', summary: 'Indirect object identification: logit difference per prompt, accuracy, per-head direct logit attribution' },
  request: ioiSchema,
  response: IoiResponse,
  handler: async (model, p, ctx): Promise<IoiResult> => {
    const { n_layers, n_heads, n_ctx, d_vocab } = model.cfg;
    const tok = model.tokenizer;
    if (!tok) throw new UserError('this model was loaded without tokenizer files; /api/ioi needs a tokenizer');
    const prependBos = p.prependBos ?? model.cfg.default_prepend_bos;
    let prompts: { text: string; io: string; s: string }[];
    let ds: { tokens: number[][]; attentionMask: number[][]; ioTokens: number[]; sTokens: number[]; endPos: number[] };
    ctx.checkCancelled();
    if (p.prompts) {
      prompts = p.prompts;
      const one = (field: string, w: string) => {
        const ids = tok.encode(` ${w}`);
        if (ids.length !== 1) throw new UserError(`${field}: ' ${w}' is ${ids.length} tokens; IOI names must be single tokens with a leading space`);
        return ids[0];
      };
      const ioTokens = prompts.map((q, i) => one(`prompts[${i}].io`, q.io));
      const sTokens = prompts.map((q, i) => one(`prompts[${i}].s`, q.s));
      const { tokens, attentionMask } = tok.toTokens(prompts.map((q) => q.text), { prependBos, paddingSide: 'right' });
      if (tokens[0].length > n_ctx) throw new UserError(`prompts: the longest prompt has ${tokens[0].length} tokens; the model's context is n_ctx = ${n_ctx}`);
      const endPos = attentionMask.map((row) => row.reduce((a, b) => a + b, 0) - 1);
      ds = { tokens, attentionMask, ioTokens, sTokens, endPos };
    } else {
      const gen = userCall('n', () => ioiDataset(tok, { n: p.n, seed: p.seed, order: p.order === 'both' ? 'mixed' : p.order, prependBos }));
      prompts = gen.prompts.map((q) => ({ text: q.prompt, io: q.io, s: q.s }));
      ds = gen;
    }
    // What ioiHeadAttribution does, a few prompts at a time: the logit difference is read at each prompt's last token
    // only (logits [rows, 1, d_vocab]), and each step caches what the attribution needs for its prompts alone.
    const n = ds.tokens.length;
    const pos = ds.tokens[0].length;
    const step = rowsPerStep(ctx, {
      fixed: [],
      perRow: [
        { what: `cached activations for attribution, ${pos} tokens × ${dlaFloatsPerToken(model)} floats per prompt`, bytes: pos * dlaFloatsPerToken(model) * F32 },
        { what: `onnxruntime working memory for ${pos} tokens per prompt`, bytes: pos * engineBytesPerToken(model.cfg, pos) },
        { what: `logits 1 × ${d_vocab} floats per prompt`, bytes: d_vocab * F32 },
      ],
      rowTokens: pos, rows: n,
    }, 'use shorter prompts');
    const diffs: number[] = [];
    const headSum = new Float64Array(n_layers * n_heads);
    for (let b0 = 0; b0 < n; b0 += step) {
      ctx.checkCancelled();
      const b1 = Math.min(n, b0 + step);
      const rows = range(b1 - b0).map((i) => b0 + i);
      const len = Math.max(...rows.map((b) => ds.endPos[b])) + 1; // right-padded: this step's longest prompt
      const mask = rows.map((b) => ds.attentionMask[b].slice(0, len));
      const padded = mask.some((r) => r.some((m) => m === 0));
      const dla = await directLogitAttribution(model, rows.map((b) => ds.tokens[b].slice(0, len)), {
        correct: rows.map((b) => ds.ioTokens[b]), incorrect: rows.map((b) => ds.sTokens[b]), positions: rows.map((b) => ds.endPos[b]),
        ...(padded ? { attentionMask: mask } : {}),
      });
      diffs.push(...dla.logitDiff.data);
      const heads = dla.heads.data; // [rows, n_layers, n_heads]
      for (let r = 0; r < rows.length; r++) for (let i = 0; i < headSum.length; i++) headSum[i] += heads[r * headSum.length + i];
      ctx.progress(b1, n, 'prompts');
    }
    const headMean = Float32Array.from(headSum, (v) => v / n);
    return {
      prompts: prompts.map((q, i) => ({ text: q.text, io: q.io, s: q.s, logitDiff: diffs[i] })),
      meanLogitDiff: diffs.reduce((a, b) => a + b, 0) / n,
      accuracy: diffs.filter((d) => d > 0).length / n,
      layers: range(n_layers),
      heads: range(n_heads),
      headAttribution: nest(headMean, [n_layers, n_heads]) as number[][],
    };
  },
  /** Rows: kind 'prompt' (index, text, io, s, logit difference), then kind 'head' (layer, head, mean attribution). */
  table: (r) => {
    const rows: Cell[][] = [];
    r.prompts.forEach((p, i) => rows.push(['prompt', i, p.text, p.io, p.s, null, null, num(p.logitDiff)]));
    r.layers.forEach((l) => r.heads.forEach((h) => rows.push(['head', null, null, null, null, l, h, num(r.headAttribution[l][h])])));
    return { columns: ['kind', 'index', 'text', 'io', 's', 'layer', 'head', 'value'], rows };
  },
  figures: (r) => [ioiLogitDiffFigure(r), ioiAttributionFigure(r)],
  cli: {
    command: 'ioi',
    summary: 'indirect object identification: IO − S logit difference per prompt and its direct attribution to each head',
    flags: [
      { flag: 'n', type: 'int', path: 'n', help: 'prompts to generate (default 20)' },
      SEED_FLAG,
      { flag: 'order', type: 'string', path: 'order', help: 'ABBA | BABA | both (default both)' },
      PREPEND_BOS_FLAG,
    ],
  },
});
