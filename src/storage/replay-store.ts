/** @module A ReplayStore over sharded ReplayGuard Durable Objects. */
import type { ReplayStore } from '../core/ReplayStore.js'
import type { ReplayGuard } from './ReplayGuard.js'

/**
 * Default number of shards: challenge ids and references spread over this many objects.
 * @example
 * replayStore(env.REPLAY_GUARD, defaultShards)
 */
export const defaultShards = 32

/**
 * Builds the replay store: challenge ids and references hash to shards independently, so no single
 * object carries all traffic.
 * @example
 * const store = replayStore(env.REPLAY_GUARD)
 */
export function replayStore(namespace: DurableObjectNamespace<ReplayGuard>, shards = defaultShards): ReplayStore {
  // Asked for on every request, paid or not: one store per binding and shard count, not a new one each time.
  let byShards = stores.get(namespace)
  if (!byShards) stores.set(namespace, (byShards = new Map()))
  let store = byShards.get(shards)
  if (!store) byShards.set(shards, (store = build(namespace, shards)))
  return store
}

const stores = new WeakMap<object, Map<number, ReplayStore>>()

function build(namespace: DurableObjectNamespace<ReplayGuard>, shards: number): ReplayStore {
  const guard = (key: string) => namespace.get(namespace.idFromName(`replay:${shardOf(key, shards)}`))
  return {
    begin: (id, attempt, leaseUntil, expiresAt, credential) => guard(`c:${id}`).begin(id, attempt, leaseUntil, expiresAt, credential),
    commit: (id, attempt, reference, credential) => guard(`c:${id}`).commit(id, attempt, reference, credential),
    renew: (id, attempt, leaseUntil) => guard(`c:${id}`).renew(id, attempt, leaseUntil),
    fail: (id, attempt) => guard(`c:${id}`).fail(id, attempt),
    claimReference: (reference, challengeId, keepUntil) => guard(`r:${reference}`).claimReference(reference, challengeId, keepUntil),
    settle: (id, attempt, reference, credential, leaseUntil) => guard(`c:${id}`).settle(id, attempt, reference, credential, leaseUntil),
    deliver: (id, attempt) => guard(`c:${id}`).deliver(id, attempt),
    release: (id, attempt) => guard(`c:${id}`).release(id, attempt),
  }
}

/**
 * FNV-1a of a key, reduced to a shard index.
 * @example
 * shardOf('c:abc', 32) // 0..31
 */
export function shardOf(key: string, shards: number): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return (hash >>> 0) % shards
}
