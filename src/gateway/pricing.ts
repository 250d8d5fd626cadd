/** @module The gateway's pricing table (pricing.json): its schema, and errors that name the offending entry. */
import * as v from 'valibot'
import { readFields } from './tokens.js'

/**
 * Raised on an invalid pricing table; the message names the entry and field.
 * @example
 * throw new PricingError('…')
 */
export class PricingError extends Error {
  override readonly name = 'PricingError'
}

const Decimal = v.pipe(v.string(), v.regex(/^(0|[1-9][0-9]*)(\.[0-9]+)?$/, 'must be a decimal string such as "0.01"'))
const HttpMethod = v.pipe(v.string(), v.regex(/^(\*|[A-Z]+)$/, 'must be an uppercase HTTP method or "*"'))
const Text = (max: number) =>
  v.pipe(v.string(), v.minLength(1), v.maxLength(max), v.regex(/^[^\u0000-\u001f\u007f]*$/, 'must be printable text'))
const Uri = v.pipe(v.string(), v.url('must be an absolute URI'))

const Pattern = v.pipe(
  v.string(),
  v.startsWith('/', 'must start with "/"'),
  v.check((pattern) => {
    try {
      new URLPattern({ pathname: pattern })
      return true
    } catch {
      return false
    }
  }, 'is not a valid URLPattern pathname'),
)

const Name = v.pipe(v.string(), v.regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,100}$/, 'must be a query parameter or header name'))

/** A price picked per request by a query parameter or header: `{ query | header, prices: { value: price }, otherwise? }`. */
const VariablePrice = v.pipe(
  v.strictObject({
    query: v.optional(Name),
    header: v.optional(Name),
    prices: v.pipe(
      v.record(v.pipe(v.string(), v.maxLength(100)), Decimal),
      v.check((prices) => Object.keys(prices).length >= 1 && Object.keys(prices).length <= 32, 'must list from 1 to 32 prices'),
    ),
    otherwise: v.optional(Decimal),
  }),
  v.check((price) => (price.query === undefined) !== (price.header === undefined), 'must name exactly one of "query" or "header"'),
)

/** One accepted way to pay for a route: a method, optionally a currency and a price of its own. */
const Accept = v.strictObject({
  method: v.pipe(v.string(), v.regex(/^[a-z]+$/, 'must be a lowercase payment method name')),
  currency: v.optional(v.pipe(v.string(), v.minLength(1))),
  price: v.optional(Decimal),
})

const Tokens = v.pipe(v.number(), v.safeInteger('must be a whole number'), v.minValue(1, 'must be at least 1'), v.maxValue(10_000_000, 'must be at most 10000000'))

/**
 * A route's session offer (draft-tempo-session-00): a price per unit, where the unit is a forwarded request, an SSE
 * `data:` event the origin streams, or (for OpenAI-compatible origins) a token, with input and output priced apart.
 */
