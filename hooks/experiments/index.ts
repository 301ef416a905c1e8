/** Dataset experiments, the pure parts: datasets as items, shards, and the mean / standard error of per-item results. */
export { ioiItems, itemSeed, repeatedItems, textWindowItems } from './datasets.ts';
export type { DatasetItem, IoiItemsOptions, ItemPrompt, ItemToken, TextWindowOptions } from './datasets.ts';
export { canonicalJson, fingerprint, shardRanges } from './shards.ts';
export type { ShardRange } from './shards.ts';
export { TreeStats } from './aggregate.ts';
export type { NumericTree, TreeAggregate } from './aggregate.ts';
