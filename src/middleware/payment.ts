/** @module Hono middleware that puts a price on a route: `pay.charge({ amount: '0.01' })`. */
import type { Context, Env, MiddlewareHandler } from 'hono'
import type { Challenge, CredentialHeader } from '../core/Challenge.js'
import { ConfigurationError, PaymentUnavailableError } from '../core/Errors.js'
import type { Price, Settlement } from '../core/Method.js'
import type * as Receipt from '../core/Receipt.js'
import type { ReplayStore } from '../core/ReplayStore.js'
import * as Server from '../core/Server.js'
import type { Idempotency } from '../storage/idempotency.js'
import * as Delivery from './delivery.js'
import { paidRoutes } from './registry.js'
import { type SessionOptions, type SessionRoute, sessionRoute } from './session.js'

/** What a paid handler can read with `c.get('payment')`. */
export type PaymentInfo = {
  challenge: Challenge
  settlement: Settlement
  receipt: Receipt.Receipt
  /** True when an earlier run for this payment may have started the work (its request died): make the work safe to repeat. */
  redelivery: boolean
}

declare module 'hono' {
  interface ContextVariableMap {
    payment: PaymentInfo
  }
}

/** Options of `payment`: the server configuration plus where state lives. */
export type PaymentOptions<E extends Env = Env> = Omit<Server.Config, 'methods'> & {
  /** Payment methods for `pay.charge`, in the server's order of preference; optional for a seller offering only `pay.session`. */
  methods?: Server.Config['methods'] | undefined
  /** The replay store for this request (usually `replayStore(c.env.REPLAY_GUARD)`). */
  store: (c: Context<E>) => ReplayStore
  /** Where paid responses are kept for `Idempotency-Key` retries; without it the header is ignored. */
  idempotency?: ((c: Context<E>) => Idempotency) | undefined
  /** Payment channels for `pay.session` routes: the session method and where channels live. */
  session?: SessionOptions<E> | undefined
}

/** Per-route options of `charge`. */
export type ChargeOptions = {
  /** Only these configured methods, in this order (default: all). */
  methods?: readonly string[] | undefined
  /**
   * `Payment-Authorization` for a route whose `Authorization` carries the application's own credentials (a
   * Bearer API key): challenges name it and the credential is read from it only (default: `payment()`'s).
   */
  credentialHeader?: CredentialHeader | undefined
  /** What `discovery(app, …)` says about the route besides its offers: `summary`, `description`, `requestBody` (OpenAPI). */
  openapi?: OpenApiInfo | undefined
}

/** A route's texts and request body schema in the discovery document. */
export type OpenApiInfo = { summary?: string | undefined; description?: string | undefined; requestBody?: Record<string, unknown> | undefined }

/** A price, fixed or computed per request. */
export type PriceInput<E extends Env> = Price | ((c: Context<E>) => Price | Promise<Price>)

/**
 * Creates the payment middleware factory. Options are checked now, so a bad setting fails at start-up.
 * @example
 * const pay = payment({ realm: 'api.example.com', secret, methods: [tempo(config)], store: (c) => replayStore(c.env.REPLAY_GUARD) })
 * app.get('/report', pay.charge({ amount: '0.01', description: 'Daily report' }), (c) => c.json(report))
 * // Sessions only: no charge method.
 * const metered = payment({ realm, secret, store, session: { method: tempoSession(config), channels } })
 */
