/** Figures → PNG and SVG: Plotly.toImage in Debian's headless Chromium, driven by playwright-core (fresh profile, no network). */
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import type { FigureSpec } from '../hooks/figures/index.ts';
import { plotlyJs } from './html.ts';

export const CHROMIUM = process.env.LENSBOARD_CHROMIUM ?? '/usr/bin/chromium';
export const CHROMIUM_ARGS = [
  '--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run',
];

export type ImageFormat = 'png' | 'svg';

export interface Renderer {
  /** PNG bytes or SVG text of the figure at its layout's size (default width × height). */
  render(fig: FigureSpec, format: ImageFormat): Promise<Buffer>;
  close(): Promise<void>;
}

/** Image size: the layout's own, else 900 wide and tall enough for its rows. */
export function imageSize(fig: FigureSpec): { width: number; height: number } {
  const w = Number(fig.layout.width);
  const h = Number(fig.layout.height);
  return { width: Number.isFinite(w) && w > 0 ? w : 900, height: Number.isFinite(h) && h > 0 ? h : 600 };
}

/** Decodes a data: URL from Plotly.toImage (base64 for PNG, percent-encoded for SVG). */
export function decodeDataUrl(url: string): Buffer {
  const comma = url.indexOf(',');
  if (!url.startsWith('data:') || comma < 0) throw new Error(`Plotly.toImage returned no data URL: ${url.slice(0, 40)}`);
  const head = url.slice(0, comma);
  const body = url.slice(comma + 1);
  return head.endsWith(';base64') ? Buffer.from(body, 'base64') : Buffer.from(decodeURIComponent(body), 'utf8');
}

export async function openRenderer(): Promise<Renderer> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`PNG and SVG need Chromium at ${CHROMIUM} (apt-get install chromium, or set LENSBOARD_CHROMIUM); or pass --formats json,csv,html`);
  }
  const profile = await mkdtemp(join(tmpdir(), 'lensboard-cli-chromium-'));
  let context: BrowserContext | null = null;
  try {
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
    // Nothing leaves the machine: the page is built from a string and plotly.js is inlined.
    await context.route('**/*', (route) => route.abort());
    const page: Page = context.pages()[0] ?? (await context.newPage());
    await page.setContent('<!doctype html><html><head><meta charset="utf-8"></head><body></body></html>');
    await page.addScriptTag({ content: plotlyJs() });
    const ctx = context;
    return {
      async render(fig, format) {
        const { width, height } = imageSize(fig);
        const url = await page.evaluate(
          async ({ data, layout, format, width, height }) => {
            const P = (globalThis as unknown as { Plotly: { toImage(fig: unknown, opts: unknown): Promise<string> } }).Plotly;
            return P.toImage({ data, layout }, { format, width, height });
          },
          { data: fig.data as unknown[], layout: fig.layout, format, width, height },
        );
        return decodeDataUrl(url);
      },
      async close() {
        await ctx.close();
        await rm(profile, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await context?.close().catch(() => {});
    await rm(profile, { recursive: true, force: true });
    throw e;
  }
}
