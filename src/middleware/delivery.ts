/** @module Delivering a paid response: spend the challenge, attach the receipt, keep it for Idempotency-Key retries. */
import type { CredentialHeader } from '../core/Challenge.js'
import { OriginFailedError, PaymentUnavailableError, isPaymentError } from '../core/Errors.js'
import * as PaidResponse from '../core/PaidResponse.js'
import * as Server from '../core/Server.js'
import { type Idempotency, idempotencyKey, maxStoredBody, storableBody } from '../storage/idempotency.js'

/** Where a retry's response is kept: the store and the key derived from the Idempotency-Key and credential. */
export type ReplaySlot = { idempotency: Idempotency; key: string }

/**
 * The replay slot of a request carrying both an Idempotency-Key and a credential; undefined otherwise.
 * @example
 * const slot = await Delivery.replaySlot(idempotency, request, 'Payment-Authorization')
 */
export async function replaySlot(
  idempotency: Idempotency | undefined,
  request: Request,
  credentialHeader: CredentialHeader = 'Authorization',
): Promise<ReplaySlot | undefined> {
  const key = request.headers.get('idempotency-key')
  // Keyed by the header holding the credential: an application's own `Authorization` is not proof of payment.
  const credential = request.headers.get(credentialHeader)
  if (!idempotency || !key || !credential || key.length > 255) return undefined
  return { idempotency, key: await idempotencyKey(key, credential) }
}

/**
 * The stored response for a retry, if the first request was served.
 * @example
 * const stored = slot && (await Delivery.replayed(slot))
 * if (stored) return stored
 */
export async function replayed(slot: ReplaySlot): Promise<Response | undefined> {
  const stored = await slot.idempotency.get(slot.key).catch(() => undefined)
  return stored && new Response(stored.body, { status: stored.status, headers: stored.headers })
}

/**
 * Completes a paid request with a successful response: keeps a copy for retries, spends the challenge, then
 * answers with the receipt. If the challenge cannot be spent, the response is withheld: serving it would
 * leave the challenge open to be served again. With a replay slot, a body small enough to keep is read
 * before the challenge is spent: a body that fails mid-stream releases the challenge (502 with the reference),
 * so the payer is served by a retry instead of finding the payment used. The copy is stored before the spend
 * too, so an Idempotency-Key retry racing the spend finds the answer instead of a used challenge.
 * @example
 * return Delivery.complete(outcome, await fetch(origin), slot)
 */
export async function complete(paid: Server.Paid, response: Response, slot?: ReplaySlot | undefined): Promise<Response> {
  let read: Awaited<ReturnType<typeof storableBody>> | undefined
  if (slot) {
    // Only a body small enough to store is read before it is sent; a larger one streams through unstored.
    try {
      read = await storableBody(response.body, maxStoredBody)
    } catch {
      await paid.release()
      const detail = `the response failed while it was read after the payment settled; send the same request with the same credential before ${paid.deadline} to be served without paying again`
      return Server.problemResponse(new OriginFailedError({ detail }), { reference: paid.settlement.reference, challengeId: paid.challenge.id, method: paid.challenge.method })
    }
  }
  // Core spec, "Caching": a response carrying a receipt is private; its other directives stay.
  const delivered = PaidResponse.withReceipt(read ? new Response(read.body, { status: response.status, statusText: response.statusText, headers: response.headers }) : response, paid.receipt)
  if (slot && read?.stored) {
    const expiresAt = Date.parse(paid.challenge.expires ?? '') || Date.now() + 300_000
    await slot.idempotency.put(slot.key, { status: delivered.status, headers: [...delivered.headers.entries()], body: read.stored }, expiresAt).catch(() => {})
  }
  try {
    await paid.deliver()
  } catch (error) {
    await delivered.body?.cancel().catch(() => {})
    await paid.release()
    return Server.problemResponse(isPaymentError(error) ? error : new PaymentUnavailableError({ retryAfter: 1 }))
  }
  return delivered
}

/**
 * Passes on an error response of a paid request without spending it: the payment stays settled and the same
 * credential may retry until the challenge expires and the redelivery grace after it. Core spec: an error never carries a receipt.
 * @example
 * if (response.status >= 400) return Delivery.withhold(outcome, response)
 */
export async function withhold(paid: Server.Paid, response: Response): Promise<Response> {
  await paid.release()
  const headers = new Headers(response.headers)
  headers.delete('payment-receipt')
  headers.set('cache-control', 'no-store')
  return new Response(response.body, { status: response.status, statusText: response.statusText, headers })
}
