/**
 * The CLI's SAE commands as real subprocesses on a tiny checkpoint with an SAE in its saes/ folder: sae-eval =
 * evaluateSae, sae-dashboard writes feature_dashboards.json.gz beside the SAE (= computeFeatureDashboards), features
 * and steer = the library; bad SAE flags exit 2 naming the problem.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import { saeHook } from '../../../hooks/hookPoints.ts';
import { corpusContexts, DEFAULT_CORPUS } from '../../../hooks/sae/corpus.ts';
import { computeFeatureDashboards, loadFeatureDashboards } from '../../../hooks/sae/dashboard.ts';
import { evaluateSae } from '../../../hooks/sae/evaluate.ts';
import { steerFeatures } from '../../../hooks/sae/features.ts';
import { Sae } from '../../../hooks/sae/Sae.ts';
import { randomSaeWeights } from '../../helpers/sae.ts';
import { writeTinyCheckpoint } from './tinyModel.ts';

const BIN = fileURLToPath(new URL('../../../cli/bin.mjs', import.meta.url));
let dir: string;
let modelDir: string;
let saeDir: string;
let model: HookedTransformer;
let sae: Sae;

function lens(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { maxBuffer: 64 << 20 }, (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}
const readJson = async (p: string) => JSON.parse(await readFile(p, 'utf8'));

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lensboard-cli-sae-'));
  modelDir = join(dir, 'tiny');
  await writeTinyCheckpoint(modelDir, 9);
  model = await HookedTransformer.fromPretrained(modelDir, { threads: 1 });
  sae = Sae.fromWeights({ architecture: 'topk', d_in: 32, d_sae: 40, k: 5, hook_name: 'blocks.1.hook_resid_pre', context_size: 24 }, randomSaeWeights('topk', 32, 40, 2));
  saeDir = join(modelDir, 'saes', 'res1');
  await sae.save(saeDir);
});
afterAll(async () => {
  await model?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('lensboard SAE commands', () => {
  it('sae-eval (by name) = evaluateSae; sae-dashboard (by directory, no --out) writes the dashboards beside the SAE', async () => {
    const out = join(dir, 'eval');
    const [evalRun, dashRun] = await Promise.all([
      lens(['sae-eval', '--model', modelDir, '--sae', 'res1', '--tokens', '200', '--out', out, '--formats', 'json,csv', '--quiet']),
      lens(['sae-dashboard', '--model', modelDir, '--sae', saeDir, '--tokens', '300', '--top-k', '3', '--split', 'train', '--quiet']),
    ]);
    expect(evalRun.code, evalRun.stderr).toBe(0);
    expect(evalRun.stdout.trim().split('\n')).toEqual([join(out, 'result.json'), join(out, 'feature-density.csv')]);
    const got = await readJson(join(out, 'result.json'));
    const lib = await evaluateSae(model, sae, corpusContexts(DEFAULT_CORPUS, model.tokenizer!, { contextSize: 24, split: 'heldOut' }), { maxTokens: 200, batchSize: 8 });
    for (const k of ['tokens', 'explainedVariance', 'l0', 'deadFraction', 'ceLossClean', 'ceLossSpliced', 'ceLossZeroAblated', 'ceLossRecovered'] as const) expect(got[k]).toBeCloseTo(lib[k], 4);
    expect(got.corpus).toMatchObject({ split: 'heldOut', contextSize: 24 });

    expect(dashRun.code, dashRun.stderr).toBe(0);
    expect(dashRun.stdout.trim()).toBe(join(saeDir, 'feature_dashboards.json.gz'));
    const written = await loadFeatureDashboards(saeDir);
    const expected = await computeFeatureDashboards(model, sae, corpusContexts(DEFAULT_CORPUS, model.tokenizer!, { contextSize: 24, split: 'train' }), { maxTokens: 300, batchSize: 8, topK: 3, corpus: { name: 'tinyshakespeare', split: 'train' } });
    expect(written!.features.map((f) => f.top.map((t) => t.tokens))).toEqual(expected.features.map((f) => f.top.map((t) => t.tokens)));
    expect(written!.features.map((f) => f.density)).toEqual(expected.features.map((f) => f.density));
    expect(written!.corpus).toEqual(expected.corpus);
  });

  it('features and steer = the library', async () => {
    const prompt = 'First Citizen: Before we proceed any further';
    const [f, s] = await Promise.all([
      lens(['features', '--model', modelDir, '--sae', 'res1', '--prompt', prompt, '--top-k', '3', '--out', join(dir, 'f'), '--formats', 'json', '--quiet']),
      lens(['steer', '--model', modelDir, '--sae', 'res1', '--prompt', prompt, '--feature', '3:25', '--feature', '7:-10', '--max-new-tokens', '5', '--out', join(dir, 's'), '--formats', 'json', '--quiet']),
    ]);
    expect(f.code, f.stderr).toBe(0);
    expect(s.code, s.stderr).toBe(0);
    const tokens = model.toTokens(prompt);
    const feats = await readJson(join(dir, 'f', 'result.json'));
    const name = saeHook('blocks.1.hook_resid_pre', 'hook_sae_acts_post');
    const [, cache] = await model.runWithCacheWithSaes(tokens, { saes: sae, namesFilter: [name] });
    feats.perToken.forEach((list: { feature: number }[], p: number) => {
      const row = Array.from(cache.get(name).data.subarray(p * 40, (p + 1) * 40));
      expect(list.map((x) => x.feature)).toEqual(row.map((v, i) => [v, i]).filter(([v]) => v > 0).sort((a, b) => b[0] - a[0]).slice(0, 3).map(([, i]) => i));
    });
    const steered = await readJson(join(dir, 's', 'result.json'));
    const gen = await model.generate(tokens, { maxNewTokens: 5, doSample: false, stopAtEos: false, returnType: 'tokens', interventions: [steerFeatures(sae, [{ feature: 3, strength: 25 }, { feature: 7, strength: -10 }])] });
    expect(steered.steered.tokens).toEqual((gen as number[][])[0].slice(tokens[0].length));
  });

  it('bad SAE flags exit 2 with a message naming the problem', async () => {
    const base = ['--model', modelDir, '--out', join(dir, 'never'), '--quiet'];
    const cases: [string[], RegExp][] = [
      [['sae-eval', ...base], /sae: an SAE is required: pass --sae DIR_OR_NAME/],
      [['sae-eval', ...base, '--sae', 'nope'], /sae: no SAE named 'nope' for this model/],
      [['steer', ...base, '--sae', 'res1', '--prompt', 'hi', '--feature', 'three'], /--feature: 'three' is not FEATURE:STRENGTH/],
      [['sae-dashboard', '--model', modelDir, '--sae', 'res1', '--split', 'middle'], /split: .*"heldOut"\|"train"\|"all"/],
    ];
    const runs = await Promise.all(cases.map(([args]) => lens(args)));
    runs.forEach((r, i) => {
      expect(r.code, cases[i][0].join(' ')).toBe(2);
      expect(r.stderr).toMatch(cases[i][1]);
    });
  });
});
