/** POST /api/logit-lens: the top-k tokens and the tracked tokens' prob / rank / logit read from each layer's residual stream. */
import { z } from 'zod';
import { logitLensFromCache, withModel, type LogitLensResult as LibLogitLens } from '../../hooks/analysis/index.ts';
import { logitLensFigure } from '../../hooks/figures/index.ts';
import type { Cell } from '../../hooks/figures/types.ts';
import { blockHook, type HookName } from '../../hooks/hookPoints.ts';
import type { Limits } from '../limits.ts';
import { defineService } from '../service.ts';
import { engineBytesPerToken, F32, rowsPerStep } from '../common/budget.ts';
import { PREPEND_BOS_FLAG } from '../common/cli.ts';
import { JsonNumber, num } from '../common/nonFinite.ts';
import { checkSize, preparePrompt, strOf, strTokens, tokenId } from '../common/requests.ts';
import { Grid2, InputOptions, PromptTokens, singlePrompt, TokenIdOut, TokenSpec } from '../common/schema.ts';
import { range } from '../common/select.ts';

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

export const logitLens = defineService({
  kind: 'logitLens',
  route: {
    path: '/api/logit-lens',
    summary: 'Logit lens: top-k tokens and target tokens\' prob / rank / logit per layer and position',
    description: 'Each resid_pre (and resid_mid with inclMid) and the final residual through ln_final (applyLn) and the unembedding (TL accumulated_resid).',
  },
  request: logitLensSchema,
  response: LogitLensResponse,
  handler: async (model, p, ctx): Promise<LogitLensResult> => {
    const { n_layers, d_model, d_vocab } = model.cfg;
    const { tokens } = preparePrompt(model, p.prompt, p);
    const targets = (p.targets ?? []).map((t, i) => tokenId(model, `targets[${i}]`, t));
    const pos = tokens[0].length;
    const L = n_layers * (p.inclMid ? 2 : 1) + 1;
    const k = Math.min(p.topK, d_vocab);
    checkSize(L * pos * (k * 2 + targets.length * 3), ctx, 'use a shorter prompt, a smaller topK or fewer targets');
    // The residual streams are cached once; the unembedding runs over a few positions at a time ([L · positions, d_vocab]
    // logits, kept in JavaScript too when targets are tracked).
    const positionsPerStep = rowsPerStep(ctx, {
      fixed: [
        { what: `cached residual streams ${L} × ${pos} × ${d_model} floats`, bytes: L * pos * d_model * F32 },
        { what: `onnxruntime working memory for ${pos} tokens`, bytes: pos * engineBytesPerToken(model.cfg, pos) },
      ],
      perRow: [{ what: `logits of ${L} residual streams × ${d_vocab} floats per position${targets.length ? ' (×3 with targets)' : ' (×2)'}`, bytes: L * d_vocab * F32 * (targets.length ? 3 : 2) }],
      rowTokens: L, rows: pos,
    }, 'use a shorter prompt');
    const names: HookName[] = [];
    for (let l = 0; l < n_layers; l++) {
      names.push(blockHook(l, 'hook_resid_pre'));
      if (p.inclMid) names.push(blockHook(l, 'hook_resid_mid'));
    }
    names.push(blockHook(n_layers - 1, 'hook_resid_post'), 'ln_final.hook_scale');
    ctx.checkCancelled();
    const [, raw] = await model.runWithCache(tokens, { namesFilter: names, returnType: 'none' });
    const cache = withModel(raw, model);
    let labels: string[] = [];
    const top: LogitLensResult['top'] = [];
    const planes = targets.map(() => ({ prob: [] as number[][], rank: [] as number[][], logit: [] as number[][] })); // [label][pos]
    for (let p0 = 0; p0 < pos; p0 += positionsPerStep) {
      ctx.checkCancelled();
      const p1 = Math.min(pos, p0 + positionsPerStep);
      // One unembedding for the top tokens and every target.
      const lens: LibLogitLens = await logitLensFromCache(cache, tokens, {
        inclMid: p.inclMid, applyLn: p.applyLn, topK: k, targets, positions: range(p1 - p0).map((i) => p0 + i),
      });
      labels = lens.labels;
      const P = p1 - p0;
      for (let l = 0; l < L; l++) {
        top[l] ??= [];
        for (let q = 0; q < P; q++) {
          const cands = [];
          for (let j = 0; j < k; j++) {
            const at = (l * P + q) * k + j;
            const token = lens.topTokens.data[at];
            cands.push({ token, str: strOf(model, token), prob: lens.topProbs.data[at] });
          }
          top[l].push(cands);
        }
      }
      (lens.targets ?? []).forEach((r, i) => {
        for (const key of ['prob', 'rank', 'logit'] as const) {
          for (let l = 0; l < L; l++) (planes[i][key][l] ??= []).push(...r[key].data.subarray(l * P, (l + 1) * P)); // [label, 1, P]
        }
      });
      ctx.progress(p1, pos, 'positions');
    }
    const tracked: LogitLensResult['targets'] = planes.map((pl, i) => ({ token: targets[i], str: strOf(model, targets[i]), ...pl }));
    return { tokens: tokens[0], strTokens: strTokens(model, tokens[0]), labels, positions: range(pos), top, targets: tracked };
  },
  /** Rows: per label and position, the top-k tokens (kind 'top', rank = k) then each target (kind 'target', its rank). */
  table: (r) => {
    const rows: Cell[][] = [];
    r.labels.forEach((label, l) =>
      r.positions.forEach((p, q) => {
        const tok = r.tokens[p];
        const str = r.strTokens?.[p] ?? null;
        r.top[l][q].forEach((c, k) => rows.push([label, p, tok, str, 'top', k, c.token, c.str, num(c.prob), null]));
        for (const t of r.targets) rows.push([label, p, tok, str, 'target', num(t.rank[l][q]), t.token, t.str, num(t.prob[l][q]), num(t.logit[l][q])]);
      }),
    );
    return { columns: ['label', 'position', 'token', 'str', 'kind', 'rank', 'candidate', 'candidate_str', 'prob', 'logit'], rows };
  },
  /** The lens's top tokens, then one figure per tracked target. */
  figures: (r) => [
    logitLensFigure(r),
    ...r.targets.map((_t, i) => ({ ...logitLensFigure(r, { of: i }), name: `logit-lens-target-${i}` })),
  ],
  cli: {
    command: 'logit-lens',
    summary: 'the logit lens of a prompt: the top token (and tracked targets) read from the residual stream after each layer',
    flags: [
      { flag: 'prompt', type: 'string', path: 'prompt', help: 'the prompt (text)' },
      { flag: 'target', type: 'token', path: 'targets', multiple: true, help: 'a token to track (single-token text or an id)' },
      { flag: 'top-k', type: 'int', path: 'topK', help: 'top tokens per layer and position (default 5)' },
      { flag: 'incl-mid', type: 'bool', path: 'inclMid', help: 'also read resid_mid of every layer' },
      { flag: 'no-apply-ln', type: 'bool', negate: true, path: 'applyLn', help: "do not apply ln_final to each layer's residual" },
      PREPEND_BOS_FLAG,
    ],
  },
});
