/** POST /api/tokenize, /api/forward, /api/attention, /api/activations: model jobs that need no analysis toolkit. */
import type { Limits } from '../../services/limits.ts';
import type { Cell, Table } from '../csv.ts';
import { runJob } from '../jobRoute.ts';
import { defineRoute, type RouteDef } from '../routeTable.ts';
import {
  ActivationsResponse, AttentionResponse, ForwardResponse, TokenizeResponse, activationsSchema, attentionSchema, forwardSchema, tokenizeSchema,
  type ActivationsResult, type AttentionResult, type ForwardResult, type TokenizeResult,
} from '../schemas.ts';

export function tokenizeTable(r: TokenizeResult): Table {
  const rows: Cell[][] = [];
  r.tokens.forEach((row, b) => row.forEach((t, p) => rows.push([b, p, t, r.strTokens[b][p]])));
  return { columns: ['batch', 'position', 'token', 'str'], rows };
}

export function forwardTable(r: ForwardResult): Table {
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
}

export function attentionTable(r: AttentionResult): Table {
  const rows: Cell[][] = [];
  r.layers.forEach((l, li) =>
    r.heads.forEach((h, hi) =>
      r.patterns[li][hi].forEach((qRow, q) =>
        qRow.forEach((v, k) => rows.push([l, h, q, k, v as number, ...(r.scores ? [r.scores[li][hi][q][k] as number] : [])])),
      ),
    ),
  );
  return { columns: ['layer', 'head', 'query_pos', 'key_pos', 'pattern', ...(r.scores ? ['score'] : [])], rows };
}

/** One row per value: the original index along each remaining dim, then the value. */
export function activationsTable(r: ActivationsResult): Table {
  const rows: Cell[][] = [];
  const walk = (v: unknown, d: number, idx: number[]): void => {
    if (d === r.shape.length) {
      rows.push([...idx, v as number]);
      return;
    }
    (v as unknown[]).forEach((x, i) => walk(x, d + 1, [...idx, r.indices[d][i]]));
  };
  walk(r.values, 0, []);
  return { columns: [...r.dims, 'value'], rows };
}

export function inferenceRoutes(limits: Limits): RouteDef[] {
  return [
    defineRoute({
      method: 'post', path: '/api/tokenize', formats: ['json', 'csv', 'sse'],
      summary: 'Token ids and token strings of one or more texts',
      description: 'Unpadded, untruncated; fitsContext says whether each text fits n_ctx.',
      body: tokenizeSchema(limits), response: TokenizeResponse,
      handler: (ctx) => runJob(ctx, 'tokenize', ctx.body, tokenizeTable),
    }),
    defineRoute({
      method: 'post', path: '/api/forward', formats: ['json', 'csv', 'sse'],
      summary: 'Top-k next tokens per position with probabilities, and the loss per token',
      description: `A batch runs in steps of ≤ ${limits.tokensPerStep} tokens; with SSE each step is a progress event and a cancel stops between steps.`,
      body: forwardSchema(limits), response: ForwardResponse,
      handler: (ctx) => runJob(ctx, 'forward', ctx.body, forwardTable),
    }),
    defineRoute({
      method: 'post', path: '/api/attention', formats: ['json', 'csv', 'sse'],
      summary: 'Attention patterns (and optionally scores) for chosen layers and heads',
      body: attentionSchema(), response: AttentionResponse,
      handler: (ctx) => runJob(ctx, 'attention', ctx.body, attentionTable),
    }),
    defineRoute({
      method: 'post', path: '/api/activations', formats: ['json', 'csv', 'sse'],
      summary: 'Any hook point by name, with an index selection per dim',
      description: `The selection may hold at most ${limits.maxElements} numbers (maxElements).`,
      body: activationsSchema(limits), response: ActivationsResponse,
      handler: (ctx) => runJob(ctx, 'activations', ctx.body, activationsTable),
    }),
  ];
}
