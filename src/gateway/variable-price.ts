/** @module Routes whose price depends on the request: one price per value of a query parameter or header. */
import type { RouteEntry } from './pricing.js'

/** A pricing-table price that varies: the request's `query` parameter (or `header`) picks one of `prices`. */
export type VariablePrice = {
  query?: string | undefined
  header?: string | undefined
  prices: Record<string, string>
  otherwise?: string | undefined
}

/**
 * Whether a route's price is computed per request (advertised with `amount: null` in the discovery document).
 * @example
 * isVariable({ price: { query: 'size', prices: { s: '0.01', l: '0.05' } } }) // true
 */
export function isVariable(entry: Pick<RouteEntry, 'price'>): entry is { price: VariablePrice } {
  return typeof entry.price === 'object' && entry.price !== null
}

/**
 * Every distinct amount a route may charge, in table order (each is priced once, at start-up).
 * @example
 * amounts({ price: { query: 'size', prices: { s: '0.01', l: '0.05' }, otherwise: '0.01' } }) // ['0.01', '0.05']
 */
export function amounts(entry: Pick<RouteEntry, 'price'>): string[] {
  if (!isVariable(entry)) return entry.price === undefined ? [] : [entry.price as string]
  const all = [...Object.values(entry.price.prices), ...(entry.price.otherwise ? [entry.price.otherwise] : [])]
  return [...new Set(all)]
}

/**
 * The amount a request is charged, or an error text naming what it must send.
 * @example
 * amountFor(entry, new URL('https://x/render?size=l'), request.headers) // { amount: '0.05' }
 */
export function amountFor(entry: Pick<RouteEntry, 'price'>, url: URL, headers: Headers): { amount: string } | { error: string } {
  if (!isVariable(entry)) return { amount: entry.price as string }
  const { query, header, prices, otherwise } = entry.price
  const value = query !== undefined ? url.searchParams.get(query) : headers.get(header!)
  if (value !== null && Object.hasOwn(prices, value)) return { amount: prices[value]! }
  if (otherwise !== undefined) return { amount: otherwise }
  const source = query !== undefined ? `the query parameter "${query}"` : `the header "${header}"`
  return { error: `${source} must be one of ${Object.keys(prices).map((k) => `"${k}"`).join(', ')}` }
}

/**
 * The discovery document's pricing note for a varying route, e.g. `by query "size": s 0.01, l 0.05`.
 * @example
 * note({ query: 'size', prices: { s: '0.01' } }) // 'by query "size": s 0.01'
 */
export function note(price: VariablePrice): string {
  const by = price.query !== undefined ? `query "${price.query}"` : `header "${price.header}"`
  const list = Object.entries(price.prices).map(([value, amount]) => `${value} ${amount}`)
  if (price.otherwise !== undefined) list.push(`otherwise ${price.otherwise}`)
  return `Price varies by ${by}: ${list.join(', ')}`
}
