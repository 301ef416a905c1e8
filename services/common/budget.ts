/**
 * A job's memory and answer size, estimated from its shape before it runs. Each job handler lists what its largest
 * step holds at once (logits, cached activations, onnxruntime's working memory); a job that can be cut into steps
 * (prompts, variants, positions) gets steps that fit `maxJobMemoryBytes`, and one whose smallest step does not fit is
 * refused with a 400 stating the estimate and the budget. Answers are bounded the same way by `maxResponseBytes`.
 *
 * The model was calibrated against the runner's measured peak RSS (VmHWM above its RSS when the job started). On the
 * embedded model (3 × 128) the 132 KB IOI request's steps peaked at 67–98 MiB (8 prompts), 149–203 MiB (32) and
 * 181–248 MiB (41): lumpy, as onnxruntime's arena grows by powers of two; estimated: JOB_OVERHEAD 96 MiB + 12 KB of
 * cache + 44 KB of working memory per token (6.4 MiB per prompt). GPT-2 small's shape: ~270 KB per token measured at
 * 128 positions (README benchmarks), 454 KB estimated. An estimate is meant as an upper bound of the peak.
 */
import type { HookedTransformerConfig } from '../../hooks/config.ts';
import { UserError, type JobContext } from '../context.ts';

export const F32 = 4;
/**
 * What any job adds whatever its size: onnxruntime's arenas and session buffers grown for a new shape, and the
 * JavaScript heap's garbage before a collection (60–100 MiB measured on the embedded model's IOI steps).
 */
export const JOB_OVERHEAD: MemoryPart = { what: 'onnxruntime arenas and JavaScript heap growth of a job', bytes: 96 * 2 ** 20 };
/** Bytes of JSON per number in an answer (a float32 printed as a double: "-0.12345678359270096,"). */
export const JSON_BYTES_PER_NUMBER = 20;

/**
 * onnxruntime's working memory per token of a pass over `pos` positions (residual copies, QKV, MLP, attention rows),
 * doubled: its arena grows by powers of two, and measured peaks of equal steps vary by up to that much.
 */
export function engineBytesPerToken(cfg: HookedTransformerConfig, pos: number): number {
  const { n_layers: L, d_model: D, d_mlp, n_heads } = cfg;
  return 2 * F32 * (4 * L * D + 8 * D + 3 * d_mlp + 3 * n_heads * pos);
}

export function formatBytes(b: number): string {
  if (b >= 2 ** 30) return `${(b / 2 ** 30).toFixed(2)} GiB`;
  if (b >= 2 ** 20) return `${(b / 2 ** 20).toFixed(1)} MiB`;
  return `${Math.ceil(b / 1024)} KiB`;
}

/** A job's memory estimate, term by term. */
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

/** Refuses the job when its (single-step) estimate, JOB_OVERHEAD included, is over the budget. */
export function checkMemory(ctx: JobContext, parts: readonly MemoryPart[], hint: string): void {
  const all = [...parts, JOB_OVERHEAD];
  const total = all.reduce((a, p) => a + p.bytes, 0);
  if (total > ctx.limits.maxJobMemoryBytes) refuse(ctx, all, 'at once', hint);
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
  const fixedParts = [...plan.fixed, JOB_OVERHEAD];
  const fixed = fixedParts.reduce((a, p) => a + p.bytes, 0);
  const row = plan.perRow.reduce((a, p) => a + p.bytes, 0);
  const byMemory = row > 0 ? Math.floor((ctx.limits.maxJobMemoryBytes - fixed) / row) : plan.rows;
  if (byMemory < 1) refuse(ctx, [...fixedParts, ...plan.perRow], 'for its smallest step (one row)', hint);
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

/** Floats per token a direct-logit-attribution run caches (IOI, attribution). */
export function dlaFloatsPerToken(model: { cfg: HookedTransformerConfig }): number {
  const { n_layers, d_model, d_mlp } = model.cfg;
  return 3 * d_model + 1 + n_layers * (3 * d_model + d_mlp); // embeds, ln_final scale, last resid_post; z, attn_out, mlp post, mlp_out
}
