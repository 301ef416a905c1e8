import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['tests/**/*.test.ts'],
    // onnxruntime-node is a native addon: run test files in child processes, not worker threads.
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 300_000,
  },
});
