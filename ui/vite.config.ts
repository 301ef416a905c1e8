/** Vite config of the dashboard: Svelte 5, output in ui/dist (served by the Express app), /api proxied to the server in `npm run dev`. */
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig } from 'vite';
import { fileURLToPath } from 'node:url';

const api = process.env.LENSBOARD_API ?? 'http://127.0.0.1:7860';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  plugins: [svelte({ configFile: false })],
  server: {
    host: '127.0.0.1',
    port: 5173,
    proxy: { '/api': { target: api, changeOrigin: false } },
    fs: { allow: [fileURLToPath(new URL('..', import.meta.url))] },
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // plotly.js-dist-min is one ~4.8 MB module; it is bundled on purpose (the app works offline).
    chunkSizeWarningLimit: 6000,
    sourcemap: false,
  },
});
