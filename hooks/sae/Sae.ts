/**
 * A sparse autoencoder in SAELens's format: loaded from a directory or a hub repo (cfg.json,
 * sae_weights.safetensors, optional sparsity.safetensors), encoded and decoded on onnxruntime by the
 * same graph piece that splices it into a model (engine/graph/sae.ts), and saved back.
 */
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { f32, resolveDevice, runSession, SessionCache, type Device, type OrtValue, type ResolvedDevice } from '../engine/runtime.ts';
import { SAE_WEIGHTS, saeWeightDims, saeWeightKey, standaloneSae, type SaeGraphSpec, type SaeSplice, type SaeWeightName } from '../engine/graph/sae.ts';
import type { EngineSae } from '../engine/engine.ts';
import type { ModelHookName } from '../hookPoints.ts';
import { GraphBuilder } from '../onnx/builder.ts';
import { encodeModel } from '../onnx/proto.ts';
import { downloadSnapshot, isHubRepoId, type HubOptions } from '../loading/index.ts';
import { isFile, SafetensorsFile, writeSafetensors, type SafetensorsDtype } from '../loading/safetensors.ts';
import { Tensor } from '../tensor.ts';
import { parseSaeConfigJson, saeConfig, saeConfigJson, type SaeConfig, type SaeConfigInput } from './config.ts';

export const SAE_CFG_FILE = 'cfg.json';
export const SAE_WEIGHTS_FILE = 'sae_weights.safetensors';
export const SAE_SPARSITY_FILE = 'sparsity.safetensors';

/** An SAE's weights as SAELens stores them: W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_in], b_dec [d_in], threshold (JumpReLU), b_gate / b_mag / r_mag (gated). */
export type SaeWeights = Partial<Record<SaeWeightName, Float32Array>>;

export interface SaeOptions {
  /** Where encode/decode run on their own (spliced, the SAE runs on the model's device). Default 'cpu'. */
  device?: Device;
  /** onnxruntime threads for encode/decode (0: one per core). */
  threads?: number;
}

export interface SaeLoadOptions extends SaeOptions, HubOptions {
  /** The folder of the repo (or directory) holding cfg.json and the weights (SAELens releases keep one SAE per folder). */
  subfolder?: string;
  /**
   * SAELens's norm_scaling_factor for an SAE with normalize_activations 'expected_average_only_in'
   * (it is in SAELens's release list, not in cfg.json): folded into the weights as SAELens does.
   * Without it such an SAE runs unscaled, as SAELens runs one loaded from disk.
   */
  normScalingFactor?: number;
}

/** The SAELens layout of a weight: [d_in, d_sae] for W_enc, [d_sae, d_in] for W_dec, vectors otherwise. */
function saelensDims(cfg: SaeConfig, name: SaeWeightName): number[] {
  if (name === 'W_enc') return [cfg.d_in, cfg.d_sae];
  return saeWeightDims(cfg, name);
}

/** [rows, cols] -> [cols, rows]. */
function transposed(data: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = data[r * cols + c];
  return out;
}

let nextId = 0;

export class Sae {
  readonly cfg: SaeConfig;
  /** log10 of each feature's firing frequency, from sparsity.safetensors ([d_sae]), or null. */
  readonly logSparsity: Float32Array | null;
  /** The directory it was loaded from or saved to (a hub snapshot for hub SAEs), or null. */
  dir: string | null;
  /** A name for lists and errors: the directory's or repo's, else `sae-N`. */
  readonly name: string;
  /** The weights in the layout the graph is fed (W_enc transposed, [d_sae, d_in]). */
  private readonly arrays: Map<SaeWeightName, Float32Array>;
  private sessions: SessionCache | null = null;
  private readonly device: Device;
  private readonly threads: number;

  private constructor(cfg: SaeConfig, arrays: Map<SaeWeightName, Float32Array>, logSparsity: Float32Array | null, opts: SaeOptions & { dir?: string; name?: string }) {
    this.cfg = cfg;
    this.arrays = arrays;
    this.logSparsity = logSparsity;
    this.dir = opts.dir ?? null;
    this.name = opts.name ?? `sae-${nextId++}`;
    this.device = opts.device ?? 'cpu';
    this.threads = opts.threads ?? 0;
  }

