/**
 * Runs GPT-2 on onnxruntime with hooks: builds (and caches) the graph variant a request needs,
 * cuts it at the hook points hooked from JavaScript, and runs the segments in order, handing each
 * cut value to its JS hooks and feeding what they return to the rest of the model.
 */
import type { HookedTransformerConfig } from '../config.ts';
import type { HookName } from '../hookPoints.ts';
import { Tensor } from '../tensor.ts';
import type { TransformerWeights } from '../weights.ts';
import type { OptionalHooks } from '../hookPoints.ts';
import { GraphBuilder } from '../onnx/builder.ts';
import { encodeModel } from '../onnx/proto.ts';
import { buildGpt2Graph, interventionFeeds, weightName, type GraphOptions } from './gpt2Graph.ts';
import { buildDecodeGraph } from './decodeGraph.ts';
import { createSession, ort, runSession, type SessionConfig } from './runtime.ts';
import { partitionGraph } from './segments.ts';

/** What a hook function gets as its second argument (TransformerLens's HookPoint). */
export interface HookPoint {
  name: HookName;
  /** The block index, or null outside the blocks. */
  layer(): number | null;
}

/** A forward hook: may return a replacement of the same shape, or nothing to keep the value. */
export type HookFn = (activation: Tensor, hook: HookPoint) => Tensor | void | Promise<Tensor | void>;

/** An in-graph intervention: where `mask` is true the value becomes `value` (both broadcast to the hook's shape, same rank). */
export interface Intervention {
  mask: { shape: number[]; data: Uint8Array };
  value: Tensor;
}

export interface EngineRequest {
  tokens: number[][]; // [batch, pos]
  attentionMask?: number[][]; // [batch, pos], 1 = real token
  observe?: ReadonlySet<HookName>;
  hooks?: ReadonlyMap<HookName, readonly HookFn[]>;
  interventions?: ReadonlyMap<HookName, Intervention>;
  logits?: boolean;
  /** Next-token targets [batch, pos] (or [batch, k] with logitPositions); when given, `tokenLogprobs` is returned. */
  targets?: number[][];
  /** Start the run after this hook point, with this value there (earlier layers are not run). */
  startAt?: { hook: HookName; value: Tensor };
  /** End the run at this hook point (returned among the activations; no logits). */
  stopAt?: HookName;
  /** Compute logits only at these positions [batch, k]: logits are then [batch, k, d_vocab]. */
  logitPositions?: number[][];
}

export interface EngineResult {
  logits?: Tensor; // [batch, pos, d_vocab]
  tokenLogprobs?: Tensor; // [batch, pos]
  activations: Map<HookName, Tensor>;
}

interface Plan {
  segments: {
    session: ort.InferenceSession;
    inputs: string[];
    outputs: string[];
    /** Outputs later segments read. */
    passOn: ReadonlySet<string>;
    cut: HookName | null;
  }[];
  hookOrder: HookName[];
  /** The shared main variant: no hook outputs, always takes an attention mask, always produces logits. */
  main: boolean;
  /** Runs currently using the plan; an evicted plan is released when this drops to 0. */
  users: number;
  evicted: boolean;
}

async function releasePlan(plan: Plan): Promise<void> {
  await Promise.all(plan.segments.map((s) => s.session.release()));
}

export type WeightMode = 'auto' | 'feed' | 'embed';

/**
 * 'auto' prepacks (a second and third copy of the weights inside onnxruntime) only for models up
 * to this size; larger ones (gpt2-medium and up) are fed, so they keep a single copy.
 */
export const AUTO_EMBED_LIMIT_BYTES = 1024 * 2 ** 20;

export interface EngineOptions extends SessionConfig {
  /**
   * 'feed': weights are fed to every run from Lensboard's arrays (one copy shared by all graph
   * variants; instant graph building). 'embed': each variant gets its own prepacked copy (fastest
   * matmuls, more memory, slower to build a new variant). 'auto': for models up to
   * autoEmbedLimitBytes, one main variant with prepacked weights serves every plain, loss and
   * cached run, and JS hooks, interventions and hook_result run on fed variants; larger models
   * are fed throughout.
   */
  weightMode: WeightMode;
  /** TransformerLens's optional hook points this model has (attn_in, q/k/v_input, mlp_in). */
  optionalHooks?: OptionalHooks;
  /** Largest model (bytes of fp32 weights) that 'auto' prepacks; default AUTO_EMBED_LIMIT_BYTES (1 GiB). */
  autoEmbedLimitBytes?: number;
  /** How many graph variants (hook configurations) to keep built. */
  maxPlans?: number;
}

