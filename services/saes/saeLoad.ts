/** POST /api/saes/load: loads an SAE into the model's runner, a local one by name or a hub one (SSE streams download progress). */
import { z } from 'zod';
import { UserError } from '../context.ts';
import { defineService } from '../service.ts';
import { SaeInfo, SaeName, store, type SaeInfoResult } from './common.ts';

export function saeLoadSchema() {
  return z.strictObject({
    name: SaeName.optional().describe("a local SAE's name (checked and loaded)"),
    repo: z.string().regex(/^[\w.-]+\/[\w.-]+$/, 'repo must be a hub repo id org/name').optional().describe('a hub repo holding SAELens-format SAEs'),
    subfolder: z.string().max(200).regex(/^[\w.-]+(\/[\w.-]+)*$/, 'subfolder is a folder path inside the repo (no leading /)').optional()
      .refine((s) => s === undefined || !s.split('/').includes('..'), 'subfolder has no ".." segment').describe('the SAE\'s folder in the repo (e.g. blocks.8.hook_resid_pre)'),
    revision: z.string().max(100).regex(/^[\w.-]+$/).optional().describe('branch, tag or commit (default main)'),
  }).refine((b) => (b.name === undefined) !== (b.repo === undefined), { message: 'give exactly one of name (a local SAE) and repo (a hub SAE, with subfolder)' });
}
export type SaeLoadRequest = z.infer<ReturnType<typeof saeLoadSchema>>;

export const saeLoad = defineService({
  kind: 'saeLoad',
  route: {
    path: '/api/saes/load', formats: ['json', 'sse'],
    summary: 'Loads an SAE into the model\'s runner: a local one by name, or a hub one (repo + subfolder, through the HF cache; SSE streams download progress)',
  },
  request: saeLoadSchema,
  response: SaeInfo,
  handler: async (_model, p, ctx): Promise<SaeInfoResult> => {
    const saes = store(ctx);
    if (p.name !== undefined) {
      if (p.name.includes('/')) throw new UserError(`name: '${p.name}' is a hub name; load hub SAEs with repo and subfolder`);
      await saes.get(p.name);
      return saes.info(p.name, 'local');
    }
    const name = await saes.loadHub(p.repo!, p.subfolder, p.revision, (e) => {
      if (e.status === 'progress') ctx.progress(e.loaded, e.total ?? e.loaded, `${e.file}`);
    });
    return saes.info(name, 'hub');
  },
});