const SessionTerms = v.pipe(
  v.strictObject({
    unit: v.picklist(['request', 'event', 'tokens'], 'must be "request", "event" or "tokens"'),
    price: v.optional(Decimal),
    input: v.optional(Decimal),
    output: v.optional(Decimal),
    // tokens: the most input tokens a forwarded request may hold, by its upper bound (one per byte of the body); larger ones are refused.
    maxInputTokens: v.optional(Tokens),
    // tokens: the output bound of a request that names none; also sent to the origin as that request's limit.
    maxOutputTokens: v.optional(Tokens),
    // tokens: top-level request fields forwarded beyond the ones the gateway bounds (the operator vouches for their cost).
    allowFields: v.optional(
      v.pipe(
        v.array(v.pipe(v.string(), v.regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be a request field name'), v.check((name) => !readFields.has(name), 'is read by the gateway itself'))),
        v.maxLength(32, 'must list at most 32 fields'),
      ),
    ),
    suggestedDeposit: v.optional(Decimal),
    minVoucherDelta: v.optional(Decimal),
    currency: v.optional(v.pipe(v.string(), v.minLength(1))),
  }),
  v.check(
    (s) => (s.unit === 'tokens' ? s.price === undefined && s.input !== undefined && s.output !== undefined : s.price !== undefined && s.input === undefined && s.output === undefined),
    'a "tokens" session takes "input" and "output" prices (per token); a "request" or "event" session takes "price" (per unit)',
  ),
  v.check(
    (s) => s.unit === 'tokens' || (s.maxInputTokens === undefined && s.maxOutputTokens === undefined && s.allowFields === undefined),
    '"maxInputTokens", "maxOutputTokens" and "allowFields" belong to a "tokens" session',
  ),
  v.check((s) => s.unit !== 'tokens' || s.maxOutputTokens !== undefined, 'a "tokens" session needs "maxOutputTokens" (the output bound of a request that names none)'),
)

const Intent = v.picklist(['charge', 'session'], 'must be "charge" or "session"')

const Route = v.pipe(
  v.strictObject({
    pattern: Pattern,
    method: v.union([HttpMethod, v.pipe(v.array(HttpMethod), v.minLength(1))], 'must be an HTTP method or a list of them'),
    free: v.optional(v.boolean(), false),
    price: v.optional(v.union([Decimal, VariablePrice], 'must be a decimal string such as "0.01", or a price that varies ({ query | header, prices, otherwise? })')),
    // "charge" (pay per request, `price`), "session" (pay per unit through a payment channel, `session`), or both.
    intent: v.optional(
      v.union([Intent, v.pipe(v.array(Intent), v.minLength(1), v.maxLength(2), v.check((list) => new Set(list).size === list.length, 'must not repeat an intent'))], 'must be "charge", "session" or a list of them'),
      'charge',
    ),
    session: v.optional(SessionTerms),
    accept: v.optional(v.pipe(v.array(Accept), v.minLength(1, 'must list at least one method'))),
    description: v.optional(Text(300)),
    expires: v.optional(v.pipe(v.number(), v.integer(), v.minValue(10), v.maxValue(86_400))),
    summary: v.optional(Text(300)),
    requestBody: v.optional(v.record(v.string(), v.unknown())),
    // The spec's alternate credential header, for origins that read their own `Authorization` (a Bearer API key).
    credentialHeader: v.optional(v.picklist(['Payment-Authorization'], 'must be "Payment-Authorization" (the only alternative header the spec allows)')),
  }),
  v.check(
    (route) => !route.free || (route.price === undefined && route.accept === undefined && route.session === undefined),
    'a free route ("free": true) takes no "price", "session" or "accept"',
  ),
  v.check(
    (route) => route.free || intents(route).includes('charge') === (route.price !== undefined),
    'a priced route needs "price" for the "charge" intent (a route without that intent takes none)',
  ),
  v.check(
    (route) => route.free || intents(route).includes('session') === (route.session !== undefined),
    'a route with the "session" intent needs "session" (and only it takes one)',
  ),
  v.check((route) => !(route.free && route.credentialHeader), 'a free route takes no "credentialHeader"'),
  v.check(
    (route) => typeof route.price !== 'object' || (route.accept ?? []).every((accept) => accept.price === undefined),
    'a price that varies takes no per-offer "price" in "accept"',
  ),
)

const Service = v.strictObject({
  title: Text(200),
  version: Text(50),
  description: v.optional(Text(2000)),
  categories: v.optional(
    v.pipe(
      v.array(v.pipe(v.string(), v.regex(/^[a-z0-9]+(-[a-z0-9]+)*$/, 'must be lowercase words joined by "-"'))),
      v.maxLength(5, 'must list at most 5 categories'),
    ),
  ),
  docs: v.optional(v.strictObject({ apiReference: v.optional(Uri), homepage: v.optional(Uri), llms: v.optional(Uri) })),
})

// An origin as a browser sends it in `Origin`: scheme, host and port, lowercase.
const WebOrigin = v.pipe(v.string(), v.regex(/^https?:\/\/[a-z0-9.\-[\]:]+$/, 'must be "*" or an origin such as "https://app.example.com" (lowercase, no path)'))

/** How the gateway answers CORS preflights on priced paths, and the CORS headers of its answers there. */
const Cors = v.pipe(
  v.strictObject({
    origins: v.pipe(v.array(v.union([v.literal('*'), WebOrigin])), v.minLength(1, 'must list at least one origin')),
    // Request headers allowed beyond the ones paying needs (Authorization, Payment-Authorization, Content-Type, Idempotency-Key).
    headers: v.optional(v.array(Name)),
    maxAge: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(86_400))),
    credentials: v.optional(v.boolean(), false),
  }),
  v.check((cors) => !(cors.credentials && cors.origins.includes('*')), '"credentials" needs the origins listed, not "*"'),
)

