/**
 * Sae: encode / decode / forward of random SAEs of every architecture against the plain-TypeScript
 * SAE (tests/helpers/sae.ts, SAELens's semantics in float64 loops), and SAELens-format files written
 * by the test (F32/F16/BF16, SAELens 6 and earlier cfg layouts, with and without apply_b_dec_to_input
 * and each normalisation) loaded from a directory and from a fake hub; loading errors.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SaeArchitecture } from '../../../hooks/engine/graph/sae.ts';
import { roundToBf16, roundToF16 } from '../../../hooks/loading/halfFloat.ts';
import type { ProgressEvent } from '../../../hooks/loading/progress.ts';
import { Rng } from '../../../hooks/random.ts';
import { Sae, type SaeWeights } from '../../../hooks/sae/Sae.ts';
import { Tensor } from '../../../hooks/tensor.ts';
import { FakeHub } from '../../helpers/fakeHub.ts';
import { randomSaeWeights, refDecodeRow, refEncodeRow, refReconstructRow, writeSaelensSae, type RefSaeConfig } from '../../helpers/sae.ts';

const D_IN = 24;
const D_SAE = 56;
const ROWS = 10;

function inputs(rows: number, seed: number): Tensor {
  return new Tensor(new Rng(seed).normals(rows * D_IN, 1.3, 0.2), [2, rows / 2, D_IN]);
}

/** Max |actual - reference| over rows, each row computed by `ref`. */
function maxDiffRows(actual: Tensor, x: Tensor, width: number, ref: (row: Float32Array) => ArrayLike<number>): number {
  let worst = 0;
  const rows = x.size / x.shape.at(-1)!;
  for (let r = 0; r < rows; r++) {
    const expected = ref(x.data.subarray(r * x.shape.at(-1)!, (r + 1) * x.shape.at(-1)!));
    for (let j = 0; j < width; j++) worst = Math.max(worst, Math.abs(actual.data[r * width + j] - expected[j]));
  }
  return worst;
}

function refCfg(arch: SaeArchitecture, over: Partial<RefSaeConfig> = {}): RefSaeConfig {
  return { architecture: arch, d_in: D_IN, d_sae: D_SAE, ...(arch === 'topk' ? { k: 7 } : {}), apply_b_dec_to_input: true, normalize_activations: 'none', ...over };
}

function saeOf(c: RefSaeConfig, w: SaeWeights): Sae {
  return Sae.fromWeights({ ...c, hook_name: 'blocks.0.hook_resid_post', k: c.k ?? null }, w);
}

