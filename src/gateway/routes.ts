/** @module Route matching on canonical paths, with patterns compiled once per isolate. */
import { label, methods, type PricingTable, type RouteEntry } from './pricing.js'

/** A route entry with its compiled pattern. */
export type CompiledRoute = {
  index: number
  label: string
  entry: RouteEntry
  pattern: URLPattern
  /** Uppercase HTTP methods, or undefined for any ("*"). */
  methods: ReadonlySet<string> | undefined
}

/**
 * Compiles every pattern of a table. Unless the table is case-sensitive, patterns ignore case, so
 * `/PAID` is priced like `/paid` for origins that do not tell them apart.
 * @example
 * const routes = compileRoutes(table)
 */
export function compileRoutes(table: PricingTable): CompiledRoute[] {
  return table.routes.map((entry, index) => {
    const list = methods(entry)
    return {
      index,
      label: label(entry, index),
      entry,
      pattern: new URLPattern({ pathname: entry.pattern }, { ignoreCase: !table.caseSensitive }),
      methods: list.includes('*') ? undefined : new Set(list),
    }
  })
}

/**
 * The first route (in table order) whose method and pattern match a canonical path. A path with a
 * trailing slash also tries the path without it, since many origins serve both alike; HEAD matches
 * GET routes, since it asks for the same resource.
 * @example
 * matchRoute(routes, 'GET', '/v1/report/') // the entry of "/v1/report"
 */
export function matchRoute(routes: readonly CompiledRoute[], method: string, path: string): CompiledRoute | undefined {
  const bare = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : undefined
  for (const route of routes) {
    if (route.methods && !route.methods.has(method) && !(method === 'HEAD' && route.methods.has('GET'))) continue
    if (route.pattern.test({ pathname: path }) || (bare !== undefined && route.pattern.test({ pathname: bare }))) return route
  }
  return undefined
}

/**
 * The methods the table prices or frees at a canonical path (HEAD with GET), when a priced route's pattern
 * matches it under some method; undefined otherwise.
 * @example
 * methodsAt(routes, '/v1/report') // ['GET', 'HEAD'] where only GET /v1/report is priced
 */
export function methodsAt(routes: readonly CompiledRoute[], path: string): string[] | undefined {
  const bare = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : undefined
  const allowed = new Set<string>()
  let priced = false
  for (const route of routes) {
    if (!(route.pattern.test({ pathname: path }) || (bare !== undefined && route.pattern.test({ pathname: bare })))) continue
    if (!route.entry.free) priced = true
    for (const method of route.methods ?? ['*']) allowed.add(method)
  }
  if (!priced) return undefined
  if (allowed.has('GET')) allowed.add('HEAD')
  return [...allowed].sort()
}
