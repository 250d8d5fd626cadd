/** @module Waiting briefly for a PaymentIntent that Stripe answered `processing` (asynchronous payment methods). */
import { PaymentUnavailableError } from '../../core/Errors.js'
import type { Client, PaymentIntent } from './api.js'

/**
 * When to look again, as fractions of the budget after the previous look: three retrieves that together wait
 * 35% of the budget, leaving the rest for Stripe to answer them.
 * @example
 * pollWaits.map((f) => f * 10_000) // [500, 1000, 2000]
 */
export const pollWaits: readonly number[] = [0.05, 0.1, 0.2]

/**
 * Seconds a payer is told to wait before sending the same credential again while the payment is still processing.
 * @example
 * new PaymentUnavailableError({ retryAfter: processingRetryAfter })
 */
export const processingRetryAfter = 3

/** How to wait for one PaymentIntent. */
export type AwaitOptions = {
  /** Connected account the PaymentIntent was made on (`Stripe-Account`). */
  stripeAccount?: string | undefined
  /** The whole wait, retrieves included, in ms (the method's `timeoutMs`). */
  budgetMs: number
  /** Checks every retrieved PaymentIntent (same amount, currency and challenge); throws to refuse it. */
  check: (paymentIntent: PaymentIntent) => void
  /** Waits; `setTimeout` by default. */
  sleep?: ((ms: number) => Promise<void>) | undefined
}

/**
 * Retrieves a `processing` PaymentIntent a few times within the budget and returns it once it has left
 * `processing` (`succeeded`, `requires_payment_method`, `canceled`…). Still `processing` at the end is a
 * PaymentUnavailableError (503 + Retry-After): the payment may still succeed, so the payer must not be offered
 * a fresh challenge to pay again; the same credential, sent later, resumes and looks again (Stripe replays the
 * create answer under the same idempotency key, then the retrieve tells the current status).
 * @example
 * const settled = await awaitProcessing(api, paymentIntent, { budgetMs: 10_000, check: (pi) => assertSamePayment(pi, expected) })
 */
export async function awaitProcessing(api: Client, first: PaymentIntent, options: AwaitOptions): Promise<PaymentIntent> {
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)))
  const deadline = Date.now() + options.budgetMs
  for (const fraction of pollWaits) {
    const wait = Math.max(1, Math.round(options.budgetMs * fraction))
    if (Date.now() + wait >= deadline) break
    await sleep(wait)
    const { paymentIntent } = await api.retrievePaymentIntent(first.id, { stripeAccount: options.stripeAccount, timeoutMs: deadline - Date.now() })
    // Whatever answered must be the PaymentIntent we created, for this challenge.
    if (paymentIntent.id !== first.id) throw new PaymentUnavailableError({ detail: 'Stripe answered with another PaymentIntent', retryAfter: 2 })
    options.check(paymentIntent)
    if (paymentIntent.status !== 'processing') return paymentIntent
  }
  throw new PaymentUnavailableError({
    detail: 'the payment is still processing at Stripe; send the same credential again later (do not pay again)',
    retryAfter: processingRetryAfter,
  })
}
