/**
 * Secrets and credentials never appear in output or answers: every paid flow and every failure answer,
 * through the middleware and through the gateway, with all console output captured. Tempo runs on the local
 * chain (pull, push, sponsored), Stripe on the local Stripe API.
 */
import { env } from 'cloudflare:workers'
import { Hono } from 'hono'
import type { Address, Hex } from 'viem'
import { type PrivateKeyAccount, generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import * as Challenge from '../../src/core/Challenge.js'
import * as Credential from '../../src/core/Credential.js'
import { createGateway } from '../../src/gateway/gateway.js'
import { methodFactories } from '../../src/gateway/methods.js'
import { stripe } from '../../src/methods/stripe/method.js'
import { tempo, type TempoRequest } from '../../src/methods/tempo/method.js'
import { attributionMemo } from '../../src/methods/tempo/memo.js'
import { payment } from '../../src/middleware/payment.js'
import { replayStore } from '../../src/storage/replay-store.js'
import { spt, testSecretKey } from '../../src/testing/stripe-fixtures.js'
import { chainClient, fund, fundedAccount, pushPayment, signPayment, transferCall } from '../support/tempo-chain.js'
import { testEnv } from './support.js'

const rpc = (env as unknown as { TEST_TEMPO_RPC_URL: string }).TEST_TEMPO_RPC_URL
const stripeApi = (env as unknown as { TEST_STRIPE_API_URL: string }).TEST_STRIPE_API_URL
const client = chainClient(rpc)
const realm = 'api.example.com'
const hmacSecret = 'no-secrets-test-hmac-key-0123456789abcdef'
const sponsorKey = generatePrivateKey()
const recipient = privateKeyToAccount(generatePrivateKey()).address

/** Everything that must never be seen: keys, tokens, credentials and their payloads. */
const secrets = new Set<string>([hmacSecret, testSecretKey, sponsorKey, sponsorKey.slice(2), String(testEnv.MPP_SECRET_KEY)])
const keep = (...values: string[]) => {
  for (const value of values) {
    secrets.add(value)
    // A credential is also looked for without its scheme.
    if (value.startsWith('Payment ')) secrets.add(value.slice('Payment '.length))
  }
  return values[0]!
}

/** All console output, whatever the level. */
const output: string[] = []
/** Every answer's body and headers. */
const answers: { what: string; status: number; text: string }[] = []

beforeAll(async () => {
  for (const level of ['log', 'error', 'warn', 'info', 'debug'] as const) {
    vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
      output.push(args.map((arg) => (typeof arg === 'string' ? arg : JSON.stringify(arg, (_, v) => (typeof v === 'bigint' ? String(v) : v)) ?? String(arg))).join(' '))
    })
  }
  await fund(client, privateKeyToAccount(sponsorKey).address, 5_000_000n)
}, 60_000)

afterAll(() => {
  vi.restoreAllMocks()
})

async function record(what: string, response: Response): Promise<Response> {
  const text = await response.clone().text()
  answers.push({ what, status: response.status, text: `${[...response.headers].map(([k, v]) => `${k}: ${v}`).join('\n')}\n\n${text}` })
  return response
}

/** A payer that keeps its key in the secret list. */
async function payer(amount = 10_000_000n): Promise<PrivateKeyAccount> {
  const key = generatePrivateKey()
  keep(key, key.slice(2))
  const account = privateKeyToAccount(key)
  if (amount > 0n) await fund(client, account.address, amount)
  return account
}

type Fetch = (path: string, authorization?: string) => Promise<Response>

function tempoChallenge(response: Response) {
  return Challenge.fromResponse(response).find((c) => c.method === 'tempo')! as Challenge.Challenge & { request: TempoRequest }
}

async function pullCredential(response: Response, account: PrivateKeyAccount, options: { sponsored?: boolean; amount?: bigint } = {}) {
  const challenge = tempoChallenge(response)
  const memo = attributionMemo({ realm: challenge.realm, challengeId: challenge.id })
  const validBefore = Math.min(Math.floor(Date.now() / 1000) + 25, Math.floor(Date.parse(challenge.expires!) / 1000))
  const amount = options.amount ?? BigInt(challenge.request.amount)
  const signature = await signPayment(client, account, {
    calls: [transferCall(challenge.request.currency, challenge.request.recipient as Address, amount, memo)],
    validBefore,
    sponsored: options.sponsored,
    // Declared, since a payer that cannot pay makes gas estimation fail.
    gas: 600_000n,
  })
  keep(signature, signature.slice(2))
  return keep(Credential.serialize({ challenge, payload: { type: 'transaction', signature }, source: `did:pkh:eip155:42431:${account.address}` }))
}

