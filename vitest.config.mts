import { defineConfig } from 'vitest/config';

// End-to-end tests share one Temporal dev server per test file and start real
// processes, so files run one at a time on this 2-core machine.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', 'simulator/**/*.test.ts', 'xenapi/**/*.test.ts', 'lib/**/*.test.ts', 'api/**/*.test.ts', 'workflows/**/*.test.ts', 'activities/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
