/**
 * @module `mpp-edge/testing/node`, for vitest configs, global setups and scripts in Node (never in a worker):
 * the local services paid routes are tested against (`testServices`, `startTestServices`), the local Tempo
 * chain (`startAnvil`: `anvil --network tempo --hardfork T4` from the `@foundry-rs/anvil` package), the local Stripe API
 * server (`startStripeApi`: a test double of Stripe's HTTP API, never for production), and loopback helpers
 * (`freePort`, `listen`).
 */
export { anvilArgs, anvilBinary, rpc, startAnvil } from './anvil.js'
export { freePort, listen } from './ports.js'
export { startTestServices, testServices, type TestServices } from './services.js'
export { startStripeApi, type StripeApi } from './stripe-api.js'
