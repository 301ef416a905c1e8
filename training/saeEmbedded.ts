/**
 * `npm run train:sae:embedded [-- --threads T --model DIR] [--card-only]`: retrains the SAE that ships with the embedded model, in
 * one command: train:sae's recipe below (trainSae.ts; evaluated on Tiny Shakespeare's held-out tail), then its feature
 * dashboards (the CLI's sae-dashboard, written beside it), then its card (README.md, from training.json and the
 * dashboards: the figures, the recipe, the wall time, and features listed with the tokens they fire on).
 * Rerun it whenever models/embedded changes: the SAE reads one model's residual stream and fits no other. `--card-only`
 * rewrites the card from the files already there (the wall time is kept in training.json).
 */
import { existsSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { main as cli } from '../cli/main.ts';
import { formatDuration } from '../hooks/loading/progress.ts';
import { loadFeatureDashboards, type FeatureDashboard, type FeatureDashboards } from '../hooks/sae/dashboard.ts';
import type { SaeEvalResult } from '../hooks/sae/evaluate.ts';
import { Args } from './args.ts';
import { trainSae } from './sae/trainSae.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The shipped SAE's recipe: a TopK SAE (k 32, 16× d_model) on the middle block's residual stream. */
export const SHIPPED_SAE = {
  name: 'L1-resid-post-topk32',
  hook: 'blocks.1.hook_resid_post',
  dSae: 2048,
  architecture: 'topk' as const,
  k: 32,
  tokens: 4_000_000,
  seed: 0,
  /** Positions the dashboards are computed over (the whole of Tiny Shakespeare is ~340k tokens). */
  dashboardTokens: 131_072,
};

/** The targets of the card (issue 22), asserted by tests/integration/embedded/sae.test.ts on held-out text. */
export const SHIPPED_SAE_TARGETS = { ceLossRecovered: 0.9, explainedVariance: 0.8, maxL0: 32, maxDeadFraction: 0.1, maxBytes: 8 * 1024 * 1024 };

const fmt = (v: number, digits = 4) => v.toFixed(digits);
const pct = (v: number) => `${(100 * v).toFixed(1)} %`;

/** A token as the card shows it: quoted, newlines and spaces visible. */
function showToken(s: string): string {
  return `\`${s.replace(/\n/g, '↵').replace(/`/g, "'").replace(/\|/g, '¦')}\``;
}

/** The token at the maximum of a feature's top contexts, by how many of them it is (most first). */
function tokensAtMax(f: FeatureDashboard): { token: number; count: number }[] {
  const counts = new Map<number, number>();
  for (const c of f.top) counts.set(c.tokens[c.at], (counts.get(c.tokens[c.at]) ?? 0) + 1);
  return [...counts].map(([token, count]) => ({ token, count })).sort((a, b) => b.count - a.count || a.token - b.token);
}

/** Density bands the card's features are taken from (rare, middling, common), and how many from each. */
const CARD_BANDS: readonly { from: number; to: number; n: number }[] = [
  { from: 5e-4, to: 2e-3, n: 3 },
  { from: 2e-3, to: 1e-2, n: 3 },
  { from: 1e-2, to: 5e-2, n: 2 },
];

/**
 * Features for the card, found from the dashboards: in each density band, the features whose top contexts peak most
 * consistently on one token (ties: the more frequent feature), one feature per token over the whole list.
 */
export function cardFeatures(d: FeatureDashboards): FeatureDashboard[] {
  const seen = new Set<number>();
  const out: FeatureDashboard[] = [];
  for (const band of CARD_BANDS) {
    const scored = d.features
      .filter((f) => f.density >= band.from && f.density < band.to && f.top.length >= 5)
      .map((f) => ({ f, at: tokensAtMax(f)[0] }))
      .sort((a, b) => b.at.count / b.f.top.length - a.at.count / a.f.top.length || b.f.density - a.f.density || a.f.feature - b.f.feature);
    let taken = 0;
    for (const { f, at } of scored) {
      if (taken === band.n) break;
      if (seen.has(at.token)) continue;
      seen.add(at.token);
      out.push(f);
      taken++;
    }
  }
  return out;
}

