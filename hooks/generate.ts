/**
 * TransformerLens's HookedTransformer.generate: greedy or sampled continuation of prompts, one token
 * per step, with a key/value cache (decodeGraph.ts) so each step runs only the new token.
 */
import type { HookedTransformer, ModelInput } from './HookedTransformer.ts';
import type { KvCache } from './engine/engine.ts';
import type { HookName, HookPointInfo } from './hookPoints.ts';
import { materializeInterventions, type InterventionSpec } from './interventions.ts';
import { Rng } from './random.ts';
import { Tensor } from './tensor.ts';
import type { PaddingSide } from './tokenizer.ts';

/** 'input' (default): strings for text input, tokens for token input, as TransformerLens. */
export type GenerateReturnType = 'input' | 'tokens' | 'str';

/** What `onStep` gets after each step. */
export interface GenerateStep {
  /** 0 for the first new token. */
  index: number;
  /** The logits the step's tokens were chosen from (last position, before temperature): [batch, d_vocab]. */
  logits: Tensor;
  /** The token appended to each row (EOS for rows that had already finished): [batch]. */
  tokens: number[];
}

/**
 * TransformerLens's generate options and defaults: maxNewTokens 10, stopAtEos true, doSample true,
 * temperature 1, topK/topP none (topK wins when both are given), freqPenalty 0, useKvCache true.
 */
export interface GenerateOptions {
  /** How many tokens to add (default 10). The model reads at most prompt + maxNewTokens - 1 tokens: that must fit in n_ctx. */
  maxNewTokens?: number;
  /** Stop a row when it emits EOS and pad it with EOS afterwards; stop when every row has (default true). */
  stopAtEos?: boolean;
  /** Token id(s) that end a row (default the tokenizer's EOS, else cfg.eos_token_id); rows are padded with the first. */
  eosTokenId?: number | readonly number[];
  /** Sample (default true, as TransformerLens); false = greedy (argmax). */
  doSample?: boolean;
  /** Sample among the topK largest logits (ties at the k-th value kept). */
  topK?: number;
  /** Nucleus sampling: the smallest set of tokens whose probability reaches topP, in (0, 1]. */
  topP?: number;
  /** Logits are divided by this before sampling (default 1); 0 = greedy. */
  temperature?: number;
  /** Subtract freqPenalty × (count of the token in the row so far) from its logit when sampling (default 0). */
  freqPenalty?: number;
  /** Reuse past keys and values (default true); false runs the whole growing sequence through forward each step. */
  useKvCache?: boolean;
  /** Seed of the sampler (Lensboard's Rng); default a random seed. Same seed, same options: same tokens. */
  seed?: number;
  /** Text input: prepend BOS (default cfg.default_prepend_bos). */
  prependBos?: boolean;
  /** A single text's padding side (nothing to pad); a batch of texts is always padded on the left, as TransformerLens. */
  paddingSide?: PaddingSide;
  /** Token input with left padding: [batch, pos] 0/1 (1 = real token). Right padding is refused. */
  attentionMask?: readonly (readonly number[])[];
  returnType?: GenerateReturnType;
  /** Called after each step with its logits and tokens (e.g. to stream, or to compare runs). */
  onStep?: (step: GenerateStep) => void | Promise<void>;
  /**
   * Steering while generating: additive interventions (`add`, e.g. `steerFeatures(sae, …)`), applied at
   * every position of the prompt and of the new tokens, in the KV-cache decoder and without it alike.
   * They may select along a hook point's other dims (a head), not along batch or positions.
   */
  interventions?: readonly InterventionSpec[];
}

export type GenerateOutput<R extends GenerateReturnType> = R extends 'tokens'
  ? number[][]
  : R extends 'str'
    ? string | string[]
    : number[][] | string | string[];

/** What generate needs from the model beyond its public API. */
export interface GenerateBackend {
  /**
   * One step with the key/value cache (Engine.decodeStep): the new tokens, the mask so far and the
   * cache in (and the steering vectors, [batch | 1, 1, …] per hook point), the last logits and the grown cache out.
   */
  decodeStep(tokens: number[][], mask: number[][], past: KvCache | null, additions?: ReadonlyMap<HookName, Tensor>): Promise<{ logits: Float32Array; past: KvCache }>;
  /** Hooks registered on the model: the decoding graph has no hook points, so these need useKvCache: false. */
  hookCount: number;
  /** The hook points of the run (the model's and its attached SAEs'). */
  hookPoints: ReadonlyMap<HookName, HookPointInfo>;
}

