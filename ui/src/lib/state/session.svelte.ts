/** The session: the active model (and loading it, with download progress), the prompt and its tokens, the target tokens, the focused token. */
import { api, ApiError, loadModel, type LoadProgress, type ModelInfo, type Models, type TokenizeResult } from '../api.ts';
import type { Jobs } from './job.svelte.ts';
import type { UrlState } from './url.svelte.ts';

import type { Device } from '../../../../hooks/devices.ts';
export { DEVICES, type Device } from '../../../../hooks/devices.ts';
/** GPT-2's example inputs: the defaults until a model says otherwise (GET /api/model `defaults`, per vocabulary). */
export const DEFAULT_PROMPT = 'When Mary and John went to the store, John gave a drink to';
export const DEFAULT_TARGET = ' Mary';
export const DEFAULT_CONTRAST = ' John';

export interface TokenCheck {
  text: string;
  id: number | null;
  error: string | null;
}

/** How a text tokenizes on its own (no BOS): its tokens and their strings, as the active model's tokenizer reads it. */
export interface Tokenization {
  text: string;
  tokens: number[];
  strTokens: string[];
}

/** Checks that a token field's text is exactly one token (the API takes a single-token string or an id). */
export function checkSingle(t: Tokenization): TokenCheck {
  if (t.tokens.length === 1) return { text: t.text, id: t.tokens[0], error: null };
  if (t.tokens.length === 0) return { text: t.text, id: null, error: 'empty: type a token (with its leading space, e.g. " Paris")' };
  return { text: t.text, id: null, error: `"${t.text}" is ${t.tokens.length} tokens (${t.strTokens.map((s) => JSON.stringify(s)).join(' ')}); pick a single token` };
}

export class Session {
  #url: UrlState;
  #jobs: Jobs;
  #model = $state.raw<ModelInfo | null>(null);
  #models = $state.raw<Models | null>(null);
  #loading = $state<{ name: string; progress: LoadProgress | null } | null>(null);
  #modelError = $state<string | null>(null);
  #tokens = $state.raw<TokenizeResult | null>(null);
  #tokenError = $state<string | null>(null);
  #targets = $state.raw<{ target: TokenCheck; contrast: TokenCheck } | null>(null);
  /** The token position hovered in the prompt's token strip (views outline it), or null. */
  focus = $state<number | null>(null);
  /** Tokenizations of texts without BOS, per text (token fields ask often; each text is sent once per model). */
  #pieces = new Map<string, Promise<Tokenization>>();
  #tokenizedPrompt: string | null = null;
  #ranks = new Map<string, Promise<{ token: number; rank: number; logit: number }[]>>();
  /** The last prompts' tokenizations (Back / Forward redraw without asking again). */
  #prompts = new Map<string, TokenizeResult>();

