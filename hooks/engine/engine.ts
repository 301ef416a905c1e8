/**
 * Runs GPT-2 on onnxruntime with hooks: builds (and caches) the graph variant a request needs,
 * cuts it at the hook points hooked from JavaScript, and runs the segments in order, handing each
 * cut value to its JS hooks and feeding what they return to the rest of the model.
 */
import type { HookedTransformerConfig } from '../config.ts';
import type { HookName } from '../hookPoints.ts';
import { Tensor } from '../tensor.ts';
import type { TransformerWeights } from '../weights.ts';
import { buildGpt2Graph, interventionFeeds, weightName } from './gpt2Graph.ts';
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
  /** Next-token targets [batch, pos]; when given, `tokenLogprobs` is returned. */
  targets?: number[][];
}

export interface EngineResult {
  logits?: Tensor; // [batch, pos, d_vocab]
  tokenLogprobs?: Tensor; // [batch, pos]
  activations: Map<HookName, Tensor>;
}

interface Plan {
  segments: { session: ort.InferenceSession; inputs: string[]; outputs: string[]; cut: HookName | null }[];
  hookOrder: HookName[];
  /** Runs currently using the plan; an evicted plan is released when this drops to 0. */
  users: number;
  evicted: boolean;
}

async function releasePlan(plan: Plan): Promise<void> {
  await Promise.all(plan.segments.map((s) => s.session.release()));
}

export interface EngineOptions extends SessionConfig {
  /**
   * 'feed': weights are fed to every run from Lensboard's arrays (one copy shared by all graph
   * variants; instant graph building). 'embed': each session gets its own prepacked copy (fastest
   * matmuls, more memory, slower to build a new variant).
   */
  weightMode: 'feed' | 'embed';
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

  private weightTensorFeeds(dims: Map<string, number[]>): Record<string, ort.Tensor> {
    if (this.weightTensors) return this.weightTensors;
    const out: Record<string, ort.Tensor> = {};
    for (const [name, data] of this.weightArrays()) out[name] = new ort.Tensor('float32', data, dims.get(name) ?? [data.length]);
    this.weightTensors = out;
    return out;
  }

  private weightDims = new Map<string, number[]>();

  private plan(req: EngineRequest): Promise<Plan> {
    const observe = new Set(req.observe ?? []);
    const cuts = [...(req.hooks?.keys() ?? [])].filter((h) => h !== 'hook_tokens');
    for (const c of cuts) observe.add(c);
    const interventions = new Set(req.interventions?.keys() ?? []);
    const graphOpts = {
      observed: observe,
      interventions,
      hasAttentionMask: req.attentionMask !== undefined,
      lnHasWeights: this.cfg.normalization_type === 'LN',
      logits: req.logits ?? true,
      tokenLogprobs: req.targets !== undefined,
    };
    const key = JSON.stringify({
      o: [...observe].sort(),
      i: [...interventions].sort(),
      c: [...cuts].sort(),
      m: graphOpts.hasAttentionMask,
      l: graphOpts.logits,
      t: graphOpts.tokenLogprobs,
    });
    const cached = this.plans.get(key);
    if (cached) {
      // LRU: move to the end.
      this.plans.delete(key);
      this.plans.set(key, cached);
      return cached;
    }
    const built = (async (): Promise<Plan> => {
      const graph = buildGpt2Graph(this.cfg, graphOpts);
      for (const [name, info] of graph.builder.inputs) if (info.dims) this.weightDims.set(name, info.dims as number[]);
      const keep = new Set<string>([...observe, ...graph.finalOutputs]);
      const weights = this.weightArrays();
      const embedded = this.options.weightMode === 'embed' ? new Set(weights.keys()) : new Set<string>();
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
          cut: p.cut,
        })),
      );
      return { segments, hookOrder: graph.hookOrder, users: 0, evicted: false };
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
    const values = new Map<string, ort.Tensor>(Object.entries(this.weightTensorFeeds(this.weightDims)));
    values.set('tokens', toInt64(req.tokens, 'tokens'));
    if (req.attentionMask) values.set('attention_mask', toInt64(req.attentionMask, 'attentionMask'));
    if (req.targets) values.set('targets', toInt64(req.targets, 'targets'));
    for (const [hook, iv] of req.interventions ?? []) {
      const feeds = interventionFeeds(hook);
      values.set(feeds.mask, new ort.Tensor('bool', iv.mask.data, iv.mask.shape));
      values.set(feeds.value, new ort.Tensor('float32', iv.value.data, iv.value.shape));
    }

    for (const seg of plan.segments) {
      const feeds: Record<string, ort.Tensor> = {};
      for (const name of seg.inputs) {
        const v = values.get(name);
        if (!v) throw new Error(`internal: value '${name}' is needed but was not produced`);
        feeds[name] = v;
      }
      const out = await runSession(seg.session, feeds);
      for (const name of seg.outputs) values.set(name, out[name]);
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
      }
    }

    const activations = new Map<HookName, Tensor>();
    for (const name of plan.hookOrder) {
      if (!req.observe?.has(name)) continue;
      const v = values.get(name)!;
      activations.set(name, new Tensor(v.data as Float32Array, v.dims as number[]));
    }
    const result: EngineResult = { activations };
    const logits = values.get('logits');
    if ((req.logits ?? true) && logits) result.logits = new Tensor(logits.data as Float32Array, logits.dims as number[]);
    const lp = values.get('token_logprobs');
    if (lp) result.tokenLogprobs = new Tensor(lp.data as Float32Array, lp.dims as number[]);
    return result;
  }

  /** Releases every onnxruntime session. */
  async dispose(): Promise<void> {
    const plans = [...this.plans.values()];
    this.plans.clear();
    this.weightFeeds = null;
    this.weightTensors = null;
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
