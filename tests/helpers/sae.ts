/**
 * Test helper: random SAEs in SAELens's layout, an SAELens-format writer that does not go through
 * Sae.save (cfg.json as SAELens 6 or earlier write it), and a plain-TypeScript SAE (float64 loops)
 * with SAELens's semantics that the tests check Lensboard's SAE against.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { SaeArchitecture } from '../../hooks/engine/graph/sae.ts';
import { writeSafetensors, type SafetensorsDtype } from '../../hooks/loading/safetensors.ts';
import { Rng } from '../../hooks/random.ts';
import type { SaeWeights } from '../../hooks/sae/Sae.ts';

export interface RefSaeConfig {
  architecture: SaeArchitecture;
  d_in: number;
  d_sae: number;
  k?: number;
  apply_b_dec_to_input: boolean;
  normalize_activations: 'none' | 'constant_norm_rescale' | 'layer_norm';
}

/** Random weights of every tensor of `arch`, scaled so that a good share of features fire on N(0, 1) inputs. */
export function randomSaeWeights(arch: SaeArchitecture, d_in: number, d_sae: number, seed: number): SaeWeights {
  const rng = new Rng(seed);
  const w: SaeWeights = {
    W_enc: rng.normals(d_in * d_sae, 1 / Math.sqrt(d_in)),
    W_dec: rng.normals(d_sae * d_in, 1 / Math.sqrt(d_sae)),
    b_dec: rng.normals(d_in, 0.1),
  };
  if (arch !== 'gated') w.b_enc = rng.normals(d_sae, 0.1, -0.05);
  if (arch === 'jumprelu') w.threshold = Float32Array.from({ length: d_sae }, () => 0.05 + 0.3 * rng.next());
  if (arch === 'gated') {
    w.b_gate = rng.normals(d_sae, 0.2);
    w.b_mag = rng.normals(d_sae, 0.2);
    w.r_mag = rng.normals(d_sae, 0.3);
  }
  return w;
}

/** SAELens's encode of one row x [d_in] (float64): [pre, acts] over d_sae. */
export function refEncodeRow(cfg: RefSaeConfig, w: SaeWeights, x: ArrayLike<number>): { pre: Float64Array; acts: Float64Array; undo: (y: Float64Array) => Float64Array } {
  const { d_in, d_sae } = cfg;
  let xn = Float64Array.from(x);
  let undo = (y: Float64Array) => y;
  if (cfg.normalize_activations === 'constant_norm_rescale') {
    const norm = Math.sqrt(xn.reduce((a, v) => a + v * v, 0));
    const coeff = Math.sqrt(d_in) / norm;
    xn = xn.map((v) => v * coeff);
    undo = (y) => y.map((v) => v / coeff);
  } else if (cfg.normalize_activations === 'layer_norm') {
    const mu = xn.reduce((a, v) => a + v, 0) / d_in;
    const centred = xn.map((v) => v - mu);
    const std = Math.sqrt(centred.reduce((a, v) => a + v * v, 0) / (d_in - 1)); // torch.std: unbiased
    xn = centred.map((v) => v / (std + 1e-5));
    undo = (y) => y.map((v) => v * std + mu);
  }
  const saeIn = xn.map((v, i) => (cfg.apply_b_dec_to_input ? v - w.b_dec![i] : v));
  const proj = new Float64Array(d_sae);
  for (let f = 0; f < d_sae; f++) {
    let s = 0;
    for (let i = 0; i < d_in; i++) s += saeIn[i] * w.W_enc![i * d_sae + f];
    proj[f] = s;
  }
  const pre = new Float64Array(d_sae);
  const acts = new Float64Array(d_sae);
  for (let f = 0; f < d_sae; f++) {
    if (cfg.architecture === 'gated') pre[f] = proj[f] * Math.exp(w.r_mag![f]) + w.b_mag![f];
    else pre[f] = proj[f] + w.b_enc![f];
  }
  switch (cfg.architecture) {
    case 'standard':
      for (let f = 0; f < d_sae; f++) acts[f] = Math.max(0, pre[f]);
      break;
    case 'topk': {
      const order = Array.from({ length: d_sae }, (_, f) => f).sort((a, b) => pre[b] - pre[a]);
      for (const f of order.slice(0, cfg.k!)) acts[f] = Math.max(0, pre[f]);
      break;
    }
    case 'jumprelu':
      for (let f = 0; f < d_sae; f++) acts[f] = pre[f] > w.threshold![f] ? Math.max(0, pre[f]) : 0;
      break;
    case 'gated':
      for (let f = 0; f < d_sae; f++) acts[f] = proj[f] + w.b_gate![f] > 0 ? Math.max(0, pre[f]) : 0;
      break;
  }
  return { pre, acts, undo };
}

/** SAELens's decode of one row: acts W_dec + b_dec (float64). */
export function refDecodeRow(cfg: RefSaeConfig, w: SaeWeights, acts: ArrayLike<number>): Float64Array {
  const { d_in, d_sae } = cfg;
  const out = Float64Array.from(w.b_dec!);
  for (let f = 0; f < d_sae; f++) {
    const a = acts[f];
    if (a === 0) continue;
    for (let i = 0; i < d_in; i++) out[i] += a * w.W_dec![f * d_in + i];
  }
  return out;
}

/** SAELens's SAE forward without the error term: the reconstruction of x [d_in], normalisation undone. */
export function refReconstructRow(cfg: RefSaeConfig, w: SaeWeights, x: ArrayLike<number>): Float64Array {
  const { acts, undo } = refEncodeRow(cfg, w, x);
  return undo(refDecodeRow(cfg, w, acts));
}

export interface SaelensFiles {
  cfg: Record<string, unknown>;
  weights: SaeWeights;
  dtype?: SafetensorsDtype;
  /** log10 densities for sparsity.safetensors. */
  sparsity?: Float32Array;
  /** Extra tensors written into sae_weights.safetensors as they are. */
  extraTensors?: Record<string, { shape: number[]; data: Float32Array }>;
  /** Override a tensor's written shape (to test the shape check). */
  shapes?: Partial<Record<string, number[]>>;
}

/** SAELens's layout of each tensor. */
export function saelensShape(name: string, d_in: number, d_sae: number): number[] {
  if (name === 'W_enc') return [d_in, d_sae];
  if (name === 'W_dec') return [d_sae, d_in];
  if (name === 'b_dec') return [d_in];
  return [d_sae];
}

/** Writes cfg.json, sae_weights.safetensors (and sparsity.safetensors) as SAELens does, into `dir`. */
export async function writeSaelensSae(dir: string, files: SaelensFiles): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'cfg.json'), JSON.stringify(files.cfg));
  // Shapes from the weights themselves (b_dec is [d_in]), so a test can write a cfg.json that disagrees.
  const d_in = files.weights.b_dec!.length;
  const d_sae = files.weights.W_dec!.length / d_in;
  const tensors: Record<string, { dtype: SafetensorsDtype; shape: number[]; data: Float32Array }> = {};
  for (const [name, data] of Object.entries(files.weights)) {
    tensors[name] = { dtype: files.dtype ?? 'F32', shape: files.shapes?.[name] ?? saelensShape(name, d_in, d_sae), data: data! };
  }
  for (const [name, t] of Object.entries(files.extraTensors ?? {})) tensors[name] = { dtype: 'F32', ...t };
  await writeSafetensors(join(dir, 'sae_weights.safetensors'), tensors);
  if (files.sparsity) await writeSafetensors(join(dir, 'sparsity.safetensors'), { sparsity: { dtype: 'F32', shape: [files.sparsity.length], data: files.sparsity } });
}
