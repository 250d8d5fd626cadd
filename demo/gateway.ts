/**
 * @module The demo gateway worker (demo/wrangler.toml `main`): the deployable gateway's code with the demo
 * pricing table. It differs from src/gateway/index.ts only in which pricing.json it bundles, and in one demo
 * setting: payment channels are closed by an operator whose key `npm start` generates (TEMPO_PAYEE_KEY), since
 * the demo does not hold the recipient's key. Channels still pay the recipient.
 */
import { env } from 'cloudflare:workers'
import { createGateway } from '../src/gateway/public.js'
import { sponsorAccount } from '../src/methods/tempo/sponsor-account.js'
import pricing from './pricing.json'

export { ChannelState, IdempotencyCache, PayerChannels, RateCounter, ReplayGuard, SenderLimit, SponsorGate } from '../src/gateway/public.js'

const payeeKey = (env as { TEMPO_PAYEE_KEY?: string }).TEMPO_PAYEE_KEY
const operator = payeeKey ? sponsorAccount(payeeKey as `0x${string}`).address : undefined
const table = operator ? { ...pricing, methods: { ...pricing.methods, tempo: { ...pricing.methods.tempo, session: { operator } } } } : pricing

const gateway = createGateway({ pricing: table })

export default {
  fetch: (request, _env, ctx) => gateway.fetch(request, ctx),
} satisfies ExportedHandler
