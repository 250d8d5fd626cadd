/**
 * @module The local services a paid route is tested against, for a vitest config and its global setup: a
 * Tempo chain and the local Stripe API on loopback ports chosen once per run. The ports travel in
 * `process.env` (`MPP_TEST_ANVIL_PORT`, `MPP_TEST_STRIPE_PORT`), so the config, which points the worker's
 * bindings at the services, and the global setup, which starts them, agree; set them to pin the ports.
 */
import { testSecretKey } from '../stripe-fixtures.js'
import { startAnvil } from './anvil.js'
import { freePort } from './ports.js'
import { startStripeApi } from './stripe-api.js'

/** Where the services of this run listen. */
export type TestServices = {
  /** The local chain's id (Tempo's testnet id, so wallets and methods use Tempo's testnet tokens). */
  chainId: number
  /** The local chain's JSON-RPC URL. */
  tempoRpcUrl: string
  /** The local Stripe API's base URL (a `stripe` method's `apiBase`). */
  stripeApiUrl: string
  /** The only secret key the local Stripe API accepts (a `stripe` method's `secretKey`). */
  stripeSecretKey: string
  /** The same URLs as workerd bindings, under the names this package's own tests read. */
  bindings: { TEST_TEMPO_RPC_URL: string; TEST_STRIPE_API_URL: string }
}

/** The chain id the local chain runs with. */
const localChainId = 42431

/**
 * Chooses the ports of this run (once; later calls in the same process tree return the same) and their URLs.
 * @example
 * const services = await testServices()
 * cloudflareTest({ miniflare: { bindings: { TEMPO_RPC_URL: services.tempoRpcUrl, STRIPE_API_BASE: services.stripeApiUrl } } })
 */
export async function testServices(): Promise<TestServices> {
  process.env.MPP_TEST_ANVIL_PORT ??= String(await freePort())
  process.env.MPP_TEST_STRIPE_PORT ??= String(await freePort())
  const tempoRpcUrl = `http://127.0.0.1:${process.env.MPP_TEST_ANVIL_PORT}`
  const stripeApiUrl = `http://127.0.0.1:${process.env.MPP_TEST_STRIPE_PORT}`
  return {
    chainId: localChainId,
    tempoRpcUrl,
    stripeApiUrl,
    stripeSecretKey: testSecretKey,
    bindings: { TEST_TEMPO_RPC_URL: tempoRpcUrl, TEST_STRIPE_API_URL: stripeApiUrl },
  }
}

/**
 * Starts the local chain and the local Stripe API on the ports `testServices` chose; resolves to a stop that
 * ends both (nothing is left running). Made to be a vitest global setup's default export.
 * @example
 * // test/global-setup.ts, named in vitest.config.ts `test.globalSetup`
 * export default () => startTestServices()
 */
export async function startTestServices(): Promise<() => Promise<void>> {
  await testServices()
  const chain = await startAnvil({ port: Number(process.env.MPP_TEST_ANVIL_PORT), chainId: localChainId })
  try {
    const stripeApi = await startStripeApi({ port: Number(process.env.MPP_TEST_STRIPE_PORT) })
    return async () => {
      await Promise.all([chain.stop(), stripeApi.stop()])
    }
  } catch (error) {
    await chain.stop()
    throw error
  }
}
