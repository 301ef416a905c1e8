/** Loading GPT-2 checkpoints: safetensors I/O, HF config mapping, local directories and the Hugging Face hub cache. */
export { readSafetensors, writeSafetensors, SafetensorsFile, SUPPORTED_DTYPES } from './safetensors.ts';
export type { SafetensorsDtype, SafetensorsEntry, SafetensorsTensor } from './safetensors.ts';
export { roundToF16, roundToBf16 } from './halfFloat.ts';
export { hfConfigToHooked, hookedToHfConfig, SUPPORTED_ARCHITECTURES } from './hfConfig.ts';
export { loadGpt2Checkpoint, modelNameFromDir } from './gpt2Checkpoint.ts';
export type { LoadedCheckpoint, LoadCheckpointOptions } from './gpt2Checkpoint.ts';
export { OFFICIAL_MODELS, resolveModelName, officialModel, isHubRepoId, knownModelNames } from './modelNames.ts';
export type { OfficialModel } from './modelNames.ts';
export { downloadGpt2Snapshot, downloadSnapshot, isOfflineEnv, OPTIONAL_FILES } from './hubSnapshot.ts';
export type { HubOptions, FetchSnapshotFile } from './hubSnapshot.ts';
export { HubHttpError } from './hubHttp.ts';
export { hubCacheDir, repoCacheDir } from './hfCache.ts';
export { resolveModelDir, loadGpt2 } from './resolveModelDir.ts';
export type { ProgressEvent, ProgressCallback } from './progress.ts';
export { ttyProgressBar, formatProgressLine } from './progress.ts';
