/** @module A fee-sponsorship gate over the SponsorGate Durable Object. */
import { PaymentUnavailableError } from '../core/Errors.js'
import type { SponsorGate } from './SponsorGate.js'

/** Takes a slot for one sponsored transaction; resolves to its release. Throws 503 at capacity. */
export type Gate = { acquire: () => Promise<() => Promise<void>> }

/**
 * A gate shared by every isolate: at most `max` sponsored transactions in flight for one sponsor.
 * @example
 * tempo({ chainId, recipient, feePayer: { privateKey, gate: sponsorGate(env.SPONSOR_GATE, sponsor, 16) } })
 */
export function sponsorGate(namespace: DurableObjectNamespace<SponsorGate>, sponsor: string, max: number, leaseMs = 90_000): Gate {
  const gate = () => namespace.get(namespace.idFromName(`sponsor:${sponsor.toLowerCase()}`))
  return {
    async acquire() {
      let slot: string | null
      try {
        slot = await gate().acquire(max, leaseMs)
      } catch (error) {
        throw new PaymentUnavailableError({ detail: 'fee sponsorship is unavailable', retryAfter: 2, cause: error })
      }
      if (slot === null) throw new PaymentUnavailableError({ detail: 'fee sponsorship is at capacity', retryAfter: 2 })
      // The lease frees a slot whose release is lost, so a failed release must not fail the payment.
      return () => gate().release(slot).catch(() => {})
    },
  }
}
