/**
 * One training step of an SAE as an ONNX graph: the forward pass, the loss and its gradients with
 * respect to every parameter, derived by hand (tests/unit/training/saeStep.test.ts checks them
 * against finite differences of a float64 loss). N rows x [N, D], S features:
 *
 *   sae_in = x − b_dec;  pre = sae_in W_enc + b_enc;  f = act(pre);  x̂ = f W_dec + b_dec;  e = x̂ − x
 *   L = (1/N) Σ‖e‖²  +  (standard) λ/N Σ f  |  (topk, with dead features) the auxiliary loss below
 *
 * with act = ReLU (standard) or TopK then ReLU (topk). Backward, with G = (2/N) e:
 *   ∂W_dec = fᵀ G;  ∂f = G W_decᵀ (+ λ/N);  ∂pre = ∂f ⊙ [f > 0];  ∂W_enc = sae_inᵀ ∂pre;  ∂b_enc = Σₙ ∂pre;
 *   ∂b_dec = Σₙ G − Σₙ ∂pre W_encᵀ   (b_dec is subtracted from the input and added to the output).
 *
 * TopK's auxiliary loss (Gao et al. 2024, as SAELens): z = the k_aux largest pre-activations of the dead
 * features (others 0), ê = z W_dec, r = x − x̂ held constant, L_aux = c (1/N) Σ‖ê − r‖², adding
 * zᵀ G_aux to ∂W_dec and (G_aux W_decᵀ) ⊙ [selected] to ∂pre, with G_aux = c (2/N)(ê − r).
 */
import { GraphBuilder } from '../../hooks/onnx/builder.ts';
import { encodeModel } from '../../hooks/onnx/proto.ts';

export type TrainArchitecture = 'standard' | 'topk';

export interface StepGraphOptions {
  architecture: TrainArchitecture;
  d_in: number;
  d_sae: number;
  /** TopK's k. */
  k?: number;
  /** TopK: include the auxiliary loss on dead features (inputs `dead`, `k_aux`, `aux_coefficient`). */
  aux?: boolean;
}

/** The outputs of a step, in this order. */
export const STEP_OUTPUTS = ['mse', 'sparsity_loss', 'grad_W_enc', 'grad_b_enc', 'grad_W_dec', 'grad_b_dec', 'fired', 'l0', 'sse', 'sst'] as const;
export type StepOutput = (typeof STEP_OUTPUTS)[number];

/**
 * Inputs: `x` [N, D]; `W_enc` [D, S], `b_enc` [S], `W_dec` [S, D], `b_dec` [D] (SAELens's layout);
 * standard: `l1` (scalar λ); topk with aux: `dead` [S] bool, `k_aux` [1] int64, `aux_coefficient` (scalar c).
 * Outputs (STEP_OUTPUTS): the two loss terms (scalars), the four gradients, `fired` [S] (rows on which
 * each feature is active), `l0` (mean active features per row), `sse` Σ‖e‖² and `sst` Σ‖x − mean x‖².
 */
