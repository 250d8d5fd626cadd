/** @module The Durable Object that counts challenge and verification attempts of one client IP. */
import { DurableObject } from 'cloudflare:workers'

/** The answer of one counted attempt. */
export type RateDecision = { allowed: boolean; retryAfter: number }

/**
 * Fixed-window counters, one object per client IP (`idFromName(ip)`). Counts live in memory: an object
 * that is evicted forgets them, which only ever lets a client through early, never blocks one wrongly.
 * @example
 * const counter = env.RATE_COUNTER.get(env.RATE_COUNTER.idFromName(ip))
 * const { allowed, retryAfter } = await counter.hit('challenge', 120, 60_000)
 */
export class RateCounter extends DurableObject {
  private readonly windows = new Map<string, { start: number; count: number }>()

  /** Counts one attempt of `kind`; refuses it past `limit` attempts in the current window. */
  async hit(kind: string, limit: number, windowMs: number): Promise<RateDecision> {
    const now = Date.now()
    let window = this.windows.get(kind)
    if (!window || now - window.start >= windowMs) {
      window = { start: now, count: 0 }
      this.windows.set(kind, window)
    }
    if (window.count >= limit) return { allowed: false, retryAfter: Math.max(1, Math.ceil((window.start + windowMs - now) / 1000)) }
    window.count++
    return { allowed: true, retryAfter: 0 }
  }
}
