/** The session: the active model (and loading it, with download progress), the prompt and its tokens, the target tokens. */
import { api, ApiError, loadModel, type LoadProgress, type ModelInfo, type Models, type TokenizeResult } from '../api.ts';
import type { UrlState } from './url.svelte.ts';

export const DEVICES = ['cpu', 'cuda', 'webgpu', 'auto'] as const;
export type Device = (typeof DEVICES)[number];
export const DEFAULT_PROMPT = 'When Mary and John went to the store, John gave a drink to';

export interface TokenCheck {
  text: string;
  id: number | null;
  error: string | null;
}

export class Session {
  #url: UrlState;
  #model = $state.raw<ModelInfo | null>(null);
  #models = $state.raw<Models | null>(null);
  #loading = $state<{ name: string; progress: LoadProgress | null } | null>(null);
  #modelError = $state<string | null>(null);
  #tokens = $state.raw<TokenizeResult | null>(null);
  #tokenError = $state<string | null>(null);
  #targets = $state.raw<{ target: TokenCheck; contrast: TokenCheck } | null>(null);

  constructor(url: UrlState) {
    this.#url = url;
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
    return this.#url.get('prompt', DEFAULT_PROMPT);
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
  /** Target and contrast token texts (" Mary" vs " John"), from the URL. */
  get target(): string {
    return this.#url.get('target', ' Mary');
  }
  get contrast(): string {
    return this.#url.get('contrast', ' John');
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
      else if (model) this.#url.set({ model: model.name });
    } catch (e) {
      this.#modelError = (e as Error).message;
    }
    await this.retokenize();
  }

  async refreshModels(): Promise<void> {
    this.#models = await api.models();
  }

  /** Loads a model (downloading it if needed) on `device` and makes it the active model. */
  async load(name: string, device: Device): Promise<void> {
    this.#loading = { name, progress: null };
    this.#modelError = null;
    try {
      this.#model = await loadModel({ name, device }, (p) => {
        if (this.#loading) this.#loading = { name, progress: p };
      });
      this.#url.set({ model: name, device: device === 'cpu' ? null : device });
      await this.refreshModels();
      await this.retokenize();
    } catch (e) {
      this.#modelError = e instanceof ApiError ? e.message : `loading ${name} failed: ${(e as Error).message}`;
    } finally {
      this.#loading = null;
    }
  }

  /** Commits a prompt (Enter in the prompt bar): the views re-run on it. */
  async submit(prompt: string): Promise<void> {
    this.#url.set({ prompt: prompt === DEFAULT_PROMPT ? null : prompt });
    await this.retokenize();
  }

  /** Sets the target / contrast token texts and checks that each is one token. */
  async setTargets(target: string, contrast: string): Promise<void> {
    this.#url.set({ target: target === ' Mary' ? null : target, contrast: contrast === ' John' ? null : contrast });
    await this.checkTargets();
  }

  async retokenize(): Promise<void> {
    if (!this.#model) return;
    try {
      this.#tokens = await api.tokenize({ text: this.prompt });
      this.#tokenError = null;
    } catch (e) {
      this.#tokens = null;
      this.#tokenError = (e as Error).message;
    }
    await this.checkTargets();
  }

  private async checkTargets(): Promise<void> {
    if (!this.#model) return;
    const texts = [this.target, this.contrast];
    try {
      const r = await api.tokenize({ text: texts, prependBos: false });
      const check = (i: number): TokenCheck => {
        const ids = r.tokens[i];
        if (ids.length === 1) return { text: texts[i], id: ids[0], error: null };
        return { text: texts[i], id: null, error: `"${texts[i]}" is ${ids.length} tokens (${r.strTokens[i].map((s) => JSON.stringify(s)).join(' ')}); pick a single token` };
      };
      this.#targets = { target: check(0), contrast: check(1) };
    } catch (e) {
      const err = (e as Error).message;
      this.#targets = { target: { text: texts[0], id: null, error: err }, contrast: { text: texts[1], id: null, error: err } };
    }
  }
}
