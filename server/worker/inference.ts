/** Job handlers that need no analysis toolkit: tokenize, forward (top-k + loss per token), attention patterns, activations. */
import type { HookedTransformer } from '../../hooks/HookedTransformer.ts';
import { blockHook, hookShape, type HookName } from '../../hooks/hookPoints.ts';
import { scoresNextToken } from '../../hooks/ops/index.ts';
import type { Tensor } from '../../hooks/tensor.ts';
import type {
  ActivationsRequest, ActivationsResult, AttentionRequest, AttentionResult, ForwardRequest, ForwardResult, TokenizeRequest, TokenizeResult,
} from '../schemas.ts';
import { checkAnswerBytes, checkMemory, engineBytesPerToken, F32, JSON_BYTES_PER_NUMBER, rowsPerStep } from '../../services/common/budget.ts';
import { UserError, type JobContext, type JobHandler } from '../../services/context.ts';
import { gather, nest, range, resolveSelection } from '../../services/common/select.ts';
import { checkSize, preparePrompt, strTokens } from '../../services/common/requests.ts';

export const tokenize: JobHandler<TokenizeRequest, TokenizeResult> = async (model, p) => {
  const tok = model.tokenizer;
  if (!tok) throw new UserError('this model was loaded without tokenizer files; it can only take token ids');
  const texts = typeof p.text === 'string' ? [p.text] : p.text;
  const prependBos = p.prependBos ?? model.cfg.default_prepend_bos;
  const tokens = texts.map((t, i) => {
    try {
      return tok.toTokens(t, { prependBos, truncate: false }).tokens[0];
    } catch (e) {
      throw new UserError(`text${typeof p.text === 'string' ? '' : `[${i}]`}: ${(e as Error).message}`); // e.g. a character outside a character-level vocabulary
    }
  });
  return {
    tokens,
    strTokens: tokens.map((row) => tok.toStrTokens(row)),
    nCtx: model.cfg.n_ctx,
    fitsContext: tokens.map((row) => row.length <= model.cfg.n_ctx),
  };
};

/** Top-k of one [rows, pos, d_vocab] logits chunk, as [rows][pos][k] entries. */
function topTokens(model: HookedTransformer, logits: Tensor, k: number): ForwardResult['top'] {
  const [rows, pos, V] = logits.shape;
  const lp = logits.logSoftmax(-1); // [rows, pos, d_vocab]
  const top = lp.topk(k, -1); // values, indices: [rows, pos, k]
  const out: ForwardResult['top'] = [];
  for (let r = 0; r < rows; r++) {
    const row: ForwardResult['top'][number] = [];
    for (let q = 0; q < pos; q++) {
      const entries = [];
      for (let j = 0; j < k; j++) {
        const at = (r * pos + q) * k + j;
        const token = top.indices.data[at];
        entries.push({
          token,
          str: model.tokenizer ? model.tokenizer.decode([token]) : null,
          prob: Math.exp(top.values.data[at]),
          logit: logits.data[(r * pos + q) * V + token],
        });
      }
      row.push(entries);
    }
    out.push(row);
  }
  return out;
}

/** Runs the batch in steps of ≤ limits.tokensPerStep tokens (progress + cancel between steps). */
export const forward: JobHandler<ForwardRequest, ForwardResult> = async (model, p, ctx) => {
  const { tokens, attentionMask } = preparePrompt(model, p.prompt, p);
  const batch = tokens.length;
  const pos = tokens[0].length;
  const k = Math.min(p.topK, model.cfg.d_vocab);
  // ≈ 75 bytes per candidate ({"token":12345,"str":" word","prob":0.0123…,"logit":-1.234…}) and 20 per loss.
  checkAnswerBytes(ctx, batch * pos * (k * 75 + JSON_BYTES_PER_NUMBER), `${batch} prompts × ${pos} positions × top ${k}`,
    'ask for a smaller topK, fewer prompts or shorter ones');
  const V = model.cfg.d_vocab;
  const step = rowsPerStep(ctx, {
    fixed: [],
    perRow: [
      { what: `logits and log-probabilities ${pos} × ${V} floats ×2 per prompt`, bytes: 2 * pos * V * F32 },
      { what: `onnxruntime working memory for ${pos} tokens`, bytes: pos * engineBytesPerToken(model.cfg, pos) },
    ],
    rowTokens: pos, rows: batch, requested: Math.max(1, Math.floor(ctx.limits.tokensPerStep / pos)),
  }, 'use shorter prompts');
  const top: ForwardResult['top'] = [];
  const lossPerToken: ForwardResult['lossPerToken'] = [];
  let sum = 0;
  let count = 0;
  for (let b0 = 0; b0 < batch; b0 += step) {
    ctx.checkCancelled();
    const rows = tokens.slice(b0, b0 + step);
    const mask = attentionMask?.slice(b0, b0 + step);
    let logits: Tensor;
    if (pos >= 2) {
      const out = await model.forward(rows, { returnType: 'both', lossPerToken: true, attentionMask: mask });
      logits = out.logits;
      const per = out.loss as Tensor; // [rows, pos - 1]
      rows.forEach((_, r) => {
        const line: (number | null)[] = [];
        for (let q = 0; q < pos - 1; q++) {
          const real = scoresNextToken(mask, r, q);
          const v = per.data[r * (pos - 1) + q];
          line.push(real ? v : null);
          if (real) {
            sum += v;
            count++;
          }
        }
        lossPerToken.push(line);
      });
    } else {
      logits = await model.forward(rows, { attentionMask: mask });
      rows.forEach(() => lossPerToken.push([]));
    }
    top.push(...topTokens(model, logits, k));
    ctx.progress(Math.min(batch, b0 + rows.length), batch, 'prompts');
  }
  return {
    tokens,
    strTokens: model.tokenizer ? tokens.map((row) => model.tokenizer!.toStrTokens(row)) : null,
    attentionMask: attentionMask ?? null,
    top,
    lossPerToken,
    loss: count > 0 ? sum / count : null,
  };
};

