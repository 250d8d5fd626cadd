/** @module What each `charge` middleware prices, recorded so the discovery document can list paid routes. */
import type * as Server from '../core/Server.js'
import type { Price } from '../core/Method.js'

/** A charge middleware's price: fixed, or computed per request (then advertised with `amount: null`). */
export type PaidRoute = {
  server: Server.Server
  price: Price | ((...args: never[]) => unknown)
  methods?: readonly string[] | undefined
  openapi?: { summary?: string | undefined; description?: string | undefined; requestBody?: Record<string, unknown> | undefined } | undefined
}

/**
 * The charge middlewares created in this isolate, by handler.
 * @example
 * paidRoutes.get(route.handler)?.price
 */
export const paidRoutes = new WeakMap<object, PaidRoute>()
