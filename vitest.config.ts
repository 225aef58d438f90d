import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // System tests (network namespaces, nftables, a real broker) share host
    // resources; files run one at a time to keep them from colliding.
    fileParallelism: false,
  },
});
