/** @module Framework-free handling of a paid request: challenges, verification order, single use, receipts. */
import * as v from 'valibot'
import * as AcceptPayment from './AcceptPayment.js'
import * as Body from './Body.js'
import * as BodyDigest from './BodyDigest.js'
import * as Challenge from './Challenge.js'
import * as ChallengeId from './ChallengeId.js'
import * as Credential from './Credential.js'
import { canonicalJson, decodeObject, encodeBytes, encodeJson, encodeText } from './Encoding.js'
import {
  BadRequestError,
  InvalidChallengeError,
  MalformedCredentialError,
  MethodUnsupportedError,
  PaymentExpiredError,
  PaymentInProgressError,
  PaymentRequiredError,
  PaymentUnavailableError,
  VerificationFailedError,
  isPaymentError,
  type PaymentError,
} from './Errors.js'
import type { Method, Price, Settlement } from './Method.js'
import * as Receipt from './Receipt.js'
import type { ReplayStore } from './ReplayStore.js'

/**
 * How long after its expiry a settled but undelivered payment can still be collected with the credential that paid
 * (replay rows are kept 10 minutes past expiry, so this stays inside their lifetime).
 * @example
 * if (now > expiresAt + redeliveryGraceMs) throw new PaymentExpiredError()
 */
export const redeliveryGraceMs = 5 * 60_000

/**
 * The longest challenge lifetime a server may be configured with, in seconds.
 * @example
 * if (ttlSeconds > Server.maxTtlSeconds) throw new ConfigError('…')
 */
export const maxTtlSeconds = 86_400

/**
 * The clock skew allowed between a payment's own time (a block's timestamp) and the server's, in ms.
 * @example
 * if (blockTime < issuedAt - Server.clockSkewMs) throw new VerificationFailedError()
 */
export const clockSkewMs = 60_000

/**
 * How long a settlement reference must stay claimed when no challenge issued after `lastIssuedAt` (ms epoch)
 * may use it: until every challenge issued by then has expired, passed its redelivery grace, and a margin of
 * clock skew. After that the reference can pay nothing, so its row may be swept.
 * @example
 * await claimReference(hash, { keepUntil: Server.referenceKeepUntil(blockTime + Server.clockSkewMs) })
 */
export function referenceKeepUntil(lastIssuedAt: number): number {
  return lastIssuedAt + maxTtlSeconds * 1000 + redeliveryGraceMs + 10 * 60_000
}

/** A payment event for logs and metrics; it never carries credentials or secrets. */
export type Event = {
  type: 'challenge' | 'paid' | 'redelivered' | 'failed' | 'replay-refused'
  route: string
  method?: string | undefined
  challengeId?: string | undefined
  reference?: string | undefined
  problem?: string | undefined
  detail?: string | undefined
}

/** Server configuration, checked once by `create`. */
export type Config = {
  /** Protection space named in every challenge. */
  realm: string
  /** Current HMAC secret (at least 32 bytes). */
  secret: string
  /** Earlier secrets still accepted for challenges issued before a rotation. */
  previousSecrets?: readonly string[] | undefined
  /** Payment methods, in the server's order of preference. */
  methods: readonly Method<any, any>[]
  /** Challenge lifetime in seconds (default 300). */
  ttlSeconds?: number | undefined
  /** How long one attempt may hold a challenge while it settles, in ms (default 60 s). */
  leaseMs?: number | undefined
  /** Largest request body bound by a digest, in bytes (default 1 MiB). */
  maxBodyBytes?: number | undefined
  /** Receives payment events. */
  onEvent?: ((event: Event) => void) | undefined
  /**
   * Where credentials are read from: `Authorization` (the default), or `Payment-Authorization` for routes whose
   * `Authorization` carries the application's own credentials. Challenges name it, bound into their id.
   */
  credentialHeader?: Challenge.CredentialHeader | undefined
  /** Where the discovery document is served (`/openapi.json`), named in the detail of every 402. */
  discovery?: string | undefined
}

