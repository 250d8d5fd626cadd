/**
 * Conformance adapter commands for the stripe method. `verify-stripe-external-id-binding` runs a vector's
 * request, payload and PaymentIntent through the stripe method's own verify step (the attribution and replay
 * checks the worker runs), with Stripe answering as the vector says, and reports the receipt or the error type.
 */
import * as v from 'valibot'
import * as Challenge from '../../src/core/Challenge.js'
import { VerificationFailedError, isPaymentError } from '../../src/core/Errors.js'
import * as Receipt from '../../src/core/Receipt.js'
import * as ReplayStore from '../../src/core/ReplayStore.js'
import { stripe } from '../../src/methods/stripe/method.js'
import type { Request } from '../../src/methods/stripe/schema.js'

/** The conformance suite's fixed clock: vectors expect receipts stamped with it. */
export const conformanceNow = '2026-01-29T12:00:30Z'

const Input = v.object({
  request: v.looseObject({
    amount: v.string(),
    currency: v.string(),
    externalId: v.optional(v.string()),
    methodDetails: v.optional(v.looseObject({ networkId: v.optional(v.string()), paymentMethodTypes: v.optional(v.array(v.string())) })),
  }),
  payload: v.unknown(),
  paymentIntent: v.object({ id: v.string(), status: v.string(), replayed: v.optional(v.boolean()) }),
  now: v.optional(v.pipe(v.string(), v.isoTimestamp())),
})

type Answer = { ok: true; receipt: Record<string, unknown> } | { ok: false; errorType: string }

/**
 * Verifies a vector's Stripe credential and answers `{ ok, receipt }` or `{ ok: false, errorType }`.
 * @example
 * await verifyExternalIdBinding({ request, payload, paymentIntent: { id: 'pi_1', status: 'succeeded' } })
 */
export async function verifyExternalIdBinding(input: unknown): Promise<Answer> {
  const { request, payload, paymentIntent, now: clock } = v.parse(Input, input)
  const now = new Date(clock ?? conformanceNow)
  const method = stripe({
    secretKey: 'sk_test_conformance',
    networkId: request.methodDetails?.networkId ?? 'profile_conformance',
    fetch: stripeAnswering(paymentIntent),
  })
  const parsedPayload = v.safeParse(method.payload, payload)
  if (!parsedPayload.success) return { ok: false, errorType: 'malformed_credential' }
  const challenge = await Challenge.create({
    secret: 'conformance-adapter-secret-0123456789abcdef',
    realm: 'conformance.example',
    method: 'stripe',
    intent: 'charge',
    request,
    expires: new Date(now.getTime() + 300_000).toISOString(),
  })
  // The same single-use rule the server applies around verify: a reference settles one challenge.
  const store = ReplayStore.memory()
  try {
    const settlement = await method.verify({
      challenge,
      request: request as unknown as Request,
      credential: { challenge: Challenge.toEchoed(challenge), payload: parsedPayload.output },
      claimReference: async (reference) => {
        if (!(await store.claimReference(`stripe:${reference}`, challenge.id))) {
          throw new VerificationFailedError({ detail: 'this payment already settled another challenge' })
        }
      },
      commit: async () => {},
      expired: false,
      issuedAt: now,
      resumed: false,
      now,
    })
    const receipt = Receipt.from({ method: 'stripe', reference: settlement.reference, ...settlement.receipt, now })
    return { ok: true, receipt: { ...receipt, timestamp: receipt.timestamp.replace(/\.\d{3}Z$/, 'Z') } }
  } catch (error) {
    if (isPaymentError(error)) return { ok: false, errorType: error.problem.replace(/-/g, '_') }
    throw error
  }
}

/** Stripe as the vector describes it: the created PaymentIntent has the vector's id and status, replayed or not. */
function stripeAnswering(intent: { id: string; status: string; replayed?: boolean | undefined }): typeof fetch {
  return async (_input, init) => {
    const form = new URLSearchParams(String(init?.body ?? ''))
    const metadata = Object.fromEntries([...form].filter(([k]) => k.startsWith('metadata[')).map(([k, value]) => [k.slice(9, -1), value]))
    const body = { id: intent.id, object: 'payment_intent', status: intent.status, amount: Number(form.get('amount')), currency: form.get('currency'), metadata }
    const headers = new Headers({ 'content-type': 'application/json' })
    if (intent.replayed) headers.set('idempotent-replayed', 'true')
    return new Response(JSON.stringify(body), { status: 200, headers })
  }
}

/** Adapter commands by operation name (input = a vector scenario's `input`). */
export const commands: Record<string, (input: unknown) => Promise<unknown>> = {
  'verify-stripe-external-id-binding': verifyExternalIdBinding,
}
