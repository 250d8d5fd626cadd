/**
 * Interoperability with the reference SDK: the mppx 0.11 client pays a Hono app protected by mpp-edge's
 * payment middleware and tempo method, inside workerd, against the local Tempo chain.
 */
import { env } from 'cloudflare:workers'
import { Hono } from 'hono'
import { Mppx, tempo as mppxTempo } from 'mppx/client'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { beforeAll, describe, expect, it } from 'vitest'
import * as Credential from '../../src/core/Credential.js'
import * as Receipt from '../../src/core/Receipt.js'
import { tempo } from '../../src/methods/tempo/method.js'
import { payment } from '../../src/middleware/payment.js'
import { replayStore } from '../../src/storage/replay-store.js'
import { balanceOf, chainClient, chainId, fund, fundedAccount, freshAddress } from '../support/tempo-chain.js'

const url = env.TEST_TEMPO_RPC_URL
const client = chainClient(url)

function shop(config: { feePayer?: { privateKey: string } } = {}) {
  const recipient = freshAddress()
  const pay = payment<{ Bindings: Cloudflare.Env }>({
    realm: 'api.example.com',
    secret: 'tempo-interop-secret-0123456789abcdefghij',
    methods: [tempo({ chainId, recipient, rpcUrl: url, pollIntervalMs: 100, ...config })],
    store: (c) => replayStore(c.env.REPLAY_GUARD),
  })
  const app = new Hono<{ Bindings: Cloudflare.Env }>()
  app.get('/report', pay.charge({ amount: '0.01', description: 'Daily report' }), (c) => c.json({ report: 'ok' }))
  app.get('/ping', pay.charge({ amount: '0' }), (c) => c.json({ pong: true }))
  // Records the credentials mppx sends, to see which payload type it chose.
  const payloads: Record<string, unknown>[] = []
  const fetcher = ((input: RequestInfo | URL, init?: RequestInit) => {
    const request = new Request(input, init)
    const credential = Credential.fromHeader(request.headers.get('authorization'))
    if (credential) payloads.push(credential.payload)
    return app.request(request, undefined, env)
  }) as typeof fetch
  return { recipient, fetcher, payloads }
}

async function mppxFor(fetcher: typeof fetch, mode?: 'pull' | 'push') {
  const account = await fundedAccount(client)
  const mppx = Mppx.create({ polyfill: false, fetch: fetcher, methods: [mppxTempo({ account, getClient: () => client, ...(mode ? { mode } : {}) })] })
  return { account, mppx }
}

describe('mppx client paying mpp-edge (tempo)', { timeout: 60_000 }, () => {
  for (const mode of ['pull', 'push'] as const) {
    it(`behavior: ${mode} — 200 with a receipt, and the recipient's balance moves by exactly the price`, async () => {
      const seller = shop()
      const { mppx } = await mppxFor(seller.fetcher, mode)
      const response = await mppx.fetch('https://api.example.com/report')
      expect(response.status).toBe(200)
      expect(await response.json()).toEqual({ report: 'ok' })
      const receipt = Receipt.deserialize(response.headers.get('payment-receipt')!)
      expect(receipt).toMatchObject({ method: 'tempo', status: 'success' })
      expect(receipt.reference).toMatch(/^0x[0-9a-f]{64}$/)
      expect(await balanceOf(client, seller.recipient)).toBe(10_000n)
      expect(seller.payloads.map((p) => p.type)).toEqual([mode === 'pull' ? 'transaction' : 'hash'])
      if (mode === 'push') expect(receipt.reference).toBe(seller.payloads[0]!.hash)
    })
  }

  it('behavior: a zero-amount charge is paid with the proof mppx signs (version 3)', async () => {
    const seller = shop()
    const { mppx } = await mppxFor(seller.fetcher)
    const response = await mppx.fetch('https://api.example.com/ping')
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ pong: true })
    expect(seller.payloads.map((p) => p.type)).toEqual(['proof'])
  })

  describe('with fee sponsorship', () => {
    const sponsorKey = generatePrivateKey()
    const sponsor = privateKeyToAccount(sponsorKey)
    beforeAll(async () => {
      await fund(client, sponsor.address, 1_000_000n)
    })

    it('behavior: mppx signs the sponsorship hand-off; the server co-signs and pays the fee', async () => {
      const seller = shop({ feePayer: { privateKey: sponsorKey } })
      const { account, mppx } = await mppxFor(seller.fetcher)
      const sponsorBefore = await balanceOf(client, sponsor.address)
      const response = await mppx.fetch('https://api.example.com/report')
      expect(response.status).toBe(200)
      expect(await balanceOf(client, seller.recipient)).toBe(10_000n)
      expect(await balanceOf(client, account.address)).toBe(10_000_000n - 10_000n)
      expect(await balanceOf(client, sponsor.address)).toBeLessThan(sponsorBefore)
      // The hand-off form of a sponsored transaction (0x78, sender named, no fee token).
      expect(String(seller.payloads[0]!.signature).slice(0, 4)).toBe('0x78')
    })
  })
})
