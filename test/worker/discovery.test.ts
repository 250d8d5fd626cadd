/** The discovery document of a Hono app priced with the middleware (Payment Discovery draft). */
import { env } from 'cloudflare:workers'
import { Hono } from 'hono'
import { validate } from 'mppx/discovery'
import { describe, expect, it } from 'vitest'
import * as Challenge from '../../src/core/Challenge.js'
import { discovery } from '../../src/middleware/discovery.js'
import { payment } from '../../src/middleware/payment.js'
import { replayStore } from '../../src/storage/replay-store.js'
import { discoveryViolations } from '../gateway/discovery-rules.js'
import { ledger } from '../support/ledger-method.js'

const service = {
  title: 'Reports API',
  version: '3.0.0',
  description: 'Reports, paid per request.',
  categories: ['data'],
  docs: { homepage: 'https://docs.example.com', llms: 'https://docs.example.com/llms.txt' },
}

function shop() {
  const pay = payment<{ Bindings: Cloudflare.Env }>({
    realm: 'api.example.com',
    secret: 'discovery-test-secret-0123456789abcdefgh',
    methods: [ledger().method, ledger({ name: 'backup' }).method],
    store: (c) => replayStore(c.env.REPLAY_GUARD),
  })
  const app = new Hono<{ Bindings: Cloudflare.Env }>()
  app.get('/openapi.json', discovery(app, service))
  app.get('/v1/status', (c) => c.json({ ok: true }))
  app.get('/v1/reports/:id{[0-9]+}', pay.charge({ amount: '0.25', description: 'One report' }), (c) => c.json({ id: c.req.param('id') }))
  const requestBody = { content: { 'application/json': { schema: { type: 'object' } } } }
  const openapi = { summary: 'Render an image', description: 'HD costs more', requestBody }
  app.post('/v1/render', pay.charge((c) => ({ amount: c.req.query('hd') ? '0.05' : '0.01' }), { methods: ['ledger'], openapi }), (c) => c.text('ok'))
  app.get('/v1/usage', pay.charge({ amount: '0.10' }, { methods: ['backup'], credentialHeader: 'Payment-Authorization' }), (c) => c.text('ok'))
  const request = async (path: string, init?: RequestInit) => app.request(`https://api.example.com${path}`, init, env)
  return { app, request }
}

describe('discovery() for middleware routes', () => {
  it('behavior: /openapi.json lists every paid route with the offers its 402 issues, and passes the draft rules', async () => {
    const { request } = shop()
    const res = await request('/openapi.json')
    expect(res.status).toBe(200)
    expect(res.headers.get('cache-control')).toBe('public, max-age=300')
    expect(res.headers.get('access-control-allow-origin')).toBe('*')
    const doc = (await res.json()) as any
    expect(discoveryViolations(doc)).toEqual([])
    expect(validate(doc)).toEqual([])
    expect(doc.info).toEqual({ title: service.title, version: service.version, description: service.description })
    expect(doc['x-service-info']).toEqual({ categories: service.categories, docs: service.docs })
    expect(Object.keys(doc.paths).sort()).toEqual(['/v1/render', '/v1/reports/{id}', '/v1/usage'])

    // A fixed price: the exact base-unit amounts of the challenges, one offer per method.
    const report = doc.paths['/v1/reports/{id}'].get
    expect(report.parameters).toEqual([{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }])
    expect(report.responses['402']).toEqual({ description: 'Payment Required' })
    const challenges = Challenge.fromResponse(await request('/v1/reports/7'))
    expect(report['x-payment-info'].offers).toEqual(
      challenges.map((c) => ({ intent: 'charge', method: c.method, amount: (c.request as { amount: string }).amount, currency: 'usd', description: 'One report' })),
    )
    expect(report['x-payment-info'].offers.map((o: { amount: string }) => o.amount)).toEqual(['25', '25'])

    // A price computed per request: amount null, only the route's methods.
    const render = doc.paths['/v1/render'].post
    expect(render['x-payment-info']).toEqual({ offers: [{ intent: 'charge', method: 'ledger', amount: null }] })
    expect(render).toMatchObject({ summary: 'Render an image', description: 'HD costs more', requestBody: { content: { 'application/json': { schema: { type: 'object' } } } } })
    expect(doc.paths['/v1/usage'].get['x-payment-info'].offers).toEqual([{ intent: 'charge', method: 'backup', amount: '10', currency: 'usd' }])
  })

  it('behavior: HEAD gets the headers only, and the document is built once', async () => {
    const { request } = shop()
    const head = await request('/openapi.json', { method: 'HEAD' })
    expect(head.status).toBe(200)
    expect(await head.text()).toBe('')
    const first = await (await request('/openapi.json')).text()
    expect(await (await request('/openapi.json')).text()).toBe(first)
  })

  it('error: the document is checked: a paid operation without its 402 declaration breaks the rules', async () => {
    const { request } = shop()
    const doc = (await (await request('/openapi.json')).json()) as any
    delete doc.paths['/v1/usage'].get.responses['402']
    doc.paths['/v1/render'].post['x-payment-info'].offers[0].amount = 5
    expect(discoveryViolations(doc)).toHaveLength(2)
  })
})
