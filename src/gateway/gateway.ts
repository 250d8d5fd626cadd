/**
 * @module The gateway: prices routes from the pricing table, takes payment through the core server,
 * forwards paid and unpriced requests to the origin, and answers discovery and health requests.
 */
import {
  BadRequestError,
  ConfigurationError,
  OriginFailedError,
  PaymentUnavailableError,
  RateLimitedError,
  MalformedCredentialError,
  isPaymentError,
} from '../core/Errors.js'
import * as Challenge from '../core/Challenge.js'
import * as Credential from '../core/Credential.js'
import * as Discovery from '../core/Discovery.js'
import type { Method } from '../core/Method.js'
import type { ReplayStore } from '../core/ReplayStore.js'
import * as Server from '../core/Server.js'
import * as SessionServer from '../core/SessionServer.js'
import type { SessionMethod } from '../core/SessionMethod.js'
import { listChannels } from '../middleware/channels.js'
import * as Delivery from '../middleware/delivery.js'
import type { ChannelState } from '../storage/ChannelState.js'
import type { PayerChannels } from '../storage/PayerChannels.js'
import { channelStore } from '../storage/channel-store.js'
import { idempotencyStore, type Idempotency } from '../storage/idempotency.js'
import { replayStore } from '../storage/replay-store.js'
import { recorder, type Recorder } from './events.js'
import { meteredForward, type MeteredRoute } from './metered.js'
import { buildMethods, buildSessionMethod, sessionMethodFactories, type MethodFactories, type SessionMethodFactories } from './methods.js'
import { openApiDocument } from './openapi.js'
import { callOrigin, originRequest } from './origin.js'
import { withCors } from './cors.js'
import { routingOverride } from './overrides.js'
import { paymentPage, prefersHtml, type PageOffer } from './page.js'
import { AmbiguousPathError, canonicalPath } from './path.js'
import { PricingError, intents, parsePricing, type PricingTable } from './pricing.js'
import { sessionDiscoveryOffer, sessionPrice } from './session-price.js'
import { clientKey, overLimit } from './rate-limit.js'
import { compileRoutes, resolve, type CompiledRoute } from './routes.js'
import { presentsPayment, screen } from './unpriced.js'
import { amountFor, amounts } from './variable-price.js'
import { SettingsError, readSettings, type GatewayEnv, type Settings } from './settings.js'

/** What a gateway is built from. */
export type GatewayOptions = {
  /** The parsed pricing.json (validated here). */
  pricing: unknown
  /** Bindings, variables and secrets. */
  env: GatewayEnv
  /** Method factories by name (the deployed ones are `methodFactories`). */
  factories: MethodFactories
  /** Session method factories by name, for routes with the `session` intent (default `sessionMethodFactories`: `tempo`). */
  sessionFactories?: SessionMethodFactories | undefined
  /** Where log lines go (default `console.log`). */
  log?: ((line: string) => void) | undefined
}

/** A built gateway. */
export type Gateway = {
  /** Answers a request; pass the worker's `ctx` so work that outlives the response (a session's settlement after the payer went away) is kept alive. */
  fetch: (request: Request, ctx?: WaitUntil | undefined) => Promise<Response>
  table: PricingTable
  settings: Settings
  routes: readonly CompiledRoute[]
}

/** A priced route with everything its requests need, prepared once. */
type Priced = {
  route: CompiledRoute
  server: Server.Server
  /** The offers and payment-page rows of each amount the route charges (one unless its price varies). */
  variants: ReadonlyMap<string, Variant>
  /** The first amount's offers: what the discovery document lists (none for a session-only route). */
  offers: Promise<Server.Offer[]>
  /** Whether the route offers the `charge` intent. */
  charge: boolean
  /** The route's session offer, when it has the `session` intent. */
  metered: MeteredRoute | undefined
}

/** The offers of one amount a route charges, built once, and the payment page's rows for them. */
type Variant = { offers: Promise<Server.Offer[]>; page: PageOffer[] }

/**
 * Paths the gateway answers itself, before the pricing table.
 * @example
 * if (url.pathname === reservedPaths.health) return health()
 */