describe('encode / decode against the plain-TypeScript SAE (1e-5)', () => {
  const ARCHS: SaeArchitecture[] = ['standard', 'topk', 'jumprelu', 'gated'];
  const variants: [string, Partial<RefSaeConfig>][] = [
    ['defaults', {}],
    ['apply_b_dec_to_input false', { apply_b_dec_to_input: false }],
    ['constant_norm_rescale', { normalize_activations: 'constant_norm_rescale' }],
    ['layer_norm', { normalize_activations: 'layer_norm' }],
  ];
  for (const arch of ARCHS) {
    for (const [label, over] of variants) {
      it(`${arch}, ${label}`, async () => {
        const c = refCfg(arch, over);
        const w = randomSaeWeights(arch, D_IN, D_SAE, 11 + ARCHS.indexOf(arch));
        const sae = saeOf(c, w);
        const x = inputs(ROWS, 3);
        const acts = await sae.encode(x);
        expect(acts.shape).toEqual([2, ROWS / 2, D_SAE]);
        expect(maxDiffRows(acts, x, D_SAE, (row) => refEncodeRow(c, w, row).acts)).toBeLessThanOrEqual(1e-5);
        // Enough features fire (and enough do not) for the comparison to mean something.
        const active = acts.data.filter((v) => v > 0).length / acts.size;
        expect(active).toBeGreaterThan(arch === 'topk' ? 0.05 : 0.1);
        expect(active).toBeLessThan(0.9);
        if (arch === 'topk') for (let r = 0; r < ROWS; r++) expect(acts.data.subarray(r * D_SAE, (r + 1) * D_SAE).filter((v) => v !== 0).length).toBeLessThanOrEqual(c.k!);

        const recons = await sae.decode(acts);
        expect(recons.shape).toEqual([2, ROWS / 2, D_IN]);
        expect(maxDiffRows(recons, acts, D_IN, (row) => refDecodeRow(c, w, row))).toBeLessThanOrEqual(1e-5);

        const { acts: acts2, output } = await sae.forward(x);
        expect(acts2.maxAbsDiff(acts)).toBe(0);
        expect(maxDiffRows(output, x, D_IN, (row) => refReconstructRow(c, w, row))).toBeLessThanOrEqual(1e-5);
        await sae.dispose();
      });
    }
  }

  it('a hook_z SAE takes [..., head, d_head] as well as [..., d_in]', async () => {
    const c = refCfg('standard');
    const w = randomSaeWeights('standard', D_IN, D_SAE, 4);
    const sae = Sae.fromWeights({ ...c, hook_name: 'blocks.0.attn.hook_z' }, w);
    expect(sae.cfg.reshape_activations).toBe('hook_z');
    const x = inputs(ROWS, 5);
    const heads = await sae.encode(x.reshape([2, ROWS / 2, 4, 6]));
    expect(heads.shape).toEqual([2, ROWS / 2, D_SAE]);
    expect(heads.maxAbsDiff(await sae.encode(x))).toBe(0);
    await sae.dispose();
  });

  it('weights come back in SAELens layout; featureDirection is W_dec[f]', () => {
    const w = randomSaeWeights('jumprelu', D_IN, D_SAE, 9);
    const sae = saeOf(refCfg('jumprelu'), w);
    expect(sae.W_enc.shape).toEqual([D_IN, D_SAE]);
    expect(Array.from(sae.W_enc.data)).toEqual(Array.from(w.W_enc!));
    expect(Array.from(sae.W_dec.data)).toEqual(Array.from(w.W_dec!));
    expect(Array.from(sae.weight('threshold').data)).toEqual(Array.from(w.threshold!));
    expect(Array.from(sae.featureDirection(5))).toEqual(Array.from(w.W_dec!.subarray(5 * D_IN, 6 * D_IN)));
    for (let i = 0; i < D_IN; i++) expect(sae.encoderDirection(5)[i]).toBe(w.W_enc![i * D_SAE + 5]);
    expect(() => sae.featureDirection(D_SAE)).toThrow(/feature 56 is not a feature of this SAE; allowed 0…55/);
  });
});