export function buildStepGraph(opts: StepGraphOptions): Uint8Array {
  const { d_in: D, d_sae: S } = opts;
  const b = new GraphBuilder();
  const x = b.input('x', 'float32', ['N', D]);
  const wEnc = b.input('W_enc', 'float32', [D, S]);
  const bEnc = b.input('b_enc', 'float32', [S]);
  const wDec = b.input('W_dec', 'float32', [S, D]);
  const bDec = b.input('b_dec', 'float32', [D]);
  const n = b.op('Cast', [b.op('Gather', [b.op('Shape', [x]), b.i64([0], true)], { axis: { i: 0 } })], { to: { i: 1 } }); // N as float, []
  const twoOverN = b.div(b.f32(2), n);
  const zerosLike = (v: string) => b.op('ConstantOfShape', [b.op('Shape', [v])]);
  const onesLike = (v: string) => b.op('ConstantOfShape', [b.op('Shape', [v])], { value: { t: { elemType: 'float32', dims: [1], data: Float32Array.of(1) } } });

  // Forward.
  const saeIn = b.sub(x, bDec); // [N, D]
  const pre = b.add(b.matmul(saeIn, wEnc), bEnc); // [N, S]
  let f: string; // [N, S]
  if (opts.architecture === 'standard') {
    f = b.op('Relu', [pre]);
  } else {
    if (!opts.k) throw new Error('buildStepGraph: topk needs k');
    const [values, indices] = b.opMulti('TopK', [pre, b.i64([opts.k])], [b.tmp('tk_v'), b.tmp('tk_i')], { axis: { i: -1 }, largest: { i: 1 }, sorted: { i: 0 } });
    f = b.op('ScatterElements', [zerosLike(pre), indices, b.op('Relu', [values])], { axis: { i: -1 } });
  }
  const active = b.op('Cast', [b.op('Greater', [f, b.f32(0)])], { to: { i: 1 } }); // [N, S] 0/1
  const xHat = b.add(b.matmul(f, wDec), bDec); // [N, D]
  const e = b.sub(xHat, x); // [N, D]
  const sse = b.op('ReduceSumSquare', [e], { keepdims: { i: 0 } }, 'sse'); // []
  b.div(sse, n, 'mse');
  const centred = b.sub(x, b.reduceMean(x, [0], true));
  b.op('ReduceSumSquare', [centred], { keepdims: { i: 0 } }, 'sst');
  b.reduceSum(active, [0], false, 'fired'); // [S]
  b.div(b.op('ReduceSum', [active], { keepdims: { i: 0 } }), n, 'l0');

  // Backward.
  const g = b.mul(e, twoOverN); // ∂L/∂x̂ [N, D]
  let dF = b.matmul(g, b.transpose(wDec, [1, 0])); // [N, S]
  if (opts.architecture === 'standard') {
    const l1 = b.input('l1', 'float32', []);
    b.mul(l1, b.div(b.op('ReduceSum', [f], { keepdims: { i: 0 } }), n), 'sparsity_loss');
    dF = b.add(dF, b.div(l1, n));
  }
  let dPre = b.mul(dF, active); // [N, S]
  let dWdec = b.matmul(b.transpose(f, [1, 0]), g); // [S, D]

  if (opts.architecture === 'topk' && opts.aux) {
    const dead = b.input('dead', 'bool', [S]);
    const kAux = b.input('k_aux', 'int64', [1]);
    const coefficient = b.input('aux_coefficient', 'float32', []);
    const masked = b.where(dead, pre, b.f32(-Infinity)); // [N, S]
    const [values, indices] = b.opMulti('TopK', [masked, kAux], [b.tmp('aux_v'), b.tmp('aux_i')], { axis: { i: -1 }, largest: { i: 1 }, sorted: { i: 0 } });
    const z = b.op('ScatterElements', [zerosLike(pre), indices, values], { axis: { i: -1 } }); // [N, S]
    const selected = b.op('ScatterElements', [zerosLike(pre), indices, onesLike(values)], { axis: { i: -1 } }); // [N, S]
    const residual = b.sub(x, xHat); // r, held constant
    const diff = b.sub(b.matmul(z, wDec), residual); // ê − r [N, D]
    b.mul(coefficient, b.div(b.op('ReduceSumSquare', [diff], { keepdims: { i: 0 } }), n), 'sparsity_loss');
    const gAux = b.mul(diff, b.mul(coefficient, twoOverN)); // [N, D]
    dWdec = b.add(dWdec, b.matmul(b.transpose(z, [1, 0]), gAux));
    dPre = b.add(dPre, b.mul(b.matmul(gAux, b.transpose(wDec, [1, 0])), selected));
  } else if (opts.architecture === 'topk') {
    b.op('Identity', [b.f32(0)], undefined, 'sparsity_loss');
  }
  b.op('Identity', [dWdec], undefined, 'grad_W_dec');
  b.matmul(b.transpose(saeIn, [1, 0]), dPre, 'grad_W_enc'); // [D, S]
  b.reduceSum(dPre, [0], false, 'grad_b_enc'); // [S]
  const dSaeIn = b.matmul(dPre, b.transpose(wEnc, [1, 0])); // [N, D]
  b.sub(b.reduceSum(g, [0], false), b.reduceSum(dSaeIn, [0], false), 'grad_b_dec'); // [D]

  return encodeModel({
    nodes: b.nodes,
    inputs: [...b.inputs.values()],
    outputs: STEP_OUTPUTS.map((name) => ({ name, elemType: 'float32' as const, dims: null })),
    initializers: [...b.constants].map(([name, t]) => ({ name, ...t })),
    name: `sae_train_step_${opts.architecture}${opts.aux ? '_aux' : ''}`,
  });
}
