/** GET /api/features/:id?sae=…: a feature's page (top contexts, histogram, density from the dashboards file; logit weights). */
import { z } from 'zod';
import type { Cell } from '../../hooks/figures/types.ts';
import { logitWeights } from '../../hooks/sae/dashboard.ts';
import { JsonNumber, num } from '../common/nonFinite.ts';
import { strOf } from '../common/requests.ts';
import { TokenIdOut } from '../common/schema.ts';
import { UserError } from '../context.ts';
import { defineService } from '../service.ts';
import { SaeName, store } from './common.ts';

/** The path's feature id: digits only (a bad one is a 400 naming it, before the SAE is looked up). */
function featureId(id: string): number {
  if (!/^\d{1,9}$/.test(id)) throw new UserError(`feature id: '${id}' is not a non-negative integer`);
  return Number(id);
}

export function featureSchema() {
  return z.strictObject({ sae: SaeName, feature: z.number().int().min(0).describe('the feature (the path\'s id)') });
}
export type FeatureRequest = z.infer<ReturnType<typeof featureSchema>>;

const Context = z.object({
  tokens: z.array(TokenIdOut),
  strTokens: z.array(z.string()),
  acts: z.array(JsonNumber),
  at: z.number().int().describe('index of the maximum in the window'),
  value: JsonNumber,
});
const LogitWeight = z.object({ token: TokenIdOut, str: z.string().nullable(), value: JsonNumber });
export const FeatureResponse = z.object({
  sae: z.string(),
  feature: z.number().int(),
  density: JsonNumber.nullable().describe('share of corpus positions it fires on (dashboards, else sparsity.safetensors), null when neither is there'),
  maxAct: JsonNumber.nullable(),
  meanAct: JsonNumber.nullable(),
  top: z.array(Context).describe('top activating contexts over the dashboards\' corpus (empty without dashboards)'),
  histogram: z.object({ edges: z.array(JsonNumber), counts: z.array(z.number().int()) }).nullable(),
  logits: z.object({ top: z.array(LogitWeight), bottom: z.array(LogitWeight) }).describe('W_dec[f] · W_U: the most promoted and suppressed tokens'),
  corpus: z.object({ name: z.string(), split: z.string(), tokens: z.number().int() }).nullable(),
});
export type FeatureResult = z.infer<typeof FeatureResponse>;

export const feature = defineService({
  kind: 'feature',
  route: {
    method: 'get', path: '/api/features/:id', formats: ['json', 'csv'],
    fromUrl: (params, query) => ({ feature: featureId(String(params.id)), ...query }),
    summary: "A feature's page: top activating contexts, activation histogram, density (from the dashboards file beside the SAE) and logit weights",
    description: 'Query: ?sae=NAME. Without a dashboards file, only the logit weights (computed) and the density of sparsity.safetensors.',
  },
  request: featureSchema,
  response: FeatureResponse,
  /** The feature's dashboard from the file beside the SAE, with its logit weights computed when there is no file. */
  handler: async (model, p, ctx): Promise<FeatureResult> => {
    const saes = store(ctx);
    const sae = await saes.get(p.sae);
    if (!Number.isInteger(p.feature) || p.feature < 0 || p.feature >= sae.cfg.d_sae) {
      throw new UserError(`feature ${p.feature} is not a feature of ${p.sae}; allowed 0…${sae.cfg.d_sae - 1}`, 404);
    }
    const dash = await saes.dashboardsOf(p.sae, sae);
    const str = (id: number) => dash?.tokenStrings[id] ?? strOf(model, id);
    if (dash) {
      const d = dash.features[p.feature];
      return {
        sae: p.sae, feature: p.feature, density: d.density, maxAct: d.maxAct, meanAct: d.meanAct,
        top: d.top.map((t) => ({ ...t, strTokens: t.tokens.map((id) => str(id) ?? String(id)) })),
        histogram: d.histogram,
        logits: { top: d.logits.top.map((l) => ({ ...l, str: str(l.token) })), bottom: d.logits.bottom.map((l) => ({ ...l, str: str(l.token) })) },
        corpus: { name: dash.corpus.name, split: dash.corpus.split, tokens: dash.corpus.tokens },
      };
    }
    ctx.checkCancelled();
    if (sae.cfg.d_in !== model.cfg.d_model) throw new UserError(`feature: ${p.sae} has no dashboards file, and its logit weights need d_in = d_model (${sae.cfg.d_in} ≠ ${model.cfg.d_model})`, 404);
    // Without dashboards: the logit weights of this feature alone, and the density sparsity.safetensors gives.
    const [one] = await logitWeights(model, sae, 10, { features: [p.feature] });
    return {
      sae: p.sae, feature: p.feature,
      density: sae.logSparsity ? 10 ** sae.logSparsity[p.feature] : null, maxAct: null, meanAct: null, top: [], histogram: null,
      logits: { top: one.top.map((l) => ({ ...l, str: strOf(model, l.token) })), bottom: one.bottom.map((l) => ({ ...l, str: strOf(model, l.token) })) },
      corpus: null,
    };
  },
  /** Rows: kind 'context' (rank, window index, token, activation), 'logit_top' / 'logit_bottom' (rank, token, value), 'histogram' (bin start, count). */
  table: (r) => {
    const rows: Cell[][] = [];
    r.top.forEach((c, k) => c.tokens.forEach((t, i) => rows.push(['context', k, i, t, c.strTokens[i], num(c.acts[i])])));
    r.logits.top.forEach((l, k) => rows.push(['logit_top', k, null, l.token, l.str, num(l.value)]));
    r.logits.bottom.forEach((l, k) => rows.push(['logit_bottom', k, null, l.token, l.str, num(l.value)]));
    r.histogram?.counts.forEach((c, i) => rows.push(['histogram', i, null, null, String(r.histogram!.edges[i]), c]));
    return { columns: ['kind', 'rank', 'index', 'token', 'str', 'value'], rows };
  },
});
