/**
 * @module `mpp-edge/testing/node`, for vitest configs, global setups and scripts in Node (never in a worker):
 * the local services paid routes are tested against (`testServices`, `startTestServices`), the local Tempo
 * chain (`startAnvil`: `anvil --network tempo --hardfork T4` from the `@foundry-rs/anvil` package), the local Stripe API
 * server (`startStripeApi`: a test double of Stripe's HTTP API, never for production), the session chain
 * (`startSessionChain`: the channel reserve stand-in and the JSON-RPC shim in front of an anvil), a factory of
 * private chains (`startChainFactory`), the plain EVM chain with the EIP-3009 token stand-in (`startEvmChain`), and
 * loopback helpers (`freePort`, `listen`).
 */
export { type AnvilNetwork, anvilArgs, anvilBinary, rpc, startAnvil } from './anvil.js'
export { type EvmChain, startEvmChain } from './evm-chain.js'
export { freePort, listen } from './ports.js'
export { startTestServices, testServices, type TestServices, type TestServicesOptions } from './services.js'
export { startSessionChain, type SessionChain, type SessionChainOptions } from './session-chain.js'
export { startChainFactory, type StartedChain } from './chain-factory.js'
export { startStripeApi, type StripeApi } from './stripe-api.js'