/** A configured server. */
export type Server = {
  realm: string
  secrets: readonly string[]
  methods: ReadonlyMap<string, Method<any, any>>
  ttlSeconds: number
  leaseMs: number
  maxBodyBytes: number
  credentialHeader: Challenge.CredentialHeader
  discovery?: string | undefined
  emit: (event: Event) => void
}

/** One payment option for a request: a method, an intent and the request object it issues. */
export type Offer = {
  method: Method<any, any>
  intent: string
  request: Record<string, unknown>
  description?: string | undefined
}

/** A request that paid: run the handler, then `deliver` (or `release` when it failed). */
export type Paid = {
  type: 'paid'
  challenge: Challenge.Challenge
  settlement: Settlement
  receipt: Receipt.Receipt
  /** True when this request re-delivers a payment that settled earlier but was never delivered. */
  redelivery: boolean
  /** Marks the challenge spent; call once the response is ready. */
  deliver: () => Promise<void>
  /** Gives the challenge back, settled but undelivered: the same credential may be sent again until `deadline`. */
  release: () => Promise<void>
  /** Until when (ISO 8601) the same credential is served again after a failed delivery: expiry plus the redelivery grace. */
  deadline: string
}

/** What `handle` decided. */
export type Outcome = Paid | { type: 'response'; response: Response; error: PaymentError }

/**
 * Raised at start-up on an invalid configuration; the message names the setting.
 * @example
 * throw new ConfigError('…')
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError'
}

/**
 * Checks a configuration and builds a server (`allowNoMethods` for a seller serving only sessions).
 * @example
 * const server = Server.create({ realm: 'api.example.com', secret: env.MPP_SECRET_KEY, methods: [tempo(config)] })
 */
export function create(config: Config, options: { allowNoMethods?: boolean | undefined } = {}): Server {
  if (!config.realm) throw new ConfigError('realm must not be empty')
  if (/[\u0000-\u001f\u007f"\\]/.test(config.realm)) throw new ConfigError('realm must be printable text without quotes')
  const secrets = [config.secret, ...(config.previousSecrets ?? [])]
  secrets.forEach((secret, i) => {
    try {
      ChallengeId.assertSecret(secret ?? '', i === 0 ? 'secret' : `previousSecrets[${i - 1}]`)
    } catch (error) {
      throw new ConfigError((error as Error).message)
    }
  })
  // A seller offering only sessions (their method lives in the session settings) configures no charge method.
  if (config.methods.length === 0 && !options.allowNoMethods) throw new ConfigError('methods must name at least one payment method')
  const methods = new Map<string, Method<any, any>>()
  for (const method of config.methods) {
    if (!/^[a-z]+$/.test(method.name)) throw new ConfigError(`method name "${method.name}" must be lowercase a-z`)
    if (methods.has(method.name)) throw new ConfigError(`method "${method.name}" is configured twice`)
    methods.set(method.name, method)
  }
  const ttlSeconds = config.ttlSeconds ?? 300
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 10 || ttlSeconds > maxTtlSeconds) {
    throw new ConfigError(`ttlSeconds must be a whole number from 10 to ${maxTtlSeconds}`)
  }
  const onEvent = config.onEvent
  return {
    credentialHeader: checkedHeader(config.credentialHeader),
    discovery: config.discovery,
    realm: config.realm,
    secrets,
    methods,
    ttlSeconds,
    leaseMs: positiveInteger(config.leaseMs ?? 60_000, 'leaseMs', 1_000, 600_000),
    maxBodyBytes: positiveInteger(config.maxBodyBytes ?? 1024 * 1024, 'maxBodyBytes', 0, 100 * 1024 * 1024),
    // Events are for logs and metrics: a failing sink must not fail a payment (or strand a settled one).
    emit: (event) => {
      try {
        onEvent?.(event)
      } catch {
        // Ignored on purpose.
      }
    },
  }
}

/**
 * Checks a configured credential header: `Authorization` or `Payment-Authorization`, nothing else.
 * @example
 * Server.checkedHeader('Payment-Authorization') // 'Payment-Authorization'
 */
export function checkedHeader(header: string | undefined, name = 'credentialHeader'): Challenge.CredentialHeader {
  if (header === undefined) return 'Authorization'
  if (!Challenge.isCredentialHeader(header)) throw new ConfigError(`${name} must be "Payment-Authorization" (or "Authorization", the default)`)
  return Challenge.credentialHeader({ header })
}

function positiveInteger(value: number, name: string, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) throw new ConfigError(`${name} must be a whole number from ${min} to ${max}`)
  return value
}

