/** The limits every request is checked against (the server's flags set them; the CLI has its own, larger ones). */
import { totalmem } from 'node:os';
import { z } from 'zod';

const MiB = 2 ** 20;
/** The default per-job memory budget: a quarter of the machine's memory. */
export const DEFAULT_JOB_MEMORY_BYTES = Math.floor(totalmem() / 4);

/** Request limits; every one is stated in the 4xx answer that enforces it. */
export const LimitsSchema = z.strictObject({
  /** Largest JSON body accepted (bytes); larger bodies get 413. */
  maxBodyBytes: z.number().int().min(1024).default(1_048_576),
  /** Most prompts in one request. */
  maxBatch: z.number().int().min(1).default(32),
  /** Largest top-k a request may ask for. */
  maxTopK: z.number().int().min(1).default(100),
  /** Most numbers one activation or attention answer may hold. */
  maxElements: z.number().int().min(1).default(2_000_000),
  /** Most jobs waiting per model; more get 503. */
  maxQueue: z.number().int().min(1).default(1000),
  /** Tokens per forward pass of /api/forward (bounds its logits buffer, [tokens, d_vocab] floats). */
  tokensPerStep: z.number().int().min(1).default(256),
  /**
   * Tokens per onnxruntime run in batched jobs (IOI prompts, sweep and patching variants, logit-lens rows), as far as a
   * single row allows: each run stays well under a second on GPT-2 small, so a cancelled job usually stops at its next
   * check instead of having its runner killed.
   */
  tokensPerPass: z.number().int().min(1).default(1024),
  /** How long a cancelled job may keep running before its runner process is killed and restarted (ms). */
  cancelGraceMs: z.number().int().min(10).default(1000),
  /**
   * Estimated peak memory one job may use (bytes; --max-job-memory): logits, caches and activations of its largest
   * step. Large jobs are cut into steps that fit; one whose smallest step does not fit is refused with a 400 stating
   * the estimate and this budget.
   */
  maxJobMemoryBytes: z.number().int().min(128 * MiB).default(DEFAULT_JOB_MEMORY_BYTES),
  /** Largest answer (bytes of JSON) a job may return; larger ones are refused with a 400 saying how to narrow the request. */
  maxResponseBytes: z.number().int().min(64 * 1024).default(16 * MiB),
  /** Largest sweep (/api/ablate/sweep, /api/patch): forward-pass variants × prompt tokens. */
  maxSweepTokens: z.number().int().min(1).default(1_000_000),
  /** Most prompts in one /api/ioi request (generated or given). */
  maxIoiPrompts: z.number().int().min(1).default(256),
});
export type Limits = z.infer<typeof LimitsSchema>;

/**
 * The limits of in-process runs (the CLI, dataset experiments). The server's limits guard a shared service; a local run may be as large as the user likes (its answers go to files,
 * not over HTTP). The per-job memory budget stays: it sizes the steps of large runs and refuses a step that cannot fit.
 */
export const CLI_LIMITS: Limits = LimitsSchema.parse({
  maxBatch: 4096, maxTopK: 50_257, maxElements: 2_000_000_000, maxSweepTokens: 1e12, maxIoiPrompts: 100_000,
  maxResponseBytes: Number.MAX_SAFE_INTEGER,
});
