/** POST /api/tokenize: token ids and token strings of one or more texts (unpadded, untruncated). */
import { z } from 'zod';
import type { Cell } from '../../hooks/figures/types.ts';
import { UserError } from '../context.ts';
import type { Limits } from '../limits.ts';
import { defineService } from '../service.ts';
import { InputOptions } from '../common/schema.ts';

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

export const tokenize = defineService({
  kind: 'tokenize',
  route: {
    path: '/api/tokenize',
    summary: 'Token ids and token strings of one or more texts',
    description: 'Unpadded, untruncated; fitsContext says whether each text fits n_ctx.',
  },
  request: tokenizeSchema,
  response: TokenizeResponse,
  handler: async (model, p): Promise<TokenizeResult> => {
    const tok = model.tokenizer;
    if (!tok) throw new UserError('this model was loaded without tokenizer files; it can only take token ids');
    const texts = typeof p.text === 'string' ? [p.text] : p.text;
    const prependBos = p.prependBos ?? model.cfg.default_prepend_bos;
    const tokens = texts.map((t, i) => {
      try {
        return tok.toTokens(t, { prependBos, truncate: false }).tokens[0];
      } catch (e) {
        throw new UserError(`text${typeof p.text === 'string' ? '' : `[${i}]`}: ${(e as Error).message}`); // e.g. a character outside a character-level vocabulary
      }
    });
    return {
      tokens,
      strTokens: tokens.map((row) => tok.toStrTokens(row)),
      nCtx: model.cfg.n_ctx,
      fitsContext: tokens.map((row) => row.length <= model.cfg.n_ctx),
    };
  },
  table: (r) => {
    const rows: Cell[][] = [];
    r.tokens.forEach((row, b) => row.forEach((t, p) => rows.push([b, p, t, r.strTokens[b][p]])));
    return { columns: ['batch', 'position', 'token', 'str'], rows };
  },
});
