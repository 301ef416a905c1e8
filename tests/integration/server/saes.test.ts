/**
 * The SAE endpoints on the real server (tiny model, SAEs written by the test into its saes/ folder), each answer
 * against the library on the same model: /api/saes, /api/saes/load, /api/features, /api/features/:id (with and
 * without a dashboards file), /api/features/ablate, /api/steer, /api/saes/eval; names that are paths, unknown SAEs,
 * SAEs that do not fit, and bad features are refused with a JSON 4xx.
 */
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { saeHook } from '../../../hooks/hookPoints.ts';
import { corpusContexts, DEFAULT_CORPUS } from '../../../hooks/sae/corpus.ts';
import { computeFeatureDashboards, logitWeights, saveFeatureDashboards } from '../../../hooks/sae/dashboard.ts';
import { evaluateSae } from '../../../hooks/sae/evaluate.ts';
import { ablateFeatures, steerFeatures } from '../../../hooks/sae/features.ts';
import { Sae } from '../../../hooks/sae/Sae.ts';
import { randomSaeWeights } from '../../helpers/sae.ts';
import { startServer, type TestServer } from './helpers.ts';

let srv: TestServer;
let model: HookedTransformer;
let sae: Sae;
let saesDir: string;
const PROMPT = 'When Mary and John went to the store, John gave a drink to';

async function get(url: string) {
  const r = await fetch(url);
  return { status: r.status, body: await r.json() };
}
async function post(url: string, body: unknown) {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, body: await r.json() };
}

beforeAll(async () => {
  srv = await startServer();
  const modelDir = join(srv.packageRoot, 'tiny');
  saesDir = join(modelDir, 'saes');
  model = await HookedTransformer.fromPretrained(modelDir, { threads: 1 });
  const w = randomSaeWeights('topk', 16, 48, 3);
  sae = Sae.fromWeights({ architecture: 'topk', d_in: 16, d_sae: 48, k: 6, hook_name: 'blocks.0.hook_resid_post', model_name: 'tiny', context_size: 32 }, w);
  await sae.save(join(saesDir, 'res0'));
  await writeFile(join(saesDir, 'res0', 'training.json'), JSON.stringify({ heldOut: { tokens: 100, explainedVariance: 0.9, l0: 6, deadFraction: 0.01, denseFraction: 0, ceLossRecovered: 0.95, ceLossClean: 3, ceLossSpliced: 3.1, ceLossZeroAblated: 5 } }));
  const dash = await computeFeatureDashboards(model, sae, [model.toTokens(PROMPT)[0], model.toTokens('The cat sat on the mat and the dog sat on the log')[0].slice(0, 14)], { topK: 3, corpus: { name: 'test', split: 'all' } });
  await saveFeatureDashboards(join(saesDir, 'res0'), dash);
  await sae.save(join(saesDir, 'nodash')); // the same SAE without a dashboards file
  const misfit = Sae.fromWeights({ architecture: 'standard', d_in: 8, d_sae: 10, hook_name: 'blocks.0.hook_resid_post' }, randomSaeWeights('standard', 8, 10, 4));
  await misfit.save(join(saesDir, 'misfit'));
  await mkdir(join(saesDir, 'broken'), { recursive: true });
  await writeFile(join(saesDir, 'broken', 'cfg.json'), '{"d_in": "x"}');
  await symlink('/etc', join(saesDir, 'escape'));
});
afterAll(async () => {
  await model?.dispose();
  await srv?.close();
});

