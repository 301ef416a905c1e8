/** Lensboard's public API: the hookable GPT-2, its cache, hook names, tensors, loading and tokenizer. */
export { HookedTransformer } from './HookedTransformer.ts';
export type {
  ModelInput, ReturnType, InputOptions, ForwardOptions, RunWithCacheOptions, RunWithHooksOptions, FwdHook, HookTarget,
  NamesFilter, ModelOptions, FromPretrainedOptions, ForwardOutput, Loss, HookFn, HookPoint, BwdHook, BwdHookFn, HookDirection,
} from './HookedTransformer.ts';
export type { BackwardFrom, DifferentiableMetric, MetricGradient, SparseLogitGradient } from './gradients.ts';
export { sampleLogits, type GenerateOptions, type GenerateOutput, type GenerateReturnType, type GenerateStep } from './generate.ts';
export { ActivationCache } from './ActivationCache.ts';
export { Tensor } from './tensor.ts';
export { listHookPoints, hookShape, getActName } from './hookPoints.ts';
export { gradName, saeHook } from './hookPoints.ts';
export type { HookName, HookPointInfo, Dim, GradName, CacheKey, SaeHookName, ModelHookName } from './hookPoints.ts';
export type { HookedTransformerConfig, ProcessingFlags } from './config.ts';
export type { SaeRunOptions } from './HookedTransformer.ts';
export { DEFAULT_PROCESSING, NO_PROCESSING } from './config.ts';
export type { TransformerWeights, BlockWeights } from './weights.ts';
export { WeightStore } from './weightStore.ts';
export type { MatrixName, WeightName } from './weightStore.ts';
export { ablateHeads, ablateNeurons, ablatePositions, patchFrom } from './interventions.ts';
export type { InterventionSpec } from './interventions.ts';
export { Gpt2Tokenizer } from './tokenizer.ts';
export { resolveDevice } from './engine/runtime.ts';
export type { Device, ResolvedDevice } from './engine/runtime.ts';
export { lmCrossEntropyLoss } from './loss.ts';
export { processWeights } from './processing.ts';
export { gpt2Config, randomWeights } from './init.ts';
export { Rng } from './random.ts';
export { loadGpt2, loadGpt2Checkpoint, resolveModelDir, readSafetensors, writeSafetensors } from './loading/index.ts';
export * from './analysis/index.ts';
export * from './circuits/index.ts';
export * from './sae/index.ts';