/**
 * Builds the charge offers of a price, one per method (optionally a subset, in the given order).
 * @example
 * const offers = await Server.chargeOffers(server, { amount: '0.01' })
 */
export async function chargeOffers(server: Server, price: Price, only?: readonly string[]): Promise<Offer[]> {
  assertPrice(price)
  const names = only ?? [...server.methods.keys()]
  // Core spec, "When NOT to Return 402": a 402 must carry at least one challenge.
  if (names.length === 0) throw new ConfigError('a charge must offer at least one payment method')
  return Promise.all(
    names.map(async (name) => {
      const method = server.methods.get(name)
      if (!method) throw new ConfigError(`method "${name}" is not configured`)
      if (!method.intents.includes('charge')) throw new ConfigError(`method "${name}" does not serve the charge intent`)
      return { method, intent: 'charge', request: (await method.charge(price)) as Record<string, unknown>, description: price.description }
    }),
  )
}

/**
 * Checks a seller's price: a non-negative decimal amount, and a description that fits in a header.
 * @example
 * Server.assertPrice({ amount: '0.01', description: 'Daily report' })
 */
export function assertPrice(price: Price): void {
  if (typeof price.amount !== 'string' || !/^\d+(\.\d+)?$/.test(price.amount)) {
    throw new ConfigError(`price amount "${String(price.amount)}" must be a decimal string such as "0.01"`)
  }
  // A challenge's description travels in a header: Latin-1 text without control characters only.
  if (price.description !== undefined && !/^[\u0020-\u007e\u00a0-\u00ff]{0,512}$/.test(price.description)) {
    throw new ConfigError('price description must be at most 512 printable Latin-1 characters')
  }
}

/**
 * Handles one request against its offers: a 402 with challenges when unpaid, an error answer when the
 * credential fails, or a verified payment whose delivery the caller completes.
 * @example
 * const outcome = await Server.handle(server, request, offers, { store })
 * if (outcome.type === 'response') return outcome.response
 */
export async function handle(
  server: Server,
  request: Request,
  offers: readonly Offer[],
  options: { store: ReplayStore; now?: Date | undefined; credentialHeader?: Challenge.CredentialHeader | undefined },
): Promise<Outcome> {
  const now = options.now ?? new Date()
  const url = new URL(request.url)
  const route = `${request.method} ${url.pathname}`
  const header = options.credentialHeader ?? server.credentialHeader
  const context = { server, request, offers, route, now, header }

  // Core spec, "Security Considerations": no challenges over plain HTTP. Loopback is local development.
  if (url.protocol !== 'https:' && !isLoopback(url.hostname)) {
    return answer(context, new BadRequestError({ detail: 'payment requires HTTPS' }))
  }

  // Only the header the route's challenges name is read: a credential in another one is not looked at. Refusals
  // are answered without throwing: malformed and forged credentials are what bots send.
  const read = Credential.readHeader(request.headers.get(header))
  if (read.type === 'multiple') return answer(context, new BadRequestError({ detail: 'send exactly one Payment credential' }))
  if (read.type === 'malformed') return answer(context, malformed(read.detail))
  // Through `answer`: a body that cannot be bound to a challenge gets its 400, not a 503.
  if (read.type === 'none') {
    const misplaced = header !== 'Authorization' && /(^|,)\s*payment(\s|$)/i.test(request.headers.get('authorization') ?? '')
    if (!misplaced) return answer(context, paymentRequired(server, offers))
    return answer(context, new PaymentRequiredError({ detail: `Payment is required: send the credential in ${header}, as the challenge says.` }))
  }
  const credential = read.credential

  // Core spec, "Challenge Binding": the id must be the one we bound to these parameters.
  const echoed = credential.challenge
  if (echoed.realm !== server.realm || !(await Challenge.verifyBinding(echoed, server.secrets))) return refuse(context, credential, notIssued)
  try {
    return await verify(context, credential, options.store)
  } catch (error) {
    if (!isPaymentError(error)) throw error
    return refuse(context, credential, error)
  }
}