  /**
   * An SAE from its config and weights in SAELens's layout (checked: every tensor of the
   * architecture, each of its shape). The arrays are copied.
   */
  static fromWeights(cfg: SaeConfigInput | SaeConfig, weights: SaeWeights, opts: SaeOptions & { name?: string; logSparsity?: Float32Array } = {}): Sae {
    const full = saeConfig(cfg, opts.name ? `SAE ${opts.name}` : 'SAE config');
    return Sae.build(full, (name) => weights[name] ?? null, Object.keys(weights), opts.name ?? null, opts, opts.logSparsity ?? null);
  }

  private static build(
    cfg: SaeConfig,
    get: (name: SaeWeightName) => Float32Array | null,
    present: readonly string[],
    where: string | null,
    opts: SaeOptions & { dir?: string; name?: string; normScalingFactor?: number },
    logSparsity: Float32Array | null,
  ): Sae {
    const label = where ?? 'SAE weights';
    const needed = SAE_WEIGHTS[cfg.architecture];
    const extra = present.filter((n) => !needed.includes(n as SaeWeightName));
    if (extra.length > 0) {
      throw new Error(`${label}: unexpected tensor(s) ${extra.join(', ')} for a ${cfg.architecture} SAE, which has ${needed.join(', ')}`);
    }
    const arrays = new Map<SaeWeightName, Float32Array>();
    for (const name of needed) {
      const data = get(name);
      const dims = saelensDims(cfg, name);
      if (!data) throw new Error(`${label}: missing tensor '${name}' (a ${cfg.architecture} SAE has ${needed.join(', ')})`);
      const size = dims.reduce((a, b) => a * b, 1);
      if (data.length !== size) throw new Error(`${label}: tensor '${name}' has ${data.length} values; [${dims.join(', ')}] (d_in ${cfg.d_in}, d_sae ${cfg.d_sae}) needs ${size}`);
      for (let i = 0; i < data.length; i++) {
        if (!Number.isFinite(data[i])) throw new Error(`${label}: tensor '${name}' has a non-finite value (${data[i]}) at flat index ${i}`);
      }
      arrays.set(name, name === 'W_enc' ? transposed(data, cfg.d_in, cfg.d_sae) : Float32Array.from(data));
    }
    if (logSparsity && logSparsity.length !== cfg.d_sae) {
      throw new Error(`${label}: the sparsity tensor has ${logSparsity.length} values; the SAE has d_sae ${cfg.d_sae}`);
    }
    let finalCfg = cfg;
    if (cfg.architecture === 'topk' && cfg.extra.rescale_acts_by_decoder_norm === true) {
      foldDecoderNormTopK(cfg, arrays);
      finalCfg = { ...cfg, extra: { ...cfg.extra, rescale_acts_by_decoder_norm: false } };
    }
    if (cfg.normalize_activations === 'expected_average_only_in' && opts.normScalingFactor !== undefined) {
      const s = opts.normScalingFactor;
      if (!(Number.isFinite(s) && s > 0)) throw new Error(`${label}: normScalingFactor must be a positive number; got ${s}`);
      foldNormScalingFactor(arrays, s);
      finalCfg = { ...finalCfg, normalize_activations: 'none' };
    }
    return new Sae(finalCfg, arrays, logSparsity ? Float32Array.from(logSparsity) : null, opts);
  }

