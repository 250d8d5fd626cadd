/**
 * The paid route, paid as a buyer would: the kit's test payer answers the 402 with a Tempo payment on the
 * local chain (pull and push) or a Stripe token the local Stripe API grants, and the worker serves once.
 */
import { SELF } from 'cloudflare:test'
import { env } from 'cloudflare:workers'
import { Receipt } from 'mpp-edge'
import { balanceOf, chainClient, testPayer } from 'mpp-edge/testing'
import { describe, expect, it } from 'vitest'

const url = 'https://api.example.com/report'
const worker = (request: Request) => SELF.fetch(request)
const chain = chainClient(env.TEMPO_RPC_URL)
const recipient = env.TEMPO_RECIPIENT as `0x${string}`

describe('GET /report', () => {
  it('the free route needs no payment', async () => {
    const response = await SELF.fetch('https://api.example.com/')
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ hello: 'free for everyone' })
  })

  it('without payment: 402 with a Tempo and a Stripe challenge', async () => {
    const response = await SELF.fetch(url)
    expect(response.status).toBe(402)
    const challenges = response.headers.get('www-authenticate') ?? ''
    expect(challenges).toContain('method="tempo"')
    expect(challenges).toContain('method="stripe"')
  })

  for (const mode of ['pull', 'push'] as const) {
    it(`Tempo ${mode}: 200 with a receipt, and the seller is paid 0.01 pathUSD`, async () => {
      const payer = await testPayer({ rpcUrl: env.TEMPO_RPC_URL, fetch: worker, methods: ['tempo'], mode })
      const before = await balanceOf(chain, recipient)
      const response = await payer.fetch(url)
      expect(response.status).toBe(200)
      const receipt = Receipt.deserialize(response.headers.get('payment-receipt')!)
      expect(receipt).toMatchObject({ method: 'tempo', status: 'success' })
      expect(await response.json()).toEqual({ report: 'the numbers', paidWith: receipt.reference })
      expect((await balanceOf(chain, recipient)) - before).toBe(10_000n)
    })
  }

  it('Stripe: 200 with a receipt naming the PaymentIntent', async () => {
    const payer = await testPayer({ fetch: worker, methods: ['stripe'] })
    const response = await payer.fetch(url)
    expect(response.status).toBe(200)
    const receipt = Receipt.deserialize(response.headers.get('payment-receipt')!)
    expect(receipt).toMatchObject({ method: 'stripe', status: 'success' })
    expect(receipt.reference).toMatch(/^pi_/)
  })

  it('a credential is good for one request: its replay is refused', async () => {
    const payer = await testPayer({ rpcUrl: env.TEMPO_RPC_URL, fetch: worker, methods: ['tempo'] })
    expect((await payer.fetch(url)).status).toBe(200)
    const [credential] = payer.credentials
    const replay = await SELF.fetch(url, { headers: { authorization: credential! } })
    expect(replay.status).toBe(402)
    expect(replay.headers.get('payment-receipt')).toBeNull()
  })
})
