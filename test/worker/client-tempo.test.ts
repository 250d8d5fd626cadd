/**
 * The project's own client paying Tempo charges: `paymentFetch` with `tempoWallet` against a Hono app
 * protected by the payment middleware and the tempo method, on the local Tempo chain.
 */
import { env } from 'cloudflare:workers'
import { Hono } from 'hono'
import { type Address, type Hex, maxUint256 } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { beforeAll, describe, expect, it } from 'vitest'
import { type Step, paymentFetch } from '../../src/client/fetch.js'
import { TempoWalletError, tempoWallet } from '../../src/client/wallets/tempo.js'
import * as Challenge from '../../src/core/Challenge.js'
import * as Credential from '../../src/core/Credential.js'
import * as Receipt from '../../src/core/Receipt.js'
import { tempo, type TempoConfig } from '../../src/methods/tempo/method.js'
import { isBoundMemo } from '../../src/methods/tempo/memo.js'
import { callEffects, decodeTransaction } from '../../src/methods/tempo/transaction.js'
import { payment } from '../../src/middleware/payment.js'
import { replayStore } from '../../src/storage/replay-store.js'
import { balanceOf, chainClient, chainId, freshAddress, fund, fundedAccount, pathUsd } from '../support/tempo-chain.js'

const url = env.TEST_TEMPO_RPC_URL
const client = chainClient(url)
const realm = 'shop.example.com'
const limit = { [pathUsd]: '1000000' }

function shop(config: Partial<TempoConfig> = {}) {
  const recipient = freshAddress()
  const pay = payment<{ Bindings: Cloudflare.Env }>({
    realm,
    secret: 'client-tempo-secret-0123456789abcdefghij',
    methods: [tempo({ chainId, recipient, rpcUrl: url, pollIntervalMs: 100, receiptTimeoutMs: 10_000, ...config })],
    store: (c) => replayStore(c.env.REPLAY_GUARD),
  })
  const app = new Hono<{ Bindings: Cloudflare.Env }>()
  app.get('/report', pay.charge({ amount: '0.25', description: 'Daily report' }), (c) => c.json({ report: 'ok' }))
  app.get('/ping', pay.charge({ amount: '0' }), (c) => c.json({ pong: true }))
  // Records each credential the client sends.
  const credentials: Credential.Credential[] = []
  const fetcher = ((input: RequestInfo | URL, init?: RequestInit) => {
    const request = new Request(input, init)
    const credential = Credential.fromHeader(request.headers.get('authorization'))
    if (credential) credentials.push(credential)
    return app.request(request, undefined, env)
  }) as typeof fetch
  return { recipient, fetcher, credentials, app }
}

