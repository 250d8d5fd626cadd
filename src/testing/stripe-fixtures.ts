/**
 * @module Shared facts about the local Stripe API server (`mpp-edge/testing/node`, src/testing/node/stripe-api.ts), free of Node imports so
 * workerd tests can use them: the API key it accepts and how a token chooses its outcome.
 */

/**
 * The only secret key the local server accepts.
 * @example
 * stripe({ secretKey: testSecretKey, networkId: 'profile_test', apiBase: env.TEST_STRIPE_API_URL })
 */
export const testSecretKey = 'sk_test_mppedgeLocalServer0123456789'

/**
 * Outcomes a Shared Payment Token can ask the local server for, by its second segment (`spt_<outcome>_…`):
 * - ok: the PaymentIntent succeeds
 * - declined: 402 card_error card_declined/insufficient_funds (saved and replayed like any result)
 * - action: the PaymentIntent needs customer action (`requires_action`)
 * - expired: 400 on `shared_payment_granted_token`, the token has expired
 * - flaky: the first attempt gets 503 before execution (nothing saved); later attempts succeed
 * - error: 500 api_error, saved, so retries with the same key replay it
 * - ratelimited: 429 from the rate limiter, every time (nothing saved)
 * - slow: succeeds, but the answer comes after the server's slow delay
 * - slow_unindexed: like slow, and the PaymentIntent never shows in search results (Stripe's search index lags
 *   behind writes, usually by under a minute)
 * - processing: an asynchronous payment method; the PaymentIntent is created `processing` and the
 *   `processingRetrieves`-th retrieve (`GET /v1/payment_intents/{id}`) and every later one answer `succeeded`
 * - processing_fails: likewise, but it turns `requires_payment_method` (last_payment_error insufficient_funds)
 * - processing_held: stays `processing` until a test ends it with `POST /__test/resolve?token=…&status=…`
 * Any other token is unknown to Stripe (400 resource_missing).
 */
export type Outcome = (typeof outcomes)[number] | 'unknown'

/**
 * Every outcome a token can name.
 * @example
 * outcomes.includes('processing') // true
 */
export const outcomes = ['ok', 'declined', 'action', 'expired', 'flaky', 'error', 'ratelimited', 'slow', 'slow_unindexed', 'processing', 'processing_fails', 'processing_held'] as const

/**
 * The retrieve on which a `processing` (or `processing_fails`) PaymentIntent leaves `processing`, counted over
 * every retrieve of it: the stripe method's polling of one attempt reaches it.
 * @example
 * processingRetrieves // 3
 */
export const processingRetrieves = 3

/**
 * A fresh token asking for an outcome.
 * @example
 * spt('declined') // 'spt_declined_3f9a…'
 */
export function spt(outcome: Outcome = 'ok'): string {
  const random = [...crypto.getRandomValues(new Uint8Array(10))].map((b) => b.toString(16).padStart(2, '0')).join('')
  return `spt_${outcome}_${random}`
}

/** One request the local server received, as GET /__test/requests lists it. */
export type RecordedRequest = {
  seq: number
  method: string
  path: string
  /** Authorization scheme used and the key it carried. */
  auth: 'bearer' | 'basic' | 'none'
  apiKey: string | undefined
  contentType: string | undefined
  stripeVersion: string | undefined
  stripeAccount: string | undefined
  idempotencyKey: string | undefined
  /** The form fields as sent, bracket keys kept (`metadata[challenge_id]`). */
  params: Record<string, string>
  /** The token sent; for a retrieve, the token that created the PaymentIntent. */
  token: string | undefined
  /** Filled in once answered. */
  status?: number
  replayed?: boolean
  paymentIntent?: string
  error?: { type: string; code?: string | undefined }
  finished: boolean
}
