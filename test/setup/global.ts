/**
 * Starts the real services the suite needs (a Tempo-mode anvil chain, the local Stripe API server)
 * on the ports vitest.config.ts chose, and stops them afterwards.
 */
import { startAnvil } from '../support/anvil.js'
import { startStripeApi } from '../support/stripe-api.js'

export default async function setup() {
  const stops: (() => Promise<void>)[] = []
  const anvil = await startAnvil({ port: Number(process.env.MPP_TEST_ANVIL_PORT) })
  stops.push(anvil.stop)
  const stripeApi = await startStripeApi({ port: Number(process.env.MPP_TEST_STRIPE_PORT) })
  stops.push(stripeApi.stop)
  return async () => {
    await Promise.all(stops.map((stop) => stop()))
  }
}
