/** @module The discovery document (Payment Discovery draft, "OpenAPI Discovery"), generated from the pricing table. */
import type { Offer } from '../core/Server.js'
import { methods, type PricingTable } from './pricing.js'
import type { CompiledRoute } from './routes.js'

/** Operations listed for a route whose method is "*". */
const anyMethod = ['get', 'post', 'put', 'patch', 'delete']

/**
 * Builds the OpenAPI 3.1 document: `x-service-info` from the table's service, and on every priced
 * operation `x-payment-info` in the multi-offer form (the draft's SHOULD) plus a declared 402 response.
 * Offers carry the amount in base units exactly as the 402 challenge's request does. Free routes are
 * listed without payment information. The first entry wins where two patterns give the same path.
 * @example
 * const document = openApiDocument(table, routes, offersByRoute)
 */
export function openApiDocument(table: PricingTable, routes: readonly CompiledRoute[], offers: ReadonlyMap<number, readonly Offer[]>) {
  const paths: Record<string, Record<string, unknown>> = {}
  for (const route of routes) {
    const { path, parameters } = openApiPath(route.entry.pattern)
    const item = (paths[path] ??= {})
    const list = methods(route.entry).includes('*') ? anyMethod : methods(route.entry).map((m) => m.toLowerCase())
    for (const verb of list) {
      if (item[verb]) continue
      const routeOffers = offers.get(route.index)
      item[verb] = {
        ...(route.entry.summary ? { summary: route.entry.summary } : {}),
        ...(route.entry.description ? { description: route.entry.description } : {}),
        ...(parameters.length ? { parameters } : {}),
        ...(routeOffers ? { 'x-payment-info': { offers: routeOffers.map(discoveryOffer) } } : {}),
        ...(route.entry.requestBody ? { requestBody: route.entry.requestBody } : {}),
        responses: {
          '200': { description: 'Successful response' },
          ...(routeOffers ? { '402': { description: 'Payment Required' } } : {}),
        },
      }
    }
  }
  const { categories, docs } = table.service
  return {
    openapi: '3.1.0',
    info: {
      title: table.service.title,
      version: table.service.version,
      ...(table.service.description ? { description: table.service.description } : {}),
    },
    ...(categories || docs ? { 'x-service-info': { ...(categories ? { categories } : {}), ...(docs ? { docs } : {}) } } : {}),
    paths,
  }
}

// Payment Discovery draft, "Payment Offer Object": amount in base units (no leading zeros) or null.
function discoveryOffer(offer: Offer) {
  const amount = offer.request.amount
  const currency = offer.request.currency
  return {
    intent: offer.intent,
    method: offer.method.name,
    amount: typeof amount === 'string' && /^(0|[1-9][0-9]*)$/.test(amount) ? amount : null,
    ...(typeof currency === 'string' ? { currency } : {}),
    ...(offer.description ? { description: offer.description } : {}),
  }
}

/**
 * An OpenAPI path template for a URLPattern pathname: named groups become `{name}`, wildcards and
 * unnamed groups `{wildcard}` / `{param1}`, optional braces are dropped; each gets a path parameter.
 * @example
 * openApiPath('/v1/report/:id').path // '/v1/report/{id}'
 */
export function openApiPath(pattern: string): { path: string; parameters: { name: string; in: 'path'; required: true; schema: { type: 'string' } }[] } {
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