async function pushCredential(response: Response, account: PrivateKeyAccount) {
  const challenge = tempoChallenge(response)
  const memo = attributionMemo({ realm: challenge.realm, challengeId: challenge.id })
  const hash = await pushPayment(client, account, [transferCall(challenge.request.currency, challenge.request.recipient as Address, BigInt(challenge.request.amount), memo)])
  return keep(Credential.serialize({ challenge, payload: { type: 'hash', hash } }))
}

function stripeCredential(response: Response, outcome: Parameters<typeof spt>[0]) {
  const challenge = Challenge.fromResponse(response).find((c) => c.method === 'stripe')!
  const token = keep(spt(outcome))
  return keep(Credential.serialize({ challenge, payload: { spt: token } }))
}

/** Runs the flows every front shares: paid with each method and mode, and each failure a payer can cause. */
async function flows(name: string, request: Fetch, paths: { paid: string; failing?: string }) {
  const run = async (what: string, path: string, authorization?: string) => record(`${name}: ${what}`, await request(path, authorization))
  const offered = () => request(paths.paid)

  await run('402', paths.paid)
  const pulled = await pullCredential(await offered(), await payer())
  expect((await run('tempo pull', paths.paid, pulled)).status).toBe(200)
  expect((await run('tempo pull replayed', paths.paid, pulled)).status).toBe(402)
  expect((await run('tempo push', paths.paid, await pushCredential(await offered(), await payer()))).status).toBe(200)
  expect((await run('tempo underpaid', paths.paid, await pullCredential(await offered(), await payer(), { amount: 1n }))).status).toBe(402)
  expect((await run('tempo payer without funds', paths.paid, await pullCredential(await offered(), await payer(0n)))).status).toBe(402)
  expect((await run('stripe ok', paths.paid, stripeCredential(await offered(), 'ok'))).status).toBe(200)
  for (const outcome of ['declined', 'expired', 'action', 'error', 'ratelimited', 'unknown' as never] as const) {
    expect((await run(`stripe ${outcome}`, paths.paid, stripeCredential(await offered(), outcome))).status).toBeGreaterThanOrEqual(400)
  }
  const garbage = keep(`Payment ${btoa(JSON.stringify({ challenge: { id: 'x' }, payload: { spt: keep(spt('ok')) } }))}`)
  expect((await run('malformed credential', paths.paid, garbage)).status).toBe(402)
  const tampered = tempoChallenge(await offered())
  const forged = keep(Credential.serialize({ challenge: { ...tampered, request: { ...tampered.request, amount: '1' } }, payload: { type: 'hash', hash: `0x${'ab'.repeat(32)}` } }))
  expect((await run('tampered challenge', paths.paid, forged)).status).toBe(402)
  if (paths.failing) {
    const failing = await request(paths.failing)
    expect((await run('paid, then the work fails', paths.failing, await pullCredential(failing, await payer()))).status).toBeGreaterThanOrEqual(500)
  }
}

function middlewareApp(methods: ReturnType<typeof tempo | typeof stripe>[]): Fetch {
  const pay = payment<{ Bindings: Cloudflare.Env }>({ realm, secret: hmacSecret, methods, store: (c) => replayStore(c.env.REPLAY_GUARD) })
  const app = new Hono<{ Bindings: Cloudflare.Env }>()
  app.get('/paid', pay.charge({ amount: '0.25' }), (c) => c.json({ ok: true }))
  app.get('/broken', pay.charge({ amount: '0.25' }), () => {
    throw new Error('the handler broke')
  })
  return async (path, authorization) => app.request(`https://${realm}${path}`, authorization ? { headers: { authorization } } : {}, env)
}

const stripeConfig = { secretKey: testSecretKey, networkId: 'profile_test_seller', apiBase: stripeApi, timeoutMs: 2_000 }

