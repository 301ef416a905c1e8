/**
 * The unembedding outside the hooked graph (runs with many positions, and the prepacked main
 * variant): logits = x W_U + b_U (and log p(target) per row) over the final LayerNormed rows,
 * one block of rows × vocabulary slice per onnxruntime run, each block's logits copied into one
 * array made up front.
 * onnxruntime hands every output over as a fresh copy, so one run over all rows would hold the
 * logits ([batch, pos, d_vocab], 206 MB for GPT-2 at [8, 128]) twice. Slicing the vocabulary
 * (contiguous rows of the feature-major W_Uᵀ) means each part of W_U is packed once per block of
 * rows, as in a single run.
 */
import type { HookedTransformerConfig } from '../config.ts';
import { GraphBuilder } from '../onnx/builder.ts';
import { encodeModel } from '../onnx/proto.ts';
import { logSumExp } from '../ops/index.ts';
import { linear } from './graph/linear.ts';
import { reduceLogSumExp, targetLogits } from './graph/unembed.ts';
import { f32, int64, runSession, SessionCache, type OrtValue, type Session, type SessionConfig } from './runtime.ts';

/** Vocabulary entries per slice. */
export const UNEMBED_VOCAB_SLICE = 4096;
/** Logits per onnxruntime run, at most: 4 Mi floats (16 MiB); rows per block follow from it. */
export const UNEMBED_BLOCK_ELEMENTS = 2 ** 22;

export interface UnembedHeadOptions extends SessionConfig {
  /** Embed (prepack) each slice of W_U and b_U in its sessions instead of feeding them. */
  embed: boolean;
  /** Rows per block; default UNEMBED_BLOCK_ELEMENTS / vocabSlice. */
  blockRows?: number;
  /** Vocabulary entries per slice; default UNEMBED_VOCAB_SLICE fed, the whole vocabulary embedded. */
  vocabSlice?: number;
}

export interface UnembedResult {
  logits?: Float32Array; // [rows, d_vocab]
  tokenLogprobs?: Float32Array; // [rows]
}

/**
 * One slice's graph: x [rows, d_model], W [slice, d_model] (rows v0… of W_Uᵀ), b [slice] ->
 * logits [rows, slice]; with `loss` also targets [rows] (the target's index in the slice, clamped)
 * -> lse [rows] (log Σ exp over the slice) and picked [rows] (the target's logit).
 */
function sliceModel(cfg: HookedTransformerConfig, loss: boolean, embedded: { width: number } | null): Uint8Array {
  const b = new GraphBuilder();
  const width: number | string = embedded ? embedded.width : 'slice';
  const x = b.input('x', 'float32', ['rows', cfg.d_model]);
  const W = b.input('W', 'float32', [width, cfg.d_model]);
  const bias = b.input('b', 'float32', [width]);
  const logits = linear(b, x, W, bias, true, 'logits'); // [rows, slice]
  const outputs = [{ name: 'logits', elemType: 'float32' as const, dims: ['rows', width] }];
  if (loss) {
    const targets = b.input('targets', 'int64', ['rows']);
    reduceLogSumExp(b, logits, 'lse'); // [rows]
    targetLogits(b, logits, targets, 'picked'); // [rows]
    outputs.push({ name: 'lse', elemType: 'float32', dims: ['rows'] }, { name: 'picked', elemType: 'float32', dims: ['rows'] });
  }
  const weights = ['W', 'b'];
  return encodeModel({
    nodes: b.nodes,
    inputs: [...b.inputs.values()].filter((i) => !embedded || !weights.includes(i.name)),
    outputs,
    initializers: [...b.constants].map(([name, c]) => ({ name, ...c })),
    externalInitializers: embedded
      ? [
          { name: 'W', elemType: 'float32', dims: [embedded.width, cfg.d_model] },
          { name: 'b', elemType: 'float32', dims: [embedded.width] },
        ]
      : undefined,
  });
}

export class UnembedHead {
  /** Fed: one session per graph kind, shared by all slices. Embedded: one per kind and slice. */
  private readonly sessions: SessionCache;

  /** `W_U` as the weight store keeps it, W_Uᵀ [d_vocab, d_model]; `b_U` [d_vocab]. */
  constructor(
    readonly cfg: HookedTransformerConfig,
    private readonly W_U: Float32Array,
    private readonly b_U: Float32Array,
    readonly options: UnembedHeadOptions,
  ) {
    this.sessions = new SessionCache(options);
  }

