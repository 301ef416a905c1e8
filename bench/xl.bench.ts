/**
 * `npm run bench:xl`: a GPT-2-XL-sized model (48 layers, d_model 1600, 25 heads, 1.56 B parameters,
 * 6.2 GB in fp32) through the real loader on this machine — the engine issue's "sizes up to gpt2-xl
 * must load and run": one copy of the weights, no protobuf 2 GB limit.
 *
 * Three processes, one after another, so each peak RSS is its own:
 *   write: random weights (seeded) → an HF-layout checkpoint in a temp dir (model.safetensors in F32,
 *          no `transformer.` prefix, the attn.bias buffers, lm_head tied: as the hub's gpt2-xl), and
 *          the plain-TypeScript reference forward's log-probs on 6 tokens;
 *   load:  HookedTransformer.fromPretrained(dir) (default processing), forward on the same tokens
 *          (log-probs against the reference: processing leaves them unchanged), forward at [1, 64],
 *          runWithCache of the residual stream; peak RSS against the checkpoint's size.
 * Exits non-zero when the log-probs differ by more than 1e-3 (48 fp32 layers summed in another order).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HookedTransformer } from '../hooks/HookedTransformer.ts';
import { gpt2Config, randomWeights } from '../hooks/init.ts';
import { referenceForward } from '../hooks/reference.ts';
import { peakRssMiB } from './peakRss.ts';
import { writeHfCheckpoint } from '../tests/helpers/checkpoints.ts';

const cfg = gpt2Config({ model_name: 'gpt2-xl-random', n_layers: 48, d_model: 1600, n_heads: 25 });
const TOKENS = [50256, 464, 2068, 7586, 21831, 18045];
const TOLERANCE = 1e-3;

/** Log-softmax over the last axis of logits [rows, d_vocab], in float64. */
function logSoftmax(logits: Float32Array, rows: number, V: number): Float64Array {
  const out = new Float64Array(rows * V);
  for (let r = 0; r < rows; r++) {
    let max = -Infinity;
    for (let v = 0; v < V; v++) max = Math.max(max, logits[r * V + v]);
    let sum = 0;
    for (let v = 0; v < V; v++) sum += Math.exp(logits[r * V + v] - max);
    const lse = max + Math.log(sum);
    for (let v = 0; v < V; v++) out[r * V + v] = logits[r * V + v] - lse;
  }
  return out;
}

async function write(dir: string): Promise<void> {
  const t0 = performance.now();
  const w = randomWeights(cfg, { seed: 11 });
  // Tied unembedding, as the hub's gpt2-xl (no lm_head.weight): W_U = W_Eᵀ.
  const { d_model: D, d_vocab: V } = cfg;
  for (let v = 0; v < V; v++) for (let d = 0; d < D; d++) w.W_U[d * V + v] = w.W_E[v * D + d];
  w.b_U.fill(0);
  const tGen = performance.now();
  const ref = referenceForward(cfg, w, [TOKENS]);
  const tRef = performance.now();
  writeFileSync(join(dir, 'reference-logprobs.f64'), logSoftmax(ref.logits.data, TOKENS.length, V));
  await writeHfCheckpoint(dir, cfg, w, { dtype: 'F32', prefix: false, buffers: true, lmHead: false });
  const tWrite = performance.now();
  console.log(JSON.stringify({ generateS: (tGen - t0) / 1000, referenceS: (tRef - tGen) / 1000, writeS: (tWrite - tRef) / 1000, peakMiB: peakRssMiB() }));
}

async function load(dir: string): Promise<void> {
  const t0 = performance.now();
  const model = await HookedTransformer.fromPretrained(dir, { device: 'cpu' });
  const loadS = (performance.now() - t0) / 1000;
  const loadedMiB = peakRssMiB();
  const logits = (await model.forward([TOKENS])) as { data: Float32Array };
  const ours = logSoftmax(logits.data, TOKENS.length, cfg.d_vocab);
  const ref = new Float64Array(readFileSync(join(dir, 'reference-logprobs.f64')).buffer.slice(0));
  let maxDiff = 0;
  for (let i = 0; i < ref.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ours[i] - ref[i]));
  const tokens64 = [Array.from({ length: 64 }, (_, i) => (i * 797 + 13) % cfg.d_vocab)];
  await model.forward(tokens64); // warm-up
  const t1 = performance.now();
  await model.forward(tokens64);
  const forwardMs = performance.now() - t1;
  const forwardPeakMiB = peakRssMiB();
  const t2 = performance.now();
  const [, cache] = await model.runWithCache(tokens64, { namesFilter: (n: string) => n.endsWith('hook_resid_post') });
  const cacheMs = performance.now() - t2;
  const cacheEntries = cache.keys().length;
  await model.dispose();
  console.log(JSON.stringify({ loadS, loadedMiB, maxLogprobDiff: maxDiff, forwardMs, forwardPeakMiB, cacheMs, cacheEntries, peakMiB: peakRssMiB() }));
}

function child(mode: 'write' | 'load', dir: string): Record<string, number> {
  const out = execFileSync(process.execPath, ['--import', 'tsx', new URL(import.meta.url).pathname, mode, dir], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 1 << 20,
  });
  return JSON.parse(out.trim().split('\n').pop()!);
}

const [mode, dirArg] = process.argv.slice(2);
if (mode === 'write') await write(dirArg);
else if (mode === 'load') await load(dirArg);
else {
  const dir = mkdtempSync(join(process.env.LENSBOARD_XL_DIR ?? tmpdir(), 'lensboard-xl-'));
  try {
    console.log(`GPT-2-XL-sized model (${cfg.n_layers} layers, d_model ${cfg.d_model}, ${cfg.n_heads} heads, d_mlp ${cfg.d_mlp}), random weights, CPU`);
    const w = child('write', dir);
    const fileMiB = statSync(join(dir, 'model.safetensors')).size / 2 ** 20;
    console.log(`checkpoint: model.safetensors ${(fileMiB / 1024).toFixed(2)} GiB (F32, with attn.bias buffers); generated in ${w.generateS.toFixed(0)} s, reference forward (6 tokens) ${w.referenceS.toFixed(0)} s, written in ${w.writeS.toFixed(0)} s`);
    const l = child('load', dir);
    const x = (mib: number) => `${(mib / 1024).toFixed(2)} GiB (${(mib / fileMiB).toFixed(2)}× the checkpoint)`;
    console.log(`fromPretrained (with processing): ${l.loadS.toFixed(1)} s; peak RSS after loading ${x(l.loadedMiB)}`);
    console.log(`log-probs vs the reference forward (6 tokens): max |diff| ${l.maxLogprobDiff.toExponential(2)} (tolerance ${TOLERANCE})`);
    console.log(`forward [1, 64]: ${(l.forwardMs / 1000).toFixed(2)} s; peak RSS ${x(l.forwardPeakMiB)}`);
    console.log(`runWithCache (${l.cacheEntries} resid_post) [1, 64], first call (builds its graph variant): ${(l.cacheMs / 1000).toFixed(2)} s; peak RSS of the load process ${x(l.peakMiB)}`);
    if (!(l.maxLogprobDiff <= TOLERANCE)) {
      console.error(`FAIL: log-probs differ from the reference by ${l.maxLogprobDiff}`);
      process.exitCode = 1;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