  constructor(url: UrlState, jobs: Jobs) {
    this.#url = url;
    this.#jobs = jobs;
    url.onPop(() => {
      // Back / Forward never load a model: the URL names the active one.
      if (this.#model && this.#url.get('model', '') !== this.#model.name) this.#url.set({ model: this.#model.name }, { history: 'replace' });
      void this.retokenize();
    });
  }

  get model() {
    return this.#model;
  }
  get models() {
    return this.#models;
  }
  get loading() {
    return this.#loading;
  }
  get modelError() {
    return this.#modelError;
  }
  /** The prompt the views run on (committed with Enter; lives in the URL). */
  get prompt(): string {
    return this.#url.get('prompt', this.defaultPrompt);
  }
  /** The active model's example prompt (the addition model's `01234+56789=`; GPT-2's IOI sentence for GPT-2's vocabulary). */
  get defaultPrompt(): string {
    return this.#model?.defaults.prompt ?? DEFAULT_PROMPT;
  }
  get defaultTarget(): string {
    return this.#model?.defaults.target ?? DEFAULT_TARGET;
  }
  get defaultContrast(): string {
    return this.#model?.defaults.contrast ?? DEFAULT_CONTRAST;
  }
  get tokens() {
    return this.#tokens;
  }
  get tokenError() {
    return this.#tokenError;
  }
  /** The prompt's string tokens (BOS included), or null before tokenizing. */
  get strTokens(): string[] | null {
    return this.#tokens?.strTokens[0] ?? null;
  }
  get fits(): boolean {
    return this.#tokens?.fitsContext[0] ?? true;
  }
  get nLayers(): number {
    return Number(this.#model?.config.n_layers ?? 0);
  }
  get nHeads(): number {
    return Number(this.#model?.config.n_heads ?? 0);
  }
  get nCtx(): number {
    return Number(this.#model?.config.n_ctx ?? 0);
  }
  /** Target and contrast token texts (" Mary" vs " John" by default), from the URL. */
  get target(): string {
    return this.#url.get('target', this.defaultTarget);
  }
  get contrast(): string {
    return this.#url.get('contrast', this.defaultContrast);
  }
  /** The targets resolved to single token ids (null id with an error when a text is not one token). */
  get targets() {
    return this.#targets;
  }

  /** Reads the model list and the active model; loads the URL's model when it differs from the active one. */
  async init(): Promise<void> {
    try {
      const [models, model] = await Promise.all([api.models(), api.model().catch(() => null)]);
      this.#models = models;
      this.#model = model;
      const wanted = this.#url.get('model', '');
      if (wanted && wanted !== model?.name) await this.load(wanted, this.#url.get('device', model?.device ?? 'cpu') as Device);
      else if (model) this.#url.set({ model: model.name }, { history: 'replace' });
    } catch (e) {
      this.#modelError = (e as Error).message;
    }
    await this.retokenize();
  }

  /** Hides the last load error (the active model is still the one shown). */
  dismissModelError(): void {
    this.#modelError = null;
  }

  async refreshModels(): Promise<void> {
    this.#models = await api.models();
  }

  /**
   * Loads a model (downloading it if needed) on `device` and makes it the active model. The URL always names the active
   * model: after a failed load it keeps naming the one still active.
   */
  async load(name: string, device: Device): Promise<void> {
    this.#loading = { name, progress: null };
    this.#modelError = null;
    try {
      this.#model = await loadModel({ name, device }, (p) => {
        if (this.#loading) this.#loading = { name, progress: p };
      });
      this.#pieces.clear();
      this.#ranks.clear();
      this.#prompts.clear();
      this.#tokenizedPrompt = null;
      this.#targets = null;
      this.#jobs.reset();
      this.#url.set({ model: this.#model.name, device: device === 'cpu' ? null : device }, { history: 'replace' });
      await this.refreshModels();
      await this.retokenize();
    } catch (e) {
      this.#modelError = e instanceof ApiError ? e.message : `loading ${name} failed: ${(e as Error).message}`;
      this.#url.set({ model: this.#model?.name ?? null }, { history: 'replace' });
    } finally {
      this.#loading = null;
    }
  }

  /** Commits a prompt (Enter in the prompt bar): the views re-run on it. */
  async submit(prompt: string): Promise<void> {
    this.#url.set({ prompt: prompt === this.defaultPrompt ? null : prompt });
    await this.retokenize();
  }

  /** Sets the target / contrast token texts and checks that each is one token. */
  async setTargets(target: string, contrast: string): Promise<void> {
    this.#url.set({ target: target === this.defaultTarget ? null : target, contrast: contrast === this.defaultContrast ? null : contrast });
    await this.checkTargets();
  }

  /** How `text` tokenizes on its own (no BOS), asked once per text and model. */
  tokenize(text: string): Promise<Tokenization> {
    let p = this.#pieces.get(text);
    if (!p) {
      p = text === ''
        ? Promise.resolve({ text, tokens: [], strTokens: [] })
        : api.tokenize({ text, prependBos: false }).then((r) => ({ text, tokens: r.tokens[0], strTokens: r.strTokens[0] }));
      p.catch(() => this.#pieces.delete(text));
      this.#pieces.set(text, p);
    }
    return p;
  }

  /**
   * The next-token rank (0 = top) and logit of each single token `ids` after `prompt` (the logit lens's final row at the
   * last position: the model's own prediction), asked once per prompt and tokens.
   */
  nextTokenRanks(prompt: string, ids: number[]): Promise<{ token: number; rank: number; logit: number }[]> {
    const key = JSON.stringify([prompt, ids]);
    let p = this.#ranks.get(key);
    if (!p) {
      p = api.logitLens({ prompt, targets: ids, topK: 1 }).result.then((r) => {
        const last = r.labels.length - 1;
        const pos = r.positions.length - 1;
        return r.targets.map((t) => ({ token: t.token, rank: Number(t.rank[last][pos]), logit: Number(t.logit[last][pos]) }));
      });
      p.catch(() => this.#ranks.delete(key));
      this.#ranks.set(key, p);
    }
    return p;
  }

  /** Tokenizes the prompt (once per prompt and model) and checks the targets. */
  async retokenize(): Promise<void> {
    if (!this.#model) return;
    const prompt = this.prompt;
    if (prompt !== this.#tokenizedPrompt) {
      this.#tokenizedPrompt = prompt;
      try {
        let r = this.#prompts.get(prompt);
        if (!r) {
          r = await api.tokenize({ text: prompt });
          this.#prompts.set(prompt, r);
          while (this.#prompts.size > 16) this.#prompts.delete(this.#prompts.keys().next().value as string);
        }
        if (prompt !== this.prompt) return;
        this.#tokens = r;
        this.#tokenError = null;
        if (this.focus !== null && this.focus >= r.tokens[0].length) this.focus = null;
      } catch (e) {
        if (prompt !== this.prompt) return;
        this.#tokenizedPrompt = null;
        this.#tokens = null;
        this.#tokenError = (e as Error).message;
      }
    }
    await this.checkTargets();
  }

  private async checkTargets(): Promise<void> {
    if (!this.#model) return;
    const [target, contrast] = [this.target, this.contrast];
    if (this.#targets && this.#targets.target.text === target && this.#targets.contrast.text === contrast && this.#targets.target.error === null && this.#targets.contrast.error === null) return;
    try {
      const [a, b] = await Promise.all([this.tokenize(target), this.tokenize(contrast)]);
      if (target !== this.target || contrast !== this.contrast) return;
      this.#targets = { target: checkSingle(a), contrast: checkSingle(b) };
    } catch (e) {
      const err = (e as Error).message;
      this.#targets = { target: { text: target, id: null, error: err }, contrast: { text: contrast, id: null, error: err } };
    }
  }
}