export interface SamplingOptions {
  doSample: boolean;
  temperature: number;
  topK?: number;
  topP?: number;
  freqPenalty: number;
}

/** Index of the first largest value. */
function argmax(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}

/**
 * TransformerLens's sample_logits for one row of logits [d_vocab]: argmax when not sampling or at
 * temperature 0; else logits / temperature, minus freqPenalty × counts of `history`, then top-k
 * (or else top-p) filtering, and one draw from the softmax with `rng`.
 */
export function sampleLogits(logits: Float32Array, opts: SamplingOptions, rng: Rng, history: readonly number[] = []): number {
  if (!opts.doSample || opts.temperature === 0) return argmax(logits);
  const n = logits.length;
  const x = new Float64Array(n);
  for (let i = 0; i < n; i++) x[i] = logits[i] / opts.temperature;
  if (opts.freqPenalty > 0) for (const t of history) x[t] -= opts.freqPenalty;
  if (opts.topK !== undefined) {
    const k = Math.min(opts.topK, n);
    const sorted = Float64Array.from(x).sort(); // ascending
    const kth = sorted[n - k];
    for (let i = 0; i < n; i++) if (x[i] < kth) x[i] = -Infinity;
  } else if (opts.topP !== undefined && opts.topP < 1) {
    const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => x[b] - x[a]);
    const max = x[order[0]];
    let total = 0;
    for (let i = 0; i < n; i++) total += Math.exp(x[i] - max);
    // Keep tokens while the mass before them is below topP (the one that crosses it is kept).
    let cum = 0;
    for (let r = 0; r < n; r++) {
      const i = order[r];
      const before = cum;
      cum += Math.exp(x[i] - max) / total;
      if (r > 0 && before > opts.topP) x[i] = -Infinity;
    }
  }
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (x[i] > max) max = x[i];
  let sum = 0;
  for (let i = 0; i < n; i++) sum += x[i] === -Infinity ? 0 : Math.exp(x[i] - max);
  const u = rng.next() * sum;
  let acc = 0;
  let last = 0;
  for (let i = 0; i < n; i++) {
    if (x[i] === -Infinity) continue;
    acc += Math.exp(x[i] - max);
    last = i;
    if (u < acc) return i;
  }
  return last;
}

function check(cond: boolean, message: string): void {
  if (!cond) throw new Error(`generate: ${message}`);
}

/** Prompts as token rows, their attention mask, and whether the input was text. */
function preparePrompts(model: HookedTransformer, input: ModelInput, opts: GenerateOptions): { tokens: number[][]; mask: number[][]; text: boolean } {
  const isText = typeof input === 'string' || (Array.isArray(input) && input.length > 0 && typeof input[0] === 'string');
  if (isText) {
    if (!model.tokenizer) throw new Error('generate: text input needs a tokenizer, but this model was loaded without tokenizer files; pass token ids instead');
    const texts = input as string | string[];
    const batch = model.tokenizer.toTokens(texts, {
      prependBos: opts.prependBos ?? model.cfg.default_prepend_bos,
      // A batch of texts is padded on the left so every row's last token is its prompt's last (TransformerLens forces this too).
      paddingSide: typeof texts === 'string' || texts.length === 1 ? opts.paddingSide : 'left',
      truncate: false,
    });
    return { tokens: batch.tokens, mask: batch.attentionMask, text: true };
  }
  const { tokens, attentionMask } = model.prepareInput(input, opts.attentionMask ? { attentionMask: opts.attentionMask } : {});
  const mask = attentionMask ?? tokens.map((r) => r.map(() => 1));
  mask.forEach((row, b) => {
    const first = row.indexOf(1);
    check(first >= 0, `attentionMask row ${b} has no real token`);
    check(row.slice(first).every((m) => m === 1), `attentionMask row ${b} is not left-padded (zeros after a real token); generation appends after the last position, so pad prompts on the left`);
  });
  return { tokens, mask, text: false };
}

