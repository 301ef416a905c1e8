/** Sparse autoencoders: SAELens's format, splicing (HookedSAETransformer), steering, training data, evaluation and feature dashboards. */
export { Sae, SAE_CFG_FILE, SAE_WEIGHTS_FILE, SAE_SPARSITY_FILE } from './Sae.ts';
export type { SaeWeights, SaeOptions, SaeLoadOptions } from './Sae.ts';
export { saeConfig, parseSaeConfigJson, saeConfigJson, SAE_ARCHITECTURES, SAE_NORMALIZATIONS } from './config.ts';
export type { SaeConfig, SaeConfigInput, SaeArchitecture, SaeNormalization } from './config.ts';
export { checkSaeFits } from './splice.ts';
export { steeringVector, steerFeatures, ablateFeatures, patchFeatures } from './features.ts';
export type { FeatureStrength } from './features.ts';
export { corpusContexts, fileTokens, DEFAULT_CORPUS } from './corpus.ts';
export type { CorpusOptions, CorpusSplit } from './corpus.ts';
export { harvestActivations, hookWidth } from './harvest.ts';
export type { ActivationBatch, HarvestOptions as SaeHarvestOptions } from './harvest.ts';
export { evaluateSae, densityHistogram } from './evaluate.ts';
export type { SaeEvalOptions, SaeEvalResult, DensityHistogram } from './evaluate.ts';
export { computeFeatureDashboards, saveFeatureDashboards, loadFeatureDashboards, logitWeights, DASHBOARD_FILE } from './dashboard.ts';
export type { FeatureDashboards, FeatureDashboard, TopContext, DashboardOptions } from './dashboard.ts';