// A refused credential: the event, then the answer with fresh challenges.
function refuse(context: Context, credential: Credential.Credential, error: PaymentError): Promise<{ type: 'response'; response: Response; error: PaymentError }> {
  context.server.emit({
    type: error instanceof InvalidChallengeError && /already used/.test(error.detail ?? '') ? 'replay-refused' : 'failed',
    route: context.route,
    method: credential.challenge.method,
    challengeId: credential.challenge.id,
    problem: error.problem,
    detail: error.detail,
  })
  return answer(context, error)
}

// The refusals of malformed credentials, by detail (there are few): each built once. Bounded, in count and size.
const malformedErrors = new Map<string, MalformedCredentialError>()
function malformed(detail: string): MalformedCredentialError {
  if (detail.length > 200) return new MalformedCredentialError({ detail })
  let error = malformedErrors.get(detail)
  if (!error) {
    if (malformedErrors.size >= 64) malformedErrors.clear()
    error = new MalformedCredentialError({ detail })
    malformedErrors.set(detail, error)
  }
  return error
}

type Context = { server: Server; request: Request; offers: readonly Offer[]; route: string; now: Date; header: Challenge.CredentialHeader }

// The answer to every unpaid request of a route is the same error: built once per list of offers, not per request
// (building an Error costs microseconds even without its stack). So is the refusal of every forged challenge.
const required = new WeakMap<readonly Offer[], PaymentRequiredError>()
function paymentRequired(server: Server, offers: readonly Offer[]): PaymentRequiredError {
  let error = required.get(offers)
  if (!error) required.set(offers, (error = new PaymentRequiredError({ detail: requiredDetail(offers, server.discovery) })))
  return error
}
const notIssued = new InvalidChallengeError({ detail: 'the challenge was not issued by this server' })

/** An offer as its 402's detail names it (a session offer may say in words what one unit's price does not). */
export type Asked = Pick<Offer, 'intent' | 'request'> & { method: Pick<Method<any, any>, 'name' | 'display'>; asked?: string | undefined }

/**
 * What a 402's offers ask, in words, for its problem `detail` (the machine-readable terms stay in the challenges).
 * @example
 * Server.requiredDetail(offers, '/openapi.json') // 'Payment is required: 0.25 pathUSD by tempo, or 0.25 USD by stripe. Prices of every route: /openapi.json.'
 */
export function requiredDetail(offers: readonly Asked[], discovery?: string | undefined): string {
  const asked = offers.map(({ method, intent, request, asked }) => {
    const { amount, currency } = method.display?.(request) ?? { amount: `${request.amount} base units of`, currency: request.currency }
    const unit = request.unitType ? ` per ${request.unitType}` : ''
    return `${asked ?? `${amount} ${currency}${unit}`} by ${method.name}${intent === 'charge' ? '' : ` (${intent})`}`
  })
  return `Payment is required: ${asked.join(', or ')}.${discovery ? ` Prices of every route: ${discovery}.` : ''}`
}

