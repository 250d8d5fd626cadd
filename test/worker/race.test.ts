/**
 * Racing identical credentials, with the real methods: a signed Tempo transfer and a pushed transaction on
 * the local chain, and a Stripe Shared Payment Token against the local Stripe API. Each race must end with
 * exactly one paid response and exactly one settlement.
 */
import { env } from 'cloudflare:workers'
import { Hono } from 'hono'
import { describe, expect, it } from 'vitest'
import { tempoWallet } from '../../src/client/wallets/tempo.js'
import * as Challenge from '../../src/core/Challenge.js'
import * as Credential from '../../src/core/Credential.js'
import type { Method } from '../../src/core/Method.js'
import { stripe } from '../../src/methods/stripe/method.js'
import { tempo } from '../../src/methods/tempo/method.js'
import { payment } from '../../src/middleware/payment.js'
import { replayStore } from '../../src/storage/replay-store.js'
import { type RecordedRequest, spt, testSecretKey } from '../../src/testing/stripe-fixtures.js'
import { balanceOf, chainClient, chainId, freshAddress, fundedAccount } from '../support/tempo-chain.js'

type Env = { Bindings: Cloudflare.Env }
const rpcUrl = env.TEST_TEMPO_RPC_URL
const client = chainClient(rpcUrl)
const racers = 8

function shop(method: Method<any, any>) {
  const pay = payment<Env>({
    realm: 'api.example.com',
    secret: 'race-test-secret-0123456789abcdefghijkl',
    methods: [method],
    store: (c) => replayStore(c.env.REPLAY_GUARD),
  })
  let served = 0
  const app = new Hono<Env>()
  app.get('/item', pay.charge({ amount: '0.25' }), (c) => {
    served++
    return c.json({ ok: true })
  })
  const request = (authorization?: string) =>
    app.request('https://api.example.com/item', authorization ? { headers: { authorization } } : {}, env)
  return { request, served: () => served }
}

/** Fires the same credential `racers` times at once and sorts the answers. */
async function race(request: (authorization: string) => Response | Promise<Response>, authorization: string) {
  const responses = await Promise.all(Array.from({ length: racers }, async () => request(authorization)))
  const statuses = responses.map((r) => r.status)
  for (const r of responses.filter((r) => r.status !== 200)) {
    // The losers are told the credential is in use (409, retry later) or spent (402); never paid twice.
    expect([402, 409]).toContain(r.status)
    expect(r.headers.get('payment-receipt')).toBeNull()
  }
  return { paid: statuses.filter((s) => s === 200).length, statuses }
}

describe('racing identical credentials', { timeout: 60_000 }, () => {
  it('behavior: a signed Tempo transfer raced 8 times is broadcast and served once', async () => {
    const recipient = freshAddress()
    const seller = shop(tempo({ chainId, recipient, rpcUrl, pollIntervalMs: 50, receiptTimeoutMs: 10_000 }))
    const challenge = Challenge.fromResponse(await seller.request())[0]!
    const wallet = tempoWallet({ account: await fundedAccount(client), rpcUrl, chainId })
    const authorization = Credential.serialize({ challenge, ...(await wallet.pay(challenge)) })
    const { paid } = await race(seller.request, authorization)
    expect(paid).toBe(1)
    expect(seller.served()).toBe(1)
    expect(await balanceOf(client, recipient)).toBe(250_000n)
  })

  it('behavior: a pushed Tempo transaction raced 8 times settles one challenge once', async () => {
    const recipient = freshAddress()
    const seller = shop(tempo({ chainId, recipient, rpcUrl, pollIntervalMs: 50, receiptTimeoutMs: 10_000 }))
    const challenge = Challenge.fromResponse(await seller.request())[0]!
    const wallet = tempoWallet({ account: await fundedAccount(client), rpcUrl, chainId, mode: 'push' })
    const authorization = Credential.serialize({ challenge, ...(await wallet.pay(challenge)) })
    const { paid } = await race(seller.request, authorization)
    expect(paid).toBe(1)
    expect(seller.served()).toBe(1)
    expect(await balanceOf(client, recipient)).toBe(250_000n)
  })

  it('behavior: a Stripe token raced 8 times makes one PaymentIntent and one paid response', async () => {
    const seller = shop(stripe({ secretKey: testSecretKey, networkId: 'profile_race', apiBase: env.TEST_STRIPE_API_URL }))
    const challenge = Challenge.fromResponse(await seller.request())[0]!
    const token = spt('slow')
    const { paid } = await race(seller.request, Credential.serialize({ challenge, payload: { spt: token } }))
    expect(paid).toBe(1)
    expect(seller.served()).toBe(1)
    const seen = (await (await fetch(`${env.TEST_STRIPE_API_URL}/__test/requests?token=${token}`)).json()) as RecordedRequest[]
    expect(seen).toHaveLength(1)
  })
})