/** The card (README.md beside the SAE). */
export function cardMarkdown(o: {
  name: string;
  modelDir: string;
  training: { seconds: number; tokens: number; steps: number; tokensPerSecond: number; d_sae: number; d_in: number; hook: string; k: number | null; heldOut: Omit<SaeEvalResult, 'featureDensity'> };
  dashboards: FeatureDashboards;
  wallSeconds: number;
  bytes: number;
  threads: number;
  /** Which tokens the logit weights range over. */
  logitsOver: string;
}): string {
  const { training: t, dashboards: d } = o;
  const h = t.heldOut;
  const str = (tok: number) => showToken(d.tokenStrings[tok] ?? `#${tok}`);
  const rows = cardFeatures(d).map((f) => {
    const at = tokensAtMax(f).slice(0, 3).map((a) => `${str(a.token)} (${a.count}/${f.top.length})`).join(', ');
    const c = f.top[0];
    const example = c.tokens.map((tok, i) => (i === c.at ? `[${d.tokenStrings[tok]}]` : d.tokenStrings[tok])).join('').replace(/\n/g, '↵').replace(/\|/g, '¦').replace(/`/g, "'");
    const logits = f.logits.top.slice(0, 4).map((l) => str(l.token)).join(' ');
    return `| ${f.feature} | ${pct(f.density)} | ${at} | \`${example.trim()}\` | ${logits} |`;
  });
  return `# ${o.name}: a TopK SAE of the embedded model's residual stream

A sparse autoencoder (SAELens format, \`Sae.fromPretrained\`) of \`${t.hook}\`, the residual stream after the middle of
the embedded model's three blocks (\`${o.modelDir}\`): d_in ${t.d_in}, d_sae ${t.d_sae} (${t.d_sae / t.d_in}×), TopK with k ${t.k}
(Gao et al. 2024). Written by \`npm run train:sae:embedded\` (training/saeEmbedded.ts); generated, do not edit — rerun it
when the embedded model changes (it fits that model's residual stream only).

## Figures (held-out text)

Measured by \`evaluateSae\` (the same figures as \`npm run lens -- sae-eval\` and \`POST /api/saes/eval\`) on the held-out
last 10 % of Tiny Shakespeare, ${h.tokens.toLocaleString('en-US')} positions (BOS left out); asserted by
\`tests/integration/embedded/sae.test.ts\` (on its first 10,160 positions).

| | value | target |
| --- | --- | --- |
| CE loss recovered | ${fmt(h.ceLossRecovered)} | ≥ ${SHIPPED_SAE_TARGETS.ceLossRecovered} |
| explained variance | ${fmt(h.explainedVariance)} | ≥ ${SHIPPED_SAE_TARGETS.explainedVariance} |
| L0 (features active per token) | ${fmt(h.l0, 2)} | ≤ ${SHIPPED_SAE_TARGETS.maxL0} |
| dead features (never fire) | ${pct(h.deadFraction)} | ≤ ${pct(SHIPPED_SAE_TARGETS.maxDeadFraction)} |
| dense features (fire on > 10 % of tokens) | ${pct(h.denseFraction)} | |
| CE loss: clean / spliced / zero-ablated | ${fmt(h.ceLossClean)} / ${fmt(h.ceLossSpliced)} / ${fmt(h.ceLossZeroAblated)} | |
| size (cfg, weights, sparsity, dashboards) | ${(o.bytes / 1e6).toFixed(2)} MB | ≤ 8 MB (every shipped SAE) |

## Training

${t.tokens.toLocaleString('en-US')} activations (${t.steps} steps × ${t.tokens / t.steps} rows) harvested from Tiny Shakespeare's training
part (the first 90 %, contexts of 128 tokens, looped), Adam, unit-norm decoder rows, TopK's auxiliary loss on dead
features; ${Math.round(t.tokensPerSecond).toLocaleString('en-US')} tokens/s while training. The whole command — training,
held-out evaluation, dashboards, this card — took **${formatDuration(o.wallSeconds)}** of wall time on ${o.threads === 0 ? 'every core' : `${o.threads} onnxruntime thread${o.threads === 1 ? '' : 's'}`}
of a 2-core machine shared with other jobs.

## Features

Feature dashboards (\`feature_dashboards.json.gz\`, the Features view and \`GET /api/features/{id}\` read it): the top
${d.options.topK} contexts of every feature over ${d.corpus.tokens.toLocaleString('en-US')} positions of Tiny Shakespeare, with activation
histograms and logit weights. Features found from the file: among those firing on 0.05–0.2 %, 0.2–1 % and 1–5 % of
tokens, the ones whose top contexts peak most consistently on one token (the token at the maximum, in how many of the
top contexts; the strongest context with
the maximum in brackets; the tokens the feature's direction W_dec[f]·W_U raises most, ${o.logitsOver}).

| feature | density | token at the maximum | strongest context | logit weights (top) |
| --- | --- | --- | --- | --- |
${rows.join('\n')}
`;
}

/** Bytes of the regular files in `dir`. */
async function dirBytes(dir: string): Promise<number> {
  const { readdir, stat } = await import('node:fs/promises');
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) if (e.isFile()) total += (await stat(join(dir, e.name))).size;
  return total;
}

