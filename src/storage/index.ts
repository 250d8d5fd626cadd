/** @module Durable Object classes and the stores built on them. */
export { IdempotencyCache } from './IdempotencyCache.js'
export { idempotencyKey, idempotencyStore } from './idempotency.js'
export { ReplayGuard } from './ReplayGuard.js'
export { replayStore } from './replay-store.js'
export { SponsorGate } from './SponsorGate.js'
export { type Gate, sponsorGate } from './sponsor-gate.js'
