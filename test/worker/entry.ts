/** Test worker entry: exports the Durable Object classes so tests get real bindings. */
export { ReplayGuard } from '../../src/storage/ReplayGuard.js'
export { IdempotencyCache } from '../../src/storage/IdempotencyCache.js'
export { SponsorGate } from '../../src/storage/SponsorGate.js'
export { ChannelState } from '../../src/storage/ChannelState.js'
export { PayerChannels } from '../../src/storage/PayerChannels.js'
export { SenderLimit } from '../../src/storage/SenderLimit.js'

export default {
  fetch: () => new Response('mpp-edge test worker', { status: 404 }),
} satisfies ExportedHandler