function layerOf(name: HookName): number | null {
  const m = /^blocks\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : null;
}

function toInt64(rows: number[][], what: string): ort.Tensor {
  const batch = rows.length;
  const pos = rows[0]?.length ?? 0;
  const data = new BigInt64Array(batch * pos);
  rows.forEach((row, b) => {
    if (row.length !== pos) throw new Error(`${what}: every row must have ${pos} entries; row ${b} has ${row.length}`);
    row.forEach((v, p) => (data[b * pos + p] = BigInt(v)));
  });
  return new ort.Tensor('int64', data, [batch, pos]);
}

export class Engine {
  private readonly plans = new Map<string, Promise<Plan>>();
  private weightFeeds: Map<string, Float32Array> | null = null;
  private weightTensors: Record<string, ort.Tensor> | null = null;

  constructor(
    readonly cfg: HookedTransformerConfig,
    private weights: TransformerWeights,
    readonly options: EngineOptions,
  ) {}

  /** Swap in new weights (e.g. after processing); built graph variants are dropped. */
  async setWeights(weights: TransformerWeights): Promise<void> {
    await this.dispose();
    this.weights = weights;
  }

  private weightArrays(): Map<string, Float32Array> {
    if (this.weightFeeds) return this.weightFeeds;
    const w = this.weights;
    const m = new Map<string, Float32Array>([
      ['W_E', w.W_E],
      ['W_pos', w.W_pos],
      ['W_U', w.W_U],
      ['b_U', w.b_U],
    ]);
    if (w.ln_final) {
      m.set('ln_final.w', w.ln_final.w);
      m.set('ln_final.b', w.ln_final.b);
    }
    w.blocks.forEach((blk, l) => {
      for (const key of ['W_Q', 'b_Q', 'W_K', 'b_K', 'W_V', 'b_V', 'W_O', 'b_O', 'W_in', 'b_in', 'W_out', 'b_out'] as const) {
        m.set(weightName.block(l, key), blk[key]);
      }
      for (const ln of ['ln1', 'ln2'] as const) {
        const lnw = blk[ln];
        if (lnw) {
          m.set(`blocks.${l}.${ln}.w`, lnw.w);
          m.set(`blocks.${l}.${ln}.b`, lnw.b);
        }
      }
    });
    this.weightFeeds = m;
    return m;
  }

  /** The graph's weight inputs as onnxruntime tensors over Lensboard's arrays (no copy), shaped as the graph declares them. */
  private weightTensorFeeds(): Record<string, ort.Tensor> {
    if (this.weightTensors) return this.weightTensors;
    const { d_model, d_vocab, n_ctx, d_mlp } = this.cfg;
    const H = this.cfg.n_heads * this.cfg.d_head;
    const dims: Record<string, number[]> = {
      W_E: [d_vocab, d_model], W_pos: [n_ctx, d_model], W_U: [d_model, d_vocab], b_U: [d_vocab],
      W_Q: [d_model, H], W_K: [d_model, H], W_V: [d_model, H], b_Q: [H], b_K: [H], b_V: [H],
      W_O: [H, d_model], b_O: [d_model], W_in: [d_model, d_mlp], b_in: [d_mlp], W_out: [d_mlp, d_model], b_out: [d_model],
    };
    const out: Record<string, ort.Tensor> = {};
    for (const [name, data] of this.weightArrays()) {
      const key = name.split('.').pop()!; // 'blocks.3.W_Q' -> 'W_Q'; 'ln1.w' -> 'w'
      out[name] = new ort.Tensor('float32', data, dims[key] ?? [data.length]);
    }
    this.weightTensors = out;
    return out;
  }

