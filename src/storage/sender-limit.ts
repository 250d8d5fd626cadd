/** @module Per-sender fee-sponsorship limits over the SenderLimit Durable Object, shared by every isolate. */
import { PaymentUnavailableError } from '../core/Errors.js'
import { type SenderGate, type SponsorPolicy, defaultPolicy, senderLimitError } from '../methods/tempo/fee-payer.js'
import type { SenderLimit } from './SenderLimit.js'

/**
 * Sponsorship limits per sender, held in one SenderLimit object per (sponsor, sender): at most
 * `policy.maxInFlightPerSender` transactions in flight, and a refusal after `policy.maxRevertsPerSender`
 * reverted ones within `policy.revertWindowSeconds`.
 * @example
 * tempo({ chainId, recipient, feePayer: { privateKey, senders: senderLimit(env.SENDER_LIMIT, sponsor, policy) } })
 */
export function senderLimit(namespace: DurableObjectNamespace<SenderLimit>, sponsor: string, policy: Partial<SponsorPolicy> = {}): SenderGate {
  const { maxInFlightPerSender, maxRevertsPerSender, revertWindowSeconds } = { ...defaultPolicy, ...policy }
  const limits = { maxInFlight: maxInFlightPerSender, maxReverts: maxRevertsPerSender, windowMs: revertWindowSeconds * 1000 }
  const object = (sender: string) => namespace.get(namespace.idFromName(`sender:${sponsor.toLowerCase()}:${sender.toLowerCase()}`))
  const unavailable = (error: unknown) => new PaymentUnavailableError({ detail: 'fee sponsorship is unavailable', retryAfter: 2, cause: error })
  return {
    async begin(sender, hash, until) {
      let result: Awaited<ReturnType<SenderLimit['begin']>>
      try {
        result = await object(sender).begin(hash, until, limits)
      } catch (error) {
        throw unavailable(error)
      }
      if (!result.ok) throw senderLimitError(result.reason, result.until, { maxRevertsPerSender, revertWindowSeconds })
    },
    async end(sender, hash, outcome) {
      try {
        await object(sender).end(hash, outcome, limits)
      } catch (error) {
        // A lost end leaves the slot to expire at its lease; only a lost revert count is a loss, so say so.
        console.error(JSON.stringify({ event: 'sender-limit-error', outcome, error: String(error) }))
      }
    },
  }
}