describe('SAELens-format files', () => {
  let work: string;
  let hub: FakeHub;
  const savedEnv = { ...process.env };
  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), 'lensboard-sae-'));
    hub = await FakeHub.start();
  });
  afterAll(async () => {
    process.env = savedEnv;
    await hub.close();
    await rm(work, { recursive: true, force: true });
  });

  /** SAELens 6's cfg.json (hook_name and the rest in metadata). */
  const v6Cfg = (arch: SaeArchitecture, over: Record<string, unknown> = {}) => ({
    architecture: arch,
    d_in: D_IN,
    d_sae: D_SAE,
    dtype: 'float32',
    device: 'cpu',
    apply_b_dec_to_input: true,
    normalize_activations: 'none',
    reshape_activations: 'none',
    ...(arch === 'topk' ? { k: 5, rescale_acts_by_decoder_norm: false } : {}),
    metadata: { sae_lens_version: '6.5.1', model_name: 'tiny', hook_name: 'blocks.1.hook_resid_post', context_size: 32, prepend_bos: true },
    ...over,
  });

  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    it(`loads ${dtype} weights (SAELens 6 cfg) and encodes like the rounded weights`, async () => {
      const w = randomSaeWeights('topk', D_IN, D_SAE, 21);
      const dir = join(work, `v6-${dtype}`);
      const sparsity = Float32Array.from({ length: D_SAE }, (_, i) => -1 - i / D_SAE);
      await writeSaelensSae(dir, { cfg: v6Cfg('topk', { dtype: dtype === 'F32' ? 'float32' : dtype === 'F16' ? 'float16' : 'bfloat16' }), weights: w, dtype, sparsity });
      const sae = await Sae.fromPretrained(dir);
      expect(sae.cfg).toMatchObject({ architecture: 'topk', k: 5, hook_name: 'blocks.1.hook_resid_post', hook_layer: 1, model_name: 'tiny', context_size: 32 });
      expect(Array.from(sae.logSparsity!)).toEqual(Array.from(sparsity));
      const round = dtype === 'F32' ? (a: Float32Array) => a : dtype === 'F16' ? roundToF16 : roundToBf16;
      const rounded: SaeWeights = Object.fromEntries(Object.entries(w).map(([k, v]) => [k, round(v!)]));
      const x = inputs(ROWS, 8);
      const c = refCfg('topk', { k: 5 });
      expect(maxDiffRows(await sae.encode(x), x, D_SAE, (row) => refEncodeRow(c, rounded, row).acts)).toBeLessThanOrEqual(1e-5);
      await sae.dispose();
    });
  }

  it('reads earlier SAELens cfgs: hook_point, activation_fn_str topk with activation_fn_kwargs.k, normalize_activations false', async () => {
    const w = randomSaeWeights('topk', D_IN, D_SAE, 22);
    const dir = join(work, 'pre6');
    await writeSaelensSae(dir, {
      cfg: { d_in: D_IN, d_sae: D_SAE, hook_point: 'blocks.0.hook_resid_pre', hook_point_layer: 0, activation_fn_str: 'topk', activation_fn_kwargs: { k: 9 }, apply_b_dec_to_input: false, normalize_activations: false, dtype: 'torch.float32', model_name: 'gpt2-small', sae_lens_training_version: '3.1.0' },
      weights: w,
    });
    const sae = await Sae.fromPretrained(dir);
    expect(sae.cfg).toMatchObject({ architecture: 'topk', k: 9, hook_name: 'blocks.0.hook_resid_pre', hook_layer: 0, apply_b_dec_to_input: false, normalize_activations: 'none' });
    expect(sae.cfg.extra.sae_lens_training_version).toBe('3.1.0');
    const x = inputs(ROWS, 9);
    expect(maxDiffRows(await sae.encode(x), x, D_SAE, (row) => refEncodeRow(refCfg('topk', { k: 9, apply_b_dec_to_input: false }), w, row).acts)).toBeLessThanOrEqual(1e-5);
    await sae.dispose();
  });

  for (const norm of ['constant_norm_rescale', 'layer_norm'] as const) {
    it(`runs normalize_activations '${norm}' at run time, with and without apply_b_dec_to_input`, async () => {
      for (const applyB of [true, false]) {
        const w = randomSaeWeights('standard', D_IN, D_SAE, 23);
        const dir = join(work, `${norm}-${applyB}`);
        await writeSaelensSae(dir, { cfg: v6Cfg('standard', { normalize_activations: norm, apply_b_dec_to_input: applyB }), weights: w });
        const sae = await Sae.fromPretrained(dir);
        const c = refCfg('standard', { normalize_activations: norm, apply_b_dec_to_input: applyB });
        const x = inputs(ROWS, 10);
        const { acts, output } = await sae.forward(x);
        expect(maxDiffRows(acts, x, D_SAE, (row) => refEncodeRow(c, w, row).acts)).toBeLessThanOrEqual(1e-5);
        expect(maxDiffRows(output, x, D_IN, (row) => refReconstructRow(c, w, row))).toBeLessThanOrEqual(1e-5);
        await sae.dispose();
      }
    });
  }

  it("folds expected_average_only_in's normScalingFactor as SAELens does: SAE(x·s)/s; without it the SAE runs unscaled", async () => {
    const w = randomSaeWeights('jumprelu', D_IN, D_SAE, 24);
    const dir = join(work, 'expected-average');
    await writeSaelensSae(dir, { cfg: v6Cfg('jumprelu', { normalize_activations: 'expected_average_only_in' }), weights: w });
    const s = 0.37;
    const folded = await Sae.fromPretrained(dir, { normScalingFactor: s });
    expect(folded.cfg.normalize_activations).toBe('none');
    const c = refCfg('jumprelu');
    const x = inputs(ROWS, 11);
    const { acts, output } = await folded.forward(x);
    expect(maxDiffRows(acts, x, D_SAE, (row) => refEncodeRow(c, w, row.map((v) => v * s)).acts)).toBeLessThanOrEqual(1e-5);
    expect(maxDiffRows(output, x, D_IN, (row) => refReconstructRow(c, w, row.map((v) => v * s)).map((v) => v / s))).toBeLessThanOrEqual(1e-5);
    const unscaled = await Sae.fromPretrained(dir);
    expect(unscaled.cfg.normalize_activations).toBe('expected_average_only_in');
    expect(maxDiffRows(await unscaled.encode(x), x, D_SAE, (row) => refEncodeRow(c, w, row).acts)).toBeLessThanOrEqual(1e-5);
    await Promise.all([folded.dispose(), unscaled.dispose()]);
  });

  it('folds TopK rescale_acts_by_decoder_norm (SAELens): same outputs as rescaling at run time', async () => {
    const w = randomSaeWeights('topk', D_IN, D_SAE, 25);
    const dir = join(work, 'rescale');
    await writeSaelensSae(dir, { cfg: v6Cfg('topk', { rescale_acts_by_decoder_norm: true }), weights: w });
    const sae = await Sae.fromPretrained(dir);
    const norms = Array.from({ length: D_SAE }, (_, f) => Math.hypot(...w.W_dec!.subarray(f * D_IN, (f + 1) * D_IN)));
    const c = refCfg('topk', { k: 5 });
    const x = inputs(ROWS, 12);
    // SAELens: pre · ‖W_dec[f]‖, TopK, then acts / ‖W_dec[f]‖ into the decoder.
    const reference = (row: Float32Array) => {
      const { pre } = refEncodeRow(refCfg('standard', { d_sae: D_SAE }), { ...w, b_enc: w.b_enc }, row);
      const scaled = pre.map((v, f) => v * norms[f]);
      const order = Array.from({ length: D_SAE }, (_, f) => f).sort((a, b) => scaled[b] - scaled[a]);
      const acts = new Float64Array(D_SAE);
      for (const f of order.slice(0, 5)) acts[f] = Math.max(0, scaled[f]);
      return { acts, out: refDecodeRow(c, w, acts.map((v, f) => v / norms[f])) };
    };
    const { acts, output } = await sae.forward(x);
    expect(maxDiffRows(acts, x, D_SAE, (row) => reference(row).acts)).toBeLessThanOrEqual(1e-5);
    expect(maxDiffRows(output, x, D_IN, (row) => reference(row).out)).toBeLessThanOrEqual(1e-5);
    await sae.dispose();
  });

  it('saves SAELens format that loads back identically (and round-trips through cfg.json)', async () => {
    const w = randomSaeWeights('gated', D_IN, D_SAE, 26);
    const sae = Sae.fromWeights({ architecture: 'gated', d_in: D_IN, d_sae: D_SAE, hook_name: 'blocks.2.hook_mlp_out', model_name: 'tiny', context_size: 16 }, w);
    const dir = join(work, 'saved');
    const sparsity = Float32Array.from({ length: D_SAE }, (_, i) => -i / 10);
    await sae.save(dir, { logSparsity: sparsity });
    const back = await Sae.fromPretrained(dir);
    expect(back.cfg).toEqual({ ...sae.cfg, extra: expect.any(Object) });
    for (const name of ['W_enc', 'W_dec', 'b_dec', 'b_gate', 'b_mag', 'r_mag'] as const) expect(back.weight(name).maxAbsDiff(sae.weight(name))).toBe(0);
    expect(Array.from(back.logSparsity!)).toEqual(Array.from(sparsity));
    await Promise.all([sae.dispose(), back.dispose()]);
  });

  describe('loading errors name the problem', () => {
    const good = () => ({ cfg: v6Cfg('standard'), weights: randomSaeWeights('standard', D_IN, D_SAE, 30) });
    const cases: [string, () => Parameters<typeof writeSaelensSae>[1], RegExp][] = [
      ['d_in missing', () => ({ ...good(), cfg: { ...v6Cfg('standard'), d_in: undefined } }), /cfg\.json: d_in must be a positive integer; got undefined/],
      ['d_sae negative', () => ({ ...good(), cfg: v6Cfg('standard', { d_sae: -3 }) }), /d_sae must be a positive integer; got -3/],
      ['unknown architecture', () => ({ ...good(), cfg: v6Cfg('standard', { architecture: 'matryoshka_batchtopk' }) }), /architecture must be one of standard, topk, jumprelu, gated; got "matryoshka_batchtopk"/],
      ['topk without k', () => ({ ...good(), cfg: v6Cfg('standard', { architecture: 'topk' }) }), /k must be a positive integer; got undefined/],
      ['no hook name', () => ({ ...good(), cfg: { ...v6Cfg('standard'), metadata: {} } }), /hook_name must be a hook point name/],
      ['unknown normalisation', () => ({ ...good(), cfg: v6Cfg('standard', { normalize_activations: 'l2' }) }), /normalize_activations must be one of none, expected_average_only_in, constant_norm_rescale, layer_norm; got "l2"/],
      ['a single head', () => ({ ...good(), cfg: v6Cfg('standard', { hook_head_index: 3 }) }), /hook_head_index is 3: SAEs of a single attention head are not supported/],
      ['missing tensor', () => { const g = good(); delete g.weights.b_enc; return g; }, /missing tensor 'b_enc' \(a standard SAE has W_enc, b_enc, W_dec, b_dec\)/],
      ['misshaped tensor', () => ({ ...good(), shapes: { W_dec: [D_IN, D_SAE] } }), /tensor 'W_dec' has shape \[24, 56\]; cfg\.json's d_in 24 and d_sae 56 need \[56, 24\]/],
      ['unexpected tensor', () => ({ ...good(), weights: { ...good().weights, threshold: new Float32Array(D_SAE) } }), /unexpected tensor\(s\) threshold for a standard SAE/],
      ['a non-unit scaling_factor', () => ({ ...good(), extraTensors: { scaling_factor: { shape: [D_SAE], data: new Float32Array(D_SAE).fill(2) } } }), /scaling_factor other than 1/],
      ['a NaN weight', () => { const g = good(); g.weights.b_dec![2] = NaN; return g; }, /tensor 'b_dec' has a non-finite value \(NaN\) at flat index 2/],
    ];
    for (const [label, files, error] of cases) {
      it(label, async () => {
        const dir = join(work, `bad-${label.replace(/\W+/g, '-')}`);
        await writeSaelensSae(dir, files());
        await expect(Sae.fromPretrained(dir)).rejects.toThrow(error);
      });
    }
    it('no cfg.json, bad JSON, not a directory or repo', async () => {
      await expect(Sae.fromPretrained(work, { subfolder: 'nothing-here' })).rejects.toThrow(/cfg\.json: no such file \(an SAELens SAE has cfg\.json and sae_weights\.safetensors\)/);
      await expect(Sae.fromPretrained('./no/such/dir')).rejects.toThrow(/neither a directory nor a hub repo id/);
      await expect(Sae.fromPretrained(work, { subfolder: '../etc' })).rejects.toThrow(/subfolder must stay inside/);
    });
  });

  it('loads from a hub repo subfolder through the HF cache, then offline, with progress events', async () => {
    const w = randomSaeWeights('standard', D_IN, D_SAE, 31);
    const src = join(work, 'hub-src');
    await writeSaelensSae(src, { cfg: v6Cfg('standard'), weights: w, sparsity: new Float32Array(D_SAE).fill(-2) });
    const { readFile } = await import('node:fs/promises');
    const files = Object.fromEntries(await Promise.all(['cfg.json', 'sae_weights.safetensors', 'sparsity.safetensors'].map(async (f) => [`blocks.1.hook_resid_post/${f}`, await readFile(join(src, f))])));
    hub.addRepo('test-org/tiny-saes', { ...files, 'README.md': 'SAEs' });
    process.env.HF_ENDPOINT = hub.url;
    process.env.HF_HOME = join(work, 'hf-home');
    delete process.env.HF_HUB_CACHE;
    delete process.env.HF_HUB_OFFLINE;
    const events: ProgressEvent[] = [];
    const sae = await Sae.fromPretrained('test-org/tiny-saes', { subfolder: 'blocks.1.hook_resid_post', onProgress: (e) => events.push(e) });
    expect(sae.name).toBe('test-org/tiny-saes/blocks.1.hook_resid_post');
    expect(sae.dir).toContain(join('hf-home', 'hub', 'models--test-org--tiny-saes', 'snapshots'));
    expect(events.filter((e) => e.status === 'done').length).toBe(3);
    expect(events.at(-1)!.status).toBe('ready');
    const x = inputs(ROWS, 13);
    expect(maxDiffRows(await sae.encode(x), x, D_SAE, (row) => refEncodeRow(refCfg('standard'), w, row).acts)).toBeLessThanOrEqual(1e-5);
    const requests = hub.log.length;
    const offline = await Sae.fromPretrained('test-org/tiny-saes', { subfolder: 'blocks.1.hook_resid_post', localFilesOnly: true });
    expect(hub.log.length).toBe(requests);
    expect(offline.cfg).toEqual(sae.cfg);
    await expect(Sae.fromPretrained('test-org/tiny-saes', { subfolder: 'blocks.0.hook_resid_post', localFilesOnly: true })).rejects.toThrow(/Offline mode .* blocks\.0\.hook_resid_post\/cfg\.json of test-org\/tiny-saes@main is not in the cache/);
    await expect(Sae.fromPretrained('test-org/tiny-saes', { subfolder: 'missing' })).rejects.toThrow(/missing\/cfg\.json not found in test-org\/tiny-saes@main \(HTTP 404\)/);
    await Promise.all([sae.dispose(), offline.dispose()]);
  });
});
