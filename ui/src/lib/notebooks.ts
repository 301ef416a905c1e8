/**
 * The repository's notebooks, bundled with the dashboard (Vite emits each .ipynb as an asset), so each view's guide can
 * link the notebook that walks through the same analysis in code.
 */
import logitLens from '../../../notebooks/01-logit-lens.ipynb?url';
import induction from '../../../notebooks/02-induction-heads.ipynb?url';
import ioi from '../../../notebooks/03-ioi-ablations-and-patching.ipynb?url';
import circuits from '../../../notebooks/04-circuits-from-weights.ipynb?url';
import attribution from '../../../notebooks/05-attribution-patching.ipynb?url';
import features from '../../../notebooks/07-features-of-the-residual-stream.ipynb?url';

export interface Notebook {
  href: string;
  file: string;
  title: string;
}

export const NOTEBOOKS = {
  logitLens: { href: logitLens, file: '01-logit-lens.ipynb', title: '01 · the logit lens' },
  induction: { href: induction, file: '02-induction-heads.ipynb', title: '02 · finding induction heads' },
  ioi: { href: ioi, file: '03-ioi-ablations-and-patching.ipynb', title: '03 · IOI: ablations and patching' },
  circuits: { href: circuits, file: '04-circuits-from-weights.ipynb', title: '04 · circuits from the weights' },
  attribution: { href: attribution, file: '05-attribution-patching.ipynb', title: '05 · attribution patching' },
  features: { href: features, file: '07-features-of-the-residual-stream.ipynb', title: '07 · features of the residual stream' },
} satisfies Record<string, Notebook>;
