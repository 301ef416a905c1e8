/**
 * `npm run bench`: the engine on a GPT-2-small-shaped model with random weights (12 layers,
 * d_model 768, 50257 tokens, generated here), on this machine's CPU. Prints medians and the
 * ratios the engine issue targets, measured in one run, each from its own interleaved pair of
 * variants (see medians()):
 *   plain forward / floor ≤ 1.2, runWithCache(all hooks) / plain ≤ 1.6, reference / plain ≥ 20,
 *   peak RSS < 2 × the weights' size.
 * The floor is one plain ONNX graph of the same model with the weights embedded (prepacked)
 * and no hook outputs. The default weight mode ('auto') feeds the model's one feature-major copy
 * of the weights on the CPU; 'embed' (prepacked copies) is shown for comparison.
 * Timings need the CPU to themselves: with the kernel's autogroup scheduling, `nice` does not
 * outrank processes of other sessions (`setsid` + /proc/self/autogroup does).
 */
import { HookedTransformer } from '../hooks/HookedTransformer.ts';
import { blockHook } from '../hooks/hookPoints.ts';
import { gpt2Config, randomWeights } from '../hooks/init.ts';
import { referenceForward } from '../hooks/reference.ts';
import { Rng } from '../hooks/random.ts';
import type { TransformerWeights } from '../hooks/weights.ts';
import { buildFloor } from './floor.ts';
import { medians } from './medians.ts';
import { execFileSync } from 'node:child_process';

const args = new Set(process.argv.slice(2));
const quick = args.has('--quick');
const cfg = gpt2Config(quick ? { n_layers: 2 } : {});

function weightBytes(w: TransformerWeights): number {
  let n = w.W_E.byteLength + w.W_pos.byteLength + w.W_U.byteLength + w.b_U.byteLength;
  for (const b of w.blocks) for (const v of Object.values(b)) if (v instanceof Float32Array) n += v.byteLength; else if (v) n += v.w.byteLength + v.b.byteLength;
  if (w.ln_final) n += w.ln_final.w.byteLength * 2;
  return n;
}

const fmt = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);
const rssMb = () => (process.resourceUsage().maxRSS / 1024).toFixed(0);

console.log(`Lensboard engine benchmark — ${cfg.n_layers} layers, d_model ${cfg.d_model}, d_vocab ${cfg.d_vocab}, CPU (${(await import('node:os')).cpus().length} cores)`);
const weights = randomWeights(cfg, { seed: 1 });
const wBytes = weightBytes(weights);
console.log(`weights: ${(wBytes / 2 ** 20).toFixed(0)} MiB fp32; peak RSS after generating them: ${rssMb()} MiB`);

// Lensboard in its default weight mode ('auto': on the CPU, its one feature-major copy of the
// weights is fed), in 'embed' mode (prepacked copies), and the floor: one plain ONNX graph with
// embedded, prepacked weights and no hook outputs. Each model takes over a copy of the weights
// (fromWeights transposes them in place); the floor and the reference read `weights` itself.
const model = await HookedTransformer.fromWeights(cfg, structuredClone(weights), { device: 'cpu' });
const embedModel = await HookedTransformer.fromWeights(cfg, structuredClone(weights), { device: 'cpu', weightMode: 'embed' });
const floor = await buildFloor(cfg, weights);
const rng = new Rng(7);
const shapes: [number, number][] = [[1, 64], [8, 128]];
const rows: string[][] = [];
const ratios: string[] = [];
for (const [batch, pos] of shapes) {
  const tokens = Array.from({ length: batch }, () => Array.from({ length: pos }, () => rng.int(0, cfg.d_vocab)));
  const runs = batch * pos > 256 ? 6 : 20;
  const mid = Math.floor(cfg.n_layers / 2);
  // Each ratio from its own interleaved pair of variants (no third variant's allocations or threads
  // between them): forward against the floor, and each other variant against forward.
  const pair = (name: string, fn: () => Promise<unknown>) => medians({ plain: () => model.forward(tokens), [name]: fn }, runs);
  const vsFloor = await medians({ floor: () => floor.forward(tokens), plain: () => model.forward(tokens) }, runs);
  const vsCache = await pair('cache', () => model.runWithCache(tokens));
  const vsHook = await pair('hook', () => model.runWithHooks(tokens, { fwdHooks: [[blockHook(mid, 'attn.hook_pattern'), (a) => a.mul(1)]] }));
  const vsEmbed = await pair('embed', () => embedModel.forward(tokens));
  const [tFloor, tPlain] = [vsFloor.floor, vsFloor.plain];
  let tRef = NaN;
  if (batch * pos <= 64 || args.has('--full-reference')) {
    const t0 = performance.now();
    referenceForward(cfg, weights, tokens);
    tRef = performance.now() - t0;
  }
  rows.push([`[${batch}, ${pos}]`, fmt(tFloor), fmt(tPlain), fmt(vsEmbed.embed), fmt(vsCache.cache), fmt(vsHook.hook), Number.isNaN(tRef) ? 'not run' : fmt(tRef)]);
  ratios.push(
    `[${batch}, ${pos}]: plain/floor ${(tPlain / tFloor).toFixed(2)} (target ≤ 1.2); ` +
      `cache(all hooks)/plain ${(vsCache.cache / vsCache.plain).toFixed(2)} (target ≤ 1.6); ` +
      `one JS hook/plain ${(vsHook.hook / vsHook.plain).toFixed(2)}; ` +
      `embed-mode forward/plain ${(vsEmbed.embed / vsEmbed.plain).toFixed(2)}` +
      (Number.isNaN(tRef) ? '' : `; reference/plain ${(tRef / tPlain).toFixed(0)}× (target ≥ 20)`),
  );
}
console.log();
const header = ['tokens', 'floor', 'forward', "forward ('embed')", 'runWithCache (all)', 'one JS hook', 'reference'];
console.log(`| ${header.join(' | ')} |`);
console.log(`|${header.map(() => '---').join('|')}|`);
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
console.log();
for (const r of ratios) console.log(r);
await model.dispose();
await embedModel.dispose();
await floor.release();

// Peak memory, each weight mode in a process of its own (bench/rss.ts).
console.log();
console.log('| weight mode | weights | after load | peak, forward [8, 128] | peak, runWithCache(all) [8, 128] (cache size) |');
console.log('|---|---|---|---|---|');
for (const mode of ['auto', 'embed'] as const) {
  const out = execFileSync(process.execPath, ['--import', 'tsx', new URL('./rss.ts', import.meta.url).pathname, String(cfg.n_layers), mode], { encoding: 'utf8' });
  const r = JSON.parse(out.trim().split('\n').pop()!);
  const x = (v: number) => `${v.toFixed(0)} MiB (${(v / r.weightsMiB).toFixed(2)}×)`;
  console.log(`| ${mode} | ${r.weightsMiB.toFixed(0)} MiB | ${x(r.loadedMiB)} | ${x(r.forwardPeakMiB)} | ${x(r.cachePeakMiB)} (${r.cacheMiB.toFixed(0)} MiB) |`);
}
console.log('Peak RSS includes Node and onnxruntime themselves (about 125 MiB) and, at [8, 128], the logits (206 MiB) and the cache.');