export function payment<E extends Env = Env>(options: PaymentOptions<E>) {
  const server = Server.create({ ...options, methods: options.methods ?? [] }, { allowNoMethods: options.session !== undefined })
  return {
    server,
    /**
     * Middleware charging `price` once per request, in any configured method (or the listed ones).
     * @example
     * app.post('/render', pay.charge((c) => ({ amount: c.req.query('hd') ? '0.05' : '0.01' })), handler)
     * app.get('/v1/usage', bearerAuth({ token }), pay.charge({ amount: '0.01' }, { credentialHeader: 'Payment-Authorization' }), handler)
     */
    charge(price: PriceInput<E>, only?: ChargeOptions): MiddlewareHandler<E> {
      if (server.methods.size === 0) throw new Server.ConfigError('pay.charge needs a payment method: configure methods in payment()')
      if (typeof price !== 'function') Server.assertPrice(price)
      const credentialHeader = only?.credentialHeader === undefined ? server.credentialHeader : Server.checkedHeader(only.credentialHeader)
      if (only?.methods?.length === 0) throw new Server.ConfigError('a charge must offer at least one payment method')
      for (const name of only?.methods ?? []) {
        if (!server.methods.has(name)) throw new Server.ConfigError(`method "${name}" is not configured`)
      }
      // A fixed price has fixed offers: build them once, on first use.
      let fixed: Promise<Server.Offer[]> | undefined
      const handler: MiddlewareHandler<E> = async function paymentCharge(c, next) {
        let offers: Server.Offer[]
        try {
          if (typeof price === 'function') offers = await Server.chargeOffers(server, await price(c), only?.methods)
          else {
            fixed ??= Server.chargeOffers(server, price, only?.methods)
            offers = await fixed.catch((error) => {
              fixed = undefined
              throw error
            })
          }
        } catch (error) {
          if (!(error instanceof Server.ConfigError)) throw error
          // A price no method can express is the seller's fault: say so in logs, not to the payer.
          console.error(JSON.stringify({ event: 'payment-configuration-error', route: c.req.path, detail: error.message }))
          return Server.problemResponse(new ConfigurationError({ detail: error.message }))
        }
        return settle(server, options, c, offers, credentialHeader, next)
      }
      // Recorded for `discovery(app, …)`, which lists the routes this middleware prices.
      paidRoutes.set(handler, { server, price, methods: only?.methods, openapi: only?.openapi })
      return handler
    },
    /**
     * Middleware for a session-priced route: `amount` per unit, paid with vouchers on a payment channel; the handler
     * charges units with `c.get('session').charge(n)` or streams with `c.get('session').sse(…)`. Mount it for the
     * methods vouchers arrive with too (`app.on(['GET', 'POST', 'HEAD'], path, …)`).
     * @example
     * app.on(['GET', 'POST', 'HEAD'], '/chat', pay.session({ amount: '0.00001', unitType: 'llm_token', upfrontUnits: 0 }), handler)
     */
    session(route: SessionRoute): MiddlewareHandler<E> {
      return sessionRoute(server, options, route)
    },
  }
}

async function settle<E extends Env>(
  server: Server.Server,
  options: PaymentOptions<E>,
  c: Context<E>,
  offers: Server.Offer[],
  credentialHeader: CredentialHeader,
  next: () => Promise<void>,
): Promise<Response | undefined> {
  const slot = await Delivery.replaySlot(options.idempotency?.(c), c.req.raw, credentialHeader)
  const stored = slot && (await Delivery.replayed(slot))
  if (stored) return stored

  let outcome: Server.Outcome
  try {
    outcome = await Server.handle(server, c.req.raw, offers, { store: options.store(c), credentialHeader })
  } catch (error) {
    // Anything unexpected on the money path answers 503: the credential was not spent.
    console.error(JSON.stringify({ event: 'payment-error', route: c.req.path, error: String(error) }))
    return Server.problemResponse(new PaymentUnavailableError({ detail: 'payment processing failed', retryAfter: 2 }))
  }
  if (outcome.type === 'response') {
    if (outcome.error instanceof ConfigurationError) {
      console.error(JSON.stringify({ event: 'payment-configuration-error', route: c.req.path, detail: outcome.error.detail }))
    }
    return outcome.response
  }

  c.set('payment', { challenge: outcome.challenge, settlement: outcome.settlement, receipt: outcome.receipt, redelivery: outcome.redelivery })
  await next()
  // Hono has set the handler's response by now (a Response returned from here would be ignored): replace it.
  const response = c.res
  c.res = undefined
  // A failed or refusing handler leaves the payment settled but undelivered: the same credential may retry.
  c.res = c.error || response.status >= 400 ? await Delivery.withhold(outcome, response) : await Delivery.complete(outcome, response, slot)
  return undefined
}
