/** POST /api/attribution-patch and /api/saliency against the library called directly on the same tiny checkpoint, their CSV forms, and 400s naming the field. */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  getAttrPatchAttnHeadOutAllPos, getAttrPatchAttnHeadOutByPos, getAttrPatchAttnOut, getAttrPatchMlpOut, getAttrPatchResidPre, inputSaliency, logitDiff,
  logitDiffMetric, normalisedMetric, tokenLogprobMetric,
} from '../../../hooks/analysis/index.ts';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import type { HookName } from '../../../hooks/hookPoints.ts';
import { PatchResponse } from '../../../services/analysis/patch.ts';
import { SaliencyResponse } from '../../../services/analysis/saliency.ts';
import { maxAbsDiff, parseCsv, post, startServer, type TestServer } from './helpers.ts';

let srv: TestServer;
let ref: HookedTransformer;
const api = (p: string) => `${srv.url}${p}`;
const TOL = 1e-5;
const IOI = 'When Mary and John went to the store, John gave a drink to';
const IOI_CORRUPT = 'When Paul and Lisa went to the store, Lisa gave a drink to';
const METRIC = { kind: 'logit_diff', correct: ' Mary', incorrect: ' John' };

beforeAll(async () => {
  srv = await startServer();
  ref = await HookedTransformer.fromPretrained(join(srv.packageRoot, 'tiny'), { threads: 1 });
});
afterAll(async () => {
  await srv?.close();
  await ref?.dispose();
});

const flat = (x: unknown): number[] => (Array.isArray(x) ? x.flat(Infinity as 1) : [x]) as number[];

async function csv(path: string, body: unknown): Promise<string[][]> {
  const res = await fetch(api(`${path}?format=csv`), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(res.status).toBe(200);
  return parseCsv(await res.text());
}

function expect400(r: { status: number; body: any }, ...fragments: string[]) {
  expect(r.status, JSON.stringify(r.body)).toBe(400);
  for (const f of fragments) expect(r.body.error).toContain(f);
}

describe('POST /api/attribution-patch', () => {
  it("the body and answer of /api/patch; every kind equals the library's getAttrPatch* with TL's normalisation; CSV one row per patch", async () => {
    const body = { clean: IOI, corrupted: IOI_CORRUPT, metric: METRIC };
    const r = await post(api('/api/attribution-patch'), body);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    PatchResponse.parse(r.body);
    expect(r.body.method).toBe('attribution');
    const activation = await post(api('/api/patch'), { ...body, kinds: ['head_out_all_pos'] });
    expect(activation.body.method).toBe('activation');
    expect(r.body.results[3].dims).toEqual(activation.body.results[0].dims);

    const clean = ref.toTokens(IOI);
    const corrupted = ref.toTokens(IOI_CORRUPT);
    const opts = { correct: ref.toSingleToken(' Mary'), incorrect: ref.toSingleToken(' John') };
    const names = [0, 1].flatMap((l) => ['hook_resid_pre', 'hook_attn_out', 'hook_mlp_out', 'attn.hook_z'].map((a) => `blocks.${l}.${a}` as HookName));
    const [cleanLogits, cache] = await ref.runWithCache(clean, { namesFilter: names });
    const cleanValue = logitDiff(cleanLogits, opts);
    const corruptedValue = logitDiff(await ref.forward(corrupted), opts);
    expect(Math.abs(r.body.clean - cleanValue)).toBeLessThan(TOL);
    const metric = normalisedMetric(logitDiffMetric(opts), cleanValue, corruptedValue);
    const fns = [getAttrPatchResidPre, getAttrPatchAttnOut, getAttrPatchMlpOut, getAttrPatchAttnHeadOutAllPos, getAttrPatchAttnHeadOutByPos];
    for (const [i, fn] of fns.entries()) {
      const lib = await fn(ref, corrupted, cache, metric);
      expect(flat(r.body.results[i].values).length).toBe(lib.data.length);
      expect(maxAbsDiff(flat(r.body.results[i].values), lib.data)).toBeLessThan(TOL);
    }
    const rows = await csv('/api/attribution-patch', { ...body, kinds: ['head_out_all_pos'] });
    expect(rows[0]).toEqual(['kind', 'layer', 'pos', 'head', 'value']);
    expect(rows.length).toBe(1 + 2 * 4);
    expect(Number(rows[1][4])).toBe(r.body.results[3].values[0][0]);
  });

  it('prompts of different token lengths and equal runs → 400 as /api/patch', async () => {
    expect400(await post(api('/api/attribution-patch'), { clean: IOI, corrupted: 'When Paul went', metric: METRIC }), 'corrupted: the clean prompt has 15 tokens');
    expect400(await post(api('/api/attribution-patch'), { clean: IOI, corrupted: IOI, metric: METRIC }), 'metric: the clean and corrupted runs give');
  });
});

describe('POST /api/saliency', () => {
  it("gradient × input and integrated gradients equal the library's inputSaliency; IG is complete; CSV one row per token", async () => {
    const tokens = ref.toTokens(IOI);
    const opts = { correct: ref.toSingleToken(' Mary'), incorrect: ref.toSingleToken(' John') };
    const g = await post(api('/api/saliency'), { prompt: IOI, metric: METRIC });
    expect(g.status, JSON.stringify(g.body)).toBe(200);
    SaliencyResponse.parse(g.body);
    expect(g.body).toMatchObject({ method: 'grad_x_input', steps: 1, baselineValue: null, tokens: tokens[0] });
    const lib = await inputSaliency(ref, tokens, logitDiffMetric(opts));
    expect(maxAbsDiff(g.body.scores, lib.scores.data)).toBeLessThan(TOL);

    const body = { prompt: IOI, metric: { kind: 'logprob', token: ' Mary' }, method: 'integrated_gradients', steps: 16, baseline: '<|endoftext|>' };
    const ig = await post(api('/api/saliency'), body);
    expect(ig.status, JSON.stringify(ig.body)).toBe(200);
    expect(ig.body.metric.kind).toBe('logprob');
    const libIg = await inputSaliency(ref, tokens, tokenLogprobMetric({ token: opts.correct }), { method: 'integrated_gradients', steps: 16, baseline: 50256 });
    expect(maxAbsDiff(ig.body.scores, libIg.scores.data)).toBeLessThan(TOL);
    const change = ig.body.value - ig.body.baselineValue;
    expect(Math.abs(ig.body.scores.reduce((a: number, b: number) => a + b, 0) - change)).toBeLessThanOrEqual(0.01 * Math.abs(change));

    const rows = await csv('/api/saliency', body);
    expect(rows[0]).toEqual(['position', 'token', 'str', 'score']);
    expect(rows.length).toBe(1 + tokens[0].length);
    expect(rows[3][2]).toBe(' Mary');
  });

  it('bad steps, method, metric or baseline → 400 naming the field', async () => {
    expect400(await post(api('/api/saliency'), { prompt: IOI, metric: METRIC, method: 'integrated_gradients', steps: 0 }), 'steps');
    expect400(await post(api('/api/saliency'), { prompt: IOI, metric: METRIC, method: 'occlusion' }), 'method');
    expect400(await post(api('/api/saliency'), { prompt: IOI, metric: { kind: 'logit_diff', correct: ' Mary Ann', incorrect: ' John' } }), 'metric.correct');
    expect400(await post(api('/api/saliency'), { prompt: IOI, metric: METRIC, method: 'integrated_gradients', baseline: 60000 }), 'baseline');
  });
});
