/**
 * What the SAE services share: schema atoms (an SAE's name, a feature index, an SAE's description and held-out
 * metrics), the model thread's SAE store, and the CLI's --sae flag (a directory there, too).
 */
import { z } from 'zod';
import { JsonNumber } from '../common/nonFinite.ts';
import { UserError, type JobContext } from '../context.ts';
import type { CliFlag } from '../service.ts';
import type { SaeStore } from './store.ts';

/** An SAE's name: a directory under the model's saes/ folder, or a hub repo `org/name` with its subfolder (`org/name/blocks.8.hook_resid_pre`). */
export const SaeName = z.string().min(1).max(300)
  .regex(/^[\w.-]+(\/[\w.-]+)*$/, 'an SAE name is a directory name under the model\'s saes/ folder, or org/repo[/subfolder] for a hub SAE; no paths')
  .refine((s) => !s.split('/').some((seg) => seg === '.' || seg === '..'), 'an SAE name has no "." or ".." segment')
  .describe("the SAE: a directory name under the model's saes/ folder (GET /api/saes), or org/repo/subfolder of a hub SAE");

export const Feature = z.number().int().min(0).describe('a feature index (0 ≤ feature < d_sae)');

export const EvalMetrics = z.object({
  tokens: z.number().int(),
  explainedVariance: JsonNumber,
  l0: JsonNumber,
  deadFraction: JsonNumber,
  denseFraction: JsonNumber,
  ceLossRecovered: JsonNumber,
  ceLossClean: JsonNumber,
  ceLossSpliced: JsonNumber,
  ceLossZeroAblated: JsonNumber,
}).describe('held-out evaluation written by the trainer (training.json), when there is one');

export const SaeInfo = z.object({
  name: z.string(),
  source: z.enum(['local', 'hub']),
  architecture: z.string(),
  hookName: z.string(),
  hookLayer: z.number().int().nullable(),
  dIn: z.number().int(),
  dSae: z.number().int(),
  k: z.number().int().nullable(),
  modelName: z.string().nullable().describe('the model it was trained on, as its cfg.json names it'),
  fits: z.boolean().describe('whether it can be spliced into the loaded model (its hook point exists and has d_in values)'),
  problem: z.string().nullable().describe('why it does not fit, when it does not'),
  dashboards: z.boolean().describe('whether feature dashboards (feature_dashboards.json.gz) are there'),
  metrics: EvalMetrics.nullable(),
});
export type SaeInfoResult = z.infer<typeof SaeInfo>;

/** The model thread's SAE store (made when the model loaded). */
export function store(ctx: JobContext): SaeStore {
  if (!ctx.saes) throw new UserError('SAEs are not available here', 500);
  return ctx.saes;
}

/** The CLI's --sae: a directory, a name under the model's saes/ folder, or a hub SAE (the CLI's store takes paths). */
export const saeFlag: CliFlag = { flag: 'sae', type: 'string', path: 'sae', help: "the SAE: its directory, a name under the model's saes/ folder, or org/repo/subfolder on the hub" };
export const SaeArg = z.string({ error: 'an SAE is required: pass --sae DIR_OR_NAME' }).min(1);
