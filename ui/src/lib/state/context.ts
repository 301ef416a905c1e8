/** Hands the app's state objects to components through Svelte context (no module-level globals). */
import { getContext, setContext } from 'svelte';
import type { Jobs } from './job.svelte.ts';
import type { Session } from './session.svelte.ts';
import type { UrlState } from './url.svelte.ts';

const KEY = Symbol('lensboard');

export interface AppContext {
  url: UrlState;
  session: Session;
  jobs: Jobs;
}

export function provideApp(ctx: AppContext): void {
  setContext(KEY, ctx);
}

export function useApp(): AppContext {
  const ctx = getContext<AppContext | undefined>(KEY);
  if (!ctx) throw new Error('useApp() called outside <App>');
  return ctx;
}
