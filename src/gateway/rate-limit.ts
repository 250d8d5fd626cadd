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

/**
 * The key a client is limited under: an IPv4 address as it is, an IPv6 address by its /64 (one subscriber's
 * network: a single host can use any of its 2^64 addresses), IPv4-mapped IPv6 as the IPv4 address.
 * @example
 * clientKey('2001:db8:1:2:aaaa::1') // '2001:db8:1:2::/64'
 * clientKey('203.0.113.7') // '203.0.113.7'
 */
export function clientKey(ip: string | null): string {
  if (!ip) return 'unknown'
  if (!ip.includes(':')) return ip
  const address = ip.trim().toLowerCase().replace(/^\[|\]$/g, '').split('%')[0]!
  const mapped = /^(?:0{0,4}:){0,5}(?:0{0,4}:)?ffff:(\d{1,3}(?:\.\d{1,3}){3})$/.exec(address.replace(/^::/, '0:'))
  if (mapped) return mapped[1]!
  const [head = '', tail] = address.split('::')
  const left = head ? head.split(':') : []
  const right = tail !== undefined && tail !== '' ? tail.split(':') : []
  // An embedded IPv4 tail counts as two groups; the /64 never reaches it unless it is in the first four.
  const groups = tail === undefined ? left : [...left, ...Array(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right]
  const prefix = groups.slice(0, 4).map((group) => (/^[0-9a-f]{1,4}$/.test(group) ? group.replace(/^0+(?=.)/, '') : null))
  if (prefix.length < 4 || prefix.includes(null)) return address
  return `${prefix.join(':')}::/64`
}