  /** Fed, W_U is packed by every run: slices keep that to once per block of rows. Embedded (prepacked), one slice. */
  get vocabSlice(): number {
    return Math.min(this.options.vocabSlice ?? (this.options.embed ? this.cfg.d_vocab : UNEMBED_VOCAB_SLICE), this.cfg.d_vocab);
  }

  get blockRows(): number {
    return this.options.blockRows ?? Math.max(1, Math.floor(UNEMBED_BLOCK_ELEMENTS / this.vocabSlice));
  }

  /** The session for slice [v0, v0 + width), with or without the loss outputs, and the weight feeds it needs. */
  private async slice(v0: number, width: number, loss: boolean): Promise<{ session: Session; feeds: Record<string, OrtValue> }> {
    const { d_model } = this.cfg;
    const W = this.W_U.subarray(v0 * d_model, (v0 + width) * d_model);
    const b = this.b_U.subarray(v0, v0 + width);
    const embed = this.options.embed;
    const session = this.sessions.get(embed ? `${loss}:${v0}` : `${loss}`, () => ({
      model: sliceModel(this.cfg, loss, embed ? { width } : null),
      external: embed ? new Map([['W', W], ['b', b]]) : undefined,
    }));
    const feeds: Record<string, OrtValue> = embed ? {} : { W: f32(W, [width, d_model]), b: f32(b, [width]) };
    return { session: await session, feeds };
  }

  /**
   * x [rows, d_model] (the final LayerNormed residual) -> logits [rows, d_vocab] when `logits`,
   * and log p(targets[r] | x[r]) [rows] when `targets` [rows] are given (log-sum-exp of the
   * slices combined in float64).
   */
  async run(x: Float32Array, opts: { logits: boolean; targets?: BigInt64Array }): Promise<UnembedResult> {
    const { d_model, d_vocab } = this.cfg;
    const rows = x.length / d_model;
    if (!Number.isInteger(rows)) throw new Error(`internal: unembedding input of ${x.length} floats is not rows of d_model = ${d_model}`);
    const targets = opts.targets;
    if (targets && targets.length !== rows) throw new Error(`internal: ${targets.length} targets for ${rows} rows`);
    const result: UnembedResult = {};
    if (opts.logits) result.logits = new Float32Array(rows * d_vocab);
    const loss = targets !== undefined;
    const lseParts: Float32Array[] = [];
    const picked = loss ? new Float64Array(rows) : null;
    const fetches = [...(opts.logits ? ['logits'] : []), ...(loss ? ['lse', 'picked'] : [])];
    const slice = this.vocabSlice;
    const block = this.blockRows;
    for (let r0 = 0; r0 < rows; r0 += block) {
      const n = Math.min(block, rows - r0);
      const xs = f32(x.subarray(r0 * d_model, (r0 + n) * d_model), [n, d_model]);
      for (let v0 = 0; v0 < d_vocab; v0 += slice) {
        const width = Math.min(slice, d_vocab - v0);
        const { session, feeds } = await this.slice(v0, width, loss);
        feeds.x = xs;
        let local: BigInt64Array | null = null;
        if (targets) {
          // The target's index within this slice, clamped into it (picked only where it falls inside).
          local = new BigInt64Array(n);
          for (let i = 0; i < n; i++) {
            const t = Number(targets[r0 + i]) - v0;
            local[i] = BigInt(t < 0 ? 0 : t >= width ? width - 1 : t);
          }
          feeds.targets = int64(local, [n]);
        }
        const out = await runSession(session, feeds, fetches);
        if (result.logits) {
          const part = out.logits.data as Float32Array; // [n, width]
          for (let i = 0; i < n; i++) result.logits.set(part.subarray(i * width, (i + 1) * width), (r0 + i) * d_vocab + v0);
        }
        if (targets && picked) {
          lseParts.push(out.lse.data as Float32Array);
          const p = out.picked.data as Float32Array;
          for (let i = 0; i < n; i++) {
            const t = Number(targets[r0 + i]);
            if (t >= v0 && t < v0 + width) picked[r0 + i] = p[i];
          }
        }
      }
      if (targets && picked) {
        // log p(target) = picked - log Σ_slices exp(lse_slice).
        result.tokenLogprobs ??= new Float32Array(rows);
        const lseOfRow = new Float64Array(lseParts.length); // row i's log-sum-exp over each slice
        for (let i = 0; i < n; i++) {
          lseParts.forEach((part, j) => (lseOfRow[j] = part[i]));
          result.tokenLogprobs[r0 + i] = picked[r0 + i] - logSumExp(lseOfRow);
        }
        lseParts.length = 0;
      }
    }
    return result;
  }

  /** Releases the sessions. */
  release(): Promise<void> {
    return this.sessions.dispose();
  }
}
