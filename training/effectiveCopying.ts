/**
 * Copying scores of the heads in layers ≥ 1 read through an "effective" token embedding instead of the raw W_E
 * (a diagnostic for the model card, not a TransformerLens function): for each token t of the induction pool,
 * x = W_E[t] + mean(W_pos[1..60]) plus block 0's MLP applied to LayerNorm(x), then LayerNorm (weights folded by the
 * default processing). Prints, per head, Σλ / Σ|λ| of the pool × pool circuit eff · W_OV · W_U[:, pool] (from the
 * factors) and the share of pool tokens whose own logit is the largest, for the raw and the effective embedding.
 * (Attention in block 0 is left out: it adds other positions' tokens.)
 * Usage: npx tsx training/effectiveCopying.ts [DIR]
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HookedTransformer } from '../hooks/HookedTransformer.ts';
import { eigenvalueScore, FactoredMatrix } from '../hooks/circuits/index.ts';
import { gelu } from '../hooks/reference.ts';
import { Tensor } from '../hooks/tensor.ts';

const dir = process.argv[2] ?? 'models/embedded';
const model = await HookedTransformer.fromPretrained(dir);
const pool = (JSON.parse(await readFile(join(dir, 'training_vocab.json'), 'utf8')) as { induction_pool: number[] }).induction_pool;
const { d_model: d, d_mlp: m, n_heads: H, d_head: dh, n_layers: NL, d_vocab: V, eps, act_fn } = model.cfg;
const [WE, Wpos, WU] = [model.W_E.data, model.W_pos.data, model.W_U.data];
const [Win, bin, Wout, bout] = [model.W_in.data, model.b_in.data, model.W_out.data, model.b_out.data]; // block 0 = first slices
const [WV, WO] = [model.W_V.data, model.W_O.data];
const P = pool.length;

const layerNorm = (x: Float64Array): Float64Array => {
  let mu = 0;
  for (const v of x) mu += v / d;
  let s = 0;
  for (const v of x) s += (v - mu) ** 2 / d;
  const r = 1 / Math.sqrt(s + eps);
  return Float64Array.from(x, (v) => (v - mu) * r);
};
const posMean = new Float64Array(d);
for (let p = 1; p <= 60; p++) for (let k = 0; k < d; k++) posMean[k] += Wpos[p * d + k] / 60;

/** [P, d]: the raw embeddings of the pool, or the effective ones. */
function embeddings(effective: boolean): Float32Array {
  const E = new Float32Array(P * d);
  pool.forEach((t, i) => {
    const x = new Float64Array(d);
    for (let k = 0; k < d; k++) x[k] = WE[t * d + k] + (effective ? posMean[k] : 0);
    if (effective) {
      const n = layerNorm(x);
      const hidden = new Float64Array(m); // [d_mlp]
      for (let j = 0; j < m; j++) {
        let a = bin[j];
        for (let k = 0; k < d; k++) a += n[k] * Win[k * m + j];
        hidden[j] = gelu(a, act_fn);
      }
      for (let k = 0; k < d; k++) {
        let a = bout[k];
        for (let j = 0; j < m; j++) a += hidden[j] * Wout[j * d + k];
        x[k] += a;
      }
    }
    const y = effective ? layerNorm(x) : x;
    for (let k = 0; k < d; k++) E[i * d + k] = y[k];
  });
  return E;
}

const WUpool = new Float32Array(d * P); // [d_model, P]
for (let k = 0; k < d; k++) pool.forEach((t, i) => { WUpool[k * P + i] = WU[k * V + t]; });
for (const effective of [false, true]) {
  const E = embeddings(effective);
  const rows: string[] = [];
  for (let l = 1; l < NL; l++) {
    for (let h = 0; h < H; h++) {
      const o = l * H + h;
      const EOV = new Float32Array(P * d); // [P, d_model] = E W_V W_O
      for (let i = 0; i < P; i++) {
        const z = new Float64Array(dh);
        for (let a = 0; a < d; a++) for (let c = 0; c < dh; c++) z[c] += E[i * d + a] * WV[(o * d + a) * dh + c];
        for (let b = 0; b < d; b++) { let s = 0; for (let c = 0; c < dh; c++) s += z[c] * WO[(o * dh + c) * d + b]; EOV[i * d + b] = s; }
      }
      const circuit = new FactoredMatrix(new Tensor(EOV, [P, d]), new Tensor(WUpool, [d, P]));
      const { re, im } = circuit.eigenvalues64();
      const M = circuit.AB.data; // [P, P]
      let self = 0;
      for (let i = 0; i < P; i++) {
        let best = 0;
        for (let j = 1; j < P; j++) if (M[i * P + j] > M[i * P + best]) best = j;
        if (best === i) self++;
      }
      rows.push(`L${l}H${h} copying ${eigenvalueScore(re, im).toFixed(2)}, own token top-1 ${(self / P).toFixed(2)}`);
    }
  }
  console.log(`${effective ? 'effective' : 'raw'} embedding:\n  ${rows.join('\n  ')}`);
}
await model.dispose();