async function run(argv: readonly string[]): Promise<void> {
  const args = new Args(argv, { threads: 'number', model: 'string', tokens: 'number', 'card-only': 'flag' });
  const threads = args.number('threads', 0, { integer: true, min: 0 });
  const modelDir = relative(ROOT, resolve(ROOT, args.string('model', 'models/embedded'))) || '.';
  const out = join(modelDir, 'saes', SHIPPED_SAE.name);
  process.chdir(ROOT);
  if (!existsSync(join(modelDir, 'config.json'))) throw new Error(`no model in ${modelDir}`);
  if (!args.has('card-only')) {
    const started = performance.now();
    await rm(out, { recursive: true, force: true });
    await trainSae({
      model: modelDir,
      hook: SHIPPED_SAE.hook,
      dSae: SHIPPED_SAE.dSae,
      architecture: SHIPPED_SAE.architecture,
      k: SHIPPED_SAE.k,
      tokens: args.number('tokens', SHIPPED_SAE.tokens, { integer: true, min: 1 }),
      seed: SHIPPED_SAE.seed,
      out,
      threads,
      log: (l) => console.log(l),
    });
    console.log('feature dashboards …');
    const code = await cli(['sae-dashboard', '--model', modelDir, '--sae', out, '--tokens', String(SHIPPED_SAE.dashboardTokens), '--threads', String(threads), '--quiet']);
    if (code !== 0) throw new Error(`sae-dashboard failed (exit code ${code})`);
    // The command's wall time, kept beside train:sae's summary for the card (and for --card-only).
    const summary = JSON.parse(await readFile(join(out, 'training.json'), 'utf8'));
    summary.trainSaeEmbedded = { wallSeconds: (performance.now() - started) / 1000, threads };
    await writeFile(join(out, 'training.json'), `${JSON.stringify(summary, null, 2)}\n`);
  }
  // The card, from the files alone (--card-only rewrites it after a change to its wording or its feature rule).
  const training = JSON.parse(await readFile(join(out, 'training.json'), 'utf8'));
  if (!training.trainSaeEmbedded) throw new Error(`${out}/training.json was not written by train:sae:embedded (no trainSaeEmbedded)`);
  const { wallSeconds, threads: trainedThreads } = training.trainSaeEmbedded as { wallSeconds: number; threads: number };
  const dashboards = await loadFeatureDashboards(out);
  if (!dashboards) throw new Error(`no dashboards in ${out}`);
  const logitsOver = existsSync(join(modelDir, 'training_vocab.json')) ? "over the tokens the model saw in training (training_vocab.json's seen_tokens)" : 'over the vocabulary';
  const card = (bytes: number) => cardMarkdown({ name: SHIPPED_SAE.name, modelDir, training, dashboards, wallSeconds, bytes, threads: trainedThreads, logitsOver });
  await writeFile(join(out, 'README.md'), card(0));
  await writeFile(join(out, 'README.md'), card(await dirBytes(out))); // the card's size counts the card itself
  console.log(`${out}: card written (the command took ${formatDuration(wallSeconds)})`);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  run(process.argv.slice(2)).catch((e: unknown) => {
    console.error(`train:sae:embedded: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  });
}