describe('tempoWallet paying the tempo method', { timeout: 60_000 }, () => {
  for (const mode of ['pull', 'push'] as const) {
    it(`behavior: ${mode} — one key pays the same route five times in a row, each paid and served once (T4 expiring nonces)`, async () => {
      const seller = shop()
      const account = await fundedAccount(client)
      const pay = paymentFetch({ wallets: [tempoWallet({ account, rpcUrl: url, mode })], maxAmount: limit, fetch: seller.fetcher })
      const references = new Set<string>()
      for (let i = 1; i <= 5; i++) {
        const response = await pay(`https://${realm}/report`)
        expect(response.status).toBe(200)
        references.add(Receipt.deserialize(response.headers.get('payment-receipt')!).reference)
        expect(await balanceOf(client, seller.recipient)).toBe(250_000n * BigInt(i))
      }
      // Five distinct transactions from one sender, each on the expiring nonce lane.
      expect(references.size).toBe(5)
      expect(await balanceOf(client, account.address)).toBeLessThan(10_000_000n - 5n * 250_000n)
    })
  }
  for (const mode of ['pull', 'push'] as const) {
    it(`behavior: ${mode} — 200 with a receipt; the recipient's balance moves by exactly the price`, async () => {
      const seller = shop()
      const account = await fundedAccount(client)
      const steps: Step[] = []
      const pay = paymentFetch({ wallets: [tempoWallet({ account, rpcUrl: url, mode })], maxAmount: limit, fetch: seller.fetcher, onStep: (s) => steps.push(s) })
      const response = await pay(`https://${realm}/report`)
      expect(response.status).toBe(200)
      expect(await response.json()).toEqual({ report: 'ok' })
      const receipt = Receipt.deserialize(response.headers.get('payment-receipt')!)
      expect(receipt).toMatchObject({ method: 'tempo', status: 'success' })
      expect(await balanceOf(client, seller.recipient)).toBe(250_000n)
      expect(steps.map((s) => s.type)).toEqual(['challenged', 'paying', 'paid', 'done'])

      const [credential] = seller.credentials
      expect(credential!.source).toBe(`did:pkh:eip155:${chainId}:${account.address}`)
      const challenge = credential!.challenge
      if (mode === 'push') {
        expect(credential!.payload).toEqual({ type: 'hash', hash: receipt.reference })
        return
      }
      expect(credential!.payload.type).toBe('transaction')
      // The signed transaction: expiring nonce, valid no later than the challenge, one transfer with the bound memo.
      const { envelope, sender } = decodeTransaction(credential!.payload.signature as string)
      expect(sender.toLowerCase()).toBe(account.address.toLowerCase())
      expect(envelope.chainId).toBe(chainId)
      expect(envelope.nonceKey).toBe(maxUint256)
      expect(envelope.nonce).toBe(0n)
      expect(envelope.validBefore).toBeLessThanOrEqual(Math.floor(Date.parse(challenge.expires!) / 1000))
      expect(String(envelope.feeToken).toLowerCase()).toBe(pathUsd)
      const [effect, ...rest] = callEffects(envelope.calls)
      expect(rest).toEqual([])
      expect(effect).toMatchObject({ to: seller.recipient.toLowerCase(), amount: 250_000n })
      expect(isBoundMemo(effect!.memo!, { realm, challengeId: challenge.id })).toBe(true)
    })
  }

  it('behavior: splits and a server memo — one transferWithMemo per recipient, each paid its share', async () => {
    const platform = freshAddress()
    const memo = `0x${'0a'.repeat(32)}` as Hex
    const splitMemo = `0x${'5e'.repeat(32)}` as Hex
    const seller = shop({ memo, splits: [{ recipient: platform, amount: '0.05', memo: splitMemo }] })
    const pay = paymentFetch({ wallets: [tempoWallet({ account: await fundedAccount(client), rpcUrl: url, chainId })], maxAmount: limit, fetch: seller.fetcher })
    const response = await pay(`https://${realm}/report`)
    expect(response.status).toBe(200)
    expect(await balanceOf(client, seller.recipient)).toBe(200_000n)
    expect(await balanceOf(client, platform)).toBe(50_000n)
    const effects = callEffects(decodeTransaction(seller.credentials[0]!.payload.signature as string).envelope.calls)
    expect(effects.map((e) => [e.to, e.amount, e.memo])).toEqual([
      [seller.recipient.toLowerCase(), 200_000n, memo],
      [platform.toLowerCase(), 50_000n, splitMemo],
    ])
  })

  it('behavior: a zero-amount charge is paid with an EIP-712 proof and a did:pkh source, nothing on chain', async () => {
    const seller = shop()
    const account = privateKeyToAccount(generatePrivateKey())
    const pay = paymentFetch({ wallets: [tempoWallet({ account, rpcUrl: url })], maxAmount: limit, fetch: seller.fetcher })
    const response = await pay(`https://${realm}/ping`)
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ pong: true })
    expect(seller.credentials[0]!.payload.type).toBe('proof')
    expect(seller.credentials[0]!.source).toBe(`did:pkh:eip155:${chainId}:${account.address}`)
  })

  it('behavior: with fee sponsorship the wallet signs the hand-off; the payer pays exactly the price', async () => {
    const sponsorKey = generatePrivateKey()
    await fund(client, privateKeyToAccount(sponsorKey).address, 1_000_000n)
    const seller = shop({ feePayer: { privateKey: sponsorKey } })
    const account = await fundedAccount(client)
    const pay = paymentFetch({ wallets: [tempoWallet({ account, rpcUrl: url })], maxAmount: limit, fetch: seller.fetcher })
    const response = await pay(`https://${realm}/report`)
    expect(response.status).toBe(200)
    expect(await balanceOf(client, seller.recipient)).toBe(250_000n)
    expect(await balanceOf(client, account.address)).toBe(10_000_000n - 250_000n)
    expect(String(seller.credentials[0]!.payload.signature).slice(0, 4)).toBe('0x78')
    // A sponsored charge cannot be paid by hash.
    const challenge = Challenge.fromResponse(await seller.app.request(`https://${realm}/report`, {}, env))[0]!
    await expect(tempoWallet({ account, rpcUrl: url, mode: 'push' }).pay(challenge)).rejects.toThrow(TempoWalletError)
  })

  describe('refusals', () => {
    let challenge: Challenge.Challenge
    let recipient: Address
    beforeAll(async () => {
      const seller = shop({ modes: ['pull'] })
      recipient = seller.recipient
      challenge = Challenge.fromResponse(await seller.app.request(`https://${realm}/report`, {}, env))[0]!
    })
    const account = privateKeyToAccount(generatePrivateKey())

    it('error: a challenge for another chain than the wallet pays on is refused before anything is signed', async () => {
      await expect(tempoWallet({ account, rpcUrl: url, chainId: 4217 }).pay(challenge)).rejects.toThrow(/chain 42431, this wallet pays on chain 4217/)
      expect(await balanceOf(client, recipient)).toBe(0n)
    })

    it('error: a mode the challenge does not offer, an expired challenge and a malformed request are refused', async () => {
      await expect(tempoWallet({ account, rpcUrl: url, mode: 'push' }).pay(challenge)).rejects.toThrow(/does not accept push/)
      await expect(tempoWallet({ account, rpcUrl: url }).pay({ ...challenge, expires: new Date(Date.now() - 1000).toISOString() })).rejects.toThrow(/expired/)
      await expect(tempoWallet({ account, rpcUrl: url }).pay({ ...challenge, request: { ...challenge.request, amount: '-1' } })).rejects.toThrow(/not a valid Tempo charge/)
      await expect(tempoWallet({ account, rpcUrl: url }).pay({ ...challenge, method: 'stripe' })).rejects.toThrow(TempoWalletError)
    })
  })
})
