/** The CLI as a real subprocess on a random tiny checkpoint: PNG/SVG/HTML/JSON/CSV outputs, JSON = the library's result for the same input, exit code 2 with a clear message for bad flags. */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import {
  detectHead, generateRepeatedTokens, getActPatchResidPre, getAttrPatchAttnHeadOutAllPos, headAblationSweep, inputSaliency, ioiDataset, ioiHeadAttribution,
  logitDiff, logitDiffMetric, logitLens, normalisedMetric,
} from '../../../hooks/analysis/index.ts';
import {
  allCompositionScores, blockZeroMlpInputs, copyingScores, effectiveEmbedding, embeddingTokenSet, mlpLinearization, topCopiedTokens,
} from '../../../hooks/circuits/index.ts';
import type { HookName } from '../../../hooks/hookPoints.ts';
import type { Tensor } from '../../../hooks/tensor.ts';
import { writeTinyCheckpoint } from './tinyModel.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'cli', 'bin.mjs');
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const IOI_CLEAN = 'When Mary and John went to the store, John gave a drink to';
const IOI_CORRUPTED = 'When Mary and John went to the store, Mary gave a drink to';
/** The CLI and the library run the same kernels; batched runs may reorder float sums. */
const TOL = 1e-5;

let dir: string;
let modelDir: string;
let model: HookedTransformer;

interface Run { code: number | null; stdout: string; stderr: string }

/** Runs `node cli/bin.mjs …args` (the `lensboard` bin) and collects its output. */
function lens(args: string[], cwd = ROOT): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd, maxBuffer: 64 << 20, env: { ...process.env, NO_COLOR: '1' } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

async function ok(args: string[]): Promise<Run> {
  const r = await lens(args);
  if (r.code !== 0) throw new Error(`lensboard ${args.join(' ')} exited ${r.code}:\n${r.stderr}`);
  return r;
}

const readJson = async (path: string) => JSON.parse(await readFile(path, 'utf8'));

/** CSV lines (no quoted newlines in these tables). */
async function csvLines(path: string): Promise<string[]> {
  const text = await readFile(path, 'utf8');
  expect(text.endsWith('\r\n')).toBe(true);
  return text.slice(0, -2).split('\r\n');
}

function expectGridClose(got: (number | string)[][], want: Tensor, tol = TOL): void {
  expect([got.length, got[0].length]).toEqual(want.shape);
  got.forEach((row, i) => row.forEach((v, j) => expect(Math.abs(Number(v) - want.get(i, j)), `[${i}][${j}]`).toBeLessThanOrEqual(tol)));
}

