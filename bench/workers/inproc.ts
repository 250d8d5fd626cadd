/**
 * One worker holding the apps under comparison: bare Hono (the ceiling), mpp-edge's middleware, mppx's middleware,
 * and the gateway (default rate limiting binding, or the Durable Object counter). One outside request to
 * `/run?app=…&case=…&n=…` runs `n` requests through that app in-process with `app.fetch`, so the dev server's
 * proxy is amortised away and what is measured is the app's own work inside workerd.
 */
import * as Challenge from '../../src/core/Challenge.js'
import * as Credential from '../../src/core/Credential.js'
import { createGateway } from '../../src/gateway/gateway.js'
import { methodFactories } from '../../src/gateway/methods.js'
import type { GatewayEnv } from '../../src/gateway/settings.js'
import bare from './bare.js'
import mppx from './mppx.js'
import ours from './ours.js'
import * as E2e from './e2e.js'
import * as Paid from './paid.js'
import { replayLoad } from './replay.js'
import * as SessionBench from './session.js'

export { ReplayGuard } from '../../src/storage/ReplayGuard.js'
export { RateCounter } from '../../src/gateway/RateCounter.js'
export { ChannelState } from '../../src/storage/ChannelState.js'

type Env = GatewayEnv & { MPP_SECRET_KEY: string }
type App = { fetch: (request: Request, env: Env, ctx: ExecutionContext) => Response | Promise<Response> }

/** The gateway's pricing table for the bench: the same Tempo charge as the middleware apps. */
const pricing = {
  service: { title: 'Bench', version: '1.0.0' },
  methods: { tempo: { chainId: 42431, recipient: '0x742d35Cc6634c0532925a3b844bC9e7595F8fE00' } },
  routes: [{ pattern: '/paid', method: 'GET', price: '0.01' }],
}

let gateways: { default: App; counter: App } | undefined
function gatewaysFor(env: Env) {
  const build = (extra: Partial<GatewayEnv>): App => {
    const gateway = createGateway({ pricing, env: { ...env, ORIGIN_URL: 'http://127.0.0.1:9', ...extra }, factories: methodFactories, log: () => {} })
    return { fetch: (request) => gateway.fetch(request) }
  }
  return (gateways ??= {
    default: build({}),
    // The Durable Object counter instead of the rate limiting binding.
    counter: build({ CHALLENGE_RATE_LIMITER: undefined, VERIFY_RATE_LIMITER: undefined }),
  })
}

function apps(env: Env): Record<string, App> {
  const g = gatewaysFor(env)
  return { bare: bare as unknown as App, ours: ours as unknown as App, mppx: mppx as unknown as App, gateway: g.default, 'gateway-do': g.counter }
}

const url = 'http://127.0.0.1/paid'
// A credential whose id was altered: well formed, refused by the binding check.
const tampered = new Map<string, Promise<string>>()
function tamperedFor(name: string, app: App, env: Env, ctx: ExecutionContext): Promise<string> {
  let found = tampered.get(name)
  if (!found) {
    found = (async () => {
      const response = await app.fetch(new Request(url, { headers: { 'cf-connecting-ip': '192.0.2.1' } }), env, ctx)
      const [challenge] = Challenge.fromResponse(response)
      const id = challenge!.id
      const altered = { ...challenge!, id: `${id[0] === 'A' ? 'B' : 'A'}${id.slice(1)}` }
      return Credential.serialize({ challenge: altered, payload: { type: 'hash', hash: `0x${'ab'.repeat(32)}` } })
    })()
    tampered.set(name, found)
  }
  return found
}

const paidCredentials = new Map<string, Promise<string>>()

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    const target = new URL(request.url)
    const query = target.searchParams
    // One request per outside request, through the dev server's proxy like any deployed request.
    if (target.pathname.startsWith('/one/')) {
      const app = apps(env)[target.pathname.slice(5)]
      if (!app) return new Response('unknown app', { status: 404 })
      return app.fetch(new Request(url, { headers: { 'cf-connecting-ip': `198.51.100.${Math.floor(Math.random() * 250)}` } }), env, ctx)
    }
    if (target.pathname === '/paid') {
      const kind = query.get('case') as (typeof Paid.cases)[number]
      if (!Paid.cases.includes(kind)) return new Response('unknown case', { status: 404 })
      let authorization = paidCredentials.get(kind)
      if (!authorization) paidCredentials.set(kind, (authorization = Paid.credentialFor(kind)))
      try {
        await Paid.run(kind, await authorization, Number(query.get('n') ?? 20), Number(query.get('latency') ?? 0))
      } catch (error) {
        return new Response(String(error), { status: 500 })
      }
      return new Response('ok')
    }
    if (target.pathname === '/e2e') {
      const kind = query.get('case') as E2e.Case
      if (!E2e.cases.includes(kind)) return new Response('unknown case', { status: 404 })
      try {
        return Response.json(await E2e.e2e(env as never, kind, Number(query.get('n') ?? 5), query.get('anvil')!, query.get('stripe')!))
      } catch (error) {
        return new Response(String(error), { status: 500 })
      }
    }
    if (target.pathname === '/paid/calls') return Response.json(Object.fromEntries(Paid.calls))
    if (target.pathname === '/session' || target.pathname === '/session/prepare') {
      try {
        const n = Number(query.get('n') ?? 10)
        if (target.pathname === '/session/prepare') return Response.json({ signed: await SessionBench.prepare(env as never, n) })
        return Response.json(await SessionBench.vouchers(env as never, n))
      } catch (error) {
        return new Response(String(error), { status: 500 })
      }
    }
    if (target.pathname === '/replay') {
      const result = await replayLoad(env.REPLAY_GUARD, {
        shards: Number(query.get('shards') ?? 1),
        concurrency: Number(query.get('concurrency') ?? 16),
        n: Number(query.get('n') ?? 200),
      })
      return Response.json(result)
    }
    const name = query.get('app') ?? 'bare'
    const kind = query.get('case') ?? 'unpaid'
    const n = Number(query.get('n') ?? 200)
    const app = apps(env)[name]
    if (!app) return new Response('unknown app', { status: 404 })
    const authorization =
      kind === 'garbage' ? 'Payment bm9wZQ' : kind === 'tampered' ? await tamperedFor(name, app, env, ctx) : undefined
    const expected = name === 'bare' ? 200 : 402
    // Clients come from many addresses, as bots and crawlers do: a limiter is consulted but never refuses.
    const client = `198.51.100.${Math.floor(Math.random() * 250)}`
    for (let i = 0; i < n; i++) {
      const headers: Record<string, string> = { 'cf-connecting-ip': client }
      if (authorization) headers.authorization = authorization
      const response = await app.fetch(new Request(url, { headers }), env, ctx)
      await response.arrayBuffer()
      if (response.status !== expected) return new Response(`${name} answered ${response.status}`, { status: 500 })
    }
    return new Response('ok')
  },
}
