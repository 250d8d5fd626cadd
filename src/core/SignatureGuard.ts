/**
 * @module Limits on bad voucher signatures (draft-tempo-session-00, "Denial of Service"): a voucher whose signature
 * does not recover, or recovers to someone other than the channel signer, costs a signature recovery and proves
 * nothing. Past `perClient` of them from one client, or `perChallenge` under one challenge, within `windowMs`,
 * further session credentials from that client or under that challenge are refused before any signature is checked.
 * Counted in memory per isolate (the recovery it saves is spent there too); the channel is never touched.
 */

/** The limits. */
export type Limits = { perClient: number; perChallenge: number; windowMs: number }

/**
 * 20 bad signatures a minute per client, 10 per challenge: a payer signing with the channel's key never sends one.
 * @example
 * const guard = SignatureGuard.create(SignatureGuard.defaultLimits)
 */
export const defaultLimits: Limits = { perClient: 20, perChallenge: 10, windowMs: 60_000 }

/** Who a credential comes from: the client (its IP, when known) and the challenge it echoes. */
export type Source = { client?: string | undefined; challengeId: string }

/** The counters of one route. */
export type Guard = {
  /** Seconds until `source` may send again, or undefined when it may now. */
  blocked: (source: Source, now: number) => number | undefined
  /** Counts one bad signature of `source`. */
  record: (source: Source, now: number) => void
}

/**
 * Creates the counters, keeping at most `maxKeys` windows (the oldest go first).
 * @example
 * const guard = SignatureGuard.create()
 * if (guard.blocked({ client, challengeId }, Date.now())) throw new RateLimitedError({ retryAfter: 60 })
 */
export function create(limits: Limits = defaultLimits, maxKeys = 10_000): Guard {
  const windows = new Map<string, { count: number; resetAt: number }>()
  const keys = (source: Source): [string, number][] => [
    ...(source.client ? [[`client ${source.client}`, limits.perClient] as [string, number]] : []),
    [`challenge ${source.challengeId}`, limits.perChallenge],
  ]
  return {
    blocked(source, now) {
      let wait: number | undefined
      for (const [key, limit] of keys(source)) {
        const window = windows.get(key)
        if (window && window.resetAt > now && window.count >= limit) wait = Math.max(wait ?? 0, Math.ceil((window.resetAt - now) / 1000))
      }
      return wait
    },
    record(source, now) {
      for (const [key] of keys(source)) {
        let window = windows.get(key)
        if (!window || window.resetAt <= now) {
          windows.delete(key)
          window = { count: 0, resetAt: now + limits.windowMs }
          windows.set(key, window)
          if (windows.size > maxKeys) windows.delete(windows.keys().next().value!)
        }
        window.count++
      }
    },
  }
}