export const reservedPaths = { health: '/__mpp/health', channels: '/__mpp/channels', openapi: '/openapi.json', prefix: '/__mpp/' }

/**
 * Builds a gateway. Everything that can be checked is checked here, once per isolate: settings, the
 * pricing table, the method configurations and every route's offers. Errors name what is wrong.
 * @example
 * const gateway = createGateway({ pricing, env, factories: methodFactories })
 * export default { fetch: (request, _env, ctx) => gateway.fetch(request, ctx) }
 */
export function createGateway(options: GatewayOptions): Gateway {
  const settings = readSettings(options.env)
  const table = parsePricing(options.pricing)
  const methods = buildMethods(table.methods, options.env, options.factories)
  const byName = new Map(methods.map((method) => [method.name, method]))
  const routes = compileRoutes(table)
  const record = recorder(settings.analytics, options.log)
  const store = replayStore(settings.replayGuard)
  const idempotency = settings.idempotencyCache ? idempotencyStore(settings.idempotencyCache) : undefined
  // Session methods are built only for the methods session-priced routes accept.
  const sessionMethods = new Map<string, SessionMethod>()
  const sessionMethod = (name: string) => {
    let method = sessionMethods.get(name)
    if (!method) {
      method = buildSessionMethod(name, table.methods, options.env, options.sessionFactories ?? sessionMethodFactories)
      sessionMethods.set(name, method)
    }
    return method
  }
  const priced: (Priced | undefined)[] = routes.map((route) => (route.entry.free ? undefined : prepare(route, settings, methods, byName, record, sessionMethod)))
  const env = options.env as GatewayEnv & { CHANNEL_STATE?: DurableObjectNamespace<ChannelState>; PAYER_CHANNELS?: DurableObjectNamespace<PayerChannels> }
  const channels = sessionMethods.size > 0 ? sessionChannels(env) : undefined

  let discovery: Promise<string> | undefined
  const openApi = () =>
    (discovery ??= (async () => {
      const offers = new Map<number, Server.Offer[]>()
      const sessions = new Map<number, Discovery.DiscoveryOffer[]>()
      for (const entry of priced) {
        if (!entry) continue
        offers.set(entry.route.index, await entry.offers)
        if (entry.metered) sessions.set(entry.route.index, [sessionDiscoveryOffer(entry.route.entry, entry.metered)])
      }
      return JSON.stringify(openApiDocument(table, routes, offers, sessions))
    })().catch((error) => {
      discovery = undefined
      throw error
    }))

  const context: Context = { settings, store, idempotency, record, channels }

  async function handle(request: Request, ctx: WaitUntil | undefined): Promise<Response> {
    const url = new URL(request.url)
    let path: string
    try {
      path = canonicalPath(url.pathname)
    } catch (error) {
      if (!(error instanceof AmbiguousPathError)) throw error
      record({ type: 'ambiguous-path', route: '-', request: request.method, detail: error.message })
      return Server.problemResponse(new BadRequestError({ detail: `ambiguous path: ${error.message}` }))
    }
    const method = request.method
    if (method !== method.toUpperCase()) return Server.problemResponse(new BadRequestError({ detail: 'the HTTP method must be uppercase' }))
    if (path.startsWith(reservedPaths.prefix)) {
      if (path === reservedPaths.health && (method === 'GET' || method === 'HEAD')) return health(table, methods)
      if (path === reservedPaths.channels && method === 'GET') {
        return listChannels(request, { secret: text(env.MPP_OPERATOR_SECRET), channels: env.CHANNEL_STATE, payers: env.PAYER_CHANNELS })
      }
      return Server.problemResponse(new BadRequestError({ detail: `${reservedPaths.prefix} is reserved for the gateway` }))
    }
    if (path === reservedPaths.openapi && (method === 'GET' || method === 'HEAD')) {
      return Discovery.response(await openApi(), method)
    }
    const override = routingOverride(request.headers, url)
    if (override) {
      return Server.problemResponse(new BadRequestError({ detail: `${JSON.stringify(override.slice(0, 100))} is not accepted: it could change the route the origin serves` }))
    }
    const match = resolve(routes, method, path, table.formatSuffixes)
    if (!match.priced) return passThrough(context, request, url, path)
    // A priced path: the request goes on only as what the table names it (unpriced.ts decides).
    const next = await screen(request, match, { limit: settings.maxInspectedBodyBytes, cors: table.cors })
    if (next instanceof Response) return withCors(next, request, table.cors)
    const paid = priced[match.route!.index]
    const response = paid ? await payAndForward(ctx ? { ...context, waitUntil: ctx } : context, paid, next, url, path) : await passThrough(context, next, url, path)
    return withCors(response, request, table.cors)
  }

  return {
    table,
    settings,
    routes,
    fetch: async (request, ctx) => {
      try {
        return await handle(request, ctx)
      } catch (error) {
        // Only reached by faults outside the payment path (which answers for itself): nothing was charged.
        console.error(JSON.stringify({ event: 'gateway-error', error: String(error) }))
        return Server.problemResponse(new PaymentUnavailableError({ detail: 'the gateway failed to handle the request', retryAfter: 2 }))
      }
    },
  }
}

