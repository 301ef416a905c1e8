/**
 * `npm run train -- --task addition [--out DIR --steps N …]` trains the addition model (training/addition.ts).
 * `npm run train -- --data FILE --out DIR [--layers N --d-model D --heads H --ctx C --steps S --batch B
 * --lr LR --seed S --resume --threads T --eval-every E --checkpoint-every K --warmup W --init-std S --untied]`: trains a GPT-2-architecture
 * model on a text file (GPT-2 tokenizer; last 10 % held out for evaluation) and writes a Hugging Face
 * checkpoint directory that HookedTransformer.fromPretrained(DIR) opens. --init-std (default GPT-2's 0.02):
 * small models learn in-context copying much sooner with ~0.1 (see models/embedded/README.md).
 */
import { Rng } from '../hooks/random.ts';
import { gpt2Config } from '../hooks/init.ts';
import { Gpt2Tokenizer } from '../hooks/tokenizer.ts';
import { runAdditionTask } from './addition.ts';
import { Args } from './args.ts';
import { consecutiveWindows, randomWindows, rowsToBatch, stepSeed } from './data/batches.ts';
import { readTokenizedText } from './data/text.ts';
import { buildSeenVocab } from './model/vocab.ts';
import { formatDuration, train, type TrainResult } from './trainer.ts';

export const TRAIN_OPTIONS = {
  data: 'string', out: 'string', layers: 'number', 'd-model': 'number', heads: 'number', ctx: 'number',
  steps: 'number', batch: 'number', lr: 'number', seed: 'number', resume: 'flag', threads: 'number',
  'eval-every': 'number', 'checkpoint-every': 'number', warmup: 'number', 'init-std': 'number', untied: 'flag',
} as const;

const BOS = 50256;

/** Tasks with their own data generator (`--task NAME`); without --task the trainer learns a text file (--data). */
const TASKS = ['addition'] as const;

/** Runs the `train` command with these arguments; `log` receives progress lines. */
export async function runTrainCli(argv: readonly string[], log: (l: string) => void = console.log): Promise<TrainResult> {
  const taskAt = argv.indexOf('--task');
  if (taskAt >= 0) {
    const task = argv[taskAt + 1];
    if (task === 'addition') return runAdditionTask(argv, log);
    throw new Error(`unknown --task ${JSON.stringify(task ?? '')}; allowed: ${TASKS.join(', ')} (or no --task and --data FILE to train on text)`);
  }
  const args = new Args(argv, TRAIN_OPTIONS);
  const data = args.string('data');
  const out = args.string('out');
  const layers = args.number('layers', 2, { integer: true, min: 1 });
  const dModel = args.number('d-model', 128, { integer: true, min: 1 });
  const heads = args.number('heads', 4, { integer: true, min: 1 });
  if (dModel % heads !== 0) throw new Error(`--d-model (${dModel}) must be divisible by --heads (${heads})`);
  const ctx = args.number('ctx', 128, { integer: true, min: 2 });
  const steps = args.number('steps', 1000, { integer: true, min: 1 });
  const batch = args.number('batch', 16, { integer: true, min: 1 });
  const lr = args.number('lr', 1e-3, { min: 0 });
  const seed = args.number('seed', 0, { integer: true, min: 0 });
  const evalEvery = args.number('eval-every', Math.max(1, Math.min(200, Math.ceil(steps / 5))), { integer: true, min: 1 });
  const checkpointEvery = args.number('checkpoint-every', 200, { integer: true, min: 1 });
  const cfg = gpt2Config({ model_name: 'lensboard-trained', n_layers: layers, d_model: dModel, n_heads: heads, n_ctx: ctx });

  const tok = await Gpt2Tokenizer.default();
  const text = await readTokenizedText(tok, data);
  if (text.train.length < ctx + 1) throw new Error(`${data}: the training part has ${text.train.length} tokens; --ctx ${ctx} needs more than ${ctx}`);
  const vocab = buildSeenVocab([...text.train, BOS], cfg.d_vocab);
  // rows are [BOS] + ctx - 1 text tokens, so every position of the context is used
  const batchAt = (step: number) => rowsToBatch(randomWindows(new Rng(stepSeed(seed, step)), text.train, batch, ctx, [BOS]), vocab, BOS);
  const evalLen = Math.min(ctx, Math.max(1, text.heldOut.length));
  const evalSets = text.heldOut.length >= 2
    ? [{ name: 'held_out', batches: [rowsToBatch(consecutiveWindows(text.heldOut, Math.min(16, Math.floor(text.heldOut.length / evalLen)), evalLen, [BOS]), vocab, BOS)] }]
    : [];
  log(`training ${layers} layers, d_model ${dModel}, ${heads} heads, n_ctx ${ctx} on ${data}: ${text.train.length} training tokens (${vocab.seen.length} distinct), ${text.heldOut.length} held out`);
  const res = await train({
    cfg, vocab, batchAt, steps, seed, lr, warmupSteps: args.number('warmup', Math.min(100, Math.ceil(steps / 10)), { integer: true, min: 0 }),
    evalSets, evalEvery, logEvery: Math.max(1, Math.min(20, Math.ceil(steps / 20))), outDir: out, checkpointEvery,
    initStd: args.number('init-std', 0.02, { min: 0 }), untied: args.has('untied'),
    resume: args.has('resume'), threads: args.number('threads', 0, { integer: true, min: 0 }), log,
    info: { data, command: 'train' },
  });
  log(`done: ${res.step} steps in ${formatDuration(res.wallSeconds)}, ${Math.round(res.tokensPerSecond)} tok/s; model in ${out}`);
  return res;
}
