import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    globalSetup: ['test/global-setup.ts'],
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', '.data/**'],
    // Timeouts here only catch a hang: CI shares two cores with other work and has run a test three
    // times slower than this machine does alone. A test that bounds a duration asserts it itself.
    testTimeout: 120_000,
    hookTimeout: 180_000,
    pool: 'forks',
    // Each database test file gets its own database cloned from a migrated template, so files
    // run in parallel; two cores make more than four forks slower, not faster.
    maxWorkers: 4,
  },
});
