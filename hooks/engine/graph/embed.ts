/**
 * TransformerLens's Embed and PosEmbed (hook_embed, hook_pos_embed) and the attention mask every
 * layer shares: which keys each query may read (causal, and not padding).
 */
import type { GraphBuilder } from '../../onnx/builder.ts';
import type { GraphContext } from './context.ts';

/**
 * Where the positional embedding reads: positions 0…pos-1 of every prompt (no padding), or
 * TransformerLens's positions under an attention mask with the mask itself (padding gets none).
 */
export type PositionRows = { tokens: string } | { positions: string; mask: string };

/** TransformerLens's positions under an attention mask: cumsum(mask) - 1, clamped at 0 ([batch, pos] int64). */
export function maskPositions(b: GraphBuilder, mask: string): string {
  const cum = b.op('CumSum', [mask, b.i64([1], true)]);
  return b.op('Max', [b.sub(cum, b.i64([1], true)), b.i64([0], true)]); // [batch, pos]
}

/** 0, 1, …, n - 1 for a length `n` ([1] int64, as Shape gives it): [n]. */
export function arange(b: GraphBuilder, n: string, start?: string): string {
  return b.op('Range', [start ? b.squeeze(start, [0]) : b.i64([0], true), b.squeeze(n, [0]), b.i64([1], true)]);
}

/** The length of axis `axis` of `x`: [1] int64. */
export function axisLength(b: GraphBuilder, x: string, axis: number): string {
  return b.op('Slice', [b.op('Shape', [x]), b.i64([axis]), b.i64([axis + 1])]);
}

/** hook_embed: W_E's rows of `tokens` [batch, pos] -> [batch, pos, d_model]. */
export function embed(ctx: GraphContext, tokens: string): string {
  return ctx.hook('hook_embed', (out) => ctx.b.gather(ctx.weight('W_E', null), tokens, 0, out));
}

/** hook_pos_embed: W_pos's rows at the positions -> [batch, pos, d_model] (zero at padding). */
export function posEmbed(ctx: GraphContext, rows: PositionRows): string {
  const { b, cfg } = ctx;
  return ctx.hook('hook_pos_embed', (out) => {
    const W_pos = ctx.weight('W_pos', null); // [n_ctx, d_model]
    if ('mask' in rows) {
      const keep = b.unsqueeze(b.op('Cast', [rows.mask], { to: { i: 1 } }), [2]); // [batch, pos, 1]
      b.mul(b.gather(W_pos, rows.positions), keep, out); // [batch, pos, d_model]
      return;
    }
    const shape = b.op('Shape', [rows.tokens]); // [2] = (batch, pos)
    const range = arange(b, b.op('Slice', [shape, b.i64([1]), b.i64([2])])); // [pos]
    const target = b.op('Concat', [shape, b.i64([cfg.d_model])], { axis: { i: 0 } });
    b.op('Expand', [b.gather(W_pos, range), target], undefined, out); // [pos, d_model] -> [batch, pos, d_model]
  });
}

/** The residual stream entering block 0: hook_embed + hook_pos_embed, [batch, pos, d_model]. */
export function embeddings(ctx: GraphContext, tokens: string, rows: PositionRows): string {
  return ctx.b.add(embed(ctx, tokens), posEmbed(ctx, rows));
}

/**
 * Which keys each query may read: key k <= query q (absolute indices; the queries are the last
 * `queries` of `keys` positions, all of them without a cache) and, with an attention mask
 * [batch, keys], key k is not padding. [query_pos, key_pos], or [batch, 1, query_pos, key_pos] with a mask.
 */
export function allowedKeys(b: GraphBuilder, keyLen: string, mask: string | null, pastLen?: string): string {
  const keyRange = arange(b, keyLen); // [key_pos]
  const queryRange = pastLen ? arange(b, keyLen, pastLen) : keyRange; // [query_pos]
  const causal = b.op('LessOrEqual', [b.unsqueeze(keyRange, [0]), b.unsqueeze(queryRange, [1])]); // [query_pos, key_pos]: k <= q
  if (!mask) return causal;
  const keyOk = b.unsqueeze(b.op('Cast', [mask], { to: { i: 9 } }), [1, 2]); // [batch, 1, 1, key_pos]
  return b.op('And', [causal, keyOk]); // [batch, 1, query_pos, key_pos]
}
