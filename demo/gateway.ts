/**
 * @module The demo gateway worker (demo/wrangler.toml `main`): the deployable gateway's code with the demo
 * pricing table. It differs from src/gateway/index.ts only in which pricing.json it bundles.
 */
import { env } from 'cloudflare:workers'
import { createGateway } from '../src/gateway/gateway.js'
import { methodFactories } from '../src/gateway/methods.js'
import type { GatewayEnv } from '../src/gateway/settings.js'
import pricing from './pricing.json'

export { ChannelState } from '../src/storage/ChannelState.js'
export { IdempotencyCache } from '../src/storage/IdempotencyCache.js'
export { PayerChannels } from '../src/storage/PayerChannels.js'
export { ReplayGuard } from '../src/storage/ReplayGuard.js'
export { SponsorGate } from '../src/storage/SponsorGate.js'
export { RateCounter } from '../src/gateway/RateCounter.js'

const gateway = createGateway({ pricing, env: env as unknown as GatewayEnv, factories: methodFactories })

export default {
  fetch: (request) => gateway.fetch(request),
} satisfies ExportedHandler
