/** @module Replaying paid responses for `Idempotency-Key` retries (core spec, "Idempotency"). */
import type { IdempotencyCache, StoredResponse } from './IdempotencyCache.js'

/** Stores and replays paid responses. */
export type Idempotency = {
  get(key: string): Promise<StoredResponse | undefined>
  put(key: string, response: StoredResponse, expiresAt: number): Promise<void>
}

/**
 * An Idempotency store over IdempotencyCache objects, sharded by key.
 * @example
 * const idempotency = idempotencyStore(env.IDEMPOTENCY_CACHE)
 */
export function idempotencyStore(namespace: DurableObjectNamespace<IdempotencyCache>, shards = 16): Idempotency {
  const cache = (key: string) => namespace.get(namespace.idFromName(`idem:${parseInt(key.slice(0, 4), 16) % shards}`))
  return {
    get: async (key) => (await cache(key).get(key)) as StoredResponse | undefined,
    put: (key, response, expiresAt) => cache(key).put(key, response, expiresAt),
  }
}

/**
 * The cache key of a retry: a hash of the Idempotency-Key and the whole credential, so only the holder
 * of that exact credential can read the stored response.
 * @example
 * const key = await idempotencyKey(c.req.header('idempotency-key')!, c.req.header('authorization')!)
 */
export async function idempotencyKey(key: string, authorization: string): Promise<string> {
  const bytes = new TextEncoder().encode(`${key}\n${authorization}`)
  const hash = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))
  return [...hash].map((b) => b.toString(16).padStart(2, '0')).join('')
}

