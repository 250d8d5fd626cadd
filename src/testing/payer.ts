/**
 * @module The paying test client: this package's `paymentFetch` with a Tempo wallet funded on the local chain
 * and a Stripe wallet whose Shared Payment Tokens the local Stripe API grants. It pays whatever it is asked
 * (it is a test payer) and records the credentials it sent, so a test can replay one.
 */
import type { PrivateKeyAccount } from 'viem/accounts'
import { type Step, type Wallet, paymentFetch } from '../client/fetch.js'
import { stripeWallet } from '../client/wallets/stripe.js'
import { tempoWallet } from '../client/wallets/tempo.js'
import { chainClient, fundedAccount } from './chain.js'
import { type Outcome, spt } from './stripe-fixtures.js'

/** Options of `testPayer`. */
export type TestPayerOptions = {
  /** The local chain's JSON-RPC URL; without it the payer has no Tempo wallet. */
  rpcUrl?: string | undefined
  /**
   * Sends each request: `(request) => SELF.fetch(request)` in vitest-pool-workers, the platform's `fetch`
   * (the default) against `wrangler dev`.
   */
  fetch?: ((request: Request) => Promise<Response>) | undefined
  /** Methods it pays with, in order of preference (default `['tempo', 'stripe']`, tempo only with `rpcUrl`). */
  methods?: readonly ('tempo' | 'stripe')[] | undefined
  /** How Tempo charges are paid: `pull` (the server broadcasts) or `push` (the payer does); default pull when offered. */
  mode?: 'pull' | 'push' | undefined
  /** The Tempo payer; default a fresh account funded with `funds` from the local chain's dev account. */
  account?: PrivateKeyAccount | undefined
  /** pathUSD base units a fresh account is funded with (default 10 pathUSD, 10_000_000). */
  funds?: bigint | undefined
  /** What the local Stripe API does with the payer's tokens (default `ok`: the PaymentIntent succeeds). */
  stripeOutcome?: Outcome | undefined
  /** Progress callback, as `paymentFetch` has it. */
  onStep?: ((step: Step) => void) | undefined
}

/** A paying test client. */
export type TestPayer = {
  /** A fetch that pays 402 challenges. */
  fetch: (input: RequestInfo | URL, init?: RequestInit) => Promise<Response>
  /** The Tempo payer account, when the payer has a Tempo wallet. */
  account: PrivateKeyAccount | undefined
  /** Every `Authorization: Payment …` header sent, in order. */
  credentials: string[]
}

/**
 * A test payer for the local chain and the local Stripe API.
 * @example
 * const payer = await testPayer({ rpcUrl: env.TEST_TEMPO_RPC_URL, fetch: (request) => SELF.fetch(request), mode: 'push' })
 * const response = await payer.fetch('https://api.example.com/report') // 200, with a Payment-Receipt
 */
export async function testPayer(options: TestPayerOptions = {}): Promise<TestPayer> {
  const send = options.fetch ?? ((request: Request) => fetch(request))
  const credentials: string[] = []
  const methods = options.methods ?? (options.rpcUrl ? ['tempo', 'stripe'] : ['stripe'])
  let account: PrivateKeyAccount | undefined
  const wallets: Wallet[] = []
  for (const method of methods) {
    if (method === 'tempo') {
      if (!options.rpcUrl) throw new Error('testPayer: a Tempo wallet needs rpcUrl (the local chain)')
      account = options.account ?? (await fundedAccount(chainClient(options.rpcUrl), options.funds ?? 10_000_000n))
      wallets.push(tempoWallet({ account, rpcUrl: options.rpcUrl, mode: options.mode }))
    } else {
      wallets.push(stripeWallet({ token: () => spt(options.stripeOutcome ?? 'ok') }))
    }
  }
  const recording = ((input: RequestInfo | URL, init?: RequestInit) => {
    const request = new Request(input, init)
    const authorization = request.headers.get('authorization')
    if (authorization?.startsWith('Payment ')) credentials.push(authorization)
    return send(request)
  }) as typeof fetch
  const pay = paymentFetch({ wallets, approve: () => true, fetch: recording, onStep: options.onStep })
  return { fetch: pay, account, credentials }
}
