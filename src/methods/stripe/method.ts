/** @module The `stripe` payment method, `charge` intent: Shared Payment Tokens settled as confirmed PaymentIntents (draft-stripe-charge-00). */
import * as v from 'valibot'
import { ConfigurationError, PaymentUnavailableError, VerificationFailedError } from '../../core/Errors.js'
import * as Amount from '../../core/Amount.js'
import { define, type Method, type Price } from '../../core/Method.js'
import { ConfigError, isLoopback, redeliveryGraceMs } from '../../core/Server.js'
import { client, defaultApiBase, stripeVersion, type FormValue, type PaymentIntent } from './api.js'
import { CurrencyError, exponent, normalize, toMinorUnits } from './currency.js'
import { assertReplayAllowed, attribute } from './external-id.js'
import { awaitProcessing } from './processing.js'
import { Metadata, Payload, Request } from './schema.js'

/**
 * Stripe Connect settlement parameters (draft-stripe-charge-00, "Stripe Connect Settlement"). They come from
 * server configuration only and never appear in a challenge or come from a client.
 */
export type Connect = {
  /** Connected account the request runs as (`Stripe-Account` header). */
  stripeAccount?: string | undefined
  /** Platform fee in the smallest currency unit; at most the payment amount. */
  applicationFeeAmount?: number | undefined
  /** Connected account that is the business of record. */
  onBehalfOf?: string | undefined
  /** Connected account receiving the funds, and optionally how much of them. */
  transferData?: { destination: string; amount?: number | undefined } | undefined
  /** Reconciliation label linking charges and transfers (not secret). */
  transferGroup?: string | undefined
}

/** Configuration of the stripe method. */
export type StripeConfig = {
  /** Secret or restricted key (`sk_…`/`rk_…`), from a worker secret: `wrangler secret put STRIPE_SECRET_KEY`. */
  secretKey: string
  /** The seller's Stripe Business Network profile id (`profile_…`), which payers grant their tokens to. */
  networkId: string
  /** Payment method types the seller processes (default `["card"]`). */
  paymentMethodTypes?: readonly string[] | undefined
  /** Currency when a price names none (default `usd`). */
  currency?: string | undefined
  /** Key-value context bound into every challenge and copied to the PaymentIntent's metadata. */
  metadata?: Record<string, string> | undefined
  /** Optional recipient identifier shown in challenges. */
  recipient?: string | undefined
  /** Connect parameters, fixed or computed per payment from the server-bound request. */
  connect?: Connect | ((context: { challengeId: string; request: Request }) => Connect | undefined | Promise<Connect | undefined>) | undefined
  /** API origin (default `https://api.stripe.com`); plain HTTP only on loopback. */
  apiBase?: string | undefined
  /** Stripe-Version to pin (default `stripeVersion`). */
  apiVersion?: string | undefined
  /** Give up on a Stripe call after this many ms and answer 503 (default 10000); also the most a `processing` payment is waited for. */
  timeoutMs?: number | undefined
  /** The fetch to call Stripe with (the platform's by default). */
  fetch?: typeof fetch | undefined
}

const accountId = /^acct_[A-Za-z0-9]+$/

// How long a granted token's reference is kept when Stripe reports no expiry for it.
const tokenLifetimeMs = 30 * 24 * 60 * 60_000

/**
 * Payment method types whose payments can stay `processing` for days, longer than any challenge lives (Stripe
 * "Payment method support", delayed notification): the payer could not be served the payment it made, so
 * they are refused at start-up.
 * @example
 * asynchronousTypes.has('sepa_debit') // true
 */
export const asynchronousTypes: ReadonlySet<string> = new Set([
  'acss_debit', 'au_becs_debit', 'bacs_debit', 'boleto', 'customer_balance', 'konbini', 'multibanco',
  'nz_bank_account', 'oxxo', 'pay_by_bank', 'sepa_debit', 'sofort', 'us_bank_account',
])

/**
 * Creates the stripe method. Configuration is checked now, so a bad setting fails at start-up.
 * @example
 * const pay = payment({ realm, secret, methods: [stripe({ secretKey: env.STRIPE_SECRET_KEY, networkId: 'profile_123' })], store })
 */
