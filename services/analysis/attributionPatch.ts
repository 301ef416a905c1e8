/**
 * POST /api/attribution-patch: attribution patching (Nanda 2023), the first-order estimate of /api/patch from one forward
 * and backward pass of the corrupted prompt; /api/patch's request, answer and table (patch.ts).
 */
import {
  getAttrPatchAttnHeadOutAllPos, getAttrPatchAttnHeadOutByPos, getAttrPatchAttnOut, getAttrPatchMlpOut, getAttrPatchResidPre,
} from '../../hooks/analysis/index.ts';
import { defineService } from '../service.ts';
import { nest } from '../common/select.ts';
import { PATCHERS, PatchResponse, patchSchema, patchSetup, patchTable, type PatchKind, type PatchResult } from './patch.ts';

const ATTRIBUTORS = {
  resid_pre: getAttrPatchResidPre,
  attn_out: getAttrPatchAttnOut,
  mlp_out: getAttrPatchMlpOut,
  head_out_all_pos: getAttrPatchAttnHeadOutAllPos,
  head_out_by_pos: getAttrPatchAttnHeadOutByPos,
} as const satisfies Record<PatchKind, unknown>;

export const attributionPatch = defineService({
  kind: 'attributionPatch',
  route: {
    path: '/api/attribution-patch',
    summary: 'Attribution patching (Nanda 2023): the first-order estimate of /api/patch from one forward and backward pass of the corrupted prompt, in its shape and units',
    description: 'Body as /api/patch (chunkSize is not used). Each value is metric(corrupted) + (clean − corrupted activation) · the gradient of the normalised metric at the corrupted run, summed over the patched slice.',
  },
  request: patchSchema,
  response: PatchResponse,
  /** Attribution patching (one forward + backward pass of the corrupted prompt) for the kinds of /api/patch, in its shape and units. */
  handler: async (model, p, ctx): Promise<PatchResult> => {
    const { corrupted, kinds, names, cache, normalised, answer } = await patchSetup(model, p, ctx, 'attribution');
    ctx.progress(0, 1, 'forward and backward pass of the corrupted prompt');
    const [, corruptedCache] = await model.runWithCache(corrupted, { returnType: 'none', inclBwd: true, backwardFrom: normalised, namesFilter: names });
    const results: PatchResult['results'] = [];
    for (const kind of kinds) {
      ctx.checkCancelled();
      const t = await ATTRIBUTORS[kind](model, corrupted, cache, normalised, { corruptedCache });
      results.push({ kind, dims: [...PATCHERS[kind].dims], values: nest(t.data, t.shape) as number[][] | number[][][] });
    }
    ctx.progress(1, 1);
    return answer('attribution', results);
  },
  table: patchTable,
});
