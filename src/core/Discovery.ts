/** @module The discovery document (Payment Discovery draft, "OpenAPI Discovery"): offers, operations, the document. */
import type { Offer } from './Server.js'

/** A Payment Offer Object (draft, "Payment Offer Object"); `amount` null means the price is computed per request. */
export type DiscoveryOffer = {
  intent: string
  method: string
  amount: string | null
  currency?: string
  description?: string
}

/** The service a document describes (`info`, and `x-service-info` from "x-service-info"). */
export type Service = {
  title: string
  version: string
  description?: string | undefined
  categories?: readonly string[] | undefined
  docs?: { apiReference?: string | undefined; homepage?: string | undefined; llms?: string | undefined } | undefined
}

/** What one operation of the document says: its texts, path parameters, body schema and payment offers. */
export type Operation = {
  summary?: string | undefined
  description?: string | undefined
  parameters?: readonly PathParameter[] | undefined
  requestBody?: Record<string, unknown> | undefined
  /** Payment offers; an operation without them is listed as free. */
  offers?: readonly DiscoveryOffer[] | undefined
}

/** An OpenAPI path parameter. */
export type PathParameter = { name: string; in: 'path'; required: true; schema: { type: 'string' } }

/** Operations listed for a route that answers any HTTP method. */
export const anyMethod = ['get', 'post', 'put', 'patch', 'delete'] as const

/**
 * The offer of a challenge the server issues: amount in base units exactly as the 402's request carries it.
 * With `variable`, the amount is null: the route computes its price per request (draft, "Payment Offer Object").
 * @example
 * Discovery.offer(offer) // { intent: 'charge', method: 'tempo', amount: '10000', currency: '0x20c0…' }
 */
export function offer(offer: Offer, options: { variable?: boolean | undefined; description?: string | undefined } = {}): DiscoveryOffer {
  const amount = offer.request.amount
  const currency = offer.request.currency
  const description = options.description ?? offer.description
  return {
    intent: offer.intent,
    method: offer.method.name,
    amount: !options.variable && typeof amount === 'string' && /^(0|[1-9][0-9]*)$/.test(amount) ? amount : null,
    ...(typeof currency === 'string' ? { currency } : {}),
    ...(description ? { description } : {}),
  }
}

/**
 * An operation object: texts, parameters and body schema, and for a paid one `x-payment-info` in the
 * multi-offer form (the draft's SHOULD) with the 402 response it must declare ("402 Response Declaration").
 * @example
 * Discovery.operation({ summary: 'Fetch a report', offers: [Discovery.offer(o)] })
 */
export function operation(op: Operation): Record<string, unknown> {
  const paid = op.offers !== undefined && op.offers.length > 0
  return {
    ...(op.summary ? { summary: op.summary } : {}),
    ...(op.description ? { description: op.description } : {}),
    ...(op.parameters?.length ? { parameters: op.parameters } : {}),
    ...(paid ? { 'x-payment-info': { offers: op.offers } } : {}),
    ...(op.requestBody ? { requestBody: op.requestBody } : {}),
    responses: { '200': { description: 'Successful response' }, ...(paid ? { '402': { description: 'Payment Required' } } : {}) },
  }
}

/**
 * The OpenAPI 3.1 document ("Required Top-Level Fields"), with `x-service-info` when the service has categories or docs.
 * @example
 * Discovery.document({ title: 'Reports', version: '1.0.0' }, { '/report': { get: Discovery.operation(op) } })
 */
export function document(service: Service, paths: Record<string, Record<string, unknown>>) {
  const { categories, docs } = service
  return {
    openapi: '3.1.0',
    info: { title: service.title, version: service.version, ...(service.description ? { description: service.description } : {}) },
    ...(categories || docs ? { 'x-service-info': { ...(categories ? { categories } : {}), ...(docs ? { docs } : {}) } } : {}),
    paths,
  }
}

/**
 * The response serving a discovery document: cacheable for 5 minutes ("Caching") and readable cross-origin
 * ("Cross-Origin Requests"); HEAD gets the headers only.
 * @example
 * return Discovery.response(JSON.stringify(doc), request.method)
 */
export function response(json: string, method: string): Response {
  const headers = { 'content-type': 'application/json', 'cache-control': 'public, max-age=300', 'access-control-allow-origin': '*' }
  return new Response(method === 'HEAD' ? null : json, { headers })
}

/**
 * An OpenAPI path template for a URLPattern pathname: named groups become `{name}`, wildcards and
 * unnamed groups `{wildcard}` / `{param1}`, optional braces are dropped; each gets a path parameter.
 * @example
 * Discovery.openApiPath('/v1/report/:id').path // '/v1/report/{id}'
 */
export function openApiPath(pattern: string): { path: string; parameters: PathParameter[] } {
  const names: string[] = []
  const take = (name: string) => {
    let unique = name
    for (let n = 2; names.includes(unique); n++) unique = `${name}${n}`
    names.push(unique)
    return `{${unique}}`
  }
  let unnamed = 0
  const path = pattern
    .replace(/(?<!\\)\{((?:\\.|[^}])*)\}[?*+]?/g, '$1')
    .replace(/:([A-Za-z_$][\w$]*)(\((?:\\.|[^)])*\))?[?*+]?/g, (_, name: string) => take(name))
    .replace(/(?<!\\)\((?:\\.|[^)])*\)[?*+]?/g, () => take(`param${++unnamed}`))
    .replace(/(?<!\\)\*/g, () => take('wildcard'))
    .replace(/\\(.)/g, '$1')
  return { path, parameters: names.map((name) => ({ name, in: 'path' as const, required: true as const, schema: { type: 'string' as const } })) }
}
