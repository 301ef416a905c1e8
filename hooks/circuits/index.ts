/** Circuits from the weights (TransformerLens's FactoredMatrix, QK/OV, composition and copying scores, positional QK). */
export { FactoredMatrix } from './FactoredMatrix.ts';
export type { FactoredSvd, ComplexTensor } from './FactoredMatrix.ts';
export { QK, OV, getWeight, TensorWeights } from './weights.ts';
export type { CircuitSource, CircuitWeights } from './weights.ts';
export { allCompositionScores, compositionScores, compositionBaseline } from './composition.ts';
export type { CompositionMode, CompositionOptions, BaselineOptions, CompositionBaseline } from './composition.ts';
export { copyingScores, copyingScoreOf, eigenvalueScore, fullOVCircuit, topCopiedTokens } from './copying.ts';
export type { CopyingOptions } from './copying.ts';
export { blockZeroMlpInputs, effectiveEmbedding, embeddingTokenSet, mlpLinearization } from './mlpPath.ts';
export type { EffectiveEmbeddingOptions, MlpInputsOptions, MlpSource, TokenEmbedding } from './mlpPath.ts';
export { bigramTopTokens, directPathLogits } from './directPath.ts';
export type { TokenRow } from './directPath.ts';
export {
  positionalQK, positionalPattern, previousTokenScoreFromWeights, previousTokenScoresFromWeights,
} from './positional.ts';
export type { PositionalOptions } from './positional.ts';
export { KernelSessions, type KernelOptions } from '../engine/kernels.ts';
