/** Colour scales for HTML (the text view colours tokens itself, without Plotly): a value in 0..1 to a CSS colour and a readable text colour. */

type RGB = [number, number, number];

/** White to blue (attention, probability). */
export const BLUES: RGB[] = [[255, 255, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181], [8, 48, 107]];
/** White to red (loss). */
export const REDS: RGB[] = [[255, 255, 255], [252, 187, 161], [251, 106, 74], [203, 24, 29], [103, 0, 13]];

/** Red through white to blue (signed values: negative red, positive blue, as the figures' diverging scale). */
export const RDBU: RGB[] = [[178, 24, 43], [239, 138, 98], [247, 247, 247], [103, 169, 207], [33, 102, 172]];

/** The colour at t ∈ [0, 1] of a scale of evenly spaced stops (t outside is clamped). */
export function colourAt(scale: readonly RGB[], t: number): RGB {
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (scale.length - 1);
  const i = Math.min(scale.length - 2, Math.floor(x));
  const f = x - i;
  const [a, b] = [scale[i], scale[i + 1]];
  return [0, 1, 2].map((c) => Math.round(a[c] + (b[c] - a[c]) * f)) as RGB;
}

export function css([r, g, b]: RGB): string {
  return `rgb(${r}, ${g}, ${b})`;
}

/** Black or white, whichever reads better on `bg` (relative luminance). */
export function textOn([r, g, b]: RGB): string {
  return 0.2126 * r + 0.7152 * g + 0.0722 * b < 140 ? '#ffffff' : '#111111';
}

/** A CSS linear-gradient of a scale, left (0) to right (1). */
export function gradient(scale: readonly RGB[]): string {
  return `linear-gradient(to right, ${scale.map((c, i) => `${css(c)} ${((i / (scale.length - 1)) * 100).toFixed(0)}%`).join(', ')})`;
}

/** Plotly's 'Viridis' (the figures' sequential scale), 17 evenly spaced stops, for previews drawn without Plotly. */
export const VIRIDIS: RGB[] = [
  [68, 1, 84], [72, 24, 106], [71, 45, 123], [66, 64, 134], [59, 82, 139], [51, 99, 141], [44, 114, 142], [38, 130, 142], [33, 145, 140],
  [31, 160, 136], [40, 174, 128], [63, 188, 115], [94, 201, 98], [132, 212, 75], [173, 220, 48], [216, 226, 25], [253, 231, 37],
];
