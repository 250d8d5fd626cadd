/** @module The Stripe API calls the stripe method makes (create and retrieve a PaymentIntent) over fetch, with Stripe's errors mapped to payment errors. */
import * as v from 'valibot'
import {
  ConfigurationError,
  PaymentUnavailableError,
  VerificationFailedError,
  type PaymentError,
} from '../../core/Errors.js'

/**
 * The Stripe API version every request pins. Shared Payment Tokens are a preview feature and need a
 * `.preview` version; this is the version the reference SDK (mppx 0.11) pins for the same call.
 * @example
 * headers.set('stripe-version', stripeVersion)
 */
export const stripeVersion = '2026-07-29.preview'

/**
 * The production API origin.
 * @example
 * new URL('/v1/payment_intents', config.apiBase ?? defaultApiBase)
 */
export const defaultApiBase = 'https://api.stripe.com'

/** A form value: Stripe's API takes nested objects in bracket notation (`metadata[challenge_id]=…`). */
export type FormValue = string | number | boolean | undefined | { [key: string]: FormValue }

/**
 * The PaymentIntent fields the method reads (Stripe returns many more).
 * @example
 * v.parse(PaymentIntent, input)
 */
export const PaymentIntent = v.looseObject({
  id: v.pipe(v.string(), v.maxLength(255), v.regex(/^pi_[A-Za-z0-9_]+$/)),
  object: v.literal('payment_intent'),
  status: v.string(),
  amount: v.number(),
  currency: v.string(),
  metadata: v.optional(v.nullable(v.record(v.string(), v.string()))),
  cancellation_reason: v.optional(v.nullable(v.string())),
  last_payment_error: v.optional(v.nullable(v.looseObject({ code: v.optional(v.nullable(v.string())), decline_code: v.optional(v.nullable(v.string())), message: v.optional(v.nullable(v.string())) }))),
})

/** A PaymentIntent as Stripe returned it. */
export type PaymentIntent = v.InferOutput<typeof PaymentIntent>

/** Stripe's error object (`{"error": {...}}`, Stripe API reference "Errors"). */
const ErrorBody = v.object({
  error: v.looseObject({
    type: v.optional(v.string()),
    code: v.optional(v.nullable(v.string())),
    decline_code: v.optional(v.nullable(v.string())),
    message: v.optional(v.nullable(v.string())),
    param: v.optional(v.nullable(v.string())),
  }),
})

type StripeError = v.InferOutput<typeof ErrorBody>['error']

/** How to reach Stripe. */
export type ClientConfig = {
  /** The secret (or restricted) key, sent as a bearer token. */
  secretKey: string
  /** API origin, `https://api.stripe.com` in production. */
  apiBase: string
  /** Stripe-Version header value. */
  apiVersion: string
  /** Abort the call after this many milliseconds (connect, headers and body). */
  timeoutMs: number
  /** The fetch to use (the platform's by default). */
  fetch?: typeof fetch | undefined
}

/** A PaymentIntent creation and whether Stripe replayed it from an earlier request with the same key. */
export type CreateResult = { paymentIntent: PaymentIntent; replayed: boolean; requestId: string | undefined }

/** A PaymentIntent as Stripe holds it now. */
export type RetrieveResult = { paymentIntent: PaymentIntent; requestId: string | undefined }

/** The Stripe client the stripe method uses. */
export type Client = {
  /** Creates (and with `confirm=true` confirms) a PaymentIntent; throws a PaymentError on any failure. */
  createPaymentIntent: (params: Record<string, FormValue>, options: { idempotencyKey: string; stripeAccount?: string | undefined }) => Promise<CreateResult>
  /** Reads a PaymentIntent's current state (`GET /v1/payment_intents/{id}`); `timeoutMs` may shorten the configured timeout. */
  retrievePaymentIntent: (id: string, options: { stripeAccount?: string | undefined; timeoutMs?: number | undefined }) => Promise<RetrieveResult>
  /**
   * Finds the PaymentIntents whose `metadata['challenge_id']` is this challenge's (`GET /v1/payment_intents/search`,
   * Stripe's Search Query Language); newest first. Search is eventually consistent (usually within a minute).
   */
  searchByChallenge: (challengeId: string, options: { stripeAccount?: string | undefined }) => Promise<PaymentIntent[]>
  /**
   * When a Shared Payment Token stops being usable, as Stripe reports it (`GET /v1/shared_payment/granted_tokens/{id}`,
   * `usage_limits.expires_at`), in ms since the epoch; undefined when Stripe reports none or cannot say now.
   */
  tokenExpiry: (spt: string, options: { stripeAccount?: string | undefined }) => Promise<number | undefined>
}

const GrantedToken = v.looseObject({ usage_limits: v.optional(v.nullable(v.looseObject({ expires_at: v.optional(v.nullable(v.number())) }))) })

const SearchResult = v.looseObject({ object: v.literal('search_result'), data: v.array(v.unknown()) })

