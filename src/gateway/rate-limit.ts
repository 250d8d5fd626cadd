/** @module Per-client-IP limits on challenge issuance and verification attempts. */
import type { Settings } from './settings.js'

/** What is being limited: asking for a challenge, or presenting a credential. */
export type Attempt = 'challenge' | 'verify'

/**
 * The counting window of the Durable Object counter; limits are per minute.
 * @example
 * await counter.hit('challenge', limit, windowMs)
 */
export const windowMs = 60_000

/**
 * Counts an attempt from a client; resolves to the seconds to wait when it is over the limit. Uses the
 * Cloudflare rate limiting binding for that kind when bound, the RateCounter Durable Object otherwise.
 * A limiter that fails lets the request through (it protects capacity, it does not guard money).
 * @example
 * const wait = await overLimit(settings, 'challenge', request.headers.get('cf-connecting-ip') ?? 'unknown')
 * if (wait) return tooManyRequests(wait)
 */
export async function overLimit(settings: Settings, attempt: Attempt, client: string): Promise<number | undefined> {
  const limit = settings.limits[attempt]
  if (limit === 0) return undefined
  const binding = attempt === 'challenge' ? settings.challengeLimiter : settings.verifyLimiter
  try {
    if (binding) {
      const { success } = await binding.limit({ key: `${attempt}:${client}` })
      // The binding's period is 10 or 60 seconds (wrangler.toml); waiting the longer one is always enough.
      return success ? undefined : 60
    }
    const namespace = settings.rateCounter!
    const decision = await namespace.get(namespace.idFromName(client)).hit(attempt, limit, windowMs)
    return decision.allowed ? undefined : decision.retryAfter
  } catch (error) {
    console.error(JSON.stringify({ event: 'rate-limiter-error', attempt, error: String(error) }))
    return undefined
  }
}
