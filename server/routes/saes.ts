/**
 * The SAE endpoints, as model jobs: GET /api/saes, POST /api/saes/load, POST /api/saes/eval, POST /api/features (a
 * prompt's features), GET /api/features/:id (a feature's page), POST /api/features/ablate, POST /api/steer.
 */
import type { Limits } from '../../services/limits.ts';
import type { Cell, Table } from '../csv.ts';
import { badRequest, validationError } from '../errors.ts';
import { runJob } from '../jobRoute.ts';
import { defineRoute, type RouteDef } from '../routeTable.ts';
import {
  FeatureAblateResponse, FeatureQuery, FeatureResponse, FeaturesResponse, SaeEvalResponse, SaeInfo, SaeListResponse, SteerResponse,
  featureAblateSchema, featuresSchema, saeEvalSchema, saeLoadSchema, steerSchema,
  type FeatureAblateResult, type FeatureResult, type FeaturesResult, type SaeEvalResult, type SaeInfoResult, type SaeListResult, type SteerResult,
} from '../saeSchemas.ts';

type N = number | string;
const num = (v: N | null): number | null => v as number | null;

const SAE_COLUMNS = ['name', 'source', 'architecture', 'hook_name', 'hook_layer', 'd_in', 'd_sae', 'k', 'fits', 'dashboards', 'explained_variance', 'l0', 'ce_loss_recovered'];
const saeRow = (s: SaeInfoResult): Cell[] => [s.name, s.source, s.architecture, s.hookName, s.hookLayer, s.dIn, s.dSae, s.k, s.fits, s.dashboards,
  num(s.metrics?.explainedVariance ?? null), num(s.metrics?.l0 ?? null), num(s.metrics?.ceLossRecovered ?? null)];

export const saeListTable = (r: SaeListResult): Table => ({ columns: SAE_COLUMNS, rows: r.saes.map(saeRow) });

/** Rows: per position and rank, the feature and its activation. */
export function featuresTable(r: FeaturesResult): Table {
  const rows: Cell[][] = [];
  r.perToken.forEach((list, p) => list.forEach((f, k) => rows.push([p, r.tokens[p], r.strTokens?.[p] ?? null, k, f.feature, num(f.act)])));
  return { columns: ['position', 'token', 'str', 'rank', 'feature', 'act'], rows };
}

/** Rows: kind 'context' (rank, window index, token, activation), 'logit_top' / 'logit_bottom' (rank, token, value), 'histogram' (bin start, count). */
export function featureTable(r: FeatureResult): Table {
  const rows: Cell[][] = [];
  r.top.forEach((c, k) => c.tokens.forEach((t, i) => rows.push(['context', k, i, t, c.strTokens[i], num(c.acts[i])])));
  r.logits.top.forEach((l, k) => rows.push(['logit_top', k, null, l.token, l.str, num(l.value)]));
  r.logits.bottom.forEach((l, k) => rows.push(['logit_bottom', k, null, l.token, l.str, num(l.value)]));
  r.histogram?.counts.forEach((c, i) => rows.push(['histogram', i, null, null, String(r.histogram!.edges[i]), c]));
  return { columns: ['kind', 'rank', 'index', 'token', 'str', 'value'], rows };
}

export const featureAblateTable = (r: FeatureAblateResult): Table => ({
  columns: ['metric', 'clean', 'spliced', 'ablated', 'delta'],
  rows: [[r.metric.label, num(r.clean), num(r.spliced), num(r.ablated), num(r.delta)]],
});

export const saeEvalTable = (r: SaeEvalResult): Table => ({
  columns: ['metric', 'value'],
  rows: (['tokens', 'explainedVariance', 'mse', 'l0', 'deadFraction', 'denseFraction', 'ceLossClean', 'ceLossSpliced', 'ceLossZeroAblated', 'ceLossRecovered'] as const)
    .map((k) => [k, num(r[k])]),
});

export function saeRoutes(limits: Limits): RouteDef[] {
  return [
    defineRoute({
      method: 'get', path: '/api/saes', formats: ['json', 'csv'], response: SaeListResponse,
      summary: "The loaded model's SAEs: directories under its saes/ folder and hub SAEs loaded since, with whether each fits the model and its held-out metrics",
      handler: (ctx) => runJob(ctx, 'saeList', {}, saeListTable),
    }),
    defineRoute({
      method: 'post', path: '/api/saes/load', formats: ['json', 'sse'], body: saeLoadSchema(), response: SaeInfo,
      summary: 'Loads an SAE into the model\'s runner: a local one by name, or a hub one (repo + subfolder, through the HF cache; SSE streams download progress)',
      handler: (ctx) => runJob(ctx, 'saeLoad', ctx.body, (r) => ({ columns: SAE_COLUMNS, rows: [saeRow(r)] })),
    }),
    defineRoute({
      method: 'post', path: '/api/saes/eval', formats: ['json', 'csv', 'sse'], body: saeEvalSchema(), response: SaeEvalResponse,
      summary: 'Evaluates an SAE on Tiny Shakespeare: explained variance, L0, dead/dense features, CE loss recovered, feature density histogram',
      handler: (ctx) => runJob(ctx, 'saeEval', ctx.body, saeEvalTable),
    }),
    defineRoute({
      method: 'post', path: '/api/features', formats: ['json', 'csv', 'sse'], body: featuresSchema(limits), response: FeaturesResponse,
      summary: "A prompt's SAE features: the most active features at each token (hook_sae_acts_post, the SAE spliced with its error term)",
      handler: (ctx) => runJob(ctx, 'features', ctx.body, featuresTable),
    }),
    defineRoute({
      method: 'get', path: '/api/features/:id', formats: ['json', 'csv'], response: FeatureResponse,
      summary: "A feature's page: top activating contexts, activation histogram, density (from the dashboards file beside the SAE) and logit weights",
      description: 'Query: ?sae=NAME. Without a dashboards file, only the logit weights (computed) and the density of sparsity.safetensors.',
      handler: (ctx) => {
        const q = FeatureQuery.safeParse({ ...ctx.req.query });
        if (!q.success) throw validationError(q.error, 'query');
        const id = String(ctx.req.params.id);
        if (!/^\d{1,9}$/.test(id)) throw badRequest(`feature id: '${id}' is not a non-negative integer`);
        return runJob(ctx, 'feature', { sae: q.data.sae, feature: Number(id) }, featureTable);
      },
    }),
    defineRoute({
      method: 'post', path: '/api/features/ablate', formats: ['json', 'csv', 'sse'], body: featureAblateSchema(), response: FeatureAblateResponse,
      summary: "Ablates SAE features (hook_sae_acts_post = 0, the error term kept) and reads a metric: clean, spliced and ablated",
      handler: (ctx) => runJob(ctx, 'featureAblate', ctx.body, featureAblateTable),
    }),
    defineRoute({
      method: 'post', path: '/api/steer', formats: ['json', 'sse'], body: steerSchema(), response: SteerResponse,
      summary: "Generates with α·W_dec[f] added at the SAE's hook point for each chosen feature, and without, from the same prompt and seed",
      handler: (ctx) => runJob(ctx, 'steer', ctx.body, () => ({ columns: [], rows: [] })),
    }),
  ];
}
