import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          sequence: { groupOrder: 0 },
          include: ['test/**/*.unit.test.ts'],
          environment: 'node',
        },
      },
      {
        test: {
          name: 'int',
          sequence: { groupOrder: 1 },
          include: ['test/**/*.int.test.ts'],
          environment: 'node',
          // The CLI the tests spawn runs from dist/: build it first when src/ changed.
          globalSetup: ['test/helpers/buildDist.ts'],
          testTimeout: 120_000,
          hookTimeout: 60_000,
          // Integration tests spawn servers and child processes; two cores only.
          maxWorkers: 2,
        },
      },
    ],
  },
});