describe('SAE endpoints', () => {
  it('GET /api/saes lists the SAEs of the model with whether each fits and its metrics', async () => {
    const r = await get(`${srv.url}/api/saes`);
    expect(r.status).toBe(200);
    const byName = Object.fromEntries(r.body.saes.map((s: { name: string }) => [s.name, s]));
    expect(Object.keys(byName).sort()).toEqual(['broken', 'misfit', 'nodash', 'res0']);
    expect(byName.res0).toMatchObject({ source: 'local', architecture: 'topk', hookName: 'blocks.0.hook_resid_post', hookLayer: 0, dIn: 16, dSae: 48, k: 6, fits: true, dashboards: true, metrics: { explainedVariance: 0.9, ceLossRecovered: 0.95 } });
    expect(byName.nodash).toMatchObject({ fits: true, dashboards: false, metrics: null });
    expect(byName.misfit).toMatchObject({ fits: false });
    expect(byName.misfit.problem).toMatch(/has d_model = 16 per position, not d_in 8/);
    expect(byName.broken).toMatchObject({ fits: false });
    expect(byName.broken.problem).toMatch(/d_in must be a positive integer; got "x"/);
    expect(byName.broken.problem).toContain('<model>/saes/broken/cfg.json');
    expect(JSON.stringify(r.body)).not.toContain(srv.packageRoot);
    const csv = await fetch(`${srv.url}/api/saes?format=csv`).then((x) => x.text());
    expect(csv.split('\r\n')[0]).toBe('name,source,architecture,hook_name,hook_layer,d_in,d_sae,k,fits,dashboards,explained_variance,l0,ce_loss_recovered');
  });

  it("POST /api/features: each token's top features = the library's hook_sae_acts_post", async () => {
    const r = await post(`${srv.url}/api/features`, { sae: 'res0', prompt: PROMPT, topK: 4 });
    expect(r.status).toBe(200);
    const tokens = model.toTokens(PROMPT);
    expect(r.body.tokens).toEqual(tokens[0]);
    const name = saeHook('blocks.0.hook_resid_post', 'hook_sae_acts_post');
    const [, cache] = await model.runWithCacheWithSaes(tokens, { saes: sae, namesFilter: [name] });
    const acts = cache.get(name);
    r.body.perToken.forEach((list: { feature: number; act: number }[], p: number) => {
      const row = Array.from(acts.data.subarray(p * 48, (p + 1) * 48));
      const expected = row.map((v, f) => ({ feature: f, act: v })).filter((x) => x.act > 0).sort((a, b) => b.act - a.act).slice(0, 4);
      expect(list.map((x) => x.feature)).toEqual(expected.map((x) => x.feature));
      list.forEach((x, i) => expect(x.act).toBeCloseTo(expected[i].act, 5));
      expect(r.body.l0[p]).toBe(row.filter((v) => v > 0).length);
    });
    expect(r.body.topFeatures[0].maxAct).toBeCloseTo(Math.max(...acts.data), 5);
  });

  it('GET /api/features/:id: the dashboards file\'s page; without one, the library\'s logit weights', async () => {
    const r = await get(`${srv.url}/api/features/5?sae=res0`);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ sae: 'res0', feature: 5, corpus: { name: 'test', split: 'all' } });
    const [lw] = await logitWeights(model, sae, 10, { features: [5] });
    expect(r.body.logits.top.map((l: { token: number }) => l.token)).toEqual(lw.top.map((l) => l.token));
    expect(r.body.logits.top[0].str).toBe(model.tokenizer!.decode([lw.top[0].token]));
    for (const c of r.body.top) expect(c.strTokens).toEqual(c.tokens.map((t: number) => model.tokenizer!.decode([t])));
    const bare = await get(`${srv.url}/api/features/5?sae=nodash`);
    expect(bare.status).toBe(200);
    expect(bare.body).toMatchObject({ top: [], histogram: null, corpus: null, maxAct: null });
    expect(bare.body.logits.bottom.map((l: { token: number }) => l.token)).toEqual(lw.bottom.map((l) => l.token));
    expect((await get(`${srv.url}/api/features/48?sae=res0`)).status).toBe(404);
    expect((await get(`${srv.url}/api/features/-1?sae=res0`)).status).toBe(400);
    expect((await get(`${srv.url}/api/features/3`)).status).toBe(400);
  });

  it('POST /api/features/ablate = the library (clean, spliced, ablated)', async () => {
    const tokens = model.toTokens(PROMPT);
    const metric = { kind: 'logit_diff', correct: ' Mary', incorrect: ' John' };
    const r = await post(`${srv.url}/api/features/ablate`, { sae: 'res0', prompt: PROMPT, features: [1, 2, 3, 7, 9, 11, 20], metric });
    expect(r.status).toBe(200);
    const [mary, john] = [model.toSingleToken(' Mary'), model.toSingleToken(' John')];
    const diff = (l: { data: Float32Array; shape: number[] }) => {
      const [, pos, V] = l.shape;
      return l.data[(pos - 1) * V + mary] - l.data[(pos - 1) * V + john];
    };
    expect(r.body.clean).toBeCloseTo(diff(await model.forward(tokens)), 4);
    expect(r.body.spliced).toBeCloseTo(diff(await model.runWithSaes(tokens, { saes: sae })), 4);
    const ablated = diff(await model.runWithSaes(tokens, { saes: sae, useErrorTerm: true, interventions: [ablateFeatures(sae, [1, 2, 3, 7, 9, 11, 20])] }));
    expect(r.body.ablated).toBeCloseTo(ablated, 4);
    expect(r.body.delta).toBeCloseTo(ablated - r.body.clean, 4);
  });

  it('POST /api/steer: the steered and unsteered continuations = the library; strength 0 steers nothing', async () => {
    const features = [{ feature: 4, strength: 40 }];
    const r = await post(`${srv.url}/api/steer`, { sae: 'res0', prompt: PROMPT, features, maxNewTokens: 6 });
    expect(r.status).toBe(200);
    const tokens = model.toTokens(PROMPT);
    const run = async (steered: boolean) => ((await model.generate(tokens, { maxNewTokens: 6, doSample: false, stopAtEos: false, returnType: 'tokens', ...(steered ? { interventions: [steerFeatures(sae, features)] } : {}) })) as number[][])[0].slice(tokens[0].length);
    expect(r.body.steered.tokens).toEqual(await run(true));
    expect(r.body.unsteered.tokens).toEqual(await run(false));
    expect(r.body.steered.tokens).not.toEqual(r.body.unsteered.tokens);
    expect(r.body.steered.text).toBe(model.tokenizer!.decode(r.body.steered.tokens));
    const zero = await post(`${srv.url}/api/steer`, { sae: 'res0', prompt: PROMPT, features: [{ feature: 4, strength: 0 }], maxNewTokens: 6 });
    expect(zero.body.steered).toEqual(zero.body.unsteered);
  });

  it('POST /api/saes/eval = evaluateSae on the same contexts of Tiny Shakespeare', async () => {
    const r = await post(`${srv.url}/api/saes/eval`, { sae: 'res0', tokens: 256, contextSize: 32 });
    expect(r.status).toBe(200);
    const lib = await evaluateSae(model, sae, corpusContexts(DEFAULT_CORPUS, model.tokenizer!, { contextSize: 32, split: 'heldOut' }), { maxTokens: 256, batchSize: 8 });
    expect(r.body.tokens).toBe(lib.tokens);
    for (const k of ['explainedVariance', 'l0', 'deadFraction', 'ceLossClean', 'ceLossSpliced', 'ceLossZeroAblated', 'ceLossRecovered'] as const) expect(r.body[k]).toBeCloseTo(lib[k], 4);
    expect(r.body.densityHistogram.counts).toEqual(lib.densityHistogram.counts);
  });

  it('POST /api/saes/load loads a local SAE; names, misfits and features are checked', async () => {
    const ok = await post(`${srv.url}/api/saes/load`, { name: 'res0' });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ name: 'res0', fits: true });
    const cases: [string, unknown, number, RegExp][] = [
      ['/api/saes/load', { name: 'nope' }, 404, /no SAE named 'nope'/],
      ['/api/saes/load', { name: '../tiny' }, 400, /no "\." or "\.\." segment/],
      ['/api/saes/load', { name: 'escape' }, 404, /outside the model's saes\/ folder|has no cfg\.json/],
      ['/api/saes/load', {}, 400, /give exactly one of name/],
      ['/api/features', { sae: '/etc/passwd', prompt: 'x' }, 400, /no paths/],
      ['/api/features', { sae: 'misfit', prompt: 'x' }, 400, /does not fit this model/],
      ['/api/features', { sae: 'broken', prompt: 'x' }, 422, /could not load 'broken': .*d_in must be a positive integer/],
      ['/api/features/ablate', { sae: 'res0', prompt: 'a b c', features: [48], metric: { kind: 'loss' } }, 400, /48 is not a feature of res0; allowed 0…47/],
      ['/api/steer', { sae: 'res0', prompt: 'a', features: [{ feature: 1, strength: 1 }], maxNewTokens: 64 }, 400, /leaves room for at most/],
    ];
    for (const [path, body, status, message] of cases) {
      const r = await post(`${srv.url}${path}`, body);
      expect(r.status, `${path} ${JSON.stringify(body)}`).toBe(status);
      expect(r.body.error).toMatch(message);
    }
    expect((await get(`${srv.url}/api/health`)).body).toMatchObject({ status: 'ok', modelState: 'ready' });
  });
});
