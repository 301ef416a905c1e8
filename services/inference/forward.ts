/** POST /api/forward: the top-k next tokens per position with their probabilities, and the loss per token. */
import { z } from 'zod';
import type { HookedTransformer } from '../../hooks/HookedTransformer.ts';
import type { Cell } from '../../hooks/figures/types.ts';
import { scoresNextToken } from '../../hooks/ops/index.ts';
import type { Tensor } from '../../hooks/tensor.ts';
import type { Limits } from '../limits.ts';
import { defineService } from '../service.ts';
import { checkAnswerBytes, engineBytesPerToken, F32, JSON_BYTES_PER_NUMBER, rowsPerStep } from '../common/budget.ts';
import { JsonNumber } from '../common/nonFinite.ts';
import { preparePrompt } from '../common/requests.ts';
import { batchPrompt, InputOptions } from '../common/schema.ts';

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

/** Top-k of one [rows, pos, d_vocab] logits chunk, as [rows][pos][k] entries. */
function topTokens(model: HookedTransformer, logits: Tensor, k: number): ForwardResult['top'] {
  const [rows, pos, V] = logits.shape;
  const lp = logits.logSoftmax(-1); // [rows, pos, d_vocab]
  const top = lp.topk(k, -1); // values, indices: [rows, pos, k]
  const out: ForwardResult['top'] = [];
  for (let r = 0; r < rows; r++) {
    const row: ForwardResult['top'][number] = [];
    for (let q = 0; q < pos; q++) {
      const entries = [];
      for (let j = 0; j < k; j++) {
        const at = (r * pos + q) * k + j;
        const token = top.indices.data[at];
        entries.push({
          token,
          str: model.tokenizer ? model.tokenizer.decode([token]) : null,
          prob: Math.exp(top.values.data[at]),
          logit: logits.data[(r * pos + q) * V + token],
        });
      }
      row.push(entries);
    }
    out.push(row);
  }
  return out;
}

export const forward = defineService({
  kind: 'forward',
  route: {
    path: '/api/forward',
    summary: 'Top-k next tokens per position with probabilities, and the loss per token',
    description: (limits) => `A batch runs in steps of ≤ ${limits.tokensPerStep} tokens; with SSE each step is a progress event and a cancel stops between steps.`,
  },
  request: forwardSchema,
  response: ForwardResponse,
  /** Runs the batch in steps of ≤ limits.tokensPerStep tokens (progress + cancel between steps). */
  handler: async (model, p, ctx): Promise<ForwardResult> => {
    const { tokens, attentionMask } = preparePrompt(model, p.prompt, p);
    const batch = tokens.length;
    const pos = tokens[0].length;
    const k = Math.min(p.topK, model.cfg.d_vocab);
    // ≈ 75 bytes per candidate ({"token":12345,"str":" word","prob":0.0123…,"logit":-1.234…}) and 20 per loss.
    checkAnswerBytes(ctx, batch * pos * (k * 75 + JSON_BYTES_PER_NUMBER), `${batch} prompts × ${pos} positions × top ${k}`,
      'ask for a smaller topK, fewer prompts or shorter ones');
    const V = model.cfg.d_vocab;
    const step = rowsPerStep(ctx, {
      fixed: [],
      perRow: [
        { what: `logits and log-probabilities ${pos} × ${V} floats ×2 per prompt`, bytes: 2 * pos * V * F32 },
        { what: `onnxruntime working memory for ${pos} tokens`, bytes: pos * engineBytesPerToken(model.cfg, pos) },
      ],
      rowTokens: pos, rows: batch, requested: Math.max(1, Math.floor(ctx.limits.tokensPerStep / pos)),
    }, 'use shorter prompts');
    const top: ForwardResult['top'] = [];
    const lossPerToken: ForwardResult['lossPerToken'] = [];
    let sum = 0;
    let count = 0;
    for (let b0 = 0; b0 < batch; b0 += step) {
      ctx.checkCancelled();
      const rows = tokens.slice(b0, b0 + step);
      const mask = attentionMask?.slice(b0, b0 + step);
      let logits: Tensor;
      if (pos >= 2) {
        const out = await model.forward(rows, { returnType: 'both', lossPerToken: true, attentionMask: mask });
        logits = out.logits;
        const per = out.loss as Tensor; // [rows, pos - 1]
        rows.forEach((_, r) => {
          const line: (number | null)[] = [];
          for (let q = 0; q < pos - 1; q++) {
            const real = scoresNextToken(mask, r, q);
            const v = per.data[r * (pos - 1) + q];
            line.push(real ? v : null);
            if (real) {
              sum += v;
              count++;
            }
          }
          lossPerToken.push(line);
        });
      } else {
        logits = await model.forward(rows, { attentionMask: mask });
        rows.forEach(() => lossPerToken.push([]));
      }
      top.push(...topTokens(model, logits, k));
      ctx.progress(Math.min(batch, b0 + rows.length), batch, 'prompts');
    }
    return {
      tokens,
      strTokens: model.tokenizer ? tokens.map((row) => model.tokenizer!.toStrTokens(row)) : null,
      attentionMask: attentionMask ?? null,
      top,
      lossPerToken,
      loss: count > 0 ? sum / count : null,
    };
  },
  table: (r) => {
    const rows: Cell[][] = [];
    r.top.forEach((row, b) =>
      row.forEach((cands, p) => {
        const loss = r.lossPerToken[b][p] ?? null;
        cands.forEach((c, k) =>
          rows.push([b, p, r.tokens[b][p], r.strTokens?.[b][p] ?? null, loss, k, c.token, c.str, c.prob, c.logit]),
        );
      }),
    );
    return { columns: ['batch', 'position', 'token', 'str', 'loss_next', 'rank', 'top_token', 'top_str', 'prob', 'logit'], rows };
  },
});
