/** @module `/openapi.json` for a Hono app's paid routes (Payment Discovery draft), from the prices its routes declare. */
import type { Env, Handler, Hono } from 'hono'
import * as Discovery from '../core/Discovery.js'
import * as Server from '../core/Server.js'
import { paidRoutes } from './registry.js'

/**
 * A handler serving the discovery document of `app`: every route priced with `pay.charge` becomes an operation
 * with `x-payment-info` (exact base-unit amounts for fixed prices, `amount: null` for prices computed per request)
 * and a 402 response; `service` fills `info` and `x-service-info`. Built on first request, once all routes exist.
 * @example
 * app.get('/openapi.json', discovery(app, { title: 'Reports API', version: '1.0.0', categories: ['data'] }))
 */
export function discovery<E extends Env>(app: Hono<E, any, any>, service: Discovery.Service): Handler<E> {
  let built: Promise<string> | undefined
  return async (c) => {
    built ??= build(app, service).catch((error) => {
      built = undefined
      throw error
    })
    return Discovery.response(await built, c.req.method)
  }
}

async function build(app: Hono<any, any, any>, service: Discovery.Service): Promise<string> {
  const paths: Record<string, Record<string, unknown>> = {}
  for (const route of app.routes) {
    const paid = paidRoutes.get(route.handler)
    if (!paid || !route.path.startsWith('/')) continue
    const { path, parameters } = Discovery.openApiPath(honoPattern(route.path))
    const item = (paths[path] ??= {})
    const verbs = route.method === 'ALL' ? Discovery.anyMethod : [route.method.toLowerCase()]
    const fixed = typeof paid.price === 'function' ? undefined : paid.price
    const offers = fixed
      ? (await Server.chargeOffers(paid.server, fixed, paid.methods)).map((offer) => Discovery.offer(offer))
      : (paid.methods ?? [...paid.server.methods.keys()]).map((method) => ({ intent: 'charge', method, amount: null }))
    for (const verb of verbs) {
      // The first route wins where two give the same operation, as the router does.
      item[verb] ??= Discovery.operation({
        summary: paid.openapi?.summary,
        description: paid.openapi?.description ?? fixed?.description,
        parameters,
        requestBody: paid.openapi?.requestBody,
        offers,
      })
    }
  }
  return JSON.stringify(Discovery.document(service, paths))
}

// Hono's `:name{regex}` constrains a parameter; the document only names it.
function honoPattern(path: string): string {
  return path.replace(/:([A-Za-z_$][\w$]*)\{(?:\\.|[^}])*\}/g, ':$1')
}
