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

/** How the table reads one request. */
export type Match = {
  /** The first route (in table order) that prices or frees the method at the path; undefined when none does. */
  route: CompiledRoute | undefined
  /** Whether a priced route's pattern matches the path, or one of its format-suffix spellings, under some method. */
  priced: boolean
  /** On a priced path, the methods the table names there (HEAD with GET; "*" for a priced route of every method), sorted. */
  allowed: string[]
}

/**
 * Reads a request against the table. A path with a trailing slash also tries the path without it, since many
 * origins serve both alike; HEAD matches GET routes, since it asks for the same resource. With `formatSuffixes`,
 * a priced pattern also matches the path with its last segment's extensions cut (`/v1/exports.json`,
 * `/v1/exports.tar.gz`), which Rails (`(.:format)`) and suffix-matching routers serve as `/v1/exports`. On a
 * priced path a free method must be named: a free route of every method ("*") does not free it, and a priced
 * one does not price OPTIONS, which the gateway answers.
 * @example
 * resolve(routes, 'GET', '/v1/report/').route // the entry of "/v1/report"
 */
export function resolve(routes: readonly CompiledRoute[], method: string, path: string, formatSuffixes = true): Match {
  const bare = path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path
  const exact = bare === path ? [path] : [path, bare]
  const stems: string[] = []
  const slash = bare.lastIndexOf('/')
  for (let dot = bare.indexOf('.', slash); formatSuffixes && dot > slash; dot = bare.indexOf('.', dot + 1)) {
    const stem = bare.slice(0, dot)
    stems.push(stem.length > 1 && stem.endsWith('/') ? stem.slice(0, -1) : stem)
  }
  const test = (route: CompiledRoute, paths: string[]) => paths.some((pathname) => route.pattern.test({ pathname }))
  // Each route that matches, and whether only by a format-suffix spelling.
  const matched = routes.flatMap((route) => (test(route, exact) ? [{ route, stem: false }] : !route.entry.free && test(route, stems) ? [{ route, stem: true }] : []))
  const priced = matched.some(({ route }) => !route.entry.free)
  const allowed = new Set<string>()
  let found: CompiledRoute | undefined
  for (const { route, stem } of matched) {
    if (route.methods) for (const name of route.methods) allowed.add(name)
    else if (!route.entry.free) allowed.add('*')
    const named = route.methods ? route.methods.has(method) || (method === 'HEAD' && route.methods.has('GET')) : !priced || (!route.entry.free && method !== 'OPTIONS')
    // A free route does not free a format-suffix spelling of a priced pattern: the origin serves that as the priced one.
    if (named && (!found || (stem && found.entry.free))) found = route
  }
  if (allowed.has('GET')) allowed.add('HEAD')
  return { route: found, priced, allowed: priced ? [...allowed].sort() : [] }
}
