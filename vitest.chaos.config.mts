import { defineConfig } from 'vitest/config';

// The full chaos matrix and the full load test (npm run chaos): real processes, one file at a time,
// long bounds. The default config (vitest.config.mts) runs only test/**/*.test.ts: a subset of both.
export default defineConfig({
  test: {
    include: ['test/chaos/**/*.chaos.ts'],
    fileParallelism: false,
    testTimeout: 600_000,
    hookTimeout: 180_000,
    reporters: ['default'],
  },
});