  /**
   * Loads an SAE in SAELens's format from a local directory, or from a hub repo (`org/name`) through
   * the Hugging Face cache (offline mode, revision, progress, as models): `subfolder`/cfg.json,
   * `subfolder`/sae_weights.safetensors (F32, F16 or BF16) and the optional sparsity.safetensors.
   */
  static async fromPretrained(dirOrRepo: string, opts: SaeLoadOptions = {}): Promise<Sae> {
    const sub = opts.subfolder?.replace(/^\/+|\/+$/g, '') ?? '';
    if (sub.split('/').includes('..')) throw new Error(`subfolder must stay inside the repo or directory; got '${opts.subfolder}'`);
    const inSub = (f: string) => (sub ? `${sub}/${f}` : f);
    let root: string;
    if (await isDirectory(dirOrRepo)) root = dirOrRepo;
    else if (isHubRepoId(dirOrRepo)) {
      root = await downloadSnapshot(dirOrRepo, opts, `sae:${sub}`, async (fetch) => {
        await fetch(inSub(SAE_CFG_FILE), true);
        await fetch(inSub(SAE_WEIGHTS_FILE), true);
        await fetch(inSub(SAE_SPARSITY_FILE), false);
      });
    } else {
      throw new Error(`Sae.fromPretrained: '${dirOrRepo}' is neither a directory nor a hub repo id (org/name)`);
    }
    const dir = sub ? join(root, sub) : root;
    const cfgPath = join(dir, SAE_CFG_FILE);
    let json: unknown;
    try {
      json = JSON.parse(await readFile(cfgPath, 'utf8'));
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new Error(e.code === 'ENOENT' ? `${cfgPath}: no such file (an SAELens SAE has ${SAE_CFG_FILE} and ${SAE_WEIGHTS_FILE})` : `${cfgPath}: invalid JSON (${e.message})`);
    }
    const cfg = parseSaeConfigJson(json, cfgPath);
    const weightsPath = join(dir, SAE_WEIGHTS_FILE);
    const file = await SafetensorsFile.open(weightsPath);
    const tensors = new Map<string, Float32Array>();
    try {
      for (const name of file.names()) {
        const e = file.entry(name);
        if (name === 'scaling_factor') {
          // SAELens wrote a scaling_factor of ones for a while; any other value is a finetuning factor Lensboard does not run.
          const v = await file.readTensor(name);
          if (v.some((x) => x !== 1)) throw new Error(`${weightsPath}: a scaling_factor other than 1 (SAELens's finetuning_scaling_factor) is not supported`);
          continue;
        }
        const expected = SAE_WEIGHTS[cfg.architecture].includes(name as SaeWeightName) ? saelensDims(cfg, name as SaeWeightName) : null;
        if (expected && e.shape.join(',') !== expected.join(',')) {
          throw new Error(`${weightsPath}: tensor '${name}' has shape [${e.shape.join(', ')}]; cfg.json's d_in ${cfg.d_in} and d_sae ${cfg.d_sae} need [${expected.join(', ')}]`);
        }
        tensors.set(name, await file.readTensor(name));
      }
    } finally {
      await file.close();
    }
    let logSparsity: Float32Array | null = null;
    const sparsityPath = join(dir, SAE_SPARSITY_FILE);
    if (await isFile(sparsityPath)) {
      const sp = await SafetensorsFile.open(sparsityPath);
      try {
        if (!sp.names().includes('sparsity')) throw new Error(`${sparsityPath}: no tensor 'sparsity' (SAELens's log10 feature densities)`);
        logSparsity = await sp.readTensor('sparsity');
      } finally {
        await sp.close();
      }
    }
    const name = isHubRepoId(dirOrRepo) && !(await isDirectory(dirOrRepo)) ? `${dirOrRepo}${sub ? `/${sub}` : ''}` : (sub || dirOrRepo).split('/').filter(Boolean).pop()!;
    return Sae.build(cfg, (n) => tensors.get(n) ?? null, [...tensors.keys()], weightsPath, { ...opts, dir, name }, logSparsity);
  }

  /** What the graph of this SAE depends on. */
  get spec(): SaeGraphSpec {
    const { architecture, d_in, d_sae, k, apply_b_dec_to_input: applyBDecToInput, normalize_activations: n } = this.cfg;
    return { architecture, d_in, d_sae, ...(k !== null ? { k } : {}), applyBDecToInput, normalize: n === 'expected_average_only_in' ? 'none' : n };
  }

  /** This SAE spliced into a run at its hook point (for the engine). */
  splice(useErrorTerm: boolean): EngineSae {
    const s: SaeSplice = { hook: this.cfg.hook_name as ModelHookName, spec: this.spec, useErrorTerm };
    return { ...s, weights: this.arrays };
  }

  /** A weight in SAELens's layout and shape (a copy): W_enc [d_in, d_sae], W_dec [d_sae, d_in], b_enc, b_dec, threshold, … */
  weight(name: SaeWeightName): Tensor {
    const data = this.arrays.get(name);
    if (!data) throw new Error(`this ${this.cfg.architecture} SAE has no '${name}'; it has ${[...this.arrays.keys()].join(', ')}`);
    const dims = saelensDims(this.cfg, name);
    return new Tensor(name === 'W_enc' ? transposed(data, this.cfg.d_sae, this.cfg.d_in) : Float32Array.from(data), dims);
  }
  get W_enc(): Tensor { return this.weight('W_enc'); }
  get W_dec(): Tensor { return this.weight('W_dec'); }
  get b_enc(): Tensor { return this.weight('b_enc'); }
  get b_dec(): Tensor { return this.weight('b_dec'); }

