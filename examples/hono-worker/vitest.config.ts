import { cloudflareTest } from '@cloudflare/vitest-pool-workers'
import { testServices } from 'mpp-edge/testing/node'
import { defineConfig } from 'vitest/config'

// Loopback ports for the local Tempo chain and the local Stripe API, chosen once per run; the global setup
// starts both on them, and the bindings below point the worker at them instead of mainnet and Stripe.
const services = await testServices()

export default defineConfig({
  plugins: [
    cloudflareTest({
      main: './src/index.ts',
      wrangler: { configPath: './wrangler.toml' },
      miniflare: {
        bindings: {
          ...services.bindings, // TEST_TEMPO_RPC_URL, TEST_STRIPE_API_URL: for the paying test client
          MPP_SECRET_KEY: 'example-test-secret-0123456789abcdef',
          TEMPO_CHAIN_ID: String(services.chainId),
          TEMPO_RPC_URL: services.tempoRpcUrl,
          STRIPE_SECRET_KEY: services.stripeSecretKey,
          STRIPE_API_BASE: services.stripeApiUrl,
        },
      },
    }),
  ],
  test: {
    globalSetup: ['./test/global-setup.ts'],
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    // Pre-bundles the heavy dependencies once instead of transforming them file by file in every run.
    deps: {
      optimizer: {
        ssr: { enabled: true, include: ['mpp-edge', 'mpp-edge/middleware', 'mpp-edge/storage', 'mpp-edge/methods/tempo', 'mpp-edge/methods/stripe', 'mpp-edge/testing', 'viem', 'viem/accounts', 'viem/actions', 'viem/chains', 'viem/tempo', 'ox', 'hono', 'valibot', 'canonicalize'], rolldownOptions: { external: [/^node:/, /^cloudflare:/] } },
      },
    },
  },
})
