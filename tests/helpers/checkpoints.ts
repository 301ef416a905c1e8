/** Test helper: write Lensboard weights as a Hugging Face GPT-2 checkpoint (config.json + safetensors, HF Conv1D layout). */
import { hookedToHfConfig } from '../../hooks/loading/hfConfig.ts';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { HookedTransformerConfig } from '../../hooks/config.ts';
import type { TransformerWeights } from '../../hooks/weights.ts';
import { writeSafetensors } from '../../hooks/loading/safetensors.ts';
import type { SafetensorsDtype } from '../../hooks/loading/safetensors.ts';

export interface HfCheckpointOptions {
  dtype: SafetensorsDtype;
  /** Name tensors `transformer.wte.weight`, … (as GPT2LMHeadModel saves them) instead of `wte.weight`. */
  prefix: boolean;
  /** Add the attention buffers `h.L.attn.bias` (causal mask) and `h.L.attn.masked_bias` of older checkpoints. */
  buffers: boolean;
  /** Add `lm_head.weight` (= W_Uᵀ). */
  lmHead: boolean;
  /** Split the tensors over this many shard files with a model.safetensors.index.json (default 1: one file). */
  shards?: number;
  /** Extra or overriding config.json fields. */
  config?: Record<string, unknown>;
}

/** The config.json Hugging Face writes for a GPT-2 with this config. */
export const hfConfigJson = hookedToHfConfig;

/** HF tensor name → [shape, data] for the weights, in HF layout (c_attn = [W_Q | W_K | W_V] per row). */
export function hfTensors(cfg: HookedTransformerConfig, w: TransformerWeights, opts: HfCheckpointOptions): Map<string, [number[], Float32Array]> {
  const { d_model: D, d_vocab: V, n_ctx: C, d_mlp: M } = cfg;
  const H = cfg.n_heads * cfg.d_head;
  const p = opts.prefix ? 'transformer.' : '';
  const out = new Map<string, [number[], Float32Array]>();
  out.set(`${p}wte.weight`, [[V, D], w.W_E]);
  out.set(`${p}wpe.weight`, [[C, D], w.W_pos]);
  w.blocks.forEach((b, l) => {
    const h = `${p}h.${l}.`;
    if (!b.ln1 || !b.ln2) throw new Error('writeHfCheckpoint: LayerNorms must not be folded');
    out.set(`${h}ln_1.weight`, [[D], b.ln1.w]);
    out.set(`${h}ln_1.bias`, [[D], b.ln1.b]);
    const cAttn = new Float32Array(D * 3 * H);
    for (let i = 0; i < D; i++) {
      for (let j = 0; j < H; j++) {
        cAttn[i * 3 * H + j] = b.W_Q[i * H + j];
        cAttn[i * 3 * H + H + j] = b.W_K[i * H + j];
        cAttn[i * 3 * H + 2 * H + j] = b.W_V[i * H + j];
      }
    }
    const cAttnBias = new Float32Array(3 * H);
    cAttnBias.set(b.b_Q, 0);
    cAttnBias.set(b.b_K, H);
    cAttnBias.set(b.b_V, 2 * H);
    out.set(`${h}attn.c_attn.weight`, [[D, 3 * H], cAttn]);
    out.set(`${h}attn.c_attn.bias`, [[3 * H], cAttnBias]);
    out.set(`${h}attn.c_proj.weight`, [[H, D], b.W_O]);
    out.set(`${h}attn.c_proj.bias`, [[D], b.b_O]);
    if (opts.buffers) {
      const mask = new Float32Array(C * C);
      for (let q = 0; q < C; q++) for (let k = 0; k <= q; k++) mask[q * C + k] = 1;
      out.set(`${h}attn.bias`, [[1, 1, C, C], mask]);
      out.set(`${h}attn.masked_bias`, [[], new Float32Array([-1e4])]);
    }
    out.set(`${h}ln_2.weight`, [[D], b.ln2.w]);
    out.set(`${h}ln_2.bias`, [[D], b.ln2.b]);
    out.set(`${h}mlp.c_fc.weight`, [[D, M], b.W_in]);
    out.set(`${h}mlp.c_fc.bias`, [[M], b.b_in]);
    out.set(`${h}mlp.c_proj.weight`, [[M, D], b.W_out]);
    out.set(`${h}mlp.c_proj.bias`, [[D], b.b_out]);
  });
  if (!w.ln_final) throw new Error('writeHfCheckpoint: ln_final must not be folded');
  out.set(`${p}ln_f.weight`, [[D], w.ln_final.w]);
  out.set(`${p}ln_f.bias`, [[D], w.ln_final.b]);
  if (opts.lmHead) {
    const lm = new Float32Array(V * D); // [d_vocab, d_model] = W_Uᵀ
    for (let v = 0; v < V; v++) for (let d = 0; d < D; d++) lm[v * D + d] = w.W_U[d * V + v];
    out.set('lm_head.weight', [[V, D], lm]);
  }
  return out;
}

/** Write config.json and model.safetensors (or shards + index) for `weights` into `dir`. */
export async function writeHfCheckpoint(
  dir: string,
  cfg: HookedTransformerConfig,
  weights: TransformerWeights,
  opts: HfCheckpointOptions,
): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), JSON.stringify({ ...hfConfigJson(cfg), ...opts.config }, null, 2));
  const entries = [...hfTensors(cfg, weights, opts)];
  const shards = opts.shards ?? 1;
  const toRecord = (list: typeof entries) =>
    Object.fromEntries(list.map(([name, [shape, data]]) => [name, { dtype: opts.dtype, shape, data }]));
  if (shards === 1) {
    await writeSafetensors(join(dir, 'model.safetensors'), toRecord(entries), { format: 'pt' });
    return;
  }
  const weightMap: Record<string, string> = {};
  const per = Math.ceil(entries.length / shards);
  for (let s = 0; s < shards; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const part = entries.slice(s * per, (s + 1) * per);
    for (const [name] of part) weightMap[name] = file;
    await writeSafetensors(join(dir, file), toRecord(part), { format: 'pt' });
  }
  await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }, null, 2));
}
