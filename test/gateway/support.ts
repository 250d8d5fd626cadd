/** Builds gateways over the real test bindings (Durable Objects, the origin worker) with ledger methods. */
import { env } from 'cloudflare:workers'
import * as Challenge from '../../src/core/Challenge.js'
import * as Credential from '../../src/core/Credential.js'
import { createGateway } from '../../src/gateway/gateway.js'
import type { GatewayEnv, RateLimitBinding } from '../../src/gateway/settings.js'
import { ledger, voucher } from '../support/ledger-method.js'

/** The test worker's bindings, as the gateway and the tests see them. */
export const testEnv = env as unknown as GatewayEnv & {
  ORIGIN: Fetcher
  TEST_RATE_LIMITER: RateLimitBinding
  TEST_ANALYTICS: AnalyticsEngineDataset
}

export const base = 'https://gw.example.com'

/** A table exercising free carve-outs, several offers, per-offer prices and origin failures. */
export const pricing = {
  service: {
    title: 'Test API',
    version: '2.1.0',
    categories: ['data', 'developer-tools'],
    docs: { homepage: 'https://docs.example.com', llms: 'https://docs.example.com/llms.txt' },
  },
  methods: { ledger: {}, backup: {} },
  routes: [
    { pattern: '/v1/status', method: 'GET', free: true },
    {
      pattern: '/v1/reports/:id',
      method: 'GET',
      price: '0.25',
      description: 'One report',
      summary: 'Fetch a report',
      accept: [{ method: 'ledger' }, { method: 'backup', price: '0.30' }],
    },
    {
      pattern: '/paid',
      method: ['GET', 'POST'],
      price: '0.10',
      description: 'The paid thing',
      requestBody: { content: { 'application/json': { schema: { type: 'object' } } } },
    },
    { pattern: '/edit/:id', method: 'PATCH', price: '0.10' },
    { pattern: '/fail-once/:id', method: 'GET', price: '0.10', expires: 120 },
    { pattern: '/down', method: 'GET', price: '0.10' },
    { pattern: '/missing', method: 'GET', price: '0.10' },
    { pattern: '/hang', method: 'GET', price: '0.10' },
    { pattern: '/files/*', method: '*', price: '0.05', accept: [{ method: 'ledger' }] },
  ],
}

/** A gateway with fresh ledger methods; rate limits are off unless the test's env turns them on. */
export function setup(options: { env?: Partial<GatewayEnv>; pricing?: unknown } = {}) {
  const primary = ledger()
  const backup = ledger({ name: 'backup' })
  const logs: string[] = []
  const gateway = createGateway({
    pricing: options.pricing ?? pricing,
    env: { ...testEnv, RATE_LIMIT_CHALLENGES: '0', RATE_LIMIT_VERIFICATIONS: '0', ...options.env },
    factories: { ledger: () => primary.method, backup: () => backup.method },
    log: (line) => logs.push(line),
  })
  const id = crypto.randomUUID()
  const request = (path: string, init: RequestInit = {}) => {
    const headers = new Headers(init.headers)
    headers.set('x-test-id', id)
    return gateway.fetch(new Request(`${base}${path}`, { ...init, headers }))
  }
  /** How many requests of this test the origin received. */
  const hits = async () => ((await (await testEnv.ORIGIN.fetch(`https://origin/__hits?id=${id}`)).json()) as { hits: number }).hits
  return { gateway, request, primary, backup, logs, hits, id }
}

/** Pays one challenge of a 402 the way a client would, with the ledger's voucher. */
export async function pay(response: Response, pick = 0): Promise<string> {
  const challenge = Challenge.fromResponse(response)[pick]!
  const request = challenge.request as { amount: string; recipient: string }
  return Credential.serialize({ challenge, payload: { voucher: await voucher(challenge.id, request.amount, request.recipient) } })
}

/** The problem+json body of a response. */
export async function problem(response: Response) {
  return (await response.json()) as { type: string; status: number; detail?: string; reference?: string; challengeId?: string }
}