type Context = {
  settings: Settings
  store: ReplayStore
  idempotency: Idempotency | undefined
  record: Recorder
  channels: ReturnType<typeof channelStore> | undefined
  waitUntil?: WaitUntil | undefined
}

/** The part of a worker's ExecutionContext the gateway uses. */
type WaitUntil = { waitUntil: (promise: Promise<unknown>) => void }

function sessionChannels(env: GatewayEnv & { CHANNEL_STATE?: DurableObjectNamespace<ChannelState>; PAYER_CHANNELS?: DurableObjectNamespace<PayerChannels> }) {
  const bound = (value: unknown) => typeof value === 'object' && value !== null && typeof (value as DurableObjectNamespace).idFromName === 'function'
  if (!bound(env.CHANNEL_STATE)) throw new SettingsError('CHANNEL_STATE must be bound to the ChannelState Durable Object: session-priced routes keep their channels there')
  return channelStore(env.CHANNEL_STATE!, bound(env.PAYER_CHANNELS) ? env.PAYER_CHANNELS : undefined)
}

function prepare(
  route: CompiledRoute,
  settings: Settings,
  methods: Method<any, any>[],
  byName: Map<string, Method<any, any>>,
  record: Recorder,
  sessionMethod: (name: string) => SessionMethod,
): Priced {
  const entry = route.entry
  const offered = intents(entry)
  const server = Server.create({
    realm: settings.realm,
    secret: settings.secret,
    previousSecrets: settings.previousSecrets,
    methods,
    ttlSeconds: entry.expires,
    credentialHeader: entry.credentialHeader,
    // The gateway serves the discovery document of its pricing table; a 402's detail points there.
    discovery: '/openapi.json',
    // A paid request holds its challenge at least as long as the origin may take (the lease is renewed meanwhile).
    leaseMs: Math.min(600_000, Math.max(60_000, settings.originTimeoutMs + 10_000)),
    onEvent: (event) => record({ ...event, route: route.label, request: event.route }),
  })
  const accepts = entry.accept ?? methods.map((method) => ({ method: method.name, currency: undefined, price: undefined }))
  const charge = offered.includes('charge')
  // A price that varies is one set of offers per amount, all priced now, so none fails at request time.
  const variants = new Map(charge ? amounts(entry).map((amount) => [amount, variant(amount)] as const) : [])
  const metered = offered.includes('session') ? sessionRoute() : undefined
  return { route, server, variants, offers: charge ? variants.values().next().value!.offers : Promise.resolve([]), charge, metered }

  function sessionRoute(): MeteredRoute {
    // The session offer goes to the first accepted method that serves sessions; a session-only route's "accept" names no other.
    const candidates = entry.accept ?? methods.map((method) => ({ method: method.name, currency: undefined }))
    let chosen: { name: string; method: SessionMethod; currency: string | undefined } | undefined
    for (const [j, accept] of candidates.entries()) {
      try {
        const method = sessionMethod(accept.method)
        chosen ??= { name: accept.method, method, currency: accept.currency }
      } catch (error) {
        const notServed = error instanceof PricingError && error.message.endsWith('does not serve the "session" intent')
        // Without "accept", the session goes to whichever configured methods serve it.
        if (!notServed || (!charge && entry.accept)) throw new PricingError(`pricing.json ${route.label} accept[${j}] (${accept.method}): ${(error as Error).message.replace(/^pricing\.json /, '')}`, { cause: error })
      }
    }
    if (!chosen) throw new PricingError(`pricing.json ${route.label}: no accepted method serves the "session" intent`)
    try {
      return sessionPrice(route.label, entry, chosen.method, chosen.currency)
    } catch (error) {
      throw new PricingError(`pricing.json ${route.label} session (${chosen.name}): ${(error as Error).message}`, { cause: error })
    }
  }

  function variant(amount: string): Variant {
    const page: PageOffer[] = []
    const built = accepts.map((accept, j) => {
      const method = byName.get(accept.method)!
      const where = `pricing.json ${route.label} accept[${j}] (${accept.method})`
      if (!method.intents.includes('charge')) throw new PricingError(`${where}: the method does not serve the "charge" intent`)
      const price = { amount: accept.price ?? amount, currency: accept.currency, description: entry.description }
      let request: unknown
      try {
        // Charges are priced once per isolate; a method whose charge is synchronous fails here, at start-up.
        request = method.charge(price)
      } catch (error) {
        throw new PricingError(`${where}: ${(error as Error).message}`, { cause: error })
      }
      const offer = async (): Promise<Server.Offer> => {
        const value = (await request) as Record<string, unknown>
        page[j] = { method: method.name, price: price.amount, currency: String(accept.currency ?? value.currency ?? ''), amount: String(value.amount ?? '') }
        return { method, intent: 'charge', request: value, description: entry.description }
      }
      return offer().catch((error) => {
        throw new ConfigurationError({ detail: `${where}: ${(error as Error).message}`, cause: error })
      })
    })
    const offers = Promise.all(built)
    offers.catch((error) => console.error(JSON.stringify({ event: 'pricing-error', route: route.label, detail: String(error.detail ?? error) })))
    return { offers, page }
  }
}

