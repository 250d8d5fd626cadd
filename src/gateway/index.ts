/**
 * @module The deployable gateway worker (wrangler.toml `main`). Settings, pricing.json and the method
 * configurations are checked at module load: a bad one stops the worker from starting (and `wrangler
 * deploy` from publishing it), and the error names the setting or the pricing entry.
 */
import { env } from 'cloudflare:workers'
import pricing from '../../pricing.json'
import { createGateway } from './gateway.js'
import { methodFactories } from './methods.js'
import type { GatewayEnv } from './settings.js'

export { ChannelState } from '../storage/ChannelState.js'
export { IdempotencyCache } from '../storage/IdempotencyCache.js'
export { PayerChannels } from '../storage/PayerChannels.js'
export { ReplayGuard } from '../storage/ReplayGuard.js'
export { SponsorGate } from '../storage/SponsorGate.js'
export { RateCounter } from './RateCounter.js'

const gateway = createGateway({ pricing, env: env as unknown as GatewayEnv, factories: methodFactories })

export default {
  fetch: (request) => gateway.fetch(request),
} satisfies ExportedHandler
