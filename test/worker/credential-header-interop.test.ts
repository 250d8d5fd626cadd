/**
 * `Payment-Authorization` across implementations, on the local Tempo chain inside workerd: the mppx 0.11 client
 * pays an mpp-edge route that also requires a Bearer token, and mpp-edge's client pays an mppx `requiresAuth` route.
 */
import { env } from 'cloudflare:workers'
import { Hono } from 'hono'
import { bearerAuth } from 'hono/bearer-auth'
import { Mppx, tempo as mppxTempo } from 'mppx/client'
import { Mppx as MppxServer, tempo as mppxServerTempo } from 'mppx/server'
import { describe, expect, it } from 'vitest'
import { paymentFetch } from '../../src/client/fetch.js'
import { tempoWallet } from '../../src/client/wallets/tempo.js'
import * as Challenge from '../../src/core/Challenge.js'
import * as Credential from '../../src/core/Credential.js'
import * as Receipt from '../../src/core/Receipt.js'
import { tempo } from '../../src/methods/tempo/method.js'
import { payment } from '../../src/middleware/payment.js'
import { replayStore } from '../../src/storage/replay-store.js'
import { balanceOf, chainClient, chainId, freshAddress, fundedAccount, pathUsd } from '../support/tempo-chain.js'

const url = env.TEST_TEMPO_RPC_URL
const client = chainClient(url)
const token = 'sk_test_bearer_for_the_application'

/** What each request carried, as the server saw it. */
type Seen = { authorization: string | null; paymentAuthorization: string | null }

function record(seen: Seen[], serve: (request: Request) => Response | Promise<Response>) {
  return (async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = new Request(input, init)
    seen.push({ authorization: request.headers.get('authorization'), paymentAuthorization: request.headers.get('payment-authorization') })
    return serve(request)
  }) as typeof fetch
}

describe('Payment-Authorization interop with mppx (tempo)', { timeout: 60_000 }, () => {
  it('behavior: the mppx client pays our Bearer-protected route, keeping its Authorization and paying in Payment-Authorization', async () => {
    const recipient = freshAddress()
    const pay = payment<{ Bindings: Cloudflare.Env }>({
      realm: 'api.example.com',
      secret: 'interop-header-secret-0123456789abcdefghij',
      methods: [tempo({ chainId, recipient, rpcUrl: url, pollIntervalMs: 100 })],
      store: (c) => replayStore(c.env.REPLAY_GUARD),
      credentialHeader: 'Payment-Authorization',
    })
    const app = new Hono<{ Bindings: Cloudflare.Env }>()
    app.get('/v1/usage', bearerAuth({ token }), pay.charge({ amount: '0.01' }), (c) => c.json({ usage: 'ok', authorization: c.req.header('authorization') }))
    const seen: Seen[] = []
    const account = await fundedAccount(client)
    const mppx = Mppx.create({
      polyfill: false,
      fetch: record(seen, (request) => app.request(request, undefined, env)),
      methods: [mppxTempo({ account, getClient: () => client })],
    })
    const response = await mppx.fetch('https://api.example.com/v1/usage', { headers: { authorization: `Bearer ${token}` } })
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ usage: 'ok', authorization: `Bearer ${token}` })
    expect(Receipt.deserialize(response.headers.get('payment-receipt')!).status).toBe('success')
    expect(await balanceOf(client, recipient)).toBe(10_000n)
    expect(seen).toHaveLength(2)
    expect(seen.every((s) => s.authorization === `Bearer ${token}`)).toBe(true)
    expect(seen[0]!.paymentAuthorization).toBeNull()
    expect(Credential.fromHeader(seen[1]!.paymentAuthorization)!.challenge.header).toBe('Payment-Authorization')
  })

  it('behavior: our client pays an mppx requiresAuth route, keeping the caller’s Bearer token', async () => {
    const recipient = freshAddress()
    const server = MppxServer.create({
      requiresAuth: true,
      realm: 'mppx.example.com',
      secretKey: 'mppx-server-secret-0123456789abcdefghijkl',
      methods: [mppxServerTempo({ currency: pathUsd, recipient, testnet: true, getClient: () => client })],
    })
    const app = new Hono()
    app.get('/v1/usage', bearerAuth({ token }), async (c) => {
      const result = await server.charge({ amount: '0.02' })(c.req.raw)
      if (result.status === 402) return result.challenge
      return result.withReceipt(Response.json({ usage: 'ok', authorization: c.req.header('authorization') }))
    })
    const seen: Seen[] = []
    const account = await fundedAccount(client)
    const challenges: Challenge.Challenge[] = []
    const response = await paymentFetch({
      wallets: [tempoWallet({ account, rpcUrl: url })],
      maxAmount: { [pathUsd]: '1000000' },
      fetch: record(seen, (request) => app.request(request)),
      onStep: (step) => step.type === 'challenged' && challenges.push(...step.challenges),
    })('https://mppx.example.com/v1/usage', { headers: { authorization: `Bearer ${token}` } })
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ usage: 'ok', authorization: `Bearer ${token}` })
    expect(response.headers.get('payment-receipt')).toBeTruthy()
    expect(challenges.map((c) => c.header)).toEqual(['Payment-Authorization'])
    expect(await balanceOf(client, recipient)).toBe(20_000n)
    expect(seen.map((s) => s.authorization)).toEqual([`Bearer ${token}`, `Bearer ${token}`])
    expect(Credential.fromHeader(seen[1]!.paymentAuthorization)).toBeDefined()
  })
})