async function verify(context: Context, credential: Credential.Credential, store: ReplayStore): Promise<Paid> {
  const { server, request, now, route } = context
  // The binding was checked by `handle`.
  const echoed = credential.challenge
  // The header is bound into the id: a credential is only good in the header its challenge named.
  if (Challenge.credentialHeader(echoed) !== context.header) {
    throw new InvalidChallengeError({ detail: `the challenge was issued for credentials in ${Challenge.credentialHeader(echoed)}` })
  }
  const sameMethod = context.offers.filter((offer) => offer.method.name === echoed.method && offer.intent === echoed.intent)
  if (sameMethod.length === 0) {
    throw new MethodUnsupportedError({ detail: `${echoed.method}/${echoed.intent} is not accepted here` })
  }
  // The request must be what this route charges now, and the opaque route scope must be this route.
  const offer = sameMethod.find((o) => wireOf(o) === echoed.request)
  if (!offer || scopedRoute(echoed.opaque) !== route) {
    throw new InvalidChallengeError({ detail: 'the challenge was issued for another route or price' })
  }
  // Charge intent, "Verification": expiry before the proof.
  const expiresAt = echoed.expires ? Date.parse(echoed.expires) : Number.NaN
  if (!Number.isFinite(expiresAt)) throw new InvalidChallengeError({ detail: 'the challenge has no valid expiry' })
  // An expired challenge verifies nothing new; only a payment that settled but was never delivered may still be
  // collected, for a short grace period, so a failed delivery near the deadline does not cost the payer.
  const expired = expiresAt <= now.getTime()
  if (expired && now.getTime() > expiresAt + redeliveryGraceMs) throw new PaymentExpiredError({ detail: 'the challenge has expired' })
  if (echoed.digest !== undefined) {
    const body = await readBody(request, server.maxBodyBytes)
    if (!(await BodyDigest.matches(body, echoed.digest))) {
      throw new VerificationFailedError({ detail: 'the request body does not match the challenge digest' })
    }
  }
  const method = offer.method
  const payload = v.safeParse(method.payload, credential.payload)
  if (!payload.success) throw new MalformedCredentialError({ detail: `invalid ${method.name} payload: ${payload.issues[0].message}` })
  const parsedRequest = validRequest(offer)
  if (!parsedRequest.success) throw new VerificationFailedError({ detail: 'the challenge request is not valid for its method' })
  // The echoed request is byte for byte the offer's: use the offer's object instead of decoding it again.
  const challenge: Challenge.Challenge = { ...echoed, request: offer.request }
  const paidWith = await credentialDigest(credential, payload.output)
  const id = echoed.id
  // The deadline every answer that asks the payer to come back names: expiry plus the redelivery grace.
  const deadline = new Date(expiresAt + redeliveryGraceMs).toISOString()

  const attempt = crypto.randomUUID()
  const begun = await storeCall(() => store.begin(id, attempt, Date.now() + server.leaseMs, expiresAt, paidWith))
  if (begun.status === 'delivered') throw new InvalidChallengeError({ detail: 'the challenge was already used' })
  if (begun.status === 'busy' || (begun.status === 'paid-elsewhere' && begun.outcome === 'unknown')) {
    const other = begun.status === 'paid-elsewhere' || begun.otherCredential === true
    throw new PaymentInProgressError({
      detail: other
        ? `a payment with another credential is committed to this challenge and its outcome is not known yet: send the credential you first sent for it again, before ${deadline}`
        : 'this credential is being settled by another request',
      retryAfter: begun.status === 'busy' ? Math.max(1, Math.ceil(begun.retryAfterMs / 1000)) : 2,
    })
  }
  // Knowing the challenge is not paying for it: only the credential that settled it is served again.
  if (begun.status === 'paid-elsewhere') throw new VerificationFailedError({ detail: 'this challenge was paid with another credential' })
  // From here this attempt holds the challenge: the lease is renewed while it runs (verification, the handler).
  const lease = keepLease(store, id, attempt, server.leaseMs, expiresAt + redeliveryGraceMs)
  const release = () => {
    lease.stop()
    return store.release(id, attempt).catch(() => {})
  }
  const committed = begun.status === 'resumed' ? begun.committed : undefined
  // After expiry only a payment already made may be collected: settled, or committed with this credential.
  if (expired && begun.status !== 'settled' && committed === undefined) {
    await release()
    throw new PaymentExpiredError({ detail: 'the challenge has expired' })
  }
  const paid = (settlement: Settlement, redelivery: boolean): Paid => ({
    type: 'paid',
    challenge,
    settlement,
    redelivery,
    receipt: Receipt.from({ method: method.name, reference: settlement.reference, challengeId: id, ...settlement.receipt, now }),
    deliver: async () => {
      lease.stop()
      if (!(await storeCall(() => store.deliver(id, attempt)))) {
        throw new PaymentInProgressError({ detail: 'the challenge was taken over by another request', retryAfter: 1 })
      }
    },
    release,
    deadline,
  })
  if (begun.status === 'settled') {
    server.emit({ type: 'redelivered', route, method: method.name, challengeId: id, reference: begun.reference })
    return paid({ reference: begun.reference }, true)
  }

  let settlement: Settlement
  // Whether this attempt committed a payment: only then does a refusal mean that payment failed for good.
  let committedNow = false
  try {
    settlement = await method.verify({
      challenge,
      request: parsedRequest.output,
      credential: { ...credential, payload: payload.output },
      claimReference: async (reference, options) => {
        // Core spec, "Credential Handling": a reference may be a bearer token (a Stripe SPT); only its digest is kept.
        const key = `${method.name}:${await digest(reference)}`
        if (!(await storeCall(() => store.claimReference(key, id, options?.keepUntil)))) {
          throw new VerificationFailedError({ detail: 'this payment already settled another challenge' })
        }
      },
      commit: async (reference, options) => {
        const value = options?.secret ? `sha256:${await digest(reference)}` : reference
        if (!(await storeCall(() => store.commit(id, attempt, value, paidWith)))) {
          throw new PaymentInProgressError({ detail: 'the challenge was taken over by another request', retryAfter: 1 })
        }
        committedNow = true
      },
      committed,
      resumed: begun.status === 'resumed',
      expired,
      issuedAt: new Date(expiresAt - server.ttlSeconds * 1000),
      now,
    })
    if (!(await storeCall(() => store.settle(id, attempt, settlement.reference, paidWith, Date.now() + server.leaseMs)))) {
      throw new PaymentUnavailableError({ detail: `the settlement could not be recorded; send the same credential again before ${deadline}`, retryAfter: 1 })
    }
  } catch (error) {
    // A refused payment this attempt committed failed for good: any credential may pay now. Anything else
    // (a transient fault) keeps the commitment: only the same credential may resolve it.
    if (committedNow && isPaymentError(error) && error.status === 402) {
      lease.stop()
      await store.fail(id, attempt).catch(() => {})
    } else await release()
    if (isPaymentError(error)) throw error
    throw new PaymentUnavailableError({ detail: 'payment verification failed unexpectedly', cause: error })
  }
  server.emit({ type: 'paid', route, method: method.name, challengeId: id, reference: settlement.reference })
  return paid(settlement, false)
}

