/** @module The `stripe` method's challenge request and credential payload (draft-stripe-charge-00, "Request Schema", "Credential Schema"). */
import * as v from 'valibot'

/**
 * Longest SPT accepted: the idempotency key `<challengeId>_<spt>` must stay within Stripe's 255 characters.
 * @example
 * v.pipe(v.string(), v.maxLength(maxTokenLength))
 */
export const maxTokenLength = 200

/**
 * Stripe metadata: at most 50 keys, keys up to 40 characters, values up to 500 (Stripe "Metadata").
 * @example
 * v.parse(Metadata, input)
 */
export const Metadata = v.pipe(
  v.record(v.pipe(v.string(), v.minLength(1), v.maxLength(40), v.regex(/^[^[\]]+$/)), v.pipe(v.string(), v.maxLength(500))),
  v.check((metadata) => Object.keys(metadata).length <= 49, 'metadata holds at most 49 keys besides challenge_id'),
)

/**
 * The `request` of a stripe charge challenge.
 * @example
 * v.parse(Request, input)
 */
export const Request = v.object({
  /** Amount in the currency's smallest unit, a positive integer string (at most 15 digits, so exact as a number). */
  amount: v.pipe(v.string(), v.regex(/^[1-9]\d{0,14}$/)),
  /** Three-letter ISO 4217 code; issued lowercase, compared case-insensitively. */
  currency: v.pipe(v.string(), v.regex(/^[A-Za-z]{3}$/)),
  description: v.optional(v.string()),
  /** Merchant reference (order id), bound by the server. */
  externalId: v.optional(v.pipe(v.string(), v.maxLength(255))),
  recipient: v.optional(v.string()),
  methodDetails: v.object({
    /** The seller's Stripe Business Network profile id. */
    networkId: v.pipe(v.string(), v.minLength(1)),
    /** Payment method types the seller can process, for example ["card", "link"]. */
    paymentMethodTypes: v.pipe(v.array(v.pipe(v.string(), v.minLength(1))), v.minLength(1)),
    metadata: v.optional(Metadata),
  }),
})

/** A decoded stripe charge request. */
export type Request = v.InferOutput<typeof Request>

/**
 * The `payload` of a stripe charge credential.
 * @example
 * v.parse(Payload, input)
 */
export const Payload = v.object({
  /** The Shared Payment Token the payer granted to this seller. */
  spt: v.pipe(v.string(), v.maxLength(maxTokenLength), v.regex(/^spt_[A-Za-z0-9_]+$/, 'spt must be a Shared Payment Token (spt_…)')),
  /** The payer's echo of the request's externalId. */
  externalId: v.optional(v.pipe(v.string(), v.maxLength(255))),
})

/** A decoded stripe charge payload. */
export type Payload = v.InferOutput<typeof Payload>
