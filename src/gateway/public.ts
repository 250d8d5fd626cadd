/**
 * @module `mpp-edge/gateway`: the gateway as a library, for a gateway worker with your own pricing table.
 * Holds `createGateway` (settings from the worker's env, the stock `tempo` and `stripe` methods unless you
 * pass `factories`; `tempo` sessions for routes with the `session` intent unless you pass `sessionFactories`),
 * `methodFactories`, `sessionMethodFactories`, `parsePricing`, the errors raised at start-up (`SettingsError`,
 * `PricingError`), and the Durable Object classes the gateway binds (`ReplayGuard`, `IdempotencyCache`,
 * `RateCounter`, `SponsorGate`, `SenderLimit`, and for session-priced routes `ChannelState` and `PayerChannels`), which your
 * worker's main module must export.
 */
import { env as workerEnv } from 'cloudflare:workers'
import { createGateway as build, type Gateway, type GatewayOptions } from './gateway.js'
import { methodFactories, type MethodFactories } from './methods.js'
import type { GatewayEnv } from './settings.js'

export { ChannelState } from '../storage/ChannelState.js'
export { IdempotencyCache } from '../storage/IdempotencyCache.js'
export { PayerChannels } from '../storage/PayerChannels.js'
export { ReplayGuard } from '../storage/ReplayGuard.js'
export { SponsorGate } from '../storage/SponsorGate.js'
export { SenderLimit } from '../storage/SenderLimit.js'
export { RateCounter } from './RateCounter.js'
export { reservedPaths, type Gateway } from './gateway.js'
export { methodFactories, sessionMethodFactories, type MethodFactory, type MethodFactories, type SessionMethodFactory, type SessionMethodFactories } from './methods.js'
export { parsePricing, PricingError, type PricingTable, type RouteEntry } from './pricing.js'
export { SettingsError, type GatewayEnv, type RateLimitBinding } from './settings.js'

/** Options of `createGateway`: a pricing table, and optionally the env and method factories. */
export type CreateGatewayOptions = Omit<GatewayOptions, 'env' | 'factories'> & {
  /** Bindings, variables and secrets (default: the worker's `env` from `cloudflare:workers`). */
  env?: GatewayEnv | undefined
  /** Method factories by name (default `methodFactories`: `tempo` and `stripe`). */
  factories?: MethodFactories | undefined
}

/**
 * Builds a gateway from a pricing table; settings, pricing and methods are checked here, and an error names
 * what is wrong. Call it at module load so a bad configuration stops the worker from starting.
 * @example
 * import pricing from './pricing.json'
 * import { createGateway } from 'mpp-edge/gateway'
 * export { ChannelState, IdempotencyCache, PayerChannels, RateCounter, ReplayGuard, SenderLimit, SponsorGate } from 'mpp-edge/gateway'
 * const gateway = createGateway({ pricing })
 * export default { fetch: (request, _env, ctx) => gateway.fetch(request, ctx) } satisfies ExportedHandler
 */
export function createGateway(options: CreateGatewayOptions): Gateway {
  const { env, factories, ...rest } = options
  return build({ ...rest, env: env ?? (workerEnv as unknown as GatewayEnv), factories: factories ?? methodFactories })
}
