/** @module Framework-free handling of a paid request: challenges, verification order, single use, receipts. */
import * as v from 'valibot'
import * as AcceptPayment from './AcceptPayment.js'
import * as Body from './Body.js'
import * as BodyDigest from './BodyDigest.js'
import * as Challenge from './Challenge.js'
import * as ChallengeId from './ChallengeId.js'
import * as Credential from './Credential.js'
import { canonicalJson, decodeObject, encodeBytes, encodeJson } from './Encoding.js'
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
  /** Gives the challenge back, settled but undelivered: the same credential may be sent again until it expires. */
  release: () => Promise<void>
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
 * Checks a configuration and builds a server.
 * @example
 * const server = Server.create({ realm: 'api.example.com', secret: env.MPP_SECRET_KEY, methods: [tempo(config)] })
 */
export function create(config: Config): Server {
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
  if (config.methods.length === 0) throw new ConfigError('methods must name at least one payment method')
  const methods = new Map<string, Method<any, any>>()
  for (const method of config.methods) {
    if (!/^[a-z]+$/.test(method.name)) throw new ConfigError(`method name "${method.name}" must be lowercase a-z`)
    if (methods.has(method.name)) throw new ConfigError(`method "${method.name}" is configured twice`)
    methods.set(method.name, method)
  }
  const ttlSeconds = config.ttlSeconds ?? 300
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 10 || ttlSeconds > 86_400) {
    throw new ConfigError('ttlSeconds must be a whole number from 10 to 86400')
  }
  const onEvent = config.onEvent
  return {
    credentialHeader: checkedHeader(config.credentialHeader),
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

  let credential: Credential.Credential | undefined
  try {
    // Only the header the route's challenges name is read: a credential in another one is not looked at.
    credential = Credential.fromHeader(request.headers.get(header))
  } catch (error) {
    if (error instanceof Credential.MultipleCredentialsError) {
      return answer(context, new BadRequestError({ detail: 'send exactly one Payment credential' }))
    }
    return answer(context, new MalformedCredentialError({ detail: (error as Error).message }))
  }
  // Through `answer`: a body that cannot be bound to a challenge gets its 400, not a 503.
  if (!credential) {
    const misplaced = header !== 'Authorization' && /(^|,)\s*payment(\s|$)/i.test(request.headers.get('authorization') ?? '')
    const detail = misplaced ? `Payment is required: send the credential in ${header}, as the challenge says.` : 'Payment is required.'
    return answer(context, new PaymentRequiredError({ detail }))
  }

  try {
    return await verify(context, credential, options.store)
  } catch (error) {
    if (!isPaymentError(error)) throw error
    server.emit({
      type: error instanceof InvalidChallengeError && /already used/.test(error.detail ?? '') ? 'replay-refused' : 'failed',
      route,
      method: credential.challenge.method,
      challengeId: credential.challenge.id,
      problem: error.problem,
      detail: error.detail,
    })
    return answer(context, error)
  }
}

type Context = { server: Server; request: Request; offers: readonly Offer[]; route: string; now: Date; header: Challenge.CredentialHeader }

