/**
 * The replay store under concurrent load: `concurrency` workers each run begin → settle → deliver for fresh
 * challenge ids until `n` payments are done, through the real ReplayGuard Durable Objects, over `shards`
 * objects. Each call is timed in-isolate (the clock advances across the Durable Object round trips).
 */
import { replayStore } from '../../src/storage/replay-store.js'
import type { ReplayGuard } from '../../src/storage/ReplayGuard.js'

/** Latencies in ms per step, and the wall time of the whole load. */
export type ReplayLoad = { shards: number; concurrency: number; n: number; wallMs: number; begin: number[]; settle: number[]; deliver: number[] }

/**
 * Runs the load and returns every call's latency.
 * @example
 * const result = await replayLoad(env.REPLAY_GUARD, { shards: 1, concurrency: 16, n: 200 })
 */
export async function replayLoad(namespace: unknown, options: { shards: number; concurrency: number; n: number }): Promise<ReplayLoad> {
  const store = replayStore(namespace as DurableObjectNamespace<ReplayGuard>, options.shards)
  const result: ReplayLoad = { ...options, wallMs: 0, begin: [], settle: [], deliver: [] }
  let next = 0
  const timed = async <T>(into: number[], call: () => Promise<T>): Promise<T> => {
    const start = Date.now()
    const value = await call()
    into.push(Date.now() - start)
    return value
  }
  const worker = async () => {
    while (next < options.n) {
      next++
      const id = crypto.randomUUID()
      const attempt = crypto.randomUUID()
      const now = Date.now()
      const begun = await timed(result.begin, () => store.begin(id, attempt, now + 60_000, now + 300_000))
      if (begun.status !== 'fresh') throw new Error(`begin answered ${begun.status}`)
      if (!(await timed(result.settle, () => store.settle(id, attempt, `0x${id.replace(/-/g, '')}`, 'credential-digest', now + 60_000)))) throw new Error('settle refused')
      if (!(await timed(result.deliver, () => store.deliver(id, attempt)))) throw new Error('deliver refused')
    }
  }
  const start = Date.now()
  await Promise.all(Array.from({ length: options.concurrency }, worker))
  result.wallMs = Date.now() - start
  return result
}
