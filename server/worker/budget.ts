/**
 * A job's memory and answer size, estimated from its shape before it runs. Each job handler lists what its largest
 * step holds at once (logits, cached activations, onnxruntime's working memory); a job that can be cut into steps
 * (prompts, variants, positions) gets steps that fit `maxJobMemoryBytes`, and one whose smallest step does not fit is
 * refused with a 400 stating the estimate and the budget. Answers are bounded the same way by `maxResponseBytes`.
 *
 * The working-memory model (engineBytesPerToken) was calibrated against measured peak RSS: the embedded model
 * (3 × 128, 256 prompts of 114 tokens: 18–35 KB per token measured, 22 KB estimated) and GPT-2 small's shape
 * (README benchmarks: ~270 KB per token at 128 positions, 227 KB estimated), so it is the right size, not a bound.
 */
import type { HookedTransformerConfig } from '../../hooks/config.ts';
import { UserError, type JobContext } from './context.ts';

export const F32 = 4;
/** Bytes of JSON per number in an answer (a float32 printed as a double: "-0.12345678359270096,"). */
export const JSON_BYTES_PER_NUMBER = 20;

/** onnxruntime's working memory per token of a pass over `pos` positions: residual copies, QKV, MLP, attention rows. */
export function engineBytesPerToken(cfg: HookedTransformerConfig, pos: number): number {
  const { n_layers: L, d_model: D, d_mlp, n_heads } = cfg;
  return F32 * (4 * L * D + 8 * D + 3 * d_mlp + 3 * n_heads * pos);
}

export function formatBytes(b: number): string {
  if (b >= 2 ** 30) return `${(b / 2 ** 30).toFixed(2)} GiB`;
  if (b >= 2 ** 20) return `${(b / 2 ** 20).toFixed(1)} MiB`;
  return `${Math.ceil(b / 1024)} KiB`;
}

/** One term of an estimate: what it is and its bytes ("logits 256 × 1 × 50257 floats"). */
export interface MemoryPart {
  what: string;
  bytes: number;
}

function describe(parts: readonly MemoryPart[]): string {
  return parts.filter((p) => p.bytes > 0).map((p) => `${p.what}: ${formatBytes(p.bytes)}`).join('; ');
}

function refuse(ctx: JobContext, parts: readonly MemoryPart[], scope: string, hint: string): never {
  const total = parts.reduce((a, p) => a + p.bytes, 0);
  throw new UserError(
    `this request needs an estimated ${formatBytes(total)} of memory ${scope} (${describe(parts)}); ` +
      `the per-job memory budget is ${formatBytes(ctx.limits.maxJobMemoryBytes)} (--max-job-memory): ${hint}`,
  );
}

/** Refuses the job when its (single-step) estimate is over the budget. */
export function checkMemory(ctx: JobContext, parts: readonly MemoryPart[], hint: string): void {
  const total = parts.reduce((a, p) => a + p.bytes, 0);
  if (total > ctx.limits.maxJobMemoryBytes) refuse(ctx, parts, 'at once', hint);
}

export interface StepPlan {
  /** Bytes held whatever the step size (a clean cache, the answer being built). */
  fixed: readonly MemoryPart[];
  /** Bytes per row of a step (a prompt, a variant), with what they are. */
  perRow: readonly MemoryPart[];
  /** Tokens per row: a step holds at most max(tokensPerPass, rowTokens) tokens, so each onnxruntime call stays short. */
  rowTokens: number;
  /** Rows the job has in all (a step never holds more). */
  rows: number;
  /** Rows the request asked per step (chunkSize), if any: a cap, never raised. */
  requested?: number;
}

/**
 * Rows per step: as many as fit the memory budget and the tokens-per-pass bound (at least one). When even one row does
 * not fit, the job is refused with the estimate for one row.
 */
export function rowsPerStep(ctx: JobContext, plan: StepPlan, hint: string): number {
  const fixed = plan.fixed.reduce((a, p) => a + p.bytes, 0);
  const row = plan.perRow.reduce((a, p) => a + p.bytes, 0);
  const byMemory = row > 0 ? Math.floor((ctx.limits.maxJobMemoryBytes - fixed) / row) : plan.rows;
  if (byMemory < 1) refuse(ctx, [...plan.fixed, ...plan.perRow], 'for its smallest step (one row)', hint);
  const byTime = Math.max(1, Math.floor(ctx.limits.tokensPerPass / Math.max(1, plan.rowTokens)));
  return Math.max(1, Math.min(byMemory, byTime, plan.rows, plan.requested ?? Infinity));
}

/** Refuses a job whose answer would exceed maxResponseBytes (estimated before running). */
export function checkAnswerBytes(ctx: JobContext, bytes: number, what: string, hint: string): void {
  if (bytes > ctx.limits.maxResponseBytes) {
    throw new UserError(
      `the answer would be about ${formatBytes(bytes)} of JSON (${what}); the limit is ${formatBytes(ctx.limits.maxResponseBytes)} (maxResponseBytes): ${hint}`,
    );
  }
}