  /** Feature f's decoder direction W_dec[f] [d_in] (a view: do not mutate). */
  featureDirection(feature: number): Float32Array {
    this.checkFeature(feature);
    const { d_in } = this.cfg;
    return this.arrays.get('W_dec')!.subarray(feature * d_in, (feature + 1) * d_in);
  }

  /** Feature f's encoder direction W_enc[:, f] [d_in] (a view: do not mutate). */
  encoderDirection(feature: number): Float32Array {
    this.checkFeature(feature);
    const { d_in } = this.cfg;
    return this.arrays.get('W_enc')!.subarray(feature * d_in, (feature + 1) * d_in);
  }

  /** Throws unless `feature` is an integer in [0, d_sae). */
  checkFeature(feature: number, what = 'feature'): void {
    if (!Number.isInteger(feature) || feature < 0 || feature >= this.cfg.d_sae) {
      throw new Error(`${what} ${feature} is not a feature of this SAE; allowed 0…${this.cfg.d_sae - 1}`);
    }
  }

  /** SAELens's encode: x [..., d_in] (or [..., head, d_head] for a hook_z SAE) -> feature activations [..., d_sae]. */
  async encode(x: Tensor): Promise<Tensor> {
    const { rows, lead } = this.rowsOf(x);
    const out = await this.run('encode', { x: f32(x.data, [rows, this.cfg.d_in]) }, ['acts']);
    return new Tensor(out.acts.data as Float32Array, [...lead, this.cfg.d_sae]);
  }

  /** SAELens's decode: feature activations [..., d_sae] -> acts W_dec + b_dec [..., d_in] (without a run-time normalisation's inverse, which needs the input: see forward). */
  async decode(acts: Tensor): Promise<Tensor> {
    if (acts.shape.at(-1) !== this.cfg.d_sae) throw new Error(`decode: the last dim must be d_sae (${this.cfg.d_sae}); got [${acts.shape.join(', ')}]`);
    const lead = acts.shape.slice(0, -1);
    const rows = lead.reduce((a, b) => a * b, 1);
    const out = await this.run('decode', { acts: f32(acts.data, [rows, this.cfg.d_sae]) }, ['recons']);
    return new Tensor(out.recons.data as Float32Array, [...lead, this.cfg.d_in]);
  }

  /** The SAE's forward pass without the error term: x [..., d_in] -> features and the reconstruction [..., d_in]. */
  async forward(x: Tensor): Promise<{ acts: Tensor; output: Tensor }> {
    const { rows, lead } = this.rowsOf(x);
    const out = await this.run('forward', { x: f32(x.data, [rows, this.cfg.d_in]) }, ['acts', 'output']);
    return { acts: new Tensor(out.acts.data as Float32Array, [...lead, this.cfg.d_sae]), output: new Tensor(out.output.data as Float32Array, [...lead, this.cfg.d_in]) };
  }

  private rowsOf(x: Tensor): { rows: number; lead: number[] } {
    const { d_in } = this.cfg;
    if (x.shape.at(-1) === d_in) return { lead: x.shape.slice(0, -1), rows: x.size / d_in };
    if (x.ndim >= 2 && x.shape.at(-1)! * x.shape.at(-2)! === d_in && this.cfg.reshape_activations === 'hook_z') {
      return { lead: x.shape.slice(0, -2), rows: x.size / d_in };
    }
    throw new Error(`the SAE's input must end in d_in (${d_in})${this.cfg.reshape_activations === 'hook_z' ? ' or [head, d_head] with head·d_head = d_in' : ''}; got [${x.shape.join(', ')}]`);
  }