  /**
   * Picks the graph variant for a request. In 'auto' mode (models up to autoEmbedLimitBytes) and in
   * 'embed' mode, plain forward passes and losses run on one "main" variant with prepacked weights
   * and no hook outputs (it always takes an attention mask, so padded and unpadded runs share it);
   * everything else runs on a variant built for it. A run fetches only the outputs it asked for.
   */
  private variantFor(req: EngineRequest): { key: string; graphOpts: GraphOptions; cuts: HookName[]; embed: boolean; main: boolean } {
    const observe = new Set(req.observe ?? []);
    const cuts: HookName[] = [...(req.hooks?.keys() ?? [])].filter((h) => h !== 'hook_tokens');
    for (const c of cuts) observe.add(c);
    for (const edge of [req.startAt?.hook, req.stopAt]) if (edge && !cuts.includes(edge)) cuts.push(edge);
    const interventions = new Set(req.interventions?.keys() ?? []);
    const lnHasWeights = this.cfg.normalization_type === 'LN';
    const logitPositions = req.logitPositions !== undefined;
    if (this.useMainVariant() && cuts.length === 0 && interventions.size === 0 && observe.size === 0 && !logitPositions) {
      const graphOpts: GraphOptions = {
        observed: new Set(),
        interventions: new Set(),
        cuts: new Set(),
        hasAttentionMask: true,
        lnHasWeights,
        logits: true,
        tokenLogprobs: false,
        optional: this.options.optionalHooks,
      };
      return { key: 'main', graphOpts, cuts: [], embed: true, main: true };
    }
    const graphOpts: GraphOptions = {
      observed: observe,
      interventions,
      cuts: new Set(cuts),
      hasAttentionMask: req.attentionMask !== undefined,
      lnHasWeights,
      logits: (req.logits ?? true) && !req.stopAt,
      tokenLogprobs: req.targets !== undefined && !req.stopAt,
      optional: this.options.optionalHooks,
      logitPositions,
    };
    const key = JSON.stringify({
      p: logitPositions,
      o: [...observe].sort(),
      i: [...interventions].sort(),
      c: [...cuts].sort(),
      m: graphOpts.hasAttentionMask,
      l: graphOpts.logits,
      t: graphOpts.tokenLogprobs,
    });
    return { key, graphOpts, cuts, embed: this.options.weightMode === 'embed', main: false };
  }

  /** Whether plain, loss and cached runs go to the prepacked main variant (see WeightMode). */
  private useMainVariant(): boolean {
    if (this.options.weightMode === 'feed') return false;
    if (this.options.weightMode === 'embed') return true;
    let bytes = 0;
    for (const a of this.weightArrays().values()) bytes += a.byteLength;
    return bytes <= (this.options.autoEmbedLimitBytes ?? AUTO_EMBED_LIMIT_BYTES);
  }

  private plan(req: EngineRequest): Promise<Plan> {
    const { key, graphOpts, cuts, embed, main } = this.variantFor(req);
    const cached = this.plans.get(key);
    if (cached) {
      // LRU: move to the end.
      this.plans.delete(key);
      this.plans.set(key, cached);
      return cached;
    }
    const built = (async (): Promise<Plan> => {
      const graph = buildGpt2Graph(this.cfg, graphOpts);
      const keep = new Set<string>([...graphOpts.observed, ...graph.finalOutputs]);
      const weights = this.weightArrays();
      const embedded = embed ? new Set(weights.keys()) : new Set<string>();
      const parts = partitionGraph(graph.builder, cuts, keep, embedded);
      const segments = await Promise.all(
        parts.map(async (p) => ({
          session: await createSession(
            p.model,
            this.options,
            new Map(p.external.map((n) => [n, weights.get(n)!])),
          ),
          inputs: p.inputs,
          outputs: p.outputs,
          passOn: new Set(p.passOn),
          cut: p.cut,
        })),
      );
      return { segments, hookOrder: graph.hookOrder, users: 0, evicted: false, main };
    })();
    this.plans.set(key, built);
    built.catch(() => this.plans.delete(key));
    const max = this.options.maxPlans ?? 16;
    while (this.plans.size > max) {
      const oldest = this.plans.keys().next().value as string;
      const evicted = this.plans.get(oldest)!;
      this.plans.delete(oldest);
      void evicted
        .then((p) => {
          p.evicted = true;
          if (p.users === 0) return releasePlan(p);
        })
        .catch(() => undefined);
    }
    return built;
  }