function checkOptions(model: HookedTransformer, opts: GenerateOptions, pos: number): void {
  const { n_ctx, d_vocab } = model.cfg;
  const max = opts.maxNewTokens ?? 10;
  check(Number.isInteger(max) && max >= 1, `maxNewTokens must be an integer ≥ 1; got ${max}`);
  check(pos + max - 1 <= n_ctx, `a prompt of ${pos} tokens with maxNewTokens ${max} needs the model to read ${pos + max - 1} tokens; its context (n_ctx) is ${n_ctx}, so maxNewTokens can be at most ${n_ctx - pos + 1}`);
  const t = opts.temperature ?? 1;
  check(Number.isFinite(t) && t >= 0, `temperature must be a finite number ≥ 0 (0 = greedy); got ${t}`);
  if (opts.topK !== undefined) check(Number.isInteger(opts.topK) && opts.topK >= 1, `topK must be an integer ≥ 1; got ${opts.topK}`);
  if (opts.topP !== undefined) check(typeof opts.topP === 'number' && opts.topP > 0 && opts.topP <= 1, `topP must be in (0, 1]; got ${opts.topP}`);
  const fp = opts.freqPenalty ?? 0;
  check(Number.isFinite(fp) && fp >= 0, `freqPenalty must be a finite number ≥ 0; got ${fp}`);
  if (opts.seed !== undefined) check(Number.isInteger(opts.seed), `seed must be an integer; got ${opts.seed}`);
  const rt = opts.returnType ?? 'input';
  check(['input', 'tokens', 'str'].includes(rt), `returnType must be 'input', 'tokens' or 'str'; got '${String(rt)}'`);
  if (opts.eosTokenId !== undefined) {
    const ids = typeof opts.eosTokenId === 'number' ? [opts.eosTokenId] : [...opts.eosTokenId];
    check(ids.length > 0 && ids.every((i) => Number.isInteger(i) && i >= 0 && i < d_vocab), `eosTokenId must be a token id (or a non-empty list of them) in [0, ${d_vocab}); got ${JSON.stringify(opts.eosTokenId)}`);
  }
  if (opts.onStep !== undefined) check(typeof opts.onStep === 'function', 'onStep must be a function');
}

/** Produces each step's last-position logits [batch, d_vocab] for the sequences so far. */
type Stepper = (seq: number[][], mask: number[][], step: number) => Promise<Float32Array>;

/**
 * The steering of a generation as one vector per hook point, [batch | 1, 1, …] (broadcast over every
 * position): only additive specs that select no batch rows or positions.
 */
function steeringVectors(model: HookedTransformer, specs: readonly InterventionSpec[], batch: number, points: ReadonlyMap<HookName, HookPointInfo>): Map<HookName, Tensor> {
  for (const spec of specs) {
    const info = points.get(spec.hook);
    check(info !== undefined, `interventions: unknown hook point '${spec.hook}'`);
    check(spec.add !== undefined && spec.value === undefined, `interventions: generate takes additive interventions (steering: 'add') only; '${spec.hook}' has none`);
    check(spec.mask === undefined && spec.where?.batch === undefined && spec.where?.pos === undefined,
      `interventions: steering while generating applies at every position and row; the one on '${spec.hook}' selects some (mask, batch or pos)`);
    check(info!.dims[0] === 'batch' && info!.dims[1] === 'pos' && !info!.dims.includes('query_pos'),
      `interventions: '${spec.hook}' has dims [${info!.dims.join(', ')}]; steering while generating needs a [batch, pos, …] hook point`);
  }
  const out = new Map<HookName, Tensor>();
  for (const [hook, iv] of materializeInterventions(model.cfg, specs, batch, 1, points)) out.set(hook, iv.add!);
  return out;
}

/** With the cache: the prefill runs the prompts, every later step only the token added last. */
function kvStepper(backend: GenerateBackend, additions: ReadonlyMap<HookName, Tensor>): Stepper {
  let past: KvCache | null = null;
  return async (seq, mask) => {
    const tokens = past ? seq.map((r) => [r[r.length - 1]]) : seq; // [batch, new]
    const step = await backend.decodeStep(tokens, mask, past, additions);
    past = step.past;
    return step.logits; // [batch, 1, d_vocab]
  };
}

