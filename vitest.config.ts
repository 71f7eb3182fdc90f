import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    globalSetup: ['test/global-setup.ts'],
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', '.data/**'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Each database test file gets its own database cloned from a migrated template, so files
    // run in parallel; two cores make more than four forks slower, not faster.
    maxWorkers: 4,
  },
});
