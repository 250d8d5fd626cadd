/** @module The plug-in interface every payment method implements. */
import type * as v from 'valibot'
import type { Challenge } from './Challenge.js'
import type { Credential } from './Credential.js'

/** A price as the seller writes it: a decimal string in display units ("0.01", "5.00"). */
export type Price = {
  /** Decimal amount in the currency's display unit, never a float: "0.01". */
  amount: string
  /** Currency or token the method should charge in; the method's default when absent. */
  currency?: string | undefined
  /** Display text for the payer. */
  description?: string | undefined
  /** Merchant reference bound into the request. */
  externalId?: string | undefined
}

/** What a method's verify step receives. */
export type VerifyContext<Request, Payload> = {
  /** The echoed challenge, already checked against its HMAC binding, route and expiry. */
  challenge: Challenge
  /** The challenge's `request`, validated by the method's request schema. */
  request: Request
  /** The credential, its payload validated by the method's payload schema. */
  credential: Credential & { payload: Payload }
  /**
   * Reserves a settlement reference (a transaction hash, a PaymentIntent id) for this challenge.
   * Call it as soon as the reference is known and before settling; it throws VerificationFailedError
   * when the reference already paid for another challenge.
   */
  claimReference: (reference: string, options?: { keepUntil?: number | undefined }) => Promise<void>
  /**
   * Records on the challenge the reference a payment is about to be committed under, before committing it
   * (a transaction hash before broadcast, a token before a charge is created, the charge id once known).
   * From then on another credential cannot pay this challenge until this payment is known to have failed,
   * and a retry of this credential gets the reference back as `committed`. `secret: true` keeps only a
   * digest (a bearer token). Throws PaymentInProgressError when another request took the challenge over.
   */
  commit: (reference: string, options?: { secret?: boolean | undefined }) => Promise<void>
  /**
   * The reference an earlier attempt of this same credential committed (a digest for a secret one): resolve that
   * payment (look up its receipt, retrieve the charge) and never start another.
   */
  committed?: string | undefined
  /** True when an earlier attempt for this challenge ended without a final answer (timeout, crash). */
  resumed: boolean
  /** True when the challenge has expired: only a `committed` payment may be resolved, nothing new may start. */
  expired: boolean
  /** When the challenge was issued (its expiry less the server's challenge lifetime). */
  issuedAt: Date
  /** The time verification started. */
  now: Date
}

/** What a successful verify returns. */
export type Settlement = {
  /** Method reference for the receipt (transaction hash, PaymentIntent id, challenge id for proofs). */
  reference: string
  /** Extra receipt fields the method defines (for example `externalId`). */
  receipt?: Record<string, string> | undefined
}

/**
 * A payment method: its id, intents, request and payload schemas, and how it prices and verifies.
 * Verify throws a PaymentError: VerificationFailedError and friends for a bad payment,
 * PaymentUnavailableError for a transient fault (the credential then stays usable).
 */
export type Method<Request = Record<string, unknown>, Payload = Record<string, unknown>> = {
  /** Payment method identifier, lowercase a-z (core spec, "Payment Method Identifier"). */
  name: string
  /** Intents this method serves. */
  intents: readonly string[]
  /** Schema of the challenge `request` for this method. */
  request: v.GenericSchema<unknown, Request>
  /** Schema of the credential `payload` for this method. */
  payload: v.GenericSchema<unknown, Payload>
  /** Builds the `request` object of a charge challenge from a seller's price. */
  charge: (price: Price) => Request | Promise<Request>
  /** What a request asks, for a person reading a 402: the amount in display units and the currency's name. */
  display?: ((request: Request) => { amount: string; currency: string }) | undefined
  /** Verifies and settles a credential; resolves only once the payment is final. */
  verify: (context: VerifyContext<Request, Payload>) => Promise<Settlement>
}

/**
 * Identity helper that types a method definition.
 * @example
 * const test = Method.define({ name: 'test', intents: ['charge'], request, payload, charge, verify })
 */
export function define<Request, Payload>(method: Method<Request, Payload>): Method<Request, Payload> {
  return method
}