async function passThrough(context: Context, request: Request, url: URL, path: string): Promise<Response> {
  try {
    return await callOrigin(context.settings, originRequest(context.settings, request, url, path))
  } catch (error) {
    console.error(JSON.stringify({ event: 'origin-error', request: `${request.method} ${path}`, error: String(error) }))
    return Server.problemResponse(new OriginFailedError({ detail: originFailure(error) }))
  }
}

async function payAndForward(context: Context, paid: Priced, original: Request, url: URL, path: string): Promise<Response> {
  const { settings, record } = context
  const label = paid.route.label
  // Only the header the route's challenges name carries its credentials.
  const credentials = original.headers.get(paid.server.credentialHeader)
  const presents = presentsPayment(credentials)
  const client = clientKey(original.headers.get('cf-connecting-ip'))
  const wait = await overLimit(settings, presents ? 'verify' : 'challenge', client)
  if (wait !== undefined) {
    record({ type: 'rate-limited', route: label, request: `${original.method} ${path}`, status: 429 })
    const what = presents ? 'payment attempts' : 'payment challenges'
    return Server.problemResponse(new RateLimitedError({ detail: `too many ${what} from this client`, retryAfter: wait }))
  }

  // The core scopes challenges to the request's path: give it the canonical one.
  let request = original
  if (url.pathname !== path) {
    const canonical = new URL(url)
    canonical.pathname = path
    request = new Request(canonical, original)
  }

  if (paid.metered) {
    const intent = presents ? credentialIntent(credentials) : undefined
    if (!paid.charge || intent === 'session') {
      return meteredForward({ settings, server: paid.server, channels: context.channels!, replay: context.store, record, waitUntil: context.waitUntil }, paid.metered, request, url, path)
    }
  }

  const slot = presents ? await Delivery.replaySlot(context.idempotency, request, paid.server.credentialHeader) : undefined
  const stored = slot && (await Delivery.replayed(slot))
  if (stored) return stored

  const charged = amountFor(paid.route.entry, url, request.headers)
  if ('error' in charged) return Server.problemResponse(new BadRequestError({ detail: charged.error }))
  const variant = paid.variants.get(charged.amount)!

  let outcome: Server.Outcome
  try {
    outcome = await Server.handle(paid.server, request, await variant.offers, { store: context.store })
  } catch (error) {
    if (isPaymentError(error) && error instanceof ConfigurationError) {
      console.error(JSON.stringify({ event: 'payment-configuration-error', route: label, detail: error.detail }))
      return Server.problemResponse(error)
    }
    console.error(JSON.stringify({ event: 'payment-error', route: label, error: String(error) }))
    return Server.problemResponse(new PaymentUnavailableError({ detail: 'payment processing failed', retryAfter: 2 }))
  }
  if (outcome.type === 'response') {
    if (paid.metered && !presents && outcome.response.status === 402) {
      // Both intents: the session challenge goes beside the charge challenges (no storage is touched for either).
      const [challenge] = await SessionServer.challenges(paid.server, request, paid.metered.offer)
      if (challenge) outcome.response.headers.append('www-authenticate', Challenge.serialize(challenge))
    }
    // The core records failures of credentials it could read; this records the ones it could not.
    if (presents && (outcome.error instanceof MalformedCredentialError || outcome.error instanceof BadRequestError)) {
      record({ type: 'failed', route: label, request: `${request.method} ${path}`, problem: outcome.error.problem, detail: outcome.error.detail })
    }
    if (outcome.response.status === 402 && prefersHtml(request.headers.get('accept'))) {
      return paymentPage(outcome.response, {
        resource: `${request.method} ${path}`,
        url: request.url,
        description: paid.route.entry.description,
        offers: variant.page,
      })
    }
    return outcome.response
  }

  // Paid: only now is the origin called.
  const reference = outcome.settlement.reference
  const resource = `${request.method} ${path}`
  let response: Response | undefined
  let failure: string | undefined
  try {
    const forwarded = originRequest(settings, request, url, path)
    // The origin may have started this work for an earlier request that died: tell it so.
    if (outcome.redelivery) forwarded.headers.set('payment-redelivery', 'true')
    response = await callOrigin(settings, forwarded)
  } catch (error) {
    failure = originFailure(error)
  }
  if (!response || response.status >= 500) {
    await response?.body?.cancel().catch(() => {})
    await outcome.release()
    const detail = `${failure ?? `the origin answered ${response!.status}`} after the payment settled; send the same request with the same credential before ${outcome.deadline} to be served without paying again`
    record({ type: 'origin-failed', route: label, request: resource, method: outcome.challenge.method, challengeId: outcome.challenge.id, reference, status: response?.status ?? 502, detail: failure ?? `origin answered ${response!.status}` })
    return Server.problemResponse(new OriginFailedError({ detail }), { reference, challengeId: outcome.challenge.id, method: outcome.challenge.method })
  }
  if (response.status >= 400) {
    // The payment is not spent on an error answer: the same credential may retry.
    record({ type: 'origin-refused', route: label, request: resource, method: outcome.challenge.method, challengeId: outcome.challenge.id, reference, status: response.status })
    return Delivery.withhold(outcome, response)
  }
  return Delivery.complete(outcome, response, slot)
}

// The intent of the challenge a Payment credential echoes, or undefined when it cannot be read.
function credentialIntent(header: string | null): string | undefined {
  try {
    return Credential.fromHeader(header)?.challenge.intent
  } catch {
    return undefined
  }
}

function originFailure(error: unknown): string {
  const name = (error as Error | undefined)?.name
  return name === 'TimeoutError' || name === 'AbortError' ? 'the origin did not answer in time' : 'the origin could not be reached'
}

function health(table: PricingTable, methods: readonly Method<any, any>[]): Response {
  const body = { status: 'ok', service: table.service.title, routes: table.routes.length, methods: methods.map((m) => m.name) }
  return Response.json(body, { headers: { 'cache-control': 'no-store' } })
}

// A configured string secret, or undefined.
function text(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined
}