async function expectImages(out: string, name: string): Promise<void> {
  const png = await readFile(join(out, `${name}.png`));
  expect(png.subarray(0, 8).equals(PNG_SIGNATURE)).toBe(true);
  expect(png.length).toBeGreaterThan(2000);
  const svg = (await readFile(join(out, `${name}.svg`), 'utf8')).trim();
  expect(svg).toMatch(/^<svg[\s>]/);
  expect(svg.endsWith('</svg>')).toBe(true);
  const html = await readFile(join(out, `${name}.html`), 'utf8');
  expect(html).toContain('Plotly.newPlot');
  expect(html).not.toMatch(/<script[^>]+src=/); // plotly.js inlined, no CDN
  expect(html.length).toBeGreaterThan(1_000_000);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lensboard-cli-'));
  modelDir = join(dir, 'tiny');
  await writeTinyCheckpoint(modelDir);
  model = await HookedTransformer.fromPretrained(modelDir, { threads: 1 });
});
afterAll(async () => {
  await model?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('lensboard CLI', () => {
  it('sweep from a config file (flags win): JSON = headAblationSweep, CSV rows = layers × heads, PNG/SVG/HTML figure', async () => {
    const out = join(dir, 'sweep');
    const config = join(dir, 'sweep.json');
    await writeFile(config, JSON.stringify({
      command: 'sweep', prompt: IOI_CLEAN, metric: { kind: 'logit_diff', correct: ' Mary', incorrect: ' John' }, mode: 'zero', chunkSize: 2, layers: [0],
    }));
    const r = await ok(['sweep', '--config', config, '--model', modelDir, '--out', out, '--layers', '0,1', '--threads', '1']);
    expect(r.stderr).toMatch(/sweep \[#+-*\] \d+\/\d+/); // the progress bar
    const files = (await readdir(out)).sort();
    expect(files).toEqual(['ablation-sweep-logit_diff.csv', 'ablation-sweep-logit_diff.html', 'ablation-sweep-logit_diff.png', 'ablation-sweep-logit_diff.svg', 'result.json']);
    expect(r.stdout.trim().split('\n').sort()).toEqual(files.map((f) => join(out, f)));

    const got = await readJson(join(out, 'result.json'));
    const tokens = model.prepareInput(IOI_CLEAN).tokens;
    const last = tokens[0].length - 1;
    const [mary, john] = [model.tokenizer!.toSingleToken(' Mary'), model.tokenizer!.toSingleToken(' John')];
    const metric = (logits: Tensor) => logitDiff(logits, { correct: mary, incorrect: john, positions: last });
    const clean = metric(await model.forward(tokens));
    const want = await headAblationSweep(model, tokens, metric);
    expect(got.layers).toEqual([0, 1]);
    expect(got.metric.tokens).toEqual([mary, john]);
    expect(Math.abs(got.clean - clean)).toBeLessThanOrEqual(TOL);
    expectGridClose(got.values, want);
    expectGridClose(got.delta, want.sub(clean));
    expect(want.sub(clean).abs().max().item()).toBeGreaterThan(1e-3); // ablating a head really changes the metric

    const lines = await csvLines(join(out, 'ablation-sweep-logit_diff.csv'));
    expect(lines[0]).toBe('layer,head,delta,ablated');
    expect(lines.length - 1).toBe(model.cfg.n_layers * model.cfg.n_heads);
    const [l, h, delta] = lines[1 + 1 * model.cfg.n_heads + 2].split(',').map(Number); // L1H2
    expect([l, h]).toEqual([1, 2]);
    expect(Math.abs(delta - (want.get(1, 2) - clean))).toBeLessThanOrEqual(TOL);
    await expectImages(out, 'ablation-sweep-logit_diff');
  });

  it('heads on repeated tokens: scores = detectHead, loss by position, four figures as PNG and SVG', async () => {
    const out = join(dir, 'heads');
    await ok(['heads', '--model', modelDir, '--out', out, '--repeated', '6', '--batch', '2', '--seed', '3', '--threads', '1']);
    const got = await readJson(join(out, 'result.json'));
    const tokens = generateRepeatedTokens(model.cfg, { seqLen: 6, batch: 2, seed: 3 });
    expect(got.tokens).toEqual(tokens);
    for (const kind of ['previous_token', 'duplicate_token', 'induction'] as const) {
      const s = got.scores.find((x: { kind: string }) => x.kind === kind);
      expectGridClose(s.values, await detectHead(model, tokens, `${kind}_head`));
      await expectImages(out, `head-scores-${kind}`);
      const lines = await csvLines(join(out, `head-scores-${kind}.csv`));
      expect(lines[0]).toBe('layer,head,score');
      expect(lines.length - 1).toBe(8);
    }
    expect(got.lossByPosition.loss).toHaveLength(12);
    expect((await csvLines(join(out, 'loss-by-position.csv'))).length - 1).toBe(12);
    await expectImages(out, 'loss-by-position');
  });

  it('patch --method both (json, csv): attribution beside activation patching and their scatter; saliency = inputSaliency', async () => {
    const out = join(dir, 'attr');
    await ok(['patch', '--model', modelDir, '--out', out, '--clean', IOI_CLEAN, '--corrupted', IOI_CORRUPTED, '--correct', ' Mary', '--incorrect', ' John',
      '--kinds', 'head_out_all_pos', '--method', 'both', '--formats', 'json,csv', '--quiet']);
    expect((await readdir(out)).sort()).toEqual(['attr-patch-head_out_all_pos.csv', 'attribution-vs-activation-head-out-all-pos.csv', 'patch-head_out_all_pos.csv', 'result.json']);
    const got = await readJson(join(out, 'result.json'));
    expect([got.activation.method, got.attribution.method]).toEqual(['activation', 'attribution']);
    const clean = model.toTokens(IOI_CLEAN);
    const corrupted = model.toTokens(IOI_CORRUPTED);
    const opts = { correct: model.toSingleToken(' Mary'), incorrect: model.toSingleToken(' John') };
    const [cleanLogits, cache] = await model.runWithCache(clean, { namesFilter: (n) => n.endsWith('attn.hook_z') });
    const metric = normalisedMetric(logitDiffMetric(opts), logitDiff(cleanLogits, opts), logitDiff(await model.forward(corrupted), opts));
    expectGridClose(got.attribution.results[0].values, await getAttrPatchAttnHeadOutAllPos(model, corrupted, cache, metric));
    expect((await csvLines(join(out, 'attribution-vs-activation-head-out-all-pos.csv')))[0]).toBe('component,activation,attribution');

    const sal = join(dir, 'saliency');
    await ok(['saliency', '--model', modelDir, '--out', sal, '--prompt', IOI_CLEAN, '--correct', ' Mary', '--incorrect', ' John',
      '--method', 'integrated_gradients', '--steps', '8', '--formats', 'json,csv', '--quiet']);
    expect((await readdir(sal)).sort()).toEqual(['result.json', 'saliency-integrated_gradients.csv']);
    const s = await readJson(join(sal, 'result.json'));
    const want = await inputSaliency(model, clean, logitDiffMetric(opts), { method: 'integrated_gradients', steps: 8 });
    s.scores.forEach((v: number, i: number) => expect(Math.abs(v - want.scores.data[i])).toBeLessThanOrEqual(TOL));
  });

  it('logit-lens (json, csv): top tokens and target probabilities = logitLens', async () => {
    const out = join(dir, 'lens');
    const prompt = 'The Eiffel Tower is in';
    await ok(['logit-lens', '--model', modelDir, '--out', out, '--prompt', prompt, '--top-k', '3', '--target', ' Paris', '--formats', 'json,csv', '--quiet']);
    expect((await readdir(out)).sort()).toEqual(['logit-lens-prob.csv', 'logit-lens-target-0.csv', 'result.json']);
    const got = await readJson(join(out, 'result.json'));
    const paris = model.tokenizer!.toSingleToken(' Paris');
    const want = await logitLens(model, prompt, { topK: 3, target: paris });
    const [L, , P, K] = want.topTokens.shape; // [layer, batch, pos, k]
    expect(got.labels).toEqual(want.labels);
    for (let l = 0; l < L; l++) {
      for (let p = 0; p < P; p++) {
        for (let k = 0; k < K; k++) {
          expect(got.top[l][p][k].token).toBe(want.topTokens.get(l, 0, p, k));
          expect(Math.abs(got.top[l][p][k].prob - want.topProbs.get(l, 0, p, k))).toBeLessThanOrEqual(1e-6);
        }
        expect(Math.abs(got.targets[0].prob[l][p] - want.target!.prob.get(l, 0, p))).toBeLessThanOrEqual(1e-6);
        expect(got.targets[0].rank[l][p]).toBe(want.target!.rank.get(l, 0, p));
      }
    }
    const lines = await csvLines(join(out, 'logit-lens-prob.csv'));
    expect(lines[0]).toBe('component,pos,token,top1_id,top1_str,top1_prob,prob');
    expect(lines.length - 1).toBe(L * P);
  });

  it('logit-lens and circuits on the addition model (13 characters, not GPT-2\'s vocabulary): JSON = logitLens, a PNG figure', async () => {
    const addition = join(ROOT, 'models', 'addition');
    const ref = await HookedTransformer.fromPretrained(addition, { threads: 1 });
    try {
      const out = join(dir, 'addition-lens');
      const prompt = '01234+56789=';
      await ok(['logit-lens', '--model', addition, '--out', out, '--prompt', prompt, '--top-k', '2', '--target', '5', '--formats', 'json,png', '--quiet']);
      const got = await readJson(join(out, 'result.json'));
      const want = await logitLens(ref, prompt, { topK: 2, target: ref.toSingleToken('5') });
      expect(got.strTokens).toEqual(['<|endoftext|>', '0', '1', '2', '3', '4', '+', '5', '6', '7', '8', '9', '=']);
      const [L, , P] = want.topTokens.shape;
      for (let l = 0; l < L; l++) for (let p = 0; p < P; p++) expect(Math.abs(got.targets[0].prob[l][p] - want.target!.prob.get(l, 0, p))).toBeLessThanOrEqual(1e-6);
      expect((await readFile(join(out, 'logit-lens-prob.png'))).subarray(0, 8)).toEqual(PNG_SIGNATURE);
      const outC = join(dir, 'addition-circuits');
      await ok(['circuits', '--model', addition, '--out', outC, '--modes', 'K', '--head', '1.0', '--copy-token', '7', '--formats', 'json', '--quiet']);
      const circuits = await readJson(join(outC, 'result.json'));
      expectGridClose(circuits.copying.scores, await copyingScores(ref), 1e-4);
    } finally {
      await ref.dispose();
    }
  });

  it('patch, ioi and circuits (json, csv) = getActPatchResidPre, ioiHeadAttribution, allCompositionScores and copyingScores', async () => {
    const outP = join(dir, 'patch');
    await ok(['patch', '--model', modelDir, '--out', outP, '--clean', IOI_CLEAN, '--corrupted', IOI_CORRUPTED, '--correct', ' Mary', '--incorrect', ' John',
      '--kinds', 'resid_pre', '--formats', 'json,csv', '--quiet']);
    const patch = await readJson(join(outP, 'result.json'));
    const clean = model.prepareInput(IOI_CLEAN).tokens;
    const corrupted = model.prepareInput(IOI_CORRUPTED).tokens;
    const last = clean[0].length - 1;
    const ld = (logits: Tensor) => logitDiff(logits, { correct: model.tokenizer!.toSingleToken(' Mary'), incorrect: model.tokenizer!.toSingleToken(' John'), positions: last });
    const names = Array.from({ length: model.cfg.n_layers }, (_v, l) => `blocks.${l}.hook_resid_pre` as HookName);
    const [cleanLogits, cache] = await model.runWithCache(clean, { namesFilter: names });
    const wantPatch = await getActPatchResidPre(model, corrupted, cache, normalisedMetric(ld, ld(cleanLogits), ld(await model.forward(corrupted))));
    expectGridClose(patch.results[0].values, wantPatch, 1e-4);
    expect((await csvLines(join(outP, 'patch-resid_pre.csv'))).length - 1).toBe(model.cfg.n_layers * clean[0].length);

    const outI = join(dir, 'ioi');
    await ok(['ioi', '--model', modelDir, '--out', outI, '--n', '4', '--seed', '5', '--formats', 'json,csv', '--quiet']);
    const ioi = await readJson(join(outI, 'result.json'));
    const ds = ioiDataset(model.tokenizer!, { n: 4, seed: 5, order: 'mixed', prependBos: true });
    const dla = await ioiHeadAttribution(model, ds);
    expect(ioi.prompts.map((p: { text: string }) => p.text)).toEqual(ds.prompts.map((p) => p.prompt));
    expectGridClose(ioi.headAttribution, dla.mean.heads);
    ioi.prompts.forEach((p: { logitDiff: number }, i: number) => expect(Math.abs(p.logitDiff - dla.logitDiff.get(i))).toBeLessThanOrEqual(TOL));
    expect((await csvLines(join(outI, 'ioi-logit-diff.csv'))).length - 1).toBe(4);

    const outC = join(dir, 'circuits');
    await ok(['circuits', '--model', modelDir, '--out', outC, '--modes', 'K', '--baseline-samples', '5', '--head', 'L1H2', '--copy-token', ' the', '--k', '3',
      '--formats', 'json,csv', '--quiet']);
    const circ = await readJson(join(outC, 'result.json'));
    const comp = await allCompositionScores(model, 'K');
    const flat = (circ.composition[0].scores as number[][][][]).flat(3);
    expect(flat).toHaveLength(comp.data.length);
    flat.forEach((v, i) => expect(Math.abs(v - comp.data[i])).toBeLessThanOrEqual(1e-5));
    expectGridClose(circ.copying.scores, await copyingScores(model), 1e-4);
    const the = model.tokenizer!.toSingleToken(' the');
    const [copied] = topCopiedTokens(model, 1, 2, [the], 3);
    expect(circ.topCopied[0].rows[0].top.map((t: { token: number }) => t.token)).toEqual(copied.ids);
    expect((await readdir(outC)).sort()).toEqual(['composition-K.csv', 'copying-scores.csv', 'positional-L1H2.csv', 'result.json', 'top-copied-L1H2.csv']);
    const lines = await csvLines(join(outC, 'composition-K.csv'));
    expect(lines[0]).toBe('mode,layer_from,head_from,layer_to,head_to,score,z_vs_baseline');
    expect(lines.length - 1).toBe(model.cfg.n_heads * model.cfg.n_heads); // pairs with layer_from < layer_to in 2 layers
    // the figure's colour: the score's z against the random baseline of the same answer
    const { mean, std } = circ.composition[0].baseline as { mean: number; std: number };
    const [, , , , , score, z] = lines[1].split(',').map(Number);
    expect(Math.abs(z - (score - mean) / std)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(z)));

    // --past-mlp0: the same scores read past block 0's MLP (library: outputMaps / embedding over embeddingTokenSet).
    const outM = join(dir, 'circuits-mlp0');
    await ok(['circuits', '--model', modelDir, '--out', outM, '--modes', 'K', '--baseline-samples', '5', '--past-mlp0', '--formats', 'json', '--quiet']);
    const past = await readJson(join(outM, 'result.json'));
    const tokens = embeddingTokenSet(model);
    const M0 = await mlpLinearization(model, 0, blockZeroMlpInputs(model, tokens));
    const compPast = await allCompositionScores(model, 'K', { outputMaps: [M0] });
    (past.composition[0].scores as number[][][][]).flat(3).forEach((v, i) => expect(Math.abs(v - compPast.data[i])).toBeLessThanOrEqual(1e-5));
    expectGridClose(past.copying.scores, await copyingScores(model, { embedding: await effectiveEmbedding(model, tokens) }), 1e-4);
    expect(past.copying.pastMlp0).toBe(true);
  });

  it('bad flags, values and config fields: a message naming what was wrong and exit code 2', async () => {
    const base = ['--model', modelDir, '--out', join(dir, 'never')];
    const cases: [string[], RegExp][] = [
      [['frobnicate'], /unknown command 'frobnicate'; the commands are logit-lens, heads, sweep, patch, saliency, ioi, circuits/],
      [['sweep', ...base, '--prompt', 'hi', '--bogus', '1'], /Unknown option '--bogus'/],
      [['sweep', ...base, '--prompt', 'hi', '--chunk-size', 'many'], /--chunk-size must be an integer; got 'many'/],
      [['sweep', ...base, '--prompt', 'hi', '--mode', 'melt'], /mode: .*"zero"\|"mean"\|"resample"/],
      [['sweep', '--model', modelDir, '--prompt', 'hi'], /out: an output directory is required/],
      [['heads', ...base], /prompt: give exactly one of prompt and repeated/],
      [['sweep', ...base, '--prompt', 'hi', '--layers', '9'], /layers\[0\]: 9 is out of range; this model has n_layers = 2/],
      [['circuits', ...base, '--head', 'left'], /--head: 'left' is not a head/],
      [['sweep', ...base, '--config', join(dir, 'missing.json')], /--config: cannot read .*missing\.json.*ENOENT/],
    ];
    await writeFile(join(dir, 'bad.json'), JSON.stringify({ prompt: 'hi', metric: { kind: 'logit_diff', correct: ' Mary' } }));
    cases.push([['sweep', ...base, '--config', join(dir, 'bad.json')], /metric\.incorrect: a token is a string/]);
    const runs = await Promise.all(cases.map(([args]) => lens(args))); // independent processes; run together
    runs.forEach((r, i) => {
      const [args, message] = cases[i];
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace for a usage error
    });
  });

  it.skipIf(!existsSync(join(ROOT, 'models', 'embedded', 'config.json')))('without --model: the embedded model (models/embedded)', async () => {
    const out = join(dir, 'default');
    await ok(['ioi', '--out', out, '--n', '2', '--formats', 'json', '--quiet']);
    const got = await readJson(join(out, 'result.json'));
    const embedded = await HookedTransformer.fromPretrained(join(ROOT, 'models', 'embedded'), { threads: 1 });
    try {
      expect(got.layers).toHaveLength(embedded.cfg.n_layers);
      const ds = ioiDataset(embedded.tokenizer!, { n: 2, seed: 0, order: 'mixed', prependBos: true });
      const dla = await ioiHeadAttribution(embedded, ds);
      expectGridClose(got.headAttribution, dla.mean.heads, 1e-4);
    } finally {
      await embedded.dispose();
    }
  });

  it('npm run lens -- <command> --help lists the flags', async () => {
    const r = await new Promise<Run>((resolve) => {
      execFile('npm', ['run', '--silent', 'lens', '--', 'sweep', '--help'], { cwd: ROOT }, (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr }));
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: lensboard sweep');
    expect(r.stdout).toMatch(/--correct TOKEN/);
    expect(r.stdout).toMatch(/--out TEXT/);
  });
});
