/** @module Who a Stripe payment is attributed to, and which PaymentIntents may pay an attempt (conformance vector stripe-external-id-binding). */
import { InvalidChallengeError, VerificationFailedError } from '../../core/Errors.js'

/**
 * Returns the externalId a receipt carries. It comes from the server-bound request only: when the challenge
 * bound one, the payload must echo it exactly; when it bound none, a payload-only externalId is ignored.
 * (The spec's receipt table says the receipt echoes the payload; the conformance vectors close that forgery hole.)
 * @example
 * attribute({ externalId: 'order-1' }, { externalId: 'order-1' }) // 'order-1'
 * attribute({}, { externalId: 'anything' }) // undefined
 */
export function attribute(request: { externalId?: string | undefined }, payload: { externalId?: string | undefined }): string | undefined {
  if (request.externalId === undefined) return undefined
  if (payload.externalId === undefined) {
    throw new InvalidChallengeError({ detail: 'the credential must echo the externalId this challenge bound' })
  }
  if (payload.externalId !== request.externalId) {
    throw new InvalidChallengeError({ detail: 'the credential externalId differs from the one this challenge bound' })
  }
  return request.externalId
}

/**
 * Refuses a PaymentIntent that Stripe replayed (`Idempotent-Replayed: true`) unless this attempt resumes an
 * earlier one for the same challenge that ended without an answer. A replay seen by a fresh attempt means the
 * key was used before outside our records (a delivered challenge, another deployment): it cannot pay again.
 * @example
 * assertReplayAllowed({ replayed: true, resumed: true }) // a timed-out attempt recovering its own PaymentIntent
 */
export function assertReplayAllowed(parameters: { replayed: boolean; resumed: boolean }): void {
  if (parameters.replayed && !parameters.resumed) {
    throw new VerificationFailedError({ detail: 'Stripe replayed a PaymentIntent from an earlier request; it cannot pay this challenge again' })
  }
}
