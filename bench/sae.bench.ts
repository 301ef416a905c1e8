/**
 * `npm run bench` (SAEs): on a GPT-2-small-shaped model with random weights (12 layers, d_model 768,
 * 50257 tokens), on this machine's CPU:
 *   - the spliced forward (runWithSaes, a random 24,576-feature SAE at blocks.6.hook_resid_post) against
 *     the plain forward at [1, 64] (target ≤ 1.3), ReLU and TopK (k 32), each ratio from its own
 *     interleaved pair (medians.ts);
 *   - harvesting throughput (harvestActivations at blocks.6.hook_resid_post: the run stops after block 6
 *     and caches one hook point) against a plain forward over the same contexts, in tokens/s;
 *   - SAE training throughput (the step graph, Adam and the decoder-norm constraint) in rows/s, at the
 *     shipped SAE's shape (d_in 128, 2,048 features, TopK k 32, batches of 4,096) and at GPT-2 small's
 *     width (d_in 768, 24,576 features, batches of 1,024).
 */
import { cpus } from 'node:os';
import { HookedTransformer } from '../hooks/HookedTransformer.ts';
import { gpt2Config, randomWeights } from '../hooks/init.ts';
import { Rng } from '../hooks/random.ts';
import { harvestActivations } from '../hooks/sae/harvest.ts';
import { Sae } from '../hooks/sae/Sae.ts';
import { SaeTrainer } from '../training/sae/saeTrainer.ts';
import { medians } from './medians.ts';

const quick = process.argv.includes('--quick');
const cfg = gpt2Config(quick ? { n_layers: 2 } : {});
const fmt = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);
const HOOK = `blocks.${Math.floor(cfg.n_layers / 2)}.hook_resid_post` as const;
const D_SAE = 24_576;

console.log(`Lensboard SAE benchmark — ${cfg.n_layers} layers, d_model ${cfg.d_model}, d_vocab ${cfg.d_vocab}, SAE of ${D_SAE} features at ${HOOK}, CPU (${cpus().length} cores)`);
const model = await HookedTransformer.fromWeights(cfg, randomWeights(cfg, { seed: 1 }), { device: 'cpu' });
const rng = new Rng(5);

function randomSae(architecture: 'standard' | 'topk', d_in: number, d_sae: number): Sae {
  // Encoder columns scaled so that about 5 % of ReLU features fire on the random model's residual stream.
  return Sae.fromWeights(
    { architecture, d_in, d_sae, hook_name: HOOK, k: architecture === 'topk' ? 32 : null },
    { W_enc: rng.normals(d_in * d_sae, 1 / Math.sqrt(d_in)), b_enc: rng.normals(d_sae, 0.1, -1.5), W_dec: rng.normals(d_sae * d_in, 1 / Math.sqrt(d_sae)), b_dec: rng.normals(d_in, 0.01) },
  );
}

// 1. Spliced forward / forward at [1, 64].
const tokens = [Array.from({ length: 64 }, () => rng.int(0, cfg.d_vocab))];
for (const arch of ['standard', 'topk'] as const) {
  const sae = randomSae(arch, cfg.d_model, D_SAE);
  const m = await medians({ plain: () => model.forward(tokens), spliced: () => model.runWithSaes(tokens, { saes: sae }) }, 20);
  console.log(`spliced forward (${arch === 'standard' ? 'ReLU' : 'TopK k 32'}, ${D_SAE} features) / forward at [1, 64]: ${fmt(m.spliced)} / ${fmt(m.plain)} = ${(m.spliced / m.plain).toFixed(2)} (target ≤ 1.3)`);
}

// 2. Harvesting throughput against a plain forward over the same contexts.
const contexts = Array.from({ length: 32 }, () => Array.from({ length: 128 }, () => rng.int(0, cfg.d_vocab)));
const harvest = async () => {
  for await (const _ of harvestActivations(model, HOOK, contexts, { batchSize: 8 })) void _;
};
const forwardAll = async () => {
  for (let i = 0; i < contexts.length; i += 8) await model.forward(contexts.slice(i, i + 8));
};
const h = await medians({ forward: forwardAll, harvest }, quick ? 2 : 4);
const tokensPerRun = 32 * 128;
console.log(`harvesting ${HOOK} (32 contexts of 128, 8 per pass): ${Math.round(tokensPerRun / (h.harvest / 1000)).toLocaleString('en-US')} tokens/s; plain forward over the same contexts ${Math.round(tokensPerRun / (h.forward / 1000)).toLocaleString('en-US')} tokens/s (${(h.forward / h.harvest).toFixed(2)}× faster harvesting)`);
await model.dispose();

// 3. Training throughput.
for (const [d_in, d_sae, rows] of [[128, 2048, 4096], [768, D_SAE, 1024]] as const) {
  const trainer = new SaeTrainer({ architecture: 'topk', d_in, d_sae, k: 32, lr: 1e-4, totalSteps: 100, deadWindow: 1e9 });
  const x = rng.normals(rows * d_in);
  await trainer.trainStep(x, rows); // build the session
  const steps = d_in === 128 ? 10 : 3;
  const t0 = performance.now();
  for (let s = 0; s < steps; s++) await trainer.trainStep(x, rows);
  const ms = (performance.now() - t0) / steps;
  console.log(`SAE training (TopK k 32, d_in ${d_in}, ${d_sae} features, ${rows} rows per step): ${fmt(ms)} per step, ${Math.round(rows / (ms / 1000)).toLocaleString('en-US')} rows/s`);
  await trainer.dispose();
}
