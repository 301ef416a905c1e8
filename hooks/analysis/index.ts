/** Lensboard's interpretability toolkit: logit lens, direct logit attribution, information-flow routes, neurons, head detection, induction, IOI, ablations and activation patching. */
export { applySlice, sliceIndices } from '../slice.ts';
export type { SliceInput, SliceRange } from '../slice.ts';
export { withModel } from './cache.ts';
export { runVariants, throwIfAborted } from './batchedRuns.ts';
export type { Variant, VariantEdit, LogitsMetric, BatchOptions } from './batchedRuns.ts';
export {
  logitDiff, logitDiffs, logitDiffMetric, normalisedMetric, ioiMetric, isPositionedMetric, positionedMetric,
  tokenLogprobMetric, tokenProbMetric, lossMetric, metricFromSpec, resolveTokenRef,
} from './metrics.ts';
export type { LogitDiffOptions, PositionedMetric, DifferentiablePositionedMetric, TokenLogprobOptions, MetricSpec, MetricSpecModel, TokenRef } from './metrics.ts';
export { logitLens, logitLensFromCache } from './logitLens.ts';
export type { LogitLensOptions, LogitLensResult, LogitLensTarget, LogitLensTargetResult } from './logitLens.ts';
export { directLogitAttribution, dlaFromCache, attributeAlong, dlaHookNames } from './directLogitAttribution.ts';
export type { DlaOptions, DlaResult, AttributionAlong } from './directLogitAttribution.ts';
export { logitAttribution, logitAttributionFromCache } from './logitAttribution.ts';
export type { AttributionComponent, AttributionKind, LogitAttributionOptions, LogitAttributionResult } from './logitAttribution.ts';
export { informationFlow, informationFlowFromCache, informationFlowHookNames } from './informationFlow.ts';
export type { InformationFlowOptions } from './informationFlow.ts';
export { pruneFlowGraph, flowNodeId } from './flowGraph.ts';
export type { FlowGraph, FlowNode, FlowEdge, FlowNodeKind, FlowEdgeKind } from './flowGraph.ts';
export { topNeuronsByActivation, neuronActivations, neuronOutputTokens } from './neurons.ts';
export type { ActiveNeuron, NeuronRef, TokenValue } from './neurons.ts';
export {
  NeuronExamples, harvestNeuronExamples, cachedNeuronExamples, neuronExamplesPath, neuronExampleWindows, lensboardCacheDir,
} from './neuronExamples.ts';
export type { NeuronExample, NeuronExamplesMeta, CorpusInfo, HarvestOptions, CachedHarvestOptions, ExampleWindow } from './neuronExamples.ts';
export {
  detectHead, computeHeadAttentionSimilarityScore, detectionPatternFor, HEAD_NAMES,
  getPreviousTokenHeadDetectionPattern, getDuplicateTokenHeadDetectionPattern, getInductionHeadDetectionPattern,
} from './headDetector.ts';
export type { HeadName, ErrorMeasure, DetectHeadOptions } from './headDetector.ts';
export { generateRepeatedTokens, inductionLoss, lossByPosition } from './induction.ts';
export type { RepeatedTokensOptions } from './induction.ts';
export { ioiDataset, ioiCorruptedAbc, ioiLogitDiff, ioiLogitDiffs, ioiHeadAttribution, singleTokenWords } from './ioi.ts';
export type { IoiDataset, IoiDatasetOptions, IoiTokenizer, IoiPrompt, IoiOrder } from './ioi.ts';
export { ablationValues, ablationSpecs, headAblationSweep, neuronAblationSweep, positionAblationSweep } from './ablation.ts';
export type { AblationKind, AblationSource, AblationTargets, SweepOptions } from './ablation.ts';
export {
  genericActivationPatch,
  getActPatchResidPre, getActPatchResidMid, getActPatchAttnOut, getActPatchMlpOut,
  getActPatchAttnHeadOutByPos, getActPatchAttnHeadQByPos, getActPatchAttnHeadKByPos, getActPatchAttnHeadVByPos,
  getActPatchAttnHeadPatternByPos, getActPatchAttnHeadPatternDestSrcPos,
  getActPatchAttnHeadOutAllPos, getActPatchAttnHeadQAllPos, getActPatchAttnHeadKAllPos, getActPatchAttnHeadVAllPos,
  getActPatchAttnHeadPatternAllPos,
  getActPatchBlockEvery, getActPatchAttnHeadAllPosEvery, getActPatchAttnHeadByPosEvery,
} from './patching.ts';
export type { AxisName, PatchActivation, PatchingOptions, GenericPatchOptions } from './patching.ts';
export {
  genericAttributionPatch,
  getAttrPatchResidPre, getAttrPatchResidMid, getAttrPatchAttnOut, getAttrPatchMlpOut,
  getAttrPatchAttnHeadOutByPos, getAttrPatchAttnHeadQByPos, getAttrPatchAttnHeadKByPos, getAttrPatchAttnHeadVByPos,
  getAttrPatchAttnHeadPatternByPos, getAttrPatchAttnHeadPatternDestSrcPos,
  getAttrPatchAttnHeadOutAllPos, getAttrPatchAttnHeadQAllPos, getAttrPatchAttnHeadKAllPos, getAttrPatchAttnHeadVAllPos,
  getAttrPatchAttnHeadPatternAllPos,
  getAttrPatchBlockEvery, getAttrPatchAttnHeadAllPosEvery, getAttrPatchAttnHeadByPosEvery,
} from './attribution.ts';
export { pearsonCorrelation } from './attribution.ts';
export type { AttributionOptions, GenericAttributionOptions } from './attribution.ts';
export { inputSaliency } from './saliency.ts';
export type { SaliencyMethod, SaliencyOptions, SaliencyResult } from './saliency.ts';
export { accumulatedBias, tokensToResidualDirections } from '../ActivationCache.ts';
export type { CacheModel, TokenSpec } from '../ActivationCache.ts';
