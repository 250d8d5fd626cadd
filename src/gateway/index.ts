/**
 * @module The deployable gateway worker (wrangler.toml `main`): `mpp-edge/gateway` with this repository's
 * pricing.json. Settings, pricing.json and the method configurations are checked at module load: a bad one
 * stops the worker from starting (and `wrangler deploy` from publishing it), and the error names the
 * setting or the pricing entry.
 */
import pricing from '../../pricing.json'
import { createGateway } from './public.js'

export { ChannelState, IdempotencyCache, PayerChannels, RateCounter, ReplayGuard, SenderLimit, SponsorGate } from './public.js'

const gateway = createGateway({ pricing })

export default {
  fetch: (request, _env, ctx) => gateway.fetch(request, ctx),
} satisfies ExportedHandler