  async run(req: EngineRequest): Promise<EngineResult> {
    const batch = req.tokens.length;
    if (batch === 0) throw new Error('tokens: the batch is empty');
    const plan = await this.plan(req);
    if (plan.evicted) return this.run(req); // evicted while it was being built: build it again
    plan.users++;
    try {
      return await this.execute(plan, req);
    } finally {
      plan.users--;
      if (plan.evicted && plan.users === 0) await releasePlan(plan);
    }
  }

  private async execute(plan: Plan, req: EngineRequest): Promise<EngineResult> {
    const wantLogits = (req.logits ?? true) || (req.targets !== undefined && plan.main);
    const wanted = new Set<string>([...(req.observe ?? []), ...(wantLogits ? ['logits'] : []), 'token_logprobs']);
    const values = new Map<string, ort.Tensor>(Object.entries(this.weightTensorFeeds()));
    values.set('tokens', toInt64(req.tokens, 'tokens'));
    if (req.attentionMask) values.set('attention_mask', toInt64(req.attentionMask, 'attentionMask'));
    else if (plan.main) values.set('attention_mask', toInt64(req.tokens.map((r) => r.map(() => 1)), 'attentionMask'));
    if (req.targets) values.set('targets', toInt64(req.targets, 'targets'));
    if (req.logitPositions) {
      const pos = req.tokens[0].length;
      req.logitPositions.forEach((row, b) => row.forEach((p) => {
        if (!Number.isInteger(p) || p < 0 || p >= pos) throw new Error(`logitPositions[${b}] has ${p}; allowed: integers 0…${pos - 1}`);
      }));
      values.set('logit_positions', toInt64(req.logitPositions, 'logitPositions'));
    }
    let first = 0;
    if (req.startAt) {
      const at = plan.segments.findIndex((s) => s.cut === req.startAt!.hook);
      first = at + 1;
      const v = req.startAt.value;
      values.set(req.startAt.hook, new ort.Tensor('float32', v.data, v.shape));
    }
    for (const [hook, iv] of req.interventions ?? []) {
      const feeds = interventionFeeds(hook);
      values.set(feeds.mask, new ort.Tensor('bool', iv.mask.data, iv.mask.shape));
      values.set(feeds.value, new ort.Tensor('float32', iv.value.data, iv.value.shape));
    }

    for (const seg of plan.segments.slice(first)) {
      if (seg.outputs.length === 0) continue; // nothing after the last cut is needed (no logits asked for)
      const feeds: Record<string, ort.Tensor> = {};
      for (const name of seg.inputs) {
        const v = values.get(name);
        if (!v) {
          if (req.startAt) throw new Error(`cannot start the run at '${req.startAt.hook}': the rest of the model also reads '${name}', computed before it`);
          throw new Error(`internal: value '${name}' is needed but was not produced`);
        }
        feeds[name] = v;
      }
      const fetches = seg.outputs.filter((o) => seg.passOn.has(o) || o === seg.cut || wanted.has(o));
      if (fetches.length === 0) fetches.push(seg.outputs[0]); // onnxruntime needs at least one output
      const out = await runSession(seg.session, feeds, fetches);
      for (const name of fetches) values.set(name, out[name]);
      if (seg.cut) {
        const name = seg.cut;
        const raw = values.get(name)!;
        let act = new Tensor(raw.data as Float32Array, raw.dims as number[]);
        const point: HookPoint = { name, layer: () => layerOf(name) };
        for (const fn of req.hooks?.get(name) ?? []) {
          const replaced = await fn(act, point);
          if (replaced !== undefined) {
            if (!(replaced instanceof Tensor)) throw new Error(`hook on '${name}' returned ${typeof replaced}; return a Tensor or nothing`);
            if (replaced.shape.join(',') !== act.shape.join(',')) {
              throw new Error(`hook on '${name}' returned shape [${replaced.shape.join(', ')}]; the hook point has shape [${act.shape.join(', ')}]`);
            }
            act = replaced;
          }
        }
        values.set(name, new ort.Tensor('float32', act.data, act.shape));
        if (name === req.stopAt) break;
      }
    }

    const activations = new Map<HookName, Tensor>();
    for (const name of plan.hookOrder) {
      const v = values.get(name);
      if (!req.observe?.has(name) || !v) continue;
      activations.set(name, new Tensor(v.data as Float32Array, v.dims as number[]));
    }
    const result: EngineResult = { activations };
    const logits = values.get('logits');
    if ((req.logits ?? true) && logits) result.logits = new Tensor(logits.data as Float32Array, logits.dims as number[]);
    if (req.targets && !values.has('token_logprobs')) {
      const targets = toInt64(req.targets, 'targets');
      const head = await this.lossHead();
      values.set('token_logprobs', (await runSession(head, { logits: logits!, targets }))['token_logprobs']);
    }
    const lp = values.get('token_logprobs');
    if (lp) result.tokenLogprobs = new Tensor(lp.data as Float32Array, lp.dims as number[]);
    return result;
  }

