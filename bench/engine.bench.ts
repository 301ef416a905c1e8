/**
 * `npm run bench`: the engine on a GPT-2-small-shaped model with random weights (12 layers,
 * d_model 768, 50257 tokens, generated here), on this machine's CPU. Prints medians and the
 * ratios the engine issue targets, measured in one run:
 *   plain forward / floor ≤ 1.2, runWithCache(all hooks) / plain ≤ 1.6, reference / plain ≥ 20,
 *   peak RSS < 2 × the weights' size.
 * The floor is one plain ONNX graph of the same model with the weights embedded (prepacked)
 * and no hook outputs.
 */
import { HookedTransformer } from '../hooks/HookedTransformer.ts';
import { gpt2Config, randomWeights } from '../hooks/init.ts';
import { referenceForward } from '../hooks/reference.ts';
import { Rng } from '../hooks/random.ts';
import type { TransformerWeights } from '../hooks/weights.ts';

const args = new Set(process.argv.slice(2));
const quick = args.has('--quick');
const cfg = gpt2Config(quick ? { n_layers: 2 } : {});

function weightBytes(w: TransformerWeights): number {
  let n = w.W_E.byteLength + w.W_pos.byteLength + w.W_U.byteLength + w.b_U.byteLength;
  for (const b of w.blocks) for (const v of Object.values(b)) if (v instanceof Float32Array) n += v.byteLength; else if (v) n += v.w.byteLength + v.b.byteLength;
  if (w.ln_final) n += w.ln_final.w.byteLength * 2;
  return n;
}

async function median(fn: () => Promise<unknown>, runs: number, warmup = 1): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

const fmt = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);
const rssMb = () => (process.resourceUsage().maxRSS / 1024).toFixed(0);

console.log(`Lensboard engine benchmark — ${cfg.n_layers} layers, d_model ${cfg.d_model}, d_vocab ${cfg.d_vocab}, CPU (${(await import('node:os')).cpus().length} cores)`);
const weights = randomWeights(cfg, { seed: 1 });
const wBytes = weightBytes(weights);
console.log(`weights: ${(wBytes / 2 ** 20).toFixed(0)} MiB fp32; peak RSS after generating them: ${rssMb()} MiB`);

// The lensboard model ('feed': the default on CPU) and the floor (one plain graph with embedded, prepacked weights).
const model = await HookedTransformer.fromWeights(cfg, weights, { device: 'cpu' });
const floor = await HookedTransformer.fromWeights(cfg, weights, { device: 'cpu', weightMode: 'embed' });
const rng = new Rng(7);
const shapes: [number, number][] = [[1, 64], [8, 128]];
const rows: string[][] = [];
const ratios: string[] = [];
let peakAfterModels = 0;
for (const [batch, pos] of shapes) {
  const tokens = Array.from({ length: batch }, () => Array.from({ length: pos }, () => rng.int(0, cfg.d_vocab)));
  const runs = batch * pos > 256 ? 5 : 10;
  const tFloor = await median(() => floor.forward(tokens), runs);
  const tPlain = await median(() => model.forward(tokens), runs);
  const tCache = await median(() => model.runWithCache(tokens), runs);
  const mid = Math.floor(cfg.n_layers / 2);
  const tHook = await median(
    () => model.runWithHooks(tokens, { fwdHooks: [[`blocks.${mid}.attn.hook_pattern`, (a) => a.mul(1)]] }),
    runs,
  );
  const tEmbedCache = await median(() => floor.runWithCache(tokens), runs);
  let tRef = NaN;
  if (batch * pos <= 64 || args.has('--full-reference')) {
    const t0 = performance.now();
    referenceForward(cfg, weights, tokens);
    tRef = performance.now() - t0;
  }
  peakAfterModels = Number(rssMb());
  rows.push([`[${batch}, ${pos}]`, fmt(tFloor), fmt(tPlain), fmt(tCache), fmt(tHook), fmt(tEmbedCache), Number.isNaN(tRef) ? 'not run' : fmt(tRef)]);
  ratios.push(
    `[${batch}, ${pos}]: plain/floor ${(tPlain / tFloor).toFixed(2)} (target ≤ 1.2); ` +
      `cache(all hooks)/plain ${(tCache / tPlain).toFixed(2)} (target ≤ 1.6); ` +
      `one JS hook/plain ${(tHook / tPlain).toFixed(2)}; ` +
      `embed-mode cache/floor ${(tEmbedCache / tFloor).toFixed(2)}` +
      (Number.isNaN(tRef) ? '' : `; reference/plain ${(tRef / tPlain).toFixed(0)}× (target ≥ 20)`),
  );
}
console.log();
const header = ['tokens', 'floor', 'forward', 'runWithCache (all)', 'one JS hook', 'cache, embed mode', 'reference'];
console.log(`| ${header.join(' | ')} |`);
console.log(`|${header.map(() => '---').join('|')}|`);
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
console.log();
for (const r of ratios) console.log(r);
console.log(
  `peak RSS ${peakAfterModels} MiB = ${(peakAfterModels / (wBytes / 2 ** 20)).toFixed(2)} × the weights (${(wBytes / 2 ** 20).toFixed(0)} MiB) — ` +
    `includes the floor model's own prepacked copy (the 'embed' mode); target < 2×`,
);
await model.dispose();
await floor.dispose();