/**
 * Builds a Stripe client over fetch.
 * @example
 * const api = client({ secretKey: env.STRIPE_SECRET_KEY, apiBase: defaultApiBase, apiVersion: stripeVersion, timeoutMs: 10_000 })
 * const { paymentIntent } = await api.createPaymentIntent({ amount: 500, currency: 'usd' }, { idempotencyKey: 'k' })
 */
export function client(config: ClientConfig): Client {
  const send = config.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => fetch(input, init))
  const url = `${config.apiBase}/v1/payment_intents`

  /** One call: the same auth, version and timeout for every request; transport failures are transient. */
  async function call(target: string, init: { method: 'GET' | 'POST'; headers: Headers; body?: string; timeoutMs: number }) {
    init.headers.set('authorization', `Bearer ${config.secretKey}`)
    init.headers.set('stripe-version', config.apiVersion)
    const signal = AbortSignal.timeout(init.timeoutMs)
    try {
      const response = await send(target, { method: init.method, headers: init.headers, body: init.body, signal })
      return { status: response.status, headers: response.headers, text: await response.text() }
    } catch (error) {
      // The outcome is unknown: the retry of the same credential asks again (a create under the same idempotency key gets Stripe's answer).
      const timedOut = error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')
      throw new PaymentUnavailableError({
        detail: timedOut ? `Stripe did not answer within ${init.timeoutMs} ms` : 'Stripe could not be reached',
        retryAfter: 2,
        cause: error,
      })
    }
  }

  function readIntent(text: string): PaymentIntent {
    const parsed = v.safeParse(PaymentIntent, parseJson(text))
    // A 2xx we cannot read may still have charged: answer as transient so the retry gets Stripe's replay.
    if (!parsed.success) throw new PaymentUnavailableError({ detail: 'Stripe answered with an unreadable PaymentIntent', retryAfter: 2 })
    return parsed.output
  }

  return {
    async createPaymentIntent(params, options) {
      const headers = new Headers({ 'content-type': 'application/x-www-form-urlencoded', 'idempotency-key': options.idempotencyKey })
      if (options.stripeAccount !== undefined) headers.set('stripe-account', options.stripeAccount)
      const answer = await call(url, { method: 'POST', headers, body: encodeForm(params), timeoutMs: config.timeoutMs })
      if (answer.status < 200 || answer.status >= 300) throw toPaymentError(answer.status, parseJson(answer.text), answer.headers)
      return {
        paymentIntent: readIntent(answer.text),
        replayed: answer.headers.get('idempotent-replayed') === 'true',
        requestId: answer.headers.get('request-id') ?? undefined,
      }
    },
    async retrievePaymentIntent(id, options) {
      // Connect: a PaymentIntent made on a connected account is visible only with the same Stripe-Account.
      const headers = new Headers()
      if (options.stripeAccount !== undefined) headers.set('stripe-account', options.stripeAccount)
      const timeoutMs = Math.max(1, Math.min(config.timeoutMs, options.timeoutMs ?? config.timeoutMs))
      const answer = await call(`${url}/${encodeURIComponent(id)}`, { method: 'GET', headers, timeoutMs })
      if (answer.status === 404) {
        // We created it with this key: Stripe not knowing it means the key or the account setting changed.
        const parsed = v.safeParse(ErrorBody, parseJson(answer.text))
        const summary = describe(parsed.success ? parsed.output.error : {})
        throw new ConfigurationError({ detail: `Stripe does not know the PaymentIntent it created (404${summary ? `: ${summary}` : ''})` })
      }
      if (answer.status < 200 || answer.status >= 300) throw toPaymentError(answer.status, parseJson(answer.text), answer.headers)
      return { paymentIntent: readIntent(answer.text), requestId: answer.headers.get('request-id') ?? undefined }
    },
    async searchByChallenge(challengeId, options) {
      // Challenge ids are base64url: nothing in them needs escaping inside the quoted value.
      if (!/^[A-Za-z0-9_-]+$/.test(challengeId)) throw new VerificationFailedError({ detail: 'the challenge id cannot be searched for' })
      const headers = new Headers()
      if (options.stripeAccount !== undefined) headers.set('stripe-account', options.stripeAccount)
      const query = new URLSearchParams({ query: `metadata['challenge_id']:'${challengeId}'`, limit: '10' })
      const answer = await call(`${url}/search?${query}`, { method: 'GET', headers, timeoutMs: config.timeoutMs })
      if (answer.status < 200 || answer.status >= 300) throw toPaymentError(answer.status, parseJson(answer.text), answer.headers)
      const parsed = v.safeParse(SearchResult, parseJson(answer.text))
      if (!parsed.success) throw new PaymentUnavailableError({ detail: 'Stripe answered the search with an unreadable result', retryAfter: 2 })
      return parsed.output.data.map((item) => readIntent(JSON.stringify(item)))
    },
    async tokenExpiry(spt, options) {
      const headers = new Headers()
      if (options.stripeAccount !== undefined) headers.set('stripe-account', options.stripeAccount)
      try {
        const answer = await call(`${config.apiBase}/v1/shared_payment/granted_tokens/${encodeURIComponent(spt)}`, { method: 'GET', headers, timeoutMs: config.timeoutMs })
        if (answer.status !== 200) return undefined
        const parsed = v.safeParse(GrantedToken, parseJson(answer.text))
        const seconds = parsed.success ? parsed.output.usage_limits?.expires_at : undefined
        return typeof seconds === 'number' && Number.isSafeInteger(seconds) && seconds > 0 ? seconds * 1000 : undefined
      } catch {
        // Only how long a reference is kept depends on it: the longest a token lives is assumed instead.
        return undefined
      }
    },
  }
}