function checkRange(field: string, values: readonly number[], n: number, what: string): void {
  values.forEach((v, i) => {
    if (v < 0 || v >= n) throw new UserError(`${field}[${i}]: ${v} is out of range; this model has ${what} = ${n} (allowed 0..${n - 1})`);
  });
}

export const attention: JobHandler<AttentionRequest, AttentionResult> = async (model, p, ctx) => {
  const { n_layers, n_heads } = model.cfg;
  const layers = p.layers ?? range(n_layers);
  const heads = p.heads ?? range(n_heads);
  checkRange('layers', layers, n_layers, 'n_layers');
  checkRange('heads', heads, n_heads, 'n_heads');
  const { tokens } = preparePrompt(model, p.prompt, p);
  const pos = tokens[0].length;
  checkSize(layers.length * heads.length * pos * pos * (p.scores ? 2 : 1), ctx, 'ask for fewer layers or heads, or a shorter prompt');
  checkMemory(ctx, [
    { what: `cached patterns${p.scores ? ' and scores' : ''} of ${layers.length} layers × ${n_heads} heads × ${pos}² floats`, bytes: layers.length * n_heads * pos * pos * F32 * (p.scores ? 2 : 1) },
    { what: `onnxruntime working memory for ${pos} tokens`, bytes: pos * engineBytesPerToken(model.cfg, pos) },
  ], 'ask for fewer layers or a shorter prompt');
  const names = layers.flatMap((l) => [
    blockHook(l, 'attn.hook_pattern'),
    ...(p.scores ? [blockHook(l, 'attn.hook_attn_scores')] : []),
  ]);
  ctx.checkCancelled();
  const [, cache] = await model.runWithCache(tokens, { returnType: 'none', namesFilter: [...new Set(names)] });
  const pick = (t: Tensor) => nest(gather(t, [[0], heads, range(pos), range(pos)]), [heads.length, pos, pos]) as number[][][];
  const result: AttentionResult = {
    tokens: tokens[0],
    strTokens: strTokens(model, tokens[0]),
    layers,
    heads,
    patterns: layers.map((l) => pick(cache.get(blockHook(l, 'attn.hook_pattern')))),
  };
  if (p.scores) result.scores = layers.map((l) => pick(cache.get(blockHook(l, 'attn.hook_attn_scores'))));
  return result;
};

export const activations: JobHandler<ActivationsRequest, ActivationsResult> = async (model, p, ctx) => {
  const info = model.hookPoints().find((h) => h.name === p.hook);
  if (!info) {
    throw new UserError(
      `hook: unknown hook point '${p.hook}'; this model has ${model.hookPoints().length} (e.g. hook_embed, blocks.0.hook_resid_pre, ` +
        `blocks.0.attn.hook_pattern, blocks.${model.cfg.n_layers - 1}.hook_resid_post); see GET /api/model`,
    );
  }
  const { tokens, attentionMask } = preparePrompt(model, p.prompt, p);
  const fullShape = hookShape(info, model.cfg, tokens.length, tokens[0].length);
  const sel = resolveSelection(`hook ${info.name}`, info.dims, fullShape, p.select ?? {});
  checkSize(sel.count, ctx, `narrow the slice with select (hook shape [${fullShape.join(', ')}], dims ${info.dims.join(', ')})`);
  const tokenCount = tokens.length * tokens[0].length;
  checkMemory(ctx, [
    { what: `the cached ${info.name} [${fullShape.join(', ')}]`, bytes: fullShape.reduce((a, b) => a * b, 1) * F32 },
    { what: `onnxruntime working memory for ${tokenCount} tokens`, bytes: tokenCount * engineBytesPerToken(model.cfg, tokens[0].length) },
  ], 'use fewer or shorter prompts');
  ctx.checkCancelled();
  const [, cache] = await model.runWithCache(tokens, { returnType: 'none', namesFilter: [info.name], attentionMask });
  const values = nest(gather(cache.get(info.name), sel.perDim), sel.shape);
  return {
    hook: info.name,
    fullShape,
    dims: info.dims.filter((_, i) => sel.kept[i]),
    shape: sel.shape,
    indices: sel.perDim.filter((_, i) => sel.kept[i]),
    values,
  };
};