/** Without the cache (TransformerLens's use_past_kv_cache=False): forward on the whole sequence, with the model's hooks. */
function forwardStepper(model: HookedTransformer, interventions: readonly InterventionSpec[]): Stepper {
  const V = model.cfg.d_vocab;
  return async (seq, mask) => {
    const padded = mask.some((r) => r.includes(0));
    const logits = await model.forward(seq, { ...(padded ? { attentionMask: mask } : {}), ...(interventions.length ? { interventions } : {}) }); // [batch, pos, d_vocab]
    const pos = seq[0].length;
    const out = new Float32Array(seq.length * V);
    for (let b = 0; b < seq.length; b++) out.set(logits.data.subarray((b * pos + pos - 1) * V, (b * pos + pos) * V), b * V);
    return out;
  };
}

/** See GenerateOptions; HookedTransformer.generate calls this. */
export async function generate<R extends GenerateReturnType = 'input'>(
  model: HookedTransformer,
  input: ModelInput,
  opts: GenerateOptions & { returnType?: R },
  backend: GenerateBackend,
): Promise<GenerateOutput<R>> {
  const { tokens, mask, text } = preparePrompts(model, input, opts);
  checkOptions(model, opts, tokens[0].length);
  const returnType = opts.returnType ?? 'input';
  const asText = returnType === 'str' || (returnType === 'input' && text);
  if (asText && !model.tokenizer) throw new Error("generate: returnType 'str' needs a tokenizer; use returnType 'tokens'");
  const useKvCache = opts.useKvCache ?? true;
  if (useKvCache && backend.hookCount > 0) {
    throw new Error(`generate: the model has ${backend.hookCount} hook(s) registered, and the key/value-cache decoder has no hook points; pass useKvCache: false to run every step through forward with the hooks, or remove them (resetHooks)`);
  }
  const stopAtEos = opts.stopAtEos ?? true;
  const eosIds = opts.eosTokenId === undefined
    ? [model.tokenizer?.eosTokenId ?? model.cfg.eos_token_id]
    : typeof opts.eosTokenId === 'number' ? [opts.eosTokenId] : [...opts.eosTokenId];
  if (stopAtEos) check(eosIds.every((i) => Number.isInteger(i)), 'stopAtEos needs an eosTokenId: this model has none in its config or tokenizer');
  const eosPad = eosIds[0];
  const sampling: SamplingOptions = {
    doSample: opts.doSample ?? true,
    temperature: opts.temperature ?? 1,
    topK: opts.topK,
    topP: opts.topP,
    freqPenalty: opts.freqPenalty ?? 0,
  };
  const rng = new Rng(opts.seed ?? (Math.random() * 2 ** 32) >>> 0);
  const V = model.cfg.d_vocab;
  const batch = tokens.length;
  const seq = tokens.map((r) => [...r]);
  const seqMask = mask.map((r) => [...r]);
  const finished = new Array<boolean>(batch).fill(false);
  const steering = opts.interventions ?? [];
  check(Array.isArray(steering), 'interventions must be a list of intervention specs');
  const additions = steeringVectors(model, steering, batch, backend.hookPoints);
  const step = useKvCache ? kvStepper(backend, additions) : forwardStepper(model, steering);
  const maxNew = opts.maxNewTokens ?? 10;

  for (let index = 0; index < maxNew; index++) {
    const logits = await step(seq, seqMask, index); // [batch, d_vocab]
    const chosen: number[] = [];
    for (let b = 0; b < batch; b++) {
      let t = sampleLogits(logits.subarray(b * V, (b + 1) * V), sampling, rng, sampling.freqPenalty > 0 ? seq[b] : []);
      if (stopAtEos) {
        if (finished[b]) t = eosPad;
        else if (eosIds.includes(t)) finished[b] = true;
      }
      chosen.push(t);
      seq[b].push(t);
      seqMask[b].push(1);
    }
    await opts.onStep?.({ index, logits: new Tensor(logits, [batch, V]), tokens: chosen });
    if (stopAtEos && finished.every(Boolean)) break;
  }

  if (!asText) return seq as GenerateOutput<R>;
  const tok = model.tokenizer!;
  const special = new Set([tok.bosTokenId, tok.eosTokenId, tok.padTokenId]);
  // TransformerLens decodes with skip_special_tokens (GPT-2's only special token is <|endoftext|>).
  const texts = seq.map((row) => tok.decode(row.filter((t) => !special.has(t))));
  return (texts.length === 1 ? texts[0] : texts) as GenerateOutput<R>;
}