/**
 * Schema of pricing.json.
 * @example
 * v.parse(Schema, input)
 */
export const Schema = v.strictObject({
  $schema: v.optional(v.string()),
  service: Service,
  methods: v.pipe(
    v.record(v.pipe(v.string(), v.regex(/^[a-z]+$/, 'method names are lowercase a-z')), v.record(v.string(), v.unknown())),
    v.check((methods) => Object.keys(methods).length > 0, 'must configure at least one payment method'),
  ),
  caseSensitive: v.optional(v.boolean(), false),
  // Whether the origin routes `/x.json` (any `.ext`) as `/x`, as Rails `(.:format)` does: priced patterns price those spellings.
  formatSuffixes: v.optional(v.boolean(), true),
  cors: v.optional(Cors),
  routes: v.pipe(v.array(Route), v.minLength(1, 'must hold at least one route')),
})

/** A validated pricing table. */
export type PricingTable = v.InferOutput<typeof Schema>

/** One validated route entry. */
export type RouteEntry = PricingTable['routes'][number]

/**
 * Validates a pricing table; the error lists every problem with the entry it belongs to.
 * @example
 * const table = parsePricing(await import('../../pricing.json'))
 */
export function parsePricing(json: unknown): PricingTable {
  const result = v.safeParse(Schema, json)
  if (!result.success) {
    const lines = result.issues.slice(0, 8).map((issue) => `${where(json, issue.path ?? [])}: ${issue.message}`)
    throw new PricingError(`pricing.json is invalid:\n  ${lines.join('\n  ')}`)
  }
  const table = result.output
  const seen = new Map<string, number>()
  table.routes.forEach((route, i) => {
    for (const accept of route.accept ?? []) {
      if (!(accept.method in table.methods)) {
        throw new PricingError(`pricing.json ${label(route, i)}: accepts "${accept.method}", which "methods" does not configure`)
      }
    }
    for (const method of methods(route)) {
      const key = `${method} ${route.pattern}`
      const earlier = seen.get(key)
      if (earlier !== undefined) throw new PricingError(`pricing.json ${label(route, i)}: repeats routes[${earlier}]`)
      seen.set(key, i)
    }
  })
  return table
}

/**
 * The intents a route entry offers.
 * @example
 * intents({ intent: ['charge', 'session'] }) // ['charge', 'session']
 */
export function intents(route: { intent?: string | readonly string[] | undefined }): ('charge' | 'session')[] {
  const intent = route.intent ?? 'charge'
  return (typeof intent === 'string' ? [intent] : [...intent]) as ('charge' | 'session')[]
}

/**
 * The HTTP methods of a route entry.
 * @example
 * methods({ method: 'GET' }) // ['GET']
 */
export function methods(route: Pick<RouteEntry, 'method'>): string[] {
  return typeof route.method === 'string' ? [route.method] : route.method
}

/**
 * A readable name for a route entry: its index, methods and pattern.
 * @example
 * label(route, 2) // 'routes[2] (GET /v1/report)'
 */
export function label(route: Pick<RouteEntry, 'method' | 'pattern'>, index: number): string {
  return `routes[${index}] (${methods(route).join(',')} ${route.pattern})`
}

function where(json: unknown, path: readonly { key: unknown }[]): string {
  let name = ''
  for (const [i, item] of path.entries()) {
    const key = item.key
    name += typeof key === 'number' ? `[${key}]` : `${i === 0 ? '' : '.'}${String(key)}`
    if (i === 1 && path[0]?.key === 'routes' && typeof key === 'number') {
      const entry = (json as { routes: Record<string, unknown>[] }).routes[key]
      if (entry && typeof entry.pattern === 'string') name += ` (${String(entry.method ?? '?')} ${entry.pattern})`
    }
  }
  return name || '(root)'
}
