/** @module Replaying paid responses for `Idempotency-Key` retries (core spec, "Idempotency"). */
import { concat, readUpTo } from '../core/Body.js'
import type { IdempotencyCache, StoredResponse } from './IdempotencyCache.js'

/**
 * Largest response body kept for replay; larger responses are not replayable.
 * @example
 * if (body.byteLength <= maxStoredBody) await cache.put(key, stored, expiresAt)
 */
export const maxStoredBody = 512 * 1024

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


/**
 * Reads a paid response body for storage when it is at most `max` bytes. A larger body is not stored: it is
 * passed on as a stream, the bytes already read first, so a large paid response is never held in memory whole.
 * @example
 * const { stored, body } = await storableBody(response.body, maxStoredBody)
 */
export async function storableBody(
  body: ReadableStream<Uint8Array> | null,
  max: number,
): Promise<{ stored: ArrayBuffer | undefined; body: ArrayBuffer | ReadableStream<Uint8Array> }> {
  if (!body) return { stored: new ArrayBuffer(0), body: new ArrayBuffer(0) }
  const reader = body.getReader()
  const { chunks, size, complete } = await readUpTo(reader, max)
  if (!complete) {
    // Too large to keep: pass it on as a stream, the bytes already read first.
    const rest = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const chunk of chunks) controller.enqueue(chunk)
      },
      async pull(controller) {
        const next = await reader.read()
        if (next.done) controller.close()
        else controller.enqueue(next.value)
      },
      cancel: (reason) => reader.cancel(reason),
    })
    return { stored: undefined, body: rest }
  }
  const bytes = concat(chunks, size)
  return { stored: bytes.buffer as ArrayBuffer, body: bytes.buffer as ArrayBuffer }
}
