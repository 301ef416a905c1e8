/** GET /api/saes: the loaded model's SAEs (local and hub ones loaded since), whether each fits, and their held-out metrics. */
import { z } from 'zod';
import type { Cell } from '../../hooks/figures/types.ts';
import { numOrNull } from '../common/nonFinite.ts';
import { defineService } from '../service.ts';
import { SaeInfo, store, type SaeInfoResult } from './common.ts';

export const SaeListResponse = z.object({ saes: z.array(SaeInfo) });
export type SaeListResult = z.infer<typeof SaeListResponse>;

const SAE_COLUMNS = ['name', 'source', 'architecture', 'hook_name', 'hook_layer', 'd_in', 'd_sae', 'k', 'fits', 'dashboards', 'explained_variance', 'l0', 'ce_loss_recovered'];
const saeRow = (s: SaeInfoResult): Cell[] => [s.name, s.source, s.architecture, s.hookName, s.hookLayer, s.dIn, s.dSae, s.k, s.fits, s.dashboards,
  numOrNull(s.metrics?.explainedVariance), numOrNull(s.metrics?.l0), numOrNull(s.metrics?.ceLossRecovered)];

export const saeList = defineService({
  kind: 'saeList',
  route: {
    method: 'get', path: '/api/saes', formats: ['json', 'csv'], fromUrl: () => ({}),
    summary: "The loaded model's SAEs: directories under its saes/ folder and hub SAEs loaded since, with whether each fits the model and its held-out metrics",
  },
  request: () => z.strictObject({}),
  response: SaeListResponse,
  handler: async (_model, _p, ctx): Promise<SaeListResult> => ({ saes: await store(ctx).list() }),
  table: (r) => ({ columns: SAE_COLUMNS, rows: r.saes.map(saeRow) }),
});
