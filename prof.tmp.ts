import { HookedTransformer } from './hooks/HookedTransformer.ts';
import { gpt2Config, randomWeights } from './hooks/init.ts';
const cfg = gpt2Config();
const w = randomWeights(cfg, { seed: 1 });
const m = await HookedTransformer.fromWeights(cfg, w);
const toks = [Array.from({ length: 20 }, (_, i) => i * 7 + 3)];
await m.generate(toks, { maxNewTokens: 2, doSample: false });
for (let rep = 0; rep < 2; rep++) {
  const times: number[] = [];
  let t = performance.now();
  await m.generate(toks, { maxNewTokens: 30, doSample: false, stopAtEos: false, onStep: () => { const n = performance.now(); times.push(n - t); t = n; } });
  console.log('prefill', times[0].toFixed(0), 'steps median', times.slice(1).sort((a, b) => a - b)[14].toFixed(0));
}
let t0 = performance.now();
for (let i = 0; i < 5; i++) await m.forward([toks[0].slice(0, 1)]);
console.log('forward 1 token', ((performance.now() - t0) / 5).toFixed(0));
t0 = performance.now();
for (let i = 0; i < 3; i++) await m.forward(toks);
console.log('forward 20 tokens', ((performance.now() - t0) / 3).toFixed(0));
