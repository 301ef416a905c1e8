/** POST /api/logit-lens, /api/ablate, /api/ablate/sweep, /api/patch, /api/attribution-patch, /api/saliency, /api/heads/detect, /api/ioi, /api/circuits/*: the analysis toolkit as model jobs, each also as CSV. */
import type { Limits } from '../../services/limits.ts';
import type { Cell, Table } from '../csv.ts';
import { runJob } from '../jobRoute.ts';
import { defineRoute, type RouteContext, type RouteDef } from '../routeTable.ts';
import type { JobKind, JobPayload, JobResult } from '../worker/jobs.ts';
import {
  AblateResponse, AblateSweepResponse, HeadsDetectResponse, IoiResponse, LogitLensResponse, PatchResponse,
  SaliencyResponse, ablateSchema, ablateSweepSchema, headsDetectSchema, ioiSchema,
  logitLensSchema, patchSchema, saliencySchema, type AblateResult, type AblateSweepResult, type HeadsDetectResult, type IoiResult,
  type LogitLensResult, type PatchResult, type SaliencyResult, } from '../schemas.ts';

type N = number | string; // JsonNumber as typed by zod (non-finite markers only appear after serialisation)
const num = (v: N): number => v as number;

/** Rows: per label and position, the top-k tokens (kind 'top', rank = k) then each target (kind 'target', its rank). */
export function logitLensTable(r: LogitLensResult): Table {
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
}

export function ablateTable(r: AblateResult): Table {
  return { columns: ['metric', 'clean', 'ablated', 'delta'], rows: [[r.metric.label, num(r.clean), num(r.ablated), num(r.delta)]] };
}

export function ablateSweepTable(r: AblateSweepResult): Table {
  const rows: Cell[][] = [];
  r.layers.forEach((l, i) => r.heads.forEach((h, j) => rows.push([l, h, num(r.values[i][j]), num(r.delta[i][j])])));
  return { columns: ['layer', 'head', 'value', 'delta'], rows };
}

/** Rows: kind, then layer, pos and head (empty where the kind has no such axis), then the normalised metric. */
export function patchTable(r: PatchResult): Table {
  const rows: Cell[][] = [];
  for (const res of r.results) {
    const walk = (v: unknown, d: number, idx: Record<string, number>): void => {
      if (d === res.dims.length) {
        rows.push([res.kind, idx.layer ?? null, idx.pos ?? null, idx.head ?? null, v as number]);
        return;
      }
      (v as unknown[]).forEach((x, i) => walk(x, d + 1, { ...idx, [res.dims[d]]: i }));
    };
    walk(res.values, 0, {});
  }
  return { columns: ['kind', 'layer', 'pos', 'head', 'value'], rows };
}

/** Rows: per prompt token, its position, id, string and attribution score. */
export function saliencyTable(r: SaliencyResult): Table {
  return { columns: ['position', 'token', 'str', 'score'], rows: r.tokens.map((t, p) => [p, t, r.strTokens?.[p] ?? null, num(r.scores[p])]) };
}

/** Rows: a score per kind, layer and head; with repeated tokens also kind 'loss' per position (the loss predicting token position + 1). */
export function headsDetectTable(r: HeadsDetectResult): Table {
  const rows: Cell[][] = [];
  for (const s of r.scores) r.layers.forEach((l) => r.heads.forEach((h) => rows.push([s.kind, l, h, null, num(s.values[l][h])])));
  r.lossByPosition?.loss.forEach((v, p) => rows.push(['loss', null, null, p, num(v)]));
  return { columns: ['kind', 'layer', 'head', 'position', 'value'], rows };
}

/** Rows: kind 'prompt' (index, text, io, s, logit difference), then kind 'head' (layer, head, mean attribution). */
export function ioiTable(r: IoiResult): Table {
  const rows: Cell[][] = [];
  r.prompts.forEach((p, i) => rows.push(['prompt', i, p.text, p.io, p.s, null, null, num(p.logitDiff)]));
  r.layers.forEach((l) => r.heads.forEach((h) => rows.push(['head', null, null, null, null, l, h, num(r.headAttribution[l][h])])));
  return { columns: ['kind', 'index', 'text', 'io', 's', 'layer', 'head', 'value'], rows };
}

