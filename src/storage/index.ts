/** @module Durable Object classes and the stores built on them. */
export { IdempotencyCache } from './IdempotencyCache.js'
export { idempotencyKey, idempotencyStore } from './idempotency.js'
export { ReplayGuard } from './ReplayGuard.js'
export { replayStore } from './replay-store.js'
