import { cloudflareTest } from '@cloudflare/vitest-pool-workers'
import { defineConfig } from 'vitest/config'
import { testServices } from './src/testing/node/services.js'

// Ports are chosen once here, so the global setup (which starts the services) and the workerd
// bindings (which point the worker at them) agree. Every run gets fresh ports: runs can overlap.
const services = await testServices()
const anvilUrl = services.tempoRpcUrl
const stripeUrl = services.stripeApiUrl
// The session chain (its own anvil, the channel reserve stand-in, the session shim in front), and the factory of
// private session chains for tests that move chain time.
const sessionUrl = services.sessionRpcUrl
const chainFactoryUrl = services.chainFactoryUrl
// The plain EVM chain with the EIP-3009 token stand-in, for `evm` routes.
const evmUrl = services.evmRpcUrl

const optimizer = {
  ssr: {
    enabled: true,
    include: ['mppx', 'mppx/client', 'mppx/server', 'mppx/discovery', 'viem', 'viem/accounts', 'viem/chains', 'viem/tempo', 'ox', 'hono', 'valibot', 'canonicalize'],
    rolldownOptions: { external: [/^node:/, /^cloudflare:/] },
  },
}

export default defineConfig({
  test: {
    // CI reads the totals from the JSON report (.ci/run prints them as its last line).
    reporters: ['default', ['json', { outputFile: 'test-results/results.json' }]],
    globalSetup: ['./test/setup/global.ts'],
    projects: [
      {
        plugins: [
          cloudflareTest({
            main: './test/worker/entry.ts',
            wrangler: { configPath: './test/worker/wrangler.toml' },
            miniflare: {
              bindings: {
                TEST_TEMPO_RPC_URL: anvilUrl,
                TEST_STRIPE_API_URL: stripeUrl,
                TEST_SESSION_RPC_URL: sessionUrl,
                TEST_CHAIN_FACTORY_URL: chainFactoryUrl,
                TEST_EVM_RPC_URL: evmUrl,
              },
            },
          }),
        ],
        test: {
          name: 'workers',
          include: ['test/worker/**/*.test.ts', 'test/core/**/*.test.ts'],
          deps: { optimizer },
        },
      },
      {
        // The gateway worker with its own wrangler.toml; the origin is a second worker behind the ORIGIN service binding.
        plugins: [
          cloudflareTest({
            main: './src/gateway/index.ts',
            wrangler: { configPath: './wrangler.toml' },
            miniflare: {
              bindings: {
                MPP_SECRET_KEY: 'gateway-test-secret-0123456789abcdef',
                STRIPE_SECRET_KEY: 'sk_test_mppedgeLocalServer0123456789',
                MPP_OPERATOR_SECRET: 'operator-test-secret-0123456789',
                STRIPE_API_BASE: stripeUrl,
                TEMPO_RPC_URL: anvilUrl,
                TEST_TEMPO_RPC_URL: anvilUrl,
                TEST_STRIPE_API_URL: stripeUrl,
                TEST_SESSION_RPC_URL: sessionUrl,
                TEST_CHAIN_FACTORY_URL: chainFactoryUrl,
                TEST_EVM_RPC_URL: evmUrl,
              },
              serviceBindings: { ORIGIN: 'origin' },
              ratelimits: { TEST_RATE_LIMITER: { simple: { limit: 2, period: 60 } } },
              analyticsEngineDatasets: { TEST_ANALYTICS: { dataset: 'mpp_gateway_test' } },
              workers: [{ name: 'origin', modules: true, scriptPath: './test/gateway/origin.mjs', compatibilityDate: '2026-04-01', compatibilityFlags: ['enable_request_signal'] }],
            },
          }),
        ],
        test: {
          name: 'gateway',
          include: ['test/gateway/**/*.test.ts'],
          deps: { optimizer },
        },
      },
      {
        test: {
          name: 'node',
          environment: 'node',
          include: ['test/node/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
    ],
  },
})
