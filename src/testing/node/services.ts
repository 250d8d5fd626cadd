/**
 * @module The local services a paid route is tested against, for a vitest config and its global setup: a
 * Tempo chain and the local Stripe API on loopback ports chosen once per run, and, for `session` routes, a
 * session chain (a second anvil with the channel reserve stand-in, behind the session shim) and a factory of
 * private session chains, and, for `evm` routes, a plain EVM chain with the EIP-3009 token stand-in. The ports travel
 * in `process.env` (`MPP_TEST_ANVIL_PORT`, `MPP_TEST_STRIPE_PORT`, `MPP_TEST_SESSION_PORT`, `MPP_TEST_CHAIN_FACTORY_PORT`,
 * `MPP_TEST_EVM_PORT`), so the config, which points the worker's bindings at
 * the services, and the global setup, which starts them, agree; set them to pin the ports.
 */
import type { Hex } from 'viem'
import { testSecretKey } from '../stripe-fixtures.js'
import { startAnvil } from './anvil.js'
import { startChainFactory } from './chain-factory.js'
import { startEvmChain } from './evm-chain.js'
import { freePort } from './ports.js'
import { startSessionChain } from './session-chain.js'
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
  /** The session chain's JSON-RPC URL (the shim's; started with `startTestServices({ sessions: true })`): every peer of a session test uses it. */
  sessionRpcUrl: string
  /** The factory of private session chains (`privateChain(url)` from `mpp-edge/testing`), for tests that move chain time. */
  chainFactoryUrl: string
  /** The plain EVM chain's JSON-RPC URL (started with `startTestServices({ evm: true })`), with the token stand-in at `evmToken`. */
  evmRpcUrl: string
  /** The same URLs as workerd bindings, under the names this package's own tests read. */
  bindings: { TEST_TEMPO_RPC_URL: string; TEST_STRIPE_API_URL: string; TEST_SESSION_RPC_URL: string; TEST_CHAIN_FACTORY_URL: string; TEST_EVM_RPC_URL: string }
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
  process.env.MPP_TEST_SESSION_PORT ??= String(await freePort())
  process.env.MPP_TEST_CHAIN_FACTORY_PORT ??= String(await freePort())
  process.env.MPP_TEST_EVM_PORT ??= String(await freePort())
  const tempoRpcUrl = `http://127.0.0.1:${process.env.MPP_TEST_ANVIL_PORT}`
  const stripeApiUrl = `http://127.0.0.1:${process.env.MPP_TEST_STRIPE_PORT}`
  const sessionRpcUrl = `http://127.0.0.1:${process.env.MPP_TEST_SESSION_PORT}`
  const chainFactoryUrl = `http://127.0.0.1:${process.env.MPP_TEST_CHAIN_FACTORY_PORT}`
  const evmRpcUrl = `http://127.0.0.1:${process.env.MPP_TEST_EVM_PORT}`
  return {
    chainId: localChainId,
    tempoRpcUrl,
    stripeApiUrl,
    stripeSecretKey: testSecretKey,
    sessionRpcUrl,
    chainFactoryUrl,
    evmRpcUrl,
    bindings: {
      TEST_TEMPO_RPC_URL: tempoRpcUrl,
      TEST_STRIPE_API_URL: stripeApiUrl,
      TEST_SESSION_RPC_URL: sessionRpcUrl,
      TEST_CHAIN_FACTORY_URL: chainFactoryUrl,
      TEST_EVM_RPC_URL: evmRpcUrl,
    },
  }
}

/** Starts a session chain: its own anvil, the channel reserve stand-in, and the session shim on `port` (0: any free one). */
async function startSessionServices(port: number, runtime: Hex | undefined): Promise<{ url: string; stop: () => Promise<void> }> {
  const anvil = await startAnvil({ port: await freePort(), chainId: localChainId })
  try {
    const shim = await startSessionChain({ anvilUrl: anvil.url, port, runtime })
    return {
      url: shim.url,
      stop: async () => {
        await shim.stop()
        await anvil.stop()
      },
    }
  } catch (error) {
    await anvil.stop()
    throw error
  }
}

/** Options of `startTestServices`. */
export type TestServicesOptions = {
  /**
   * Also start the session chain and the factory of private session chains (for `pay.session` routes); `runtime`
   * replaces the committed build of the channel reserve stand-in.
   */
  sessions?: boolean | { runtime?: Hex | undefined } | undefined
  /** Also start the plain EVM chain with the EIP-3009 token stand-in (for `evm` routes); `runtime` replaces its committed build. */
  evm?: boolean | { runtime?: Hex | undefined } | undefined
}

/**
 * Starts the local chain and the local Stripe API (and, with `sessions`, the session chain and its factory; with
 * `evm`, the plain EVM chain) on
 * the ports `testServices` chose; resolves to a stop that ends them all (nothing is left running). Made to be
 * a vitest global setup's default export.
 * @example
 * // test/global-setup.ts, named in vitest.config.ts `test.globalSetup`
 * export default () => startTestServices({ sessions: true, evm: true })
 */
export async function startTestServices(options: TestServicesOptions = {}): Promise<() => Promise<void>> {
  await testServices()
  const stops: (() => Promise<void>)[] = []
  const stopAll = () => Promise.all(stops.map((stop) => stop())).then(() => undefined)
  try {
    const chain = await startAnvil({ port: Number(process.env.MPP_TEST_ANVIL_PORT), chainId: localChainId })
    stops.push(chain.stop)
    const stripeApi = await startStripeApi({ port: Number(process.env.MPP_TEST_STRIPE_PORT) })
    stops.push(stripeApi.stop)
    if (options.sessions) {
      const runtime = typeof options.sessions === 'object' ? options.sessions.runtime : undefined
      const session = await startSessionServices(Number(process.env.MPP_TEST_SESSION_PORT), runtime)
      stops.push(session.stop)
      const factory = await startChainFactory({ port: Number(process.env.MPP_TEST_CHAIN_FACTORY_PORT), start: () => startSessionServices(0, runtime) })
      stops.push(factory.stop)
    }
    if (options.evm) {
      const runtime = typeof options.evm === 'object' ? options.evm.runtime : undefined
      const evm = await startEvmChain({ port: Number(process.env.MPP_TEST_EVM_PORT), runtime })
      stops.push(evm.stop)
    }
    return stopAll
  } catch (error) {
    await stopAll()
    throw error
  }
}
