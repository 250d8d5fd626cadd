/** @module The gateway's discovery document (Payment Discovery draft, "OpenAPI Discovery"), generated from the pricing table. */
import * as Discovery from '../core/Discovery.js'
import type { Offer } from '../core/Server.js'
import { methods, type PricingTable } from './pricing.js'
import type { CompiledRoute } from './routes.js'
import { isVariable, note } from './variable-price.js'

export { openApiPath } from '../core/Discovery.js'

/**
 * Builds the OpenAPI 3.1 document: `x-service-info` from the table's service, and on every priced
 * operation `x-payment-info` in the multi-offer form (the draft's SHOULD) plus a declared 402 response.
 * Offers carry the amount in base units exactly as the 402 challenge's request does; a route whose price
 * varies with the request has `amount: null` and a note listing its prices; session offers follow the charge
 * offers (their amount is the price of one unit, or null for per-token prices). Free routes are listed without
 * payment information. The first entry wins where two patterns give the same path.
 * @example
 * const document = openApiDocument(table, routes, offersByRoute)
 */
export function openApiDocument(
  table: PricingTable,
  routes: readonly CompiledRoute[],
  offers: ReadonlyMap<number, readonly Offer[]>,
  sessionOffers: ReadonlyMap<number, readonly Discovery.DiscoveryOffer[]> = new Map(),
) {
  const paths: Record<string, Record<string, unknown>> = {}
  for (const route of routes) {
    const { entry } = route
    const { path, parameters } = Discovery.openApiPath(entry.pattern)
    const item = (paths[path] ??= {})
    const list = methods(entry).includes('*') ? Discovery.anyMethod : methods(entry).map((m) => m.toLowerCase())
    const variable = isVariable(entry) ? { variable: true, description: note(entry.price) } : {}
    const charged = offers.get(route.index)?.map((offer) => Discovery.offer(offer, variable)) ?? []
    const all = [...charged, ...(sessionOffers.get(route.index) ?? [])]
    const routeOffers = all.length > 0 ? all : undefined
    for (const verb of list) {
      item[verb] ??= Discovery.operation({
        summary: entry.summary,
        description: entry.description,
        parameters,
        requestBody: entry.requestBody,
        offers: routeOffers,
      })
    }
  }
  return Discovery.document(table.service, paths)
}