/**
 * Renews an attempt's lease every third of its length until stopped, the lease is lost, or `until` (after which
 * nothing could be redelivered anyway), so a slow handler is never run twice by a retry taking the lease over.
 */
function keepLease(store: ReplayStore, id: string, attempt: string, leaseMs: number, until: number): { stop: () => void } {
  const timer = setInterval(() => {
    if (Date.now() >= until) return stop()
    // A failed renewal is retried on the next tick; the lease is still ours until it lapses.
    try {
      store.renew(id, attempt, Date.now() + leaseMs).then(
        (held) => held || stop(),
        () => {},
      )
    } catch {
      // As above: a store that throws instead of rejecting.
    }
  }, Math.floor(leaseMs / 3))
  // Where timers keep a process alive (Node), renewing a lease must not.
  ;(timer as { unref?: () => void }).unref?.()
  const stop = () => clearInterval(timer)
  return { stop }
}

// A digest of the payment the payer sent: its validated payload (unknown keys dropped) and source, in canonical
// JSON with hex in lowercase, so that re-encoding the same payment is the same credential.
async function credentialDigest(credential: Credential.Credential, payload: unknown): Promise<string> {
  let canonical: string
  try {
    canonical = canonicalJson({ payload: lowerHex(payload), source: credential.source === undefined ? null : lowerHex(credential.source) })
  } catch {
    throw new MalformedCredentialError({ detail: 'the credential has no canonical JSON form' })
  }
  return digest(canonical)
}

// Hex strings (and a did:pkh address) compare case-insensitively: their case does not change the payment.
function lowerHex(value: unknown): unknown {
  if (typeof value === 'string') return /^0x[0-9a-f]*$/i.test(value) ? value.toLowerCase() : value.replace(/:0x[0-9a-f]{40}$/i, (address) => address.toLowerCase())
  if (Array.isArray(value)) return value.map(lowerHex)
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, lowerHex(inner)]))
  return value
}

