/** The dashboard's views: their tabs, and which of the prompt bar's inputs each one reads (the bar shows only those). */
export interface ViewInfo {
  id: string;
  label: string;
  /** Runs on the prompt bar's prompt. */
  prompt: boolean;
  /** Reads the prompt bar's target / vs tokens. */
  targets: boolean;
  /** Shows the prompt's tokens itself (the prompt bar's token strip is then left out: one strip). */
  ownStrip?: boolean;
  /** What it runs on instead, for views that ignore the prompt. */
  input?: string;
}

export const VIEWS: readonly ViewInfo[] = [
  { id: 'lens', label: 'Logit lens', prompt: true, targets: true },
  { id: 'attention', label: 'Attention', prompt: true, targets: false },
  { id: 'text', label: 'Text', prompt: true, targets: true, ownStrip: true },
  { id: 'ablation', label: 'Ablation', prompt: true, targets: true },
  { id: 'attribution', label: 'Attribution', prompt: true, targets: true },
  { id: 'graph', label: 'Graph', prompt: true, targets: false },
  { id: 'neurons', label: 'Neurons', prompt: true, targets: true },
  { id: 'induction', label: 'Induction', prompt: false, targets: false, input: 'repeated random tokens it generates (set below)' },
  { id: 'ioi', label: 'IOI', prompt: false, targets: false, input: 'IOI prompts from templates or typed below, and its own clean / corrupted pair' },
  { id: 'circuits', label: 'Circuits', prompt: false, targets: false, input: 'the weights alone (no prompt)' },
  { id: 'experiments', label: 'Experiments', prompt: false, targets: false, input: "the dataset experiments (lensboard batch) in the server's --experiments-dir" },
  { id: 'features', label: 'Features', prompt: true, targets: true, ownStrip: true },
];

export function viewInfo(id: string): ViewInfo {
  return VIEWS.find((v) => v.id === id) ?? VIEWS[0];
}
