/**
 * Every analysis of a dataset experiment, run through the batch pipeline in-process (experiment → shards →
 * aggregate) on the embedded model, against the toolkit's own functions applied item by item and averaged here
 * (mean and two-pass standard error).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../../hooks/HookedTransformer.ts';
import {
  ablationSpecs, detectHead, generateRepeatedTokens, getActPatchResidPre, getAttrPatchResidPre, headAblationSweep, inputSaliency, ioiDataset, ioiHeadAttribution,
  logitDiffMetric, logitLens, lossByPosition, normalisedMetric,
} from '../../../hooks/analysis/index.ts';
import { itemSeed } from '../../../hooks/experiments/datasets.ts';
import type { HookName } from '../../../hooks/hookPoints.ts';
import { EMBEDDED_DIR } from '../../../cli/model.ts';
import { prepareExperiment } from '../../../batch/experiment.ts';
import { writeOutputs } from '../../../batch/outputs.ts';
import { runShard, shardTask } from '../../../batch/runShard.ts';
import { ExperimentStore } from '../../../batch/store.ts';
import { saeStoreFor } from '../../../batch/saes.ts';
import { Sae, ablateFeatures } from '../../../hooks/sae/index.ts';
import type { SaeStore } from '../../../services/saes/store.ts';

let model: HookedTransformer;
let saes: SaeStore;
let dir: string;
let runs = 0;

/** The experiment run here (local pipeline, in-process): aggregate.json, items.jsonl lines and figures.json. */
async function run(experiment: Record<string, unknown>) {
  const prepared = await prepareExperiment({ model: 'embedded', ...experiment }, { name: 'test', where: 'in the test' });
  const out = join(dir, `run-${runs++}`);
  const store = await ExperimentStore.open(out, prepared);
  for (const s of prepared.shards) expect(await store.accept(s.index, await runShard(model, shardTask(prepared, s), undefined, saes))).toBe(true);
  await writeOutputs(store, ['csv']);
  return {
    out,
    prepared,
    aggregate: JSON.parse(await readFile(join(out, 'aggregate.json'), 'utf8')),
    lines: (await readFile(join(out, 'items.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l)),
    figures: JSON.parse(await readFile(join(out, 'figures.json'), 'utf8')) as { name: string }[],
  };
}

/** Mean and sample standard error of each entry over items (two-pass). */
function meanSe(perItem: number[][]): { mean: number[]; se: number[] } {
  const n = perItem.length;
  const mean = perItem[0].map((_x, j) => perItem.reduce((a, r) => a + r[j], 0) / n);
  const se = mean.map((m, j) => Math.sqrt(perItem.reduce((a, r) => a + (r[j] - m) ** 2, 0) / (n - 1) / n));
  return { mean, se };
}

function expectClose(got: unknown, want: number[], tol: number, what: string): void {
  const flat = (got as unknown[]).flat(3) as number[];
  expect(flat.length, what).toBe(want.length);
  flat.forEach((v, i) => expect(Math.abs(v - want[i]), `${what}[${i}]: ${v} vs ${want[i]}`).toBeLessThanOrEqual(tol));
}

const id = (s: string) => model.tokenizer!.toSingleToken(s);
/** The logit difference at the last position, as the toolkit's positioned metric (sweeps and patching unembed only there). */
const lastDiff = (io: number, s: number, pos: number) => logitDiffMetric({ correct: io, incorrect: s, positions: pos });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lensboard-batch-analyses-'));
  model = await HookedTransformer.fromPretrained(EMBEDDED_DIR, { threads: 1 });
  saes = saeStoreFor(model, EMBEDDED_DIR);
});
afterAll(async () => {
  await saes?.dispose();
  await model?.dispose();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('dataset experiments: each analysis averaged over items equals the toolkit item by item', () => {
  it('sweep over IOI prompts: mean and standard error of Δ logit diff per head = headAblationSweep per prompt', async () => {
    const r = await run({ dataset: { kind: 'ioi', n: 5, seed: 3 }, analysis: { kind: 'sweep', metric: { kind: 'logit_diff' } }, shardSize: 2 });
    expect(r.prepared.shards.map((s) => s.end - s.start)).toEqual([2, 2, 1]);
    const ds = ioiDataset(model.tokenizer!, { n: 5, seed: 3 });
    const deltas: number[][] = [];
    const cleans: number[][] = [];
    for (const p of ds.prompts) {
      const tokens = model.prepareInput(p.prompt).tokens;
      const metric = lastDiff(id(` ${p.io}`), id(` ${p.s}`), tokens[0].length - 1);
      const clean = metric(await model.forward(tokens));
      const sweep = await headAblationSweep(model, tokens, metric);
      deltas.push(Array.from(sweep.sub(clean).data));
      cleans.push([clean]);
    }
    const d = meanSe(deltas);
    expectClose(r.aggregate.mean.delta, d.mean, 1e-4, 'mean delta');
    expectClose(r.aggregate.stderr.delta, d.se, 1e-4, 'stderr delta');
    expectClose([r.aggregate.mean.clean], meanSe(cleans).mean, 1e-4, 'mean clean');
    expect(Math.max(...d.mean.map(Math.abs))).toBeGreaterThan(1); // some head matters for IOI
    expect(r.aggregate.n).toBe(5);
    expect(r.aggregate.axes).toEqual({ layers: [0, 1, 2], heads: [0, 1, 2, 3] });
    expect(r.lines.map((l) => l.index)).toEqual([0, 1, 2, 3, 4]);
    expect(r.lines[2].item.prompt).toBe(ds.prompts[2].prompt);
    expect(r.lines[2].result.delta.flat()).toHaveLength(12);
    expect(r.figures.map((f) => f.name)).toEqual(['ablation-sweep-logit_diff']);
    const csv = (await readFile(join(r.out, 'ablation-sweep-logit_diff.csv'), 'utf8')).split('\r\n');
    expect(csv[0]).toBe('layer,head,delta,delta_stderr,ablated');
    expect(csv.length - 2).toBe(12);
  });

  it('logit lens: mean probability of the correct and incorrect answers at the last position, by layer', async () => {
    const r = await run({ dataset: { kind: 'ioi', n: 3, seed: 1 }, analysis: { kind: 'logit-lens' }, shardSize: 2 });
    const ds = ioiDataset(model.tokenizer!, { n: 3, seed: 1 });
    const probs: number[][][] = [[], []];
    for (const p of ds.prompts) {
      const lens = await logitLens(model, p.prompt, { targets: [id(` ${p.io}`), id(` ${p.s}`)] });
      const pos = lens.positions.length;
      lens.targets!.forEach((t, k) => probs[k].push(lens.labels.map((_l, li) => t.prob.data[li * pos + pos - 1])));
    }
    expect(r.aggregate.axes.targets).toEqual(['correct', 'incorrect']);
    expectClose(r.aggregate.mean.targets[0].prob, meanSe(probs[0]).mean, 1e-5, 'P(correct)');
    expectClose(r.aggregate.stderr.targets[1].prob, meanSe(probs[1]).se, 1e-5, 'stderr P(incorrect)');
    const final = r.aggregate.mean.targets[0].prob.at(-1);
    expect(final).toBeGreaterThan(0.5); // the embedded model answers IOI
    expect(r.figures.map((f) => f.name)).toEqual(['logit-lens-prob-by-layer', 'logit-lens-logit-by-layer']);
  });

  it('heads over repeated random tokens: mean induction score and loss by position = detectHead / lossByPosition per sequence', async () => {
    const r = await run({ dataset: { kind: 'repeated', n: 4, seqLen: 20, seed: 2 }, analysis: { kind: 'heads', kinds: ['induction'] }, shardSize: 3 });
    const scores: number[][] = [];
    const losses: number[][] = [];
    for (let i = 0; i < 4; i++) {
      const tokens = generateRepeatedTokens(model.cfg, { seqLen: 20, seed: itemSeed(2, i) });
      expect(r.lines[i].result.tokens).toEqual(tokens);
      scores.push(Array.from((await detectHead(model, tokens[0], 'induction_head')).data));
      losses.push(Array.from((await lossByPosition(model, tokens)).data));
    }
    expectClose(r.aggregate.mean.scores.induction, meanSe(scores).mean, 1e-5, 'induction');
    expectClose(r.aggregate.mean.loss, meanSe(losses).mean, 1e-4, 'loss');
    // The embedded model's induction heads are its four layer-1 heads; the second copy is predicted far better.
    const [l0, l1, l2] = r.aggregate.mean.scores.induction as number[][];
    expect(Math.min(...l1)).toBeGreaterThan(Math.max(0.3, 10 * Math.max(...l0, ...l2)));
    expect(r.aggregate.mean.secondRepeat).toBeLessThan(r.aggregate.mean.firstRepeat / 5);
    expect(r.figures.map((f) => f.name)).toEqual(['head-scores-induction', 'loss-by-position']);
  });

  it('ablate: mean clean, ablated and delta of a head set = ablationSpecs + forward per prompt', async () => {
    const r = await run({
      dataset: { kind: 'ioi', n: 3, seed: 2 }, shardSize: 3,
      analysis: { kind: 'ablate', ablations: [{ kind: 'head', layer: 1, head: 2 }, { kind: 'head', layer: 2, head: 0 }], metric: { kind: 'logit_diff' } },
    });
    const ds = ioiDataset(model.tokenizer!, { n: 3, seed: 2 });
    const rows: number[][] = [];
    for (const p of ds.prompts) {
      const tokens = model.prepareInput(p.prompt).tokens;
      const metric = lastDiff(id(` ${p.io}`), id(` ${p.s}`), tokens[0].length - 1);
      const specs = await ablationSpecs(model, tokens, { heads: [{ layer: 1, head: 2 }, { layer: 2, head: 0 }] });
      const clean = metric(await model.forward(tokens));
      const ablated = metric(await model.forward(tokens, { interventions: specs }));
      rows.push([clean, ablated, ablated - clean]);
    }
    const { mean, se } = meanSe(rows);
    expectClose([r.aggregate.mean.clean, r.aggregate.mean.ablated, r.aggregate.mean.delta], mean, 1e-4, 'means');
    expectClose([r.aggregate.stderr.clean, r.aggregate.stderr.ablated, r.aggregate.stderr.delta], se, 1e-4, 'stderrs');
  });

  /** Per item of a patching run: resid_pre patched from its clean prompt into its corrupted one, by `patchResidPre`. */
  async function residPreRows(lines: { item: any }[], patchResidPre: typeof getAttrPatchResidPre): Promise<number[][]> {
    const rows: number[][] = [];
    for (const line of lines) {
      const { prompt, corrupted, correct, incorrect } = line.item;
      const clean = model.prepareInput(prompt).tokens;
      const bad = model.prepareInput(corrupted).tokens;
      const metric = lastDiff(id(correct), id(incorrect), clean[0].length - 1);
      const names = Array.from({ length: model.cfg.n_layers }, (_x, l) => `blocks.${l}.hook_resid_pre` as HookName);
      const [logits, cache] = await model.runWithCache(clean, { namesFilter: names });
      const c = metric(logits);
      const k = metric(await model.forward(bad));
      rows.push(Array.from((await patchResidPre(model, bad, cache, normalisedMetric(metric, c, k))).data));
    }
    return rows;
  }

  it("patch: mean normalised metric with resid_pre patched = getActPatchResidPre per prompt and its corrupted prompt", async () => {
    const r = await run({ dataset: { kind: 'ioi', n: 2, seed: 5 }, analysis: { kind: 'patch', metric: { kind: 'logit_diff' }, kinds: ['resid_pre'] }, shardSize: 1 });
    expectClose(r.aggregate.mean.results.resid_pre, meanSe(await residPreRows(r.lines, getActPatchResidPre)).mean, 1e-4, 'resid_pre');
    expect(r.figures.map((f) => f.name)).toEqual(['patch-resid_pre']);
  });

  it('attribution-patch: mean of getAttrPatchResidPre per prompt and its corrupted prompt, in patch\'s units and figures', async () => {
    const r = await run({ dataset: { kind: 'ioi', n: 2, seed: 5 }, analysis: { kind: 'attribution-patch', metric: { kind: 'logit_diff' }, kinds: ['resid_pre'] }, shardSize: 1 });
    expectClose(r.aggregate.mean.results.resid_pre, meanSe(await residPreRows(r.lines, getAttrPatchResidPre)).mean, 1e-4, 'resid_pre');
    expect(r.lines[0].result.method).toBe('attribution');
    expect(r.figures.map((f) => f.name)).toEqual(['attr-patch-resid_pre']);
  });

  it('saliency: mean gradient × input per token = inputSaliency per prompt; integrated gradients keep completeness on average', async () => {
    const r = await run({ dataset: { kind: 'ioi', n: 2, seed: 5 }, analysis: { kind: 'saliency', metric: { kind: 'logit_diff' } }, shardSize: 1 });
    const rows: number[][] = [];
    const values: number[][] = [];
    for (const line of r.lines) {
      const tokens = model.prepareInput(line.item.prompt).tokens;
      const s = await inputSaliency(model, tokens, lastDiff(id(line.item.correct), id(line.item.incorrect), tokens[0].length - 1));
      rows.push(Array.from(s.scores.data));
      values.push([s.value]);
    }
    expectClose(r.aggregate.mean.scores, meanSe(rows).mean, 1e-4, 'scores');
    expectClose(r.aggregate.stderr.scores, meanSe(rows).se, 1e-4, 'score stderrs');
    expectClose([r.aggregate.mean.value], meanSe(values).mean, 1e-4, 'metric');
    expect(r.figures.map((f) => f.name)).toEqual(['saliency-grad_x_input']);

    const ig = await run({ dataset: { kind: 'ioi', n: 2, seed: 5 }, analysis: { kind: 'saliency', metric: { kind: 'logit_diff' }, method: 'integrated_gradients', steps: 32 }, shardSize: 2 });
    const sum = (ig.aggregate.mean.scores as number[]).reduce((a, x) => a + x, 0);
    const gap = ig.aggregate.mean.value - ig.aggregate.mean.baselineValue;
    expect(Math.abs(sum - gap)).toBeLessThanOrEqual(0.02 * Math.abs(gap) + 1e-3);
  });

  it("feature-ablate: the shipped SAE's features ablated over IOI prompts = runWithSaes with ablateFeatures per prompt", async () => {
    const features = [3, 17, 1622];
    const r = await run({
      dataset: { kind: 'ioi', n: 3, seed: 4 }, shardSize: 2,
      analysis: { kind: 'feature-ablate', sae: 'L1-resid-post-topk32', features, metric: { kind: 'logit_diff' } },
    });
    const sae = await Sae.fromPretrained(join(EMBEDDED_DIR, 'saes', 'L1-resid-post-topk32'));
    try {
      const rows: number[][] = [];
      for (const line of r.lines) {
        const tokens = model.prepareInput(line.item.prompt).tokens;
        const metric = lastDiff(id(line.item.correct), id(line.item.incorrect), tokens[0].length - 1);
        const clean = metric(await model.runWithSaes(tokens, { saes: sae, useErrorTerm: true }));
        const spliced = metric(await model.runWithSaes(tokens, { saes: sae }));
        const ablated = metric(await model.runWithSaes(tokens, { saes: sae, useErrorTerm: true, interventions: [ablateFeatures(sae, features)] }));
        rows.push([clean, spliced, ablated, ablated - clean]);
      }
      const { mean, se } = meanSe(rows);
      const m = r.aggregate.mean;
      expectClose([m.clean, m.spliced, m.ablated, m.delta], mean, 1e-4, 'means');
      expectClose([r.aggregate.stderr.clean, r.aggregate.stderr.spliced, r.aggregate.stderr.ablated, r.aggregate.stderr.delta], se, 1e-4, 'stderrs');
      expect(r.figures.map((f) => f.name)).toEqual(['feature-ablation']);
    } finally {
      await sae.dispose();
    }
    await expect(run({ dataset: { kind: 'ioi', n: 1 }, analysis: { kind: 'feature-ablate', sae: 'no-such-sae', features: [1], metric: { kind: 'logit_diff' } } }))
      .rejects.toThrow(/item 0: .*no-such-sae/);
  });

  it('IOI metrics: mean head attribution = ioiHeadAttribution of the whole dataset; logit diff per prompt; accuracy', async () => {
    const r = await run({ dataset: { kind: 'ioi', n: 4, seed: 6 }, analysis: { kind: 'ioi' }, shardSize: 3 });
    const dla = await ioiHeadAttribution(model, ioiDataset(model.tokenizer!, { n: 4, seed: 6 }));
    expectClose(r.aggregate.mean.headAttribution, Array.from(dla.mean.heads.data), 1e-4, 'head attribution');
    const diffs = Array.from(dla.logitDiff.data);
    r.lines.forEach((l, i) => expect(Math.abs(l.result.prompts[0].logitDiff - diffs[i])).toBeLessThanOrEqual(1e-4));
    expect(r.aggregate.mean.accuracy).toBe(diffs.filter((d) => d > 0).length / 4);
    expect(r.figures.map((f) => f.name)).toEqual(['ioi-logit-diff', 'ioi-head-attribution']);
  });

  it('a JSONL dataset: prompts of different lengths with their own tokens; per-position results of different lengths are refused by name', async () => {
    const file = join(dir, 'items.jsonl');
    await writeFile(file, [
      { prompt: 'The cat sat on the', correct: ' mat', incorrect: ' dog', id: 'a' },
      { prompt: 'When Mary and John went to the store, John gave a drink to', correct: ' Mary', incorrect: ' John' },
      {},
    ].map((x, i) => (i === 2 ? '' : JSON.stringify(x))).join('\n'));
    const r = await run({ dataset: { kind: 'jsonl', path: file }, analysis: { kind: 'sweep', metric: { kind: 'prob' } }, shardSize: 5 });
    expect(r.lines.map((l) => l.item.id)).toEqual(['a', undefined]);
    expect(r.lines[0].result.metric.label).toMatch(/^P\(" mat"\) @ pos 5$/);
    const want: number[][] = [];
    for (const l of r.lines) want.push([l.result.clean]);
    expectClose([r.aggregate.mean.clean], meanSe(want).mean, 1e-12, 'clean');
    await expect(run({ dataset: { kind: 'jsonl', path: file }, analysis: { kind: 'logit-lens', position: 3 }, shardSize: 5 })).resolves.toBeTruthy();
    await writeFile(file, [
      { prompt: 'The cat sat on the', corrupted: 'The dog sat on the', correct: ' mat', incorrect: ' floor' },
      { prompt: 'A bird flew over the old', corrupted: 'A cat flew over the old', correct: ' house', incorrect: ' tree' },
    ].map((x) => JSON.stringify(x)).join('\n'));
    await expect(run({ dataset: { kind: 'jsonl', path: file }, analysis: { kind: 'patch', metric: { kind: 'logit_diff' }, kinds: ['resid_pre'] }, shardSize: 1 }))
      .rejects.toThrow(/cannot average the items' results: item 1: results\.resid_pre\[0\] has 7 entries where the first item has 6/);
  });
});