// base64url SHA-256 of a text.
async function digest(text: string): Promise<string> {
  return encodeBytes(new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text))))
}

/**
 * The opaque value of a challenge: base64url of canonical JSON (core spec, "opaque") holding the route it
 * pays for and a random nonce, so that two payers never get the same challenge id.
 * @example
 * Server.routeScope('GET /report') // 'eyJub25jZSI6Ij…'
 */
export function routeScope(route: string, nonce = encodeBytes(crypto.getRandomValues(new Uint8Array(16)))): string {
  // The canonical form of two string members in key order, written directly (RFC 8785 strings are
  // JSON.stringify's); a route with characters outside printable ASCII goes through the canonicalizer.
  if (printableAscii.test(route) && printableAscii.test(nonce)) return encodeText(`{"nonce":${JSON.stringify(nonce)},"route":${JSON.stringify(route)}}`)
  return encodeJson({ nonce, route })
}

const printableAscii = /^[\u0020-\u007e]*$/

function scopedRoute(opaque: string | undefined): string | undefined {
  if (!opaque) return undefined
  try {
    const scope = decodeObject(opaque)
    return typeof scope.route === 'string' && typeof scope.nonce === 'string' ? scope.route : undefined
  } catch {
    return undefined
  }
}

/**
 * Builds the bound challenges for a request's offers, ordered by its `Accept-Payment`.
 * @example
 * const challenges = await Server.challenges(server, request, offers)
 */
export async function challenges(
  server: Server,
  request: Request,
  offers: readonly Offer[],
  now = new Date(),
  credentialHeader = server.credentialHeader,
): Promise<Challenge.Challenge[]> {
  const route = `${request.method} ${new URL(request.url).pathname}`
  return (await bind(server, request, offers, now, route, credentialHeader)).map((bound) => bound.challenge)
}

// The challenges with each one's request wire string, so formatting them does not encode the request again.
async function bind(
  server: Server,
  request: Request,
  offers: readonly Offer[],
  now: Date,
  route: string,
  credentialHeader: Challenge.CredentialHeader,
): Promise<{ challenge: Challenge.Challenge; format: (own: Challenge.OwnParams) => string }[]> {
  // The default header stays implicit; `Payment-Authorization` is named and bound (an extra HMAC slot).
  const header = credentialHeader === 'Authorization' ? undefined : credentialHeader
  const expires = new Date(Math.floor(now.getTime() / 1000) * 1000 + server.ttlSeconds * 1000).toISOString().replace('.000Z', 'Z')
  const digest = hasBody(request) ? await BodyDigest.compute(await readBody(request, server.maxBodyBytes)) : undefined
  const selected = AcceptPayment.select(
    offers.map((offer) => ({ ...offer, method: offer.method.name, offer })),
    request.headers.get('accept-payment'),
  )
  return Promise.all(
    selected.map(async ({ offer }) => {
      const wire = wireOf(offer)
      const slots = { realm: server.realm, method: offer.method.name, intent: offer.intent, request: wire, expires, digest, header, opaque: routeScope(route) }
      const id = await ChallengeId.compute(server.secrets[0]!, slots)
      const challenge: Challenge.Challenge = { ...slots, id, request: offer.request, description: offer.description }
      for (const key of ['digest', 'description', 'header'] as const) if (challenge[key] === undefined) delete challenge[key]
      return { challenge, format: formatterOf(server, offer, header) }
    }),
  )
}

// A server-built request is validated by its method once, not on every paid request.
const validated = new WeakMap<object, v.SafeParseResult<v.GenericSchema>>()
function validRequest(offer: Offer): v.SafeParseResult<v.GenericSchema> {
  let result = validated.get(offer.request)
  if (!result) {
    result = v.safeParse(offer.method.request, offer.request)
    validated.set(offer.request, result)
  }
  return result
}

