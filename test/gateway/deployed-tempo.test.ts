/**
 * Tempo payments through the deployed gateway (repository wrangler.toml and pricing.json) on the local
 * chain: a payer signing its own transfer, and the reference SDK's client paying on its own.
 */
import { SELF } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { Mppx, tempo as tempoClient } from 'mppx/client'
import type { Address, Hex } from 'viem'
import { describe, expect, it } from 'vitest'
import pricing from '../../pricing.json'
import * as Challenge from '../../src/core/Challenge.js'
import * as Credential from '../../src/core/Credential.js'
import * as Receipt from '../../src/core/Receipt.js'
import type { TempoRequest } from '../../src/methods/tempo/method.js'
import { attributionMemo } from '../../src/methods/tempo/memo.js'
import { balanceOf, chainClient, fundedAccount, signPayment, transferCall } from '../support/tempo-chain.js'

const client = chainClient((env as unknown as { TEST_TEMPO_RPC_URL: string }).TEST_TEMPO_RPC_URL)
const recipient = pricing.methods.tempo.recipient as Address
const base = 'https://api.example.com'

describe('deployed gateway: Tempo on the local chain', { timeout: 60_000 }, () => {
  it('behavior: a signed pathUSD transfer pays for a report; the origin is called once and the receipt names the transaction', async () => {
    const offered = await SELF.fetch(`${base}/v1/reports/9`)
    const challenge = Challenge.fromResponse(offered)[0] as Challenge.Challenge & { request: TempoRequest }
    expect(challenge.request).toMatchObject({ amount: '10000', recipient })
    const payer = await fundedAccount(client)
    const before = await balanceOf(client, recipient)
    const memo = attributionMemo({ realm: challenge.realm, challengeId: challenge.id })
    const validBefore = Math.min(Math.floor(Date.now() / 1000) + 25, Math.floor(Date.parse(challenge.expires!) / 1000))
    const signature = await signPayment(client, payer, { calls: [transferCall(challenge.request.currency, recipient, 10_000n, memo)], validBefore })
    const authorization = Credential.serialize({ challenge, payload: { type: 'transaction', signature }, source: `did:pkh:eip155:42431:${payer.address}` })
    const res = await SELF.fetch(`${base}/v1/reports/9`, { headers: { authorization } })
    expect(res.status).toBe(200)
    const receipt = Receipt.deserialize(res.headers.get('payment-receipt')!)
    expect(receipt).toMatchObject({ method: 'tempo', challengeId: challenge.id })
    expect(receipt.reference).toMatch(/^0x[0-9a-f]{64}$/)
    expect(((await res.json()) as { path: string }).path).toBe('/v1/reports/9')
    expect((await balanceOf(client, recipient)) - before).toBe(10_000n)
    expect((await SELF.fetch(`${base}/v1/reports/9`, { headers: { authorization } })).status).toBe(402)
  })

  it('behavior: the reference SDK client (mppx) pays the gateway on its own', async () => {
    const account = await fundedAccount(client)
    const mppx = Mppx.create({
      polyfill: false,
      fetch: ((input: RequestInfo | URL, init?: RequestInit) => SELF.fetch(input as string, init)) as typeof fetch,
      methods: [tempoClient({ account, getClient: () => client as never })],
    })
    const before = await balanceOf(client, recipient)
    const res = await mppx.fetch(`${base}/v1/reports/10`)
    expect(res.status).toBe(200)
    expect(Receipt.deserialize(res.headers.get('payment-receipt')!).reference as Hex).toMatch(/^0x/)
    expect((await balanceOf(client, recipient)) - before).toBe(10_000n)
  })
})