export function stripe(config: StripeConfig): Method<Request, Payload> {
  const settings = check(config)
  const api = client({ secretKey: config.secretKey, apiBase: settings.apiBase, apiVersion: config.apiVersion ?? stripeVersion, timeoutMs: settings.timeoutMs, fetch: config.fetch })

  return define<Request, Payload>({
    name: 'stripe',
    intents: ['charge'],
    request: Request,
    payload: Payload,
    charge(price: Price): Request {
      let currency: string
      let amount: string
      try {
        currency = normalize(price.currency ?? settings.currency)
        amount = toMinorUnits(price.amount, currency)
      } catch (error) {
        if (error instanceof CurrencyError) throw new ConfigError(`stripe: ${error.message}`)
        throw error
      }
      return {
        amount,
        currency,
        ...(price.description !== undefined ? { description: price.description } : {}),
        ...(price.externalId !== undefined ? { externalId: price.externalId } : {}),
        ...(config.recipient !== undefined ? { recipient: config.recipient } : {}),
        methodDetails: {
          networkId: config.networkId,
          paymentMethodTypes: [...settings.paymentMethodTypes],
          ...(config.metadata !== undefined ? { metadata: { ...config.metadata } } : {}),
        },
      }
    },
    display: (request) => ({ amount: Amount.display(request.amount, exponent(request.currency)), currency: request.currency.toUpperCase() }),
    async verify({ challenge, request, credential, claimReference, commit, committed, resumed, expired }) {
      const { spt } = credential.payload
      // The server already checked the challenge binding and expiry (spec "Verification Procedure", steps 1-2)
      // before this runs; attribution is checked before the token is touched.
      const externalId = attribute(request, credential.payload)
      const amount = Number(request.amount)
      const connect = await settlement(config, { challengeId: challenge.id, request }, amount)
      const expected = { amount, currency: request.currency, challengeId: challenge.id }
      const stripeAccount = connect?.stripeAccount

      let paymentIntent: PaymentIntent | undefined
      let replayed = false
      if (committed?.startsWith('pi_')) {
        // This credential's PaymentIntent is known: read it, never create another.
        await commit(committed)
        paymentIntent = (await api.retrievePaymentIntent(committed, { stripeAccount })).paymentIntent
        if (paymentIntent.id !== committed) throw new PaymentUnavailableError({ detail: 'Stripe answered with another PaymentIntent', retryAfter: 2 })
        assertSamePayment(paymentIntent, expected)
      } else if (expired) {
        // Still in doubt at expiry (the create's answer was lost): find it by its challenge before anything else.
        paymentIntent = (await api.searchByChallenge(challenge.id, { stripeAccount })).find((pi) => pi.metadata?.challenge_id === challenge.id)
        if (paymentIntent) assertSamePayment(paymentIntent, expected)
      }
      if (!paymentIntent) {
        // Spec step 4: a token pays at most one challenge, kept as long as the token could be presented: first the
        // longest a granted token lives, then (looked up beside the create) its expiry as Stripe reports it. The
        // retry of this same challenge may claim it again.
        await claimReference(spt, { keepUntil: Date.now() + tokenLifetimeMs })
        await commit(spt, { secret: true })
        const expiry = api.tokenExpiry(spt, { stripeAccount })
        const created = await api.createPaymentIntent(
          {
            amount,
            currency: request.currency.toLowerCase(),
            shared_payment_granted_token: spt,
            confirm: true,
            automatic_payment_methods: { enabled: true, allow_redirects: 'never' },
            // challenge_id last: bound metadata cannot overwrite it.
            metadata: { ...request.methodDetails.metadata, challenge_id: challenge.id },
            application_fee_amount: connect?.applicationFeeAmount,
            on_behalf_of: connect?.onBehalfOf,
            transfer_data: connect?.transferData as FormValue,
            transfer_group: connect?.transferGroup,
          },
          // Spec "Idempotency": derived from the challenge and the token, so a retry never charges twice.
          { idempotencyKey: `${challenge.id}_${spt}`, stripeAccount },
        )
        replayed = created.replayed
        paymentIntent = created.paymentIntent
        assertSamePayment(paymentIntent, expected)
        const expiresAt = await expiry
        if (expiresAt !== undefined) await claimReference(spt, { keepUntil: Math.max(expiresAt, Date.now()) + 10 * 60_000 })
      }
      // A replay pays only the attempt that resumes its own earlier one, also when it replays `processing`.
      assertReplayAllowed({ replayed, resumed })
      // The PaymentIntent names its challenge in its metadata: its id is needed only while that challenge lives.
      await claimReference(paymentIntent.id, { keepUntil: Date.parse(challenge.expires ?? '') + redeliveryGraceMs + 10 * 60_000 || undefined })
      // From now on a retry of this credential retrieves this PaymentIntent.
      await commit(paymentIntent.id)
      // Asynchronous payment methods answer `processing` and end `succeeded` or `requires_payment_method` later
      // (Stripe "How PaymentIntents work"). A replayed create shows the status of the first answer, so the
      // current one is retrieved; still processing is a 503, never a fresh challenge that invites paying twice.
      if (paymentIntent.status === 'processing') {
        paymentIntent = await awaitProcessing(api, paymentIntent, {
          stripeAccount,
          budgetMs: settings.timeoutMs,
          check: (current) => assertSamePayment(current, expected),
        })
      }
      // Spec "Settlement Procedure", step 3: only a succeeded PaymentIntent pays.
      if (paymentIntent.status !== 'succeeded') throw new VerificationFailedError({ detail: failure(paymentIntent) })
      return { reference: paymentIntent.id, receipt: externalId !== undefined ? { externalId } : undefined }
    },
  })
}