function job<K extends JobKind>(ctx: RouteContext<unknown>, kind: K, table: (r: JobResult<K>) => Table): Promise<void> {
  return runJob(ctx, kind, ctx.body as JobPayload<K>, table);
}

export function analysisRoutes(limits: Limits): RouteDef[] {
  const f: ('json' | 'csv' | 'sse')[] = ['json', 'csv', 'sse'];
  return [
    defineRoute({
      method: 'post', path: '/api/logit-lens', formats: f,
      summary: 'Logit lens: top-k tokens and target tokens\' prob / rank / logit per layer and position',
      description: 'Each resid_pre (and resid_mid with inclMid) and the final residual through ln_final (applyLn) and the unembedding (TL accumulated_resid).',
      body: logitLensSchema(limits), response: LogitLensResponse,
      handler: (ctx) => job(ctx, 'logitLens', logitLensTable),
    }),
    defineRoute({
      method: 'post', path: '/api/ablate', formats: f,
      summary: 'A run with heads, neurons or residual positions ablated (zero / mean / resample): the metric clean and ablated',
      body: ablateSchema(limits), response: AblateResponse,
      handler: (ctx) => job(ctx, 'ablate', ablateTable),
    }),
    defineRoute({
      method: 'post', path: '/api/ablate/sweep', formats: f,
      summary: 'Each head ablated in turn: the metric as a [layer][head] grid (progress per forward pass; cancellable)',
      description: `At most ${limits.maxSweepTokens} token positions (heads × prompt tokens; maxSweepTokens).`,
      body: ablateSweepSchema(limits), response: AblateSweepResponse,
      handler: (ctx) => job(ctx, 'ablateSweep', ablateSweepTable),
    }),
    defineRoute({
      method: 'post', path: '/api/patch', formats: f,
      summary: 'Activation patching clean → corrupted, normalised as TransformerLens (clean = 1, corrupted = 0)',
      description: `At most ${limits.maxSweepTokens} token positions (patches × prompt tokens; maxSweepTokens).`,
      body: patchSchema(), response: PatchResponse,
      handler: (ctx) => job(ctx, 'patch', patchTable),
    }),
    defineRoute({
      method: 'post', path: '/api/attribution-patch', formats: f,
      summary: 'Attribution patching (Nanda 2023): the first-order estimate of /api/patch from one forward and backward pass of the corrupted prompt, in its shape and units',
      description: 'Body as /api/patch (chunkSize is not used). Each value is metric(corrupted) + (clean − corrupted activation) · the gradient of the normalised metric at the corrupted run, summed over the patched slice.',
      body: patchSchema(), response: PatchResponse,
      handler: (ctx) => job(ctx, 'attributionPatch', patchTable),
    }),
    defineRoute({
      method: 'post', path: '/api/saliency', formats: f,
      summary: 'Input saliency per token: gradient × input or integrated gradients of a metric with respect to the token embeddings (hook_embed)',
      body: saliencySchema(), response: SaliencyResponse,
      handler: (ctx) => job(ctx, 'saliency', saliencyTable),
    }),
    defineRoute({
      method: 'post', path: '/api/heads/detect', formats: f,
      summary: 'Previous-token, duplicate-token and induction scores of every head (TL detect_head), on a prompt or repeated random tokens',
      body: headsDetectSchema(limits), response: HeadsDetectResponse,
      handler: (ctx) => job(ctx, 'headsDetect', headsDetectTable),
    }),
    defineRoute({
      method: 'post', path: '/api/ioi', formats: f,
      summary: 'Indirect object identification: logit difference per prompt, accuracy, per-head direct logit attribution',
      body: ioiSchema(limits), response: IoiResponse,
      handler: (ctx) => job(ctx, 'ioi', ioiTable),
    }),
  ];
}