  private async run(what: 'encode' | 'decode' | 'forward', inputs: Record<string, OrtValue>, fetches: string[]): Promise<Record<string, OrtValue>> {
    const device = await this.resolvedDevice();
    this.sessions ??= new SessionCache({ device, threads: this.threads });
    const spec = this.spec;
    const session = await this.sessions.get(what, () => {
      const b = new GraphBuilder();
      const outputs = standaloneSae(b, spec, what);
      return encodeModel({
        nodes: b.nodes,
        inputs: [...b.inputs.values()],
        outputs: outputs.map((name) => ({ name, elemType: 'float32', dims: null })),
        initializers: [...b.constants].map(([name, t]) => ({ name, ...t })),
        name: `sae_${what}`,
      });
    });
    const feeds: Record<string, OrtValue> = { ...inputs };
    for (const [name, data] of this.arrays) {
      const key = saeWeightKey(null, name);
      if (session.inputNames.includes(key)) feeds[key] = f32(data, saeWeightDims(this.cfg, name));
    }
    return runSession(session, feeds, fetches);
  }

  private resolved: Promise<ResolvedDevice> | null = null;
  private resolvedDevice(): Promise<ResolvedDevice> {
    this.resolved ??= resolveDevice(this.device);
    return this.resolved;
  }

  /**
   * Writes the SAE in SAELens's format into `dir`: cfg.json (the flat layout every SAELens reads),
   * sae_weights.safetensors in `dtype` (default F32) and, when given or loaded, sparsity.safetensors.
   */
  async save(dir: string, opts: { dtype?: SafetensorsDtype; logSparsity?: Float32Array; metadata?: Record<string, string> } = {}): Promise<void> {
    await mkdir(dir, { recursive: true });
    const dtype = opts.dtype ?? 'F32';
    const cfg = { ...saeConfigJson(this.cfg), dtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype] };
    await writeFile(join(dir, SAE_CFG_FILE), `${JSON.stringify(cfg, null, 2)}\n`);
    const tensors: Record<string, { dtype: SafetensorsDtype; shape: number[]; data: Float32Array }> = {};
    for (const name of SAE_WEIGHTS[this.cfg.architecture]) {
      const t = this.weight(name);
      tensors[name] = { dtype, shape: t.shape, data: t.data };
    }
    await writeSafetensors(join(dir, SAE_WEIGHTS_FILE), tensors, opts.metadata);
    const sparsity = opts.logSparsity ?? this.logSparsity;
    if (sparsity) await writeSafetensors(join(dir, SAE_SPARSITY_FILE), { sparsity: { dtype: 'F32', shape: [this.cfg.d_sae], data: sparsity } });
    this.dir = dir;
  }

  /** Releases the onnxruntime sessions of encode/decode (made again on next use). */
  async dispose(): Promise<void> {
    const s = this.sessions;
    this.sessions = null;
    await s?.dispose();
  }

  toString(): string {
    return `Sae(${this.name}: ${this.cfg.architecture}${this.cfg.k !== null ? ` k=${this.cfg.k}` : ''}, ${this.cfg.hook_name}, d_in ${this.cfg.d_in}, d_sae ${this.cfg.d_sae})`;
  }
}

/**
 * SAELens's _fold_norm_topk for rescale_acts_by_decoder_norm: W_enc's columns and b_enc times each
 * decoder row's norm, W_dec's rows divided by it; the SAE then runs without rescaling, same outputs.
 */
function foldDecoderNormTopK(cfg: SaeConfig, arrays: Map<SaeWeightName, Float32Array>): void {
  const { d_in, d_sae } = cfg;
  const wEnc = arrays.get('W_enc')!; // [d_sae, d_in]
  const wDec = arrays.get('W_dec')!; // [d_sae, d_in]
  const bEnc = arrays.get('b_enc')!;
  for (let f = 0; f < d_sae; f++) {
    let sq = 0;
    for (let i = 0; i < d_in; i++) sq += wDec[f * d_in + i] ** 2;
    const n = Math.sqrt(sq);
    if (n === 0) continue;
    for (let i = 0; i < d_in; i++) {
      wEnc[f * d_in + i] *= n;
      wDec[f * d_in + i] /= n;
    }
    bEnc[f] *= n;
  }
}

/** SAELens's fold_activation_norm_scaling_factor: W_enc · s, W_dec / s, b_dec / s. */
function foldNormScalingFactor(arrays: Map<SaeWeightName, Float32Array>, s: number): void {
  for (const [name, data] of arrays) {
    if (name === 'W_enc') for (let i = 0; i < data.length; i++) data[i] *= s;
    else if (name === 'W_dec' || name === 'b_dec') for (let i = 0; i < data.length; i++) data[i] /= s;
  }
}

async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}