/**
 * Encodes parameters as `application/x-www-form-urlencoded` with Stripe's bracket notation; undefined values are left out.
 * @example
 * encodeForm({ amount: 500, metadata: { challenge_id: 'abc' } }) // 'amount=500&metadata%5Bchallenge_id%5D=abc'
 */
export function encodeForm(params: Record<string, FormValue>): string {
  const form = new URLSearchParams()
  const add = (key: string, value: FormValue) => {
    if (value === undefined) return
    if (typeof value === 'object') {
      for (const [inner, nested] of Object.entries(value)) add(`${key}[${inner}]`, nested)
      return
    }
    form.append(key, String(value))
  }
  for (const [key, value] of Object.entries(params)) add(key, value)
  return form.toString()
}

// Parameters the server sets from its own configuration: Stripe refusing one of them is our fault, not the payer's.
const serverParams = /^(amount|currency|confirm|automatic_payment_methods|metadata|application_fee_amount|on_behalf_of|transfer_data|transfer_group)(\[|$)/
const configurationCodes = new Set([
  'amount_too_small',
  'amount_too_large',
  'api_key_expired',
  'account_invalid',
  'parameter_unknown',
  'parameter_missing',
  'parameter_invalid_integer',
  'parameter_invalid_empty',
  'parameters_exclusive',
  'platform_api_key_expired',
  'secret_key_required',
  'testmode_charges_only',
])

/**
 * Maps a Stripe error answer to a payment error: declines and refused tokens are the payer's (402), rate
 * limits, conflicts and server faults are transient (503, the credential stays usable), and a rejected key
 * or parameter is our configuration (500, details for logs only).
 * @example
 * toPaymentError(402, { error: { type: 'card_error', code: 'card_declined' } }, new Headers()) // VerificationFailedError
 */
export function toPaymentError(status: number, body: unknown, headers: Headers): PaymentError {
  const parsed = v.safeParse(ErrorBody, body)
  const error: StripeError = parsed.success ? parsed.output.error : {}
  const summary = describe(error)
  if (status === 401 || status === 403) {
    return new ConfigurationError({ detail: `Stripe refused the API key (${status}${summary ? `: ${summary}` : ''})` })
  }
  if (status === 409) return new PaymentUnavailableError({ detail: 'Stripe is still processing this payment', retryAfter: 1 })
  if (status === 429) return new PaymentUnavailableError({ detail: 'Stripe is rate limiting requests', retryAfter: retryAfter(headers) })
  if (status >= 500 || status === 424) return new PaymentUnavailableError({ detail: `Stripe is unavailable (${status})`, retryAfter: retryAfter(headers) })
  if (error.type === 'card_error' || status === 402) {
    return new VerificationFailedError({ detail: `Stripe declined the payment${summary ? `: ${summary}` : ''}` })
  }
  if (error.type === 'idempotency_error') {
    return new VerificationFailedError({ detail: 'this Shared Payment Token was already presented for this challenge with other payment parameters' })
  }
  const param = error.param ?? ''
  if (param.startsWith('shared_payment_granted_token')) {
    return new VerificationFailedError({ detail: `Stripe refused the Shared Payment Token${summary ? `: ${summary}` : ''}` })
  }
  if (serverParams.test(param) || configurationCodes.has(error.code ?? '') || status === 404) {
    return new ConfigurationError({ detail: `Stripe refused the PaymentIntent parameters (${status}${summary ? `: ${summary}` : ''})` })
  }
  return new VerificationFailedError({ detail: `Stripe refused the payment${summary ? `: ${summary}` : ''}` })
}

/**
 * Removes secrets from text Stripe sent back (it may quote keys, tokens or client secrets).
 * @example
 * redact("No such token: 'spt_123'") // "No such token: 'spt_…'"
 */
export function redact(text: string): string {
  return text
    .replace(/\b(pi|seti)_[A-Za-z0-9]+_secret_[A-Za-z0-9]+/g, '[client secret]')
    .replace(/\b(sk|rk|spt|whsec)_[A-Za-z0-9_*]+/g, '$1_…')
    .slice(0, 300)
}

function describe(error: StripeError): string {
  const codes = [error.code, error.decline_code].filter((c): c is string => typeof c === 'string' && /^[a-z0-9_]{1,64}$/.test(c))
  const message = typeof error.message === 'string' ? redact(error.message) : ''
  return [codes.join('/'), message].filter(Boolean).join(': ')
}

function retryAfter(headers: Headers): number {
  const seconds = Number(headers.get('retry-after'))
  return Number.isInteger(seconds) && seconds > 0 ? Math.min(seconds, 60) : 2
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}