async function verify(context: Context, credential: Credential.Credential, store: ReplayStore): Promise<Paid> {
  const { server, request, now, route } = context
  const echoed = credential.challenge
  // Core spec, "Challenge Binding": the id must be the one we bound to these parameters.
  if (echoed.realm !== server.realm || !(await Challenge.verifyBinding(echoed, server.secrets))) {
    throw new InvalidChallengeError({ detail: 'the challenge was not issued by this server' })
  }
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
  const paidWith = await credentialDigest(credential)

  const attempt = crypto.randomUUID()
  const begun = await storeCall(() => store.begin(echoed.id, attempt, now.getTime() + server.leaseMs, expiresAt))
  if (begun.status === 'delivered') throw new InvalidChallengeError({ detail: 'the challenge was already used' })
  if (begun.status === 'busy') {
    throw new PaymentInProgressError({
      detail: 'this credential is being settled by another request',
      retryAfter: Math.max(1, Math.ceil(begun.retryAfterMs / 1000)),
    })
  }
  const release = () => store.release(echoed.id, attempt).catch(() => {})
  if (expired && begun.status !== 'settled') {
    await release()
    throw new PaymentExpiredError({ detail: 'the challenge has expired' })
  }
  const paid = (settlement: Settlement, redelivery: boolean): Paid => ({
    type: 'paid',
    challenge,
    settlement,
    redelivery,
    receipt: Receipt.from({ method: method.name, reference: settlement.reference, challengeId: echoed.id, ...settlement.receipt, now }),
    deliver: async () => {
      if (!(await storeCall(() => store.deliver(echoed.id, attempt)))) {
        throw new PaymentInProgressError({ detail: 'the challenge was taken over by another request', retryAfter: 1 })
      }
    },
    release,
  })
  if (begun.status === 'settled') {
    // Knowing the challenge is not paying for it: only the credential that settled it is served again.
    if (begun.credential !== undefined && begun.credential !== paidWith) {
      await release()
      throw new VerificationFailedError({ detail: 'this challenge was paid with another credential' })
    }
    server.emit({ type: 'redelivered', route, method: method.name, challengeId: echoed.id, reference: begun.reference })
    return paid({ reference: begun.reference }, true)
  }

  let settlement: Settlement
  try {
    settlement = await method.verify({
      challenge,
      request: parsedRequest.output,
      credential: { ...credential, payload: payload.output },
      claimReference: async (reference) => {
        // Core spec, "Credential Handling": a reference may be a bearer token (a Stripe SPT); only its digest is kept.
        const key = `${method.name}:${await digest(reference)}`
        if (!(await storeCall(() => store.claimReference(key, echoed.id)))) {
          throw new VerificationFailedError({ detail: 'this payment already settled another challenge' })
        }
      },
      resumed: begun.status === 'resumed',
      now,
    })
    if (!(await storeCall(() => store.settle(echoed.id, attempt, settlement.reference, paidWith, Date.now() + server.leaseMs)))) {
      throw new PaymentUnavailableError({ detail: 'the settlement could not be recorded', retryAfter: 1 })
    }
  } catch (error) {
    // Nothing was spent: the payer may send the same credential again (or a corrected one).
    await release()
    if (isPaymentError(error)) throw error
    throw new PaymentUnavailableError({ detail: 'payment verification failed unexpectedly', cause: error })
  }
  server.emit({ type: 'paid', route, method: method.name, challengeId: echoed.id, reference: settlement.reference })
  return paid(settlement, false)
}

// A digest of what the payer sent (payload and source), canonical so that re-encoding the same credential matches.
async function credentialDigest(credential: Credential.Credential): Promise<string> {
  let canonical: string
  try {
    canonical = canonicalJson({ payload: credential.payload, source: credential.source ?? null })
  } catch {
    throw new MalformedCredentialError({ detail: 'the credential has no canonical JSON form' })
  }
  return digest(canonical)
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
  return encodeJson({ nonce, route })
}

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
  // The default header stays implicit; `Payment-Authorization` is named and bound (an extra HMAC slot).
  const header = credentialHeader === 'Authorization' ? undefined : credentialHeader
  const route = `${request.method} ${new URL(request.url).pathname}`
  const expires = new Date(Math.floor(now.getTime() / 1000) * 1000 + server.ttlSeconds * 1000).toISOString().replace('.000Z', 'Z')
  const digest = hasBody(request) ? await BodyDigest.compute(await readBody(request, server.maxBodyBytes)) : undefined
  const selected = AcceptPayment.select(
    offers.map((offer) => ({ ...offer, method: offer.method.name, offer })),
    request.headers.get('accept-payment'),
  )
  return Promise.all(
    selected.map(async ({ offer }) => {
      const slots = { realm: server.realm, method: offer.method.name, intent: offer.intent, request: wireOf(offer), expires, digest, header, opaque: routeScope(route) }
      const id = await ChallengeId.compute(server.secrets[0]!, slots)
      const challenge: Challenge.Challenge = { ...slots, id, request: offer.request, description: offer.description }
      for (const key of ['digest', 'description', 'header'] as const) if (challenge[key] === undefined) delete challenge[key]
      return challenge
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

async function challengeResponse(context: Context, error: PaymentError): Promise<Response> {
  const list = await challenges(context.server, context.request, context.offers, context.now, context.header)
  for (const challenge of list) {
    context.server.emit({ type: 'challenge', route: context.route, method: challenge.method, challengeId: challenge.id })
  }
  const headers = new Headers({ 'content-type': 'application/problem+json', 'cache-control': 'no-store' })
  for (const challenge of list) headers.append('www-authenticate', Challenge.serialize(challenge))
  if (error.retryAfter !== undefined) headers.set('retry-after', String(error.retryAfter))
  return new Response(JSON.stringify(error.toProblem({ challengeId: list[0]?.id })), { status: error.status, headers })
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

async function readBody(request: Request, max: number): Promise<Uint8Array> {
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
