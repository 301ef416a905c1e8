/**
 * `npm run train:sae -- --model DIR --hook NAME --d-sae N --arch standard|topk [--k K] [--l1 C] --tokens T --out DIR
 * [--data FILE] [--ctx C] [--batch ROWS] [--lr LR] [--buffer ROWS] [--eval-tokens N] [--seed S] [--threads T]`:
 * trains a sparse autoencoder on the model's activations at the hook point (trainSae.ts) and writes it
 * in SAELens's format, loadable by Sae.fromPretrained(DIR).
 */
import { Args } from '../args.ts';
import { trainSae, type TrainSaeResult } from './trainSae.ts';

export const TRAIN_SAE_OPTIONS = {
  model: 'string', hook: 'string', 'd-sae': 'number', arch: 'string', k: 'number', l1: 'number', tokens: 'number', out: 'string',
  data: 'string', ctx: 'number', batch: 'number', lr: 'number', buffer: 'number', 'eval-tokens': 'number', seed: 'number', threads: 'number',
} as const;

/** Runs `train:sae` with these arguments; `log` gets lines, `draw` (a terminal) a redrawn progress bar. */
export async function runTrainSaeCli(argv: readonly string[], log: (l: string) => void = console.log, draw?: (l: string) => void): Promise<TrainSaeResult> {
  const args = new Args(argv, TRAIN_SAE_OPTIONS);
  const arch = args.string('arch', 'topk');
  if (arch !== 'standard' && arch !== 'topk') throw new Error(`--arch must be standard or topk; got '${arch}'`);
  if (arch === 'topk' && !args.has('k')) throw new Error('--arch topk needs --k (features active per token)');
  if (arch === 'topk' && args.has('l1')) throw new Error('--l1 is the standard SAE\'s sparsity coefficient; a topk SAE takes --k');
  const batch = args.number('batch', 4096, { integer: true, min: 1 });
  return trainSae({
    model: args.string('model'),
    hook: args.string('hook'),
    dSae: args.number('d-sae', 0, { integer: true, min: 1 }),
    architecture: arch,
    ...(arch === 'topk' ? { k: args.number('k', 0, { integer: true, min: 1 }) } : { l1: args.number('l1', 5, { min: 0 }) }),
    tokens: args.number('tokens', 0, { integer: true, min: 1 }),
    out: args.string('out'),
    ...(args.has('data') ? { data: args.string('data') } : {}),
    ...(args.has('ctx') ? { contextSize: args.number('ctx', 0, { integer: true, min: 2 }) } : {}),
    batchRows: batch,
    lr: args.number('lr', 4e-4, { min: 0 }),
    bufferRows: args.number('buffer', 32 * batch, { integer: true, min: 2 * batch }),
    evalTokens: args.number('eval-tokens', 2 ** 16, { integer: true, min: 1 }),
    seed: args.number('seed', 0, { integer: true, min: 0 }),
    threads: args.number('threads', 0, { integer: true, min: 0 }),
    log,
    draw,
  });
}
