/**
 * The arithmetic that the library, the server and the trainer share, written once: LayerNorm (and
 * its backward pass), the MLP activations, softmax and log-sum-exp, the next-token loss with its
 * mask rule, transposes. The reference forward (hooks/reference.ts) keeps its own plain versions:
 * it is the oracle these are tested against.
 */
export { layerNormRows, layerNormBackward, type Affine, type LayerNormOutputs } from './layerNorm.ts';
export { activationDerivative, activationFn, erf, geluNew, geluNewDerivative } from './activations.ts';
export { logSumExp, softmaxAt, softmaxLine } from './softmax.ts';
export { nextTokenLoss, scoresNextToken } from './loss.ts';
export { batchTransposed, SCRATCH_FLOATS, transposed, transposeInPlace, transposeInto } from './transpose.ts';
export { pearsonCorrelation } from './correlation.ts';