  private decodeSession: Promise<{ session: ort.InferenceSession; embedded: boolean }> | null = null;

  /**
   * Runs the key/value-cache decoding graph (decodeGraph.ts, last position's logits only) on `feeds`
   * (tokens, attention_mask, past_key.L, past_value.L); the weights are added here, prepacked into
   * the session when plain runs use the prepacked main variant (see WeightMode), fed otherwise.
   */
  async decode(feeds: Record<string, ort.Tensor>, fetches: readonly string[]): Promise<Record<string, ort.Tensor>> {
    if (!this.decodeSession) {
      this.decodeSession = (async () => {
        const graph = buildDecodeGraph(this.cfg, { lnHasWeights: this.cfg.normalization_type === 'LN', lastLogitsOnly: true });
        const weights = this.weightArrays();
        const embedded = this.useMainVariant();
        const [seg] = partitionGraph(graph.builder, [], new Set(graph.outputs), embedded ? new Set(weights.keys()) : new Set());
        const session = await createSession(seg.model, this.options, new Map(seg.external.map((n) => [n, weights.get(n)!])));
        return { session, embedded };
      })();
      this.decodeSession.catch(() => (this.decodeSession = null));
    }
    const { session, embedded } = await this.decodeSession;
    return runSession(session, embedded ? feeds : { ...this.weightTensorFeeds(), ...feeds }, fetches);
  }

  private lossHeadSession: Promise<ort.InferenceSession> | null = null;

  /** A weightless graph: log p(targets | logits) per position, for variants that only produce logits. */
  private lossHead(): Promise<ort.InferenceSession> {
    if (!this.lossHeadSession) {
      const b = new GraphBuilder();
      const logits = b.input('logits', 'float32', ['batch', 'pos', this.cfg.d_vocab]);
      const targets = b.input('targets', 'int64', ['batch', 'pos']);
      const lse = b.op('ReduceLogSumExp', [logits, b.i64([-1])], { keepdims: { i: 0 } }); // [batch, pos]
      const picked = b.squeeze(b.op('GatherElements', [logits, b.unsqueeze(targets, [2])], { axis: { i: 2 } }), [2]);
      b.sub(picked, lse, 'token_logprobs');
      const model = encodeModel({
        nodes: b.nodes,
        inputs: [...b.inputs.values()],
        outputs: [{ name: 'token_logprobs', elemType: 'float32', dims: ['batch', 'pos'] }],
        initializers: [...b.constants].map(([name, c]) => ({ name, ...c })),
      });
      this.lossHeadSession = createSession(model, this.options);
    }
    return this.lossHeadSession;
  }

  /** Releases every onnxruntime session. */
  async dispose(): Promise<void> {
    const plans = [...this.plans.values()];
    this.plans.clear();
    this.weightFeeds = null;
    this.weightTensors = null;
    const head = this.lossHeadSession;
    this.lossHeadSession = null;
    if (head) await (await head).release();
    const decoder = this.decodeSession;
    this.decodeSession = null;
    if (decoder) {
      try {
        await (await decoder).session.release();
      } catch {
        // a decoder that failed to build holds no session
      }
    }
    for (const p of plans) {
      try {
        const plan = await p;
        plan.evicted = true;
        if (plan.users === 0) await releasePlan(plan);
      } catch {
        // a plan that failed to build holds no sessions
      }
    }
  }
}