describe('no secret, key, token or credential in output or answers', { timeout: 180_000 }, () => {
  it('behavior: the middleware — paid flows and failures', async () => {
    const request = middlewareApp([tempo({ chainId: 42431, recipient, rpcUrl: rpc, pollIntervalMs: 100 }), stripe(stripeConfig)])
    await flows('middleware', request, { paid: '/paid', failing: '/broken' })
    // A sponsored payment, one that would revert, an RPC endpoint that is down, a Stripe key Stripe refuses.
    const sponsored = middlewareApp([tempo({ chainId: 42431, recipient, rpcUrl: rpc, pollIntervalMs: 100, feePayer: { privateKey: sponsorKey } })])
    expect((await record('middleware: sponsored', await sponsored('/paid', await pullCredential(await sponsored('/paid'), await payer(), { sponsored: true })))).status).toBe(200)
    expect((await record('middleware: sponsored, would revert', await sponsored('/paid', await pullCredential(await sponsored('/paid'), await payer(1n), { sponsored: true })))).status).toBe(402)
    const down = middlewareApp([tempo({ chainId: 42431, recipient, rpcUrl: 'http://127.0.0.1:1', timeoutMs: 500 })])
    const credential = await pullCredential(await down('/paid'), await payer())
    expect((await record('middleware: rpc down', await down('/paid', credential))).status).toBe(503)
    const wrongKey = keep('sk_test_refusedByTheLocalServer0123456789')
    const refused = middlewareApp([stripe({ ...stripeConfig, secretKey: wrongKey })])
    expect((await record('middleware: stripe refuses our key', await refused('/paid', stripeCredential(await refused('/paid'), 'ok')))).status).toBe(500)
  })

  it('behavior: the gateway — paid flows, failures, origin failures, HTML page and discovery', async () => {
    const pricing = {
      service: { title: 'Secrets API', version: '1.0.0' },
      methods: { tempo: { chainId: 42431, recipient }, stripe: { networkId: 'profile_test_seller' } },
      routes: [
        { pattern: '/paid', method: 'GET', price: '0.25' },
        { pattern: '/down', method: 'GET', price: '0.25', accept: [{ method: 'tempo' }] },
      ],
    }
    const logs: string[] = []
    const build = (extra: Record<string, unknown> = {}, table: unknown = pricing) =>
      createGateway({
        pricing: table,
        env: { ...testEnv, MPP_SECRET_KEY: hmacSecret, RATE_LIMIT_CHALLENGES: '0', RATE_LIMIT_VERIFICATIONS: '0', TEMPO_RPC_URL: rpc, STRIPE_API_BASE: stripeApi, ...extra },
        factories: methodFactories,
        log: (line) => logs.push(line),
      })
    const gateway = build()
    const request: Fetch = (path, authorization) => gateway.fetch(new Request(`https://${realm}${path}`, authorization ? { headers: { authorization } } : {}))
    await flows('gateway', request, { paid: '/paid', failing: '/down' })
    await record('gateway: payment page', await gateway.fetch(new Request(`https://${realm}/paid`, { headers: { accept: 'text/html' } })))
    await record('gateway: discovery', await gateway.fetch(new Request(`https://${realm}/openapi.json`)))

    const sponsoredTable = { ...pricing, methods: { tempo: { chainId: 42431, recipient, feePayer: {} } }, routes: [pricing.routes[0]] }
    const sponsored = build({ TEMPO_SPONSOR_KEY: sponsorKey }, sponsoredTable)
    const pay = async (path: string, authorization?: string) => sponsored.fetch(new Request(`https://${realm}${path}`, authorization ? { headers: { authorization } } : {}))
    expect((await record('gateway: sponsored', await pay('/paid', await pullCredential(await pay('/paid'), await payer(), { sponsored: true })))).status).toBe(200)
    expect((await record('gateway: sponsored, would revert', await pay('/paid', await pullCredential(await pay('/paid'), await payer(1n), { sponsored: true })))).status).toBe(402)
    const down = build({ TEMPO_RPC_URL: 'http://127.0.0.1:1' }, { ...pricing, methods: { tempo: { chainId: 42431, recipient, timeoutMs: 500 } }, routes: [pricing.routes[0]] })
    const credential = await pullCredential(await down.fetch(new Request(`https://${realm}/paid`)), await payer())
    expect((await record('gateway: rpc down', await down.fetch(new Request(`https://${realm}/paid`, { headers: { authorization: credential } })))).status).toBe(503)
    const wrongKey = keep('sk_test_refusedByTheGatewaysLocalServer012345')
    const refused = build({ STRIPE_SECRET_KEY: wrongKey }, { ...pricing, methods: { stripe: pricing.methods.stripe }, routes: [pricing.routes[0]] })
    const offer = await refused.fetch(new Request(`https://${realm}/paid`))
    expect((await record('gateway: stripe refuses our key', await refused.fetch(new Request(`https://${realm}/paid`, { headers: { authorization: stripeCredential(offer, 'ok') } })))).status).toBe(500)
    output.push(...logs)
  })

  it('behavior: none of them appears in any console line, log line, answer body or header', () => {
    // Checked over everything at once, so each secret is looked for in every answer and every line.
    expect(answers.length).toBeGreaterThan(40)
    expect(output.length).toBeGreaterThan(10)
    const leaks: string[] = []
    for (const secret of secrets) {
      const needle = secret.toLowerCase()
      for (const line of output) if (line.toLowerCase().includes(needle)) leaks.push(`output: ${line.slice(0, 200)}`)
      for (const answer of answers) if (answer.text.toLowerCase().includes(needle)) leaks.push(`${answer.what} (${answer.status})`)
    }
    expect(leaks).toEqual([])
  })
})
