/**
 * @module Voucher rate limiting per channel (draft-tempo-session-00, "Denial of Service": servers limit voucher
 * submissions to 10 per second per session), as a pure function over one number kept by the channel's object: the
 * time the next submission is due (the generic cell rate algorithm). A burst is taken at once; submissions beyond it
 * are spaced at the rate, waiting at most `maxDelayMs`; past that they are refused with a `Retry-After`.
 */

/** The limit: `perSecond` sustained, `burst` at once, and how long a submission over the burst may wait its turn. */
export type Rule = { perSecond: number; burst: number; maxDelayMs: number }

/**
 * The spec's limit: 10 voucher submissions per second per channel, 10 at once, a short wait before a refusal (so a
 * paused stream's voucher is slowed, not refused, when the payer keeps to the rate).
 * @example
 * VoucherPacing.pace(due, Date.now(), VoucherPacing.defaultRule)
 */
export const defaultRule: Rule = { perSecond: 10, burst: 10, maxDelayMs: 1000 }

/** A submission admitted after `waitMs` (0 within the burst), with the next due time to keep; or refused. */
export type Decision = { admitted: true; waitMs: number; due: number } | { admitted: false; retryAfterSeconds: number }

/**
 * Decides one submission arriving at `now` (ms), given the due time kept from the previous one (0 at first).
 * @example
 * const decision = VoucherPacing.pace(this.due, Date.now())
 * if (!decision.admitted) throw new RateLimitedError({ retryAfter: decision.retryAfterSeconds })
 * this.due = decision.due
 */
export function pace(due: number, now: number, rule: Rule = defaultRule): Decision {
  const interval = 1000 / rule.perSecond
  const tolerance = (rule.burst - 1) * interval
  const start = Math.max(due, now)
  const waitMs = Math.max(0, start - now - tolerance)
  if (waitMs > rule.maxDelayMs) return { admitted: false, retryAfterSeconds: Math.max(1, Math.ceil((waitMs - rule.maxDelayMs) / 1000)) }
  return { admitted: true, waitMs, due: start + interval }
}
