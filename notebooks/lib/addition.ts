/** Helpers of notebook 06 (the addition model): loading it, rows of teacher-forced problems, a labelled heatmap. */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HookedTransformer } from '../../hooks/HookedTransformer.ts';
import { colorbar, DIVERGING, heatmapLayout, SEQUENTIAL, tokenLabel } from '../../hooks/figures/common.ts';
import type { FigureSpec } from '../../hooks/figures/index.ts';
import { additionAnswer, additionPrompt, type AdditionProblem } from '../../training/data/addition.ts';

export const ADDITION_DIR = fileURLToPath(new URL('../../models/addition/', import.meta.url));

/** models/addition, or the checkpoint in $LENSBOARD_NOTEBOOK_ADDITION_MODEL. */
export function additionModelDir(): string {
  const env = process.env.LENSBOARD_NOTEBOOK_ADDITION_MODEL;
  return env ? resolve(env) : ADDITION_DIR;
}

export async function loadAdditionModel(): Promise<HookedTransformer> {
  const dir = additionModelDir();
  if (!existsSync(join(dir, 'config.json'))) throw new Error(`the addition model is not in ${dir}; train it (npm run train -- --task addition)`);
  return HookedTransformer.fromPretrained(dir);
}


/**
 * The teacher-forced row of a problem (operands zero-padded to 5 digits): [BOS] a₄…a₀ + b₄…b₀ = c₀…c₄, 18 tokens,
 * where position 12 + i predicts answer digit c_i (position 12 is '=').
 */
export function teacherForcedRow(model: HookedTransformer, p: AdditionProblem): number[] {
  return model.toTokens(additionPrompt(p) + additionAnswer(p).slice(0, 5))[0];
}

/** Labels of the 18 positions of a teacher-forced row (digit names by place value: a₀ is the units digit). */
export const ROW_LABELS = ['BOS', 'a4', 'a3', 'a2', 'a1', 'a0', '+', 'b4', 'b3', 'b2', 'b1', 'b0', '=', 'c0', 'c1', 'c2', 'c3', 'c4'];
/** Position of a place value's digit in a teacher-forced row: a_i at 5 − i, b_i at 11 − i. */
export const posOfA = (i: number) => 5 - i;
export const posOfB = (i: number) => 11 - i;
/** The position that predicts answer digit c_i. */
export const posPredicting = (i: number) => 12 + i;

/** A heatmap of `z` [rows][cols] with labelled axes (sequential, or diverging around 0). */
export function matrixFigure(name: string, title: string, z: number[][], rows: string[], cols: string[], opts: { diverging?: boolean; valueName?: string; zmin?: number; zmax?: number } = {}): FigureSpec {
  const lim = Math.max(1e-9, ...z.flat().map(Math.abs));
  const scale = opts.diverging ? { colorscale: DIVERGING, zmid: 0, zmin: opts.zmin ?? -lim, zmax: opts.zmax ?? lim } : { colorscale: SEQUENTIAL, zmin: opts.zmin ?? 0, zmax: opts.zmax ?? lim };
  const x = cols.map((c) => tokenLabel(c));
  const y = rows.map((r) => tokenLabel(r));
  return {
    name,
    data: [{
      type: 'heatmap', z, x, y, ...scale, colorbar: colorbar(opts.valueName ?? 'value'),
      text: z.map((r) => r.map((v) => v.toFixed(2))), texttemplate: '%{text}', hovertemplate: '%{y} · %{x}: %{z:.3f}<extra></extra>',
    }],
    layout: heatmapLayout(title, { height: Math.max(320, 120 + rows.length * 30), xaxis: { type: 'category', automargin: true }, yaxis: { type: 'category', autorange: 'reversed', automargin: true } }),
    table: { columns: ['row', 'column', opts.valueName ?? 'value'], rows: z.flatMap((r, i) => r.map((v, j) => [rows[i], cols[j], v])) },
  };
}
