/**
 * @module The demo gateway worker (demo/wrangler.toml `main`): the deployable gateway's code with the demo
 * pricing table. It differs from src/gateway/index.ts only in which pricing.json it bundles.
 */
import { createGateway } from '../src/gateway/public.js'
import pricing from './pricing.json'

export { ChannelState, IdempotencyCache, PayerChannels, RateCounter, ReplayGuard, SenderLimit, SponsorGate } from '../src/gateway/public.js'

const gateway = createGateway({ pricing })

export default {
  fetch: (request) => gateway.fetch(request),
} satisfies ExportedHandler