// Offers are usually built once per route; encode each request once too (it is on every paid request's path).
const wires = new WeakMap<object, string>()
function wireOf(offer: Offer): string {
  let wire = wires.get(offer.request)
  if (wire === undefined) {
    wire = encodeJson(offer.request)
    wires.set(offer.request, wire)
  }
  return wire
}

// The challenge formatter of an offer: its fixed parameters (realm, method, intent, request, description, header)
// quoted once, as its wire request is encoded once.
const formatters = new WeakMap<object, { realm: string; header: string | undefined; format: (own: Challenge.OwnParams) => string }>()
function formatterOf(server: Server, offer: Offer, header: string | undefined): (own: Challenge.OwnParams) => string {
  let found = formatters.get(offer)
  if (found === undefined || found.realm !== server.realm || found.header !== header) {
    const format = Challenge.formatter({ realm: server.realm, method: offer.method.name, intent: offer.intent, request: wireOf(offer), description: offer.description, header })
    found = { realm: server.realm, header, format }
    formatters.set(offer, found)
  }
  return found.format
}

async function challengeResponse(context: Context, error: PaymentError): Promise<Response> {
  const list = await bind(context.server, context.request, context.offers, context.now, context.route, context.header)
  const headers = new Headers({ 'content-type': 'application/problem+json', 'cache-control': 'no-store' })
  for (const { challenge, format } of list) {
    context.server.emit({ type: 'challenge', route: context.route, method: challenge.method, challengeId: challenge.id })
    headers.append('www-authenticate', format(challenge))
  }
  if (error.retryAfter !== undefined) headers.set('retry-after', String(error.retryAfter))
  return new Response(JSON.stringify(error.toProblem({ challengeId: list[0]?.challenge.id })), { status: error.status, headers })
}

async function answer(context: Context, error: PaymentError): Promise<{ type: 'response'; response: Response; error: PaymentError }> {
  if (error.challenge && !(error instanceof BadRequestError)) {
    try {
      return { type: 'response', response: await challengeResponse(context, error), error }
    } catch (cause) {
      // The body could not be read for a digest: answer without challenges rather than fail open.
      if (!isPaymentError(cause)) throw cause
      return { type: 'response', response: problemResponse(cause), error: cause }
    }
  }
  return { type: 'response', response: problemResponse(error), error }
}

/**
 * A problem-details response for an error, with `Retry-After` when a retry can succeed and never a receipt.
 * @example
 * return Server.problemResponse(new PaymentUnavailableError({ retryAfter: 2 }))
 */
export function problemResponse(error: PaymentError, extra: Record<string, unknown> = {}): Response {
  const headers = new Headers({ 'content-type': 'application/problem+json', 'cache-control': 'no-store' })
  if (error.retryAfter !== undefined) headers.set('retry-after', String(error.retryAfter))
  return new Response(JSON.stringify(error.toProblem(extra)), { status: error.status, headers })
}

/**
 * Whether a host is the local machine (where plain HTTP is allowed for development).
 * @example
 * Server.isLoopback('127.0.0.1') // true
 */
export function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127(\.\d{1,3}){3}$/.test(hostname)
}

function hasBody(request: Request): boolean {
  return request.body !== null && !['GET', 'HEAD'].includes(request.method)
}

async function readBody(request: Request, max: number): Promise<Uint8Array<ArrayBuffer>> {
  const tooLarge = () => new BadRequestError({ detail: `request body larger than ${max} bytes cannot be bound to a payment` })
  if (Number(request.headers.get('content-length') ?? '0') > max) throw tooLarge()
  const body = request.clone().body
  if (!body) return new Uint8Array(0)
  // A chunked body declares no length (or a false one): stop reading as soon as it passes the limit.
  const reader = body.getReader()
  const read = await Body.readUpTo(reader, max)
  if (!read.complete) {
    await reader.cancel().catch(() => {})
    throw tooLarge()
  }
  return Body.concat(read.chunks, read.size)
}

async function storeCall<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call()
  } catch (error) {
    if (isPaymentError(error)) throw error
    throw new PaymentUnavailableError({ detail: 'replay protection is unavailable', retryAfter: 1, cause: error })
  }
}