function check(config: StripeConfig) {
  if (!/^(sk|rk)_(test|live)_\S+$/.test(config.secretKey ?? '')) {
    throw new ConfigError('stripe: secretKey must be a Stripe secret or restricted key (sk_… or rk_…)')
  }
  if (!config.networkId) throw new ConfigError('stripe: networkId must name the seller\'s Stripe profile')
  const paymentMethodTypes = config.paymentMethodTypes ?? ['card']
  if (paymentMethodTypes.length === 0 || paymentMethodTypes.some((t) => !/^[a-z_]+$/.test(t))) {
    throw new ConfigError('stripe: paymentMethodTypes must list Stripe payment method types such as "card"')
  }
  const slow = paymentMethodTypes.find((type) => asynchronousTypes.has(type))
  if (slow) {
    throw new ConfigError(`stripe: paymentMethodTypes "${slow}" can stay processing for days, longer than a challenge lives; list only types that settle within seconds, such as "card"`)
  }
  let currency: string
  try {
    currency = normalize(config.currency ?? 'usd')
  } catch (error) {
    throw new ConfigError(`stripe: ${(error as Error).message}`)
  }
  if (config.metadata !== undefined && !v.is(Metadata, config.metadata)) {
    throw new ConfigError('stripe: metadata must be at most 49 string values with keys of 1-40 characters and no brackets')
  }
  const apiBase = (config.apiBase ?? defaultApiBase).replace(/\/+$/, '')
  let url: URL
  try {
    url = new URL(apiBase)
  } catch {
    throw new ConfigError('stripe: apiBase must be a URL')
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && isLoopback(url.hostname))) {
    throw new ConfigError('stripe: apiBase must use https')
  }
  const timeoutMs = config.timeoutMs ?? 10_000
  if (!Number.isInteger(timeoutMs) || timeoutMs < 50 || timeoutMs > 60_000) throw new ConfigError('stripe: timeoutMs must be 50 to 60000')
  if (config.connect !== undefined && typeof config.connect !== 'function') {
    const problem = connectProblem(config.connect)
    if (problem) throw new ConfigError(`stripe: connect ${problem}`)
  }
  return { apiBase, timeoutMs, currency, paymentMethodTypes }
}

/** Resolves and checks the Connect parameters for one payment (spec "Stripe Connect Parameter Integrity"). */
async function settlement(config: StripeConfig, context: { challengeId: string; request: Request }, amount: number): Promise<Connect | undefined> {
  const connect = typeof config.connect === 'function' ? await config.connect(context) : config.connect
  if (connect === undefined) return undefined
  const problem =
    connectProblem(connect) ??
    (connect.applicationFeeAmount !== undefined && connect.applicationFeeAmount > amount ? 'applicationFeeAmount exceeds the payment amount' : undefined) ??
    (connect.transferData?.amount !== undefined && connect.transferData.amount > amount ? 'transferData.amount exceeds the payment amount' : undefined)
  if (problem) throw new ConfigurationError({ detail: `stripe: connect ${problem}` })
  return connect
}

function connectProblem(connect: Connect): string | undefined {
  for (const [name, value] of [['stripeAccount', connect.stripeAccount], ['onBehalfOf', connect.onBehalfOf]] as const) {
    if (value !== undefined && !accountId.test(value)) return `${name} must be a connected account id (acct_…)`
  }
  if (connect.transferData !== undefined && !accountId.test(connect.transferData.destination ?? '')) {
    return 'transferData.destination must be a connected account id (acct_…)'
  }
  for (const [name, value] of [['applicationFeeAmount', connect.applicationFeeAmount], ['transferData.amount', connect.transferData?.amount]] as const) {
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 0)) return `${name} must be a non-negative integer`
  }
  if (connect.transferGroup !== undefined && !connect.transferGroup) return 'transferGroup must not be empty'
  return undefined
}

/** A PaymentIntent must be for this challenge's amount, currency and id, whatever Stripe or a proxy answered. */
function assertSamePayment(pi: PaymentIntent, expected: { amount: number; currency: string; challengeId: string }): void {
  if (pi.amount !== expected.amount || pi.currency.toLowerCase() !== expected.currency.toLowerCase()) {
    throw new VerificationFailedError({ detail: 'the PaymentIntent does not charge the amount and currency of this challenge' })
  }
  if (pi.metadata?.challenge_id !== expected.challengeId) {
    throw new VerificationFailedError({ detail: 'the PaymentIntent belongs to another challenge' })
  }
}

function failure(pi: PaymentIntent): string {
  if (pi.status === 'requires_action') {
    return 'the payment requires customer action (such as 3-D Secure) that cannot happen here; use a token that needs none'
  }
  const error = pi.last_payment_error
  const reason = [error?.code, error?.decline_code, pi.status === 'canceled' ? pi.cancellation_reason : undefined].filter((c): c is string => typeof c === 'string' && /^[a-z0-9_]{1,64}$/.test(c)).join('/')
  return `the PaymentIntent is ${pi.status}, not succeeded${reason ? ` (${reason})` : ''}`
}
