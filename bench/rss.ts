/**
 * Peak memory of Lensboard in use, measured in a process of its own: a GPT-2-small-shaped model
 * (default weightMode) runs a forward pass and runWithCache of all hooks at [8, 128].
 * Prints one JSON line: weights, baseline, and peak RSS after loading, after forward, after runWithCache (MiB).
 */
import { peakRssMiB } from './peakRss.ts';
import { HookedTransformer } from '../hooks/HookedTransformer.ts';
import { gpt2Config, randomWeights } from '../hooks/init.ts';
import type { WeightMode } from '../hooks/engine/engine.ts';

const layers = Number(process.argv[2] ?? 12);
const mode = (process.argv[3] ?? 'auto') as WeightMode;
const baselineMiB = peakRssMiB();
const cfg = gpt2Config({ n_layers: layers });
const weights = randomWeights(cfg, { seed: 1 });
let bytes = weights.W_E.byteLength + weights.W_pos.byteLength + weights.W_U.byteLength + weights.b_U.byteLength;
for (const b of weights.blocks) for (const v of Object.values(b)) bytes += v instanceof Float32Array ? v.byteLength : v ? 2 * v.w.byteLength : 0;
const model = await HookedTransformer.fromWeights(cfg, weights, { device: 'cpu', weightMode: mode });
const tokens = Array.from({ length: 8 }, (_, b) => Array.from({ length: 128 }, (_, i) => (i * 131 + b * 7) % cfg.d_vocab));
const loadedMiB = peakRssMiB();
await model.forward(tokens);
const forwardPeakMiB = peakRssMiB();
const [, cache] = await model.runWithCache(tokens);
const cacheMiB = cache.entries().reduce((n, [, t]) => n + t.data.byteLength, 0) / 2 ** 20;
const cachePeakMiB = peakRssMiB();
await model.dispose();
console.log(JSON.stringify({ weightsMiB: bytes / 2 ** 20, baselineMiB, loadedMiB, forwardPeakMiB, cacheMiB, cachePeakMiB }));
