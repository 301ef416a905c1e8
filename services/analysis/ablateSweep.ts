/** POST /api/ablate/sweep: each head ablated in turn, in batched forward passes: the metric as a [layer][head] grid. */
import { z } from 'zod';
import { headAblationSweep } from '../../hooks/analysis/index.ts';
import { ablationSweepFigure } from '../../hooks/figures/index.ts';
import type { Cell } from '../../hooks/figures/types.ts';
import { UserError } from '../context.ts';
import type { Limits } from '../limits.ts';
import { defineService } from '../service.ts';
import { F32, rowsPerStep } from '../common/budget.ts';
import { CHUNK_FLAG, inferMetric, metricFlags, PREPEND_BOS_FLAG, SEED_FLAG } from '../common/cli.ts';
import { JsonNumber, num } from '../common/nonFinite.ts';
import { buildMetric, checkIndex, checkSweep, passProgress, preparePrompt, strTokens } from '../common/requests.ts';
import { AblationMetric, AblationMode, Grid2, Index, InputOptions, MetricEcho, PromptTokens, referencePrompts, singlePrompt } from '../common/schema.ts';
import { range } from '../common/select.ts';
import { ablationSource, variantRow } from './common.ts';

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

export const ablateSweep = defineService({
  kind: 'ablateSweep',
  route: {
    path: '/api/ablate/sweep',
    summary: 'Each head ablated in turn: the metric as a [layer][head] grid (progress per forward pass; cancellable)',
    description: (limits) => `At most ${limits.maxSweepTokens} token positions (heads × prompt tokens; maxSweepTokens).`,
  },
  request: ablateSweepSchema,
  response: AblateSweepResponse,
  handler: async (model, p, ctx): Promise<AblateSweepResult> => {
    const { n_layers, n_heads } = model.cfg;
    const { tokens } = preparePrompt(model, p.prompt, p);
    const pos = tokens[0].length;
    const metric = buildMetric(model, p.metric, tokens);
    const layers = p.layers ?? range(n_layers);
    layers.forEach((l, i) => checkIndex(`layers[${i}]`, l, n_layers, 'n_layers'));
    if (new Set(layers).size !== layers.length) throw new UserError('layers: each layer may be listed once');
    const heads = layers.flatMap((layer) => range(n_heads).map((head) => ({ layer, head })));
    checkSweep(heads.length, pos, ctx, 'sweep fewer layers or use a shorter prompt');
    const source = ablationSource(model, p, pos);
    const chunkSize = rowsPerStep(ctx, {
      fixed: [{ what: `clean logits ${pos} × ${model.cfg.d_vocab} floats`, bytes: pos * model.cfg.d_vocab * F32 }],
      perRow: variantRow(model, pos, p.metric.kind !== 'loss'),
      rowTokens: pos, rows: heads.length, requested: p.chunkSize ?? 32,
    }, 'use a shorter prompt');
    ctx.checkCancelled();
    const clean = metric.fn(await model.forward(tokens));
    ctx.checkCancelled();
    const scores = await headAblationSweep(model, tokens, metric.fn, {
      ...source, heads, chunkSize,
      onProgress: passProgress(ctx, 0, undefined, 'heads'),
    });
    const values = layers.map((l) => range(n_heads).map((h) => scores.get(l, h)));
    return {
      tokens: tokens[0], strTokens: strTokens(model, tokens[0]), metric: metric.echo, layers, heads: range(n_heads), clean,
      values, delta: values.map((row) => row.map((v) => v - clean)),
    };
  },
  table: (r) => {
    const rows: Cell[][] = [];
    r.layers.forEach((l, i) => r.heads.forEach((h, j) => rows.push([l, h, num(r.values[i][j]), num(r.delta[i][j])])));
    return { columns: ['layer', 'head', 'value', 'delta'], rows };
  },
  figures: (r, req) => [ablationSweepFigure(r, { mode: req.mode })],
  cli: {
    command: 'sweep',
    summary: 'ablation sweep: the metric with each head ablated alone, in batched forward passes',
    flags: [
      { flag: 'prompt', type: 'string', path: 'prompt', help: 'the prompt (text)' },
      { flag: 'metric', type: 'string', path: 'metric.kind', help: 'logit_diff | prob | loss (default: from the flags given; loss without any)' },
      ...metricFlags('logit_diff, prob'),
      { flag: 'token', type: 'token', path: 'metric.token', help: 'prob: the token whose probability is read' },
      { flag: 'mode', type: 'string', path: 'mode', help: 'zero | mean | resample (default zero)' },
      { flag: 'reference', type: 'string', path: 'reference', multiple: true, help: 'a reference prompt for mean / resample' },
      { flag: 'layers', type: 'intList', path: 'layers', help: 'layers to sweep (default all)' },
      SEED_FLAG, CHUNK_FLAG, PREPEND_BOS_FLAG,
    ],
    prepare: (req) => inferMetric(req, 'loss'),
  },
});
