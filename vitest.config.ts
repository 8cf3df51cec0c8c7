import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
    pool: 'forks',
    maxWorkers: 2,
    reporters: process.env.CI
      ? ['default', ['json', { outputFile: process.env.WHARF_VITEST_JSON ?? '.vitest-results.json' }]]
      : ['default'],
  },
});
