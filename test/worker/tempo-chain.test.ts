/**
 * The tempo method against a real local Tempo chain (anvil --network tempo), through the payment middleware:
 * a 402 challenge, a payer who signs or broadcasts a real TIP-20 transfer, and the worker's answer.
 */
import { env } from 'cloudflare:workers'
import { Hono } from 'hono'
import type { Address, Hex } from 'viem'
import type { PrivateKeyAccount } from 'viem/accounts'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { beforeAll, describe, expect, it } from 'vitest'
import * as Challenge from '../../src/core/Challenge.js'
import * as Credential from '../../src/core/Credential.js'
import * as Receipt from '../../src/core/Receipt.js'
import * as Server from '../../src/core/Server.js'
import { tempo, type TempoConfig, type TempoRequest } from '../../src/methods/tempo/method.js'
import { attributionMemo } from '../../src/methods/tempo/memo.js'
import { typedData } from '../../src/methods/tempo/proof.js'
import { payment } from '../../src/middleware/payment.js'
import { replayStore } from '../../src/storage/replay-store.js'
import { sponsorGate } from '../../src/storage/sponsor-gate.js'
import {
  balanceOf,
  chainClient,
  chainId,
  createToken,
  freshAddress,
  fund,
  fundedAccount,
  pathUsd,
  pushPayment,
  rpcProxy,
  signForChain,
  signPayment,
  transferCall,
} from '../support/tempo-chain.js'

const url = env.TEST_TEMPO_RPC_URL
const client = chainClient(url)
const realm = 'api.example.com'
const secret = 'tempo-chain-test-secret-0123456789abcdef'
const price = 250_000n // '0.25' pathUSD

type Seller = ReturnType<typeof seller>

function seller(config: Partial<TempoConfig> = {}) {
  const recipient = (config.recipient ?? freshAddress()) as Address
  const method = tempo({ chainId, recipient, rpcUrl: url, pollIntervalMs: 100, receiptTimeoutMs: 10_000, ...config })
  const pay = payment<{ Bindings: Cloudflare.Env }>({ realm, secret, methods: [method], store: (c) => replayStore(c.env.REPLAY_GUARD) })
  const app = new Hono<{ Bindings: Cloudflare.Env }>()
  app.get('/item', pay.charge({ amount: '0.25', externalId: 'ord_7' }), (c) => c.json({ ok: true }))
  app.get('/free', pay.charge({ amount: '0' }), (c) => c.json({ free: true }))
  const request = (path: string, authorization?: string) =>
    app.request(`https://${realm}${path}`, authorization ? { headers: { authorization } } : {}, env)
  return { recipient, method, pay, request }
}

async function challengeOf(shop: Seller, path = '/item') {
  const response = await shop.request(path)
  expect(response.status).toBe(402)
  const challenge = Challenge.fromResponse(response)[0]!
  return challenge as Challenge.Challenge & { request: TempoRequest }
}

const validBefore = (challenge: Challenge.Challenge, seconds = 25) =>
  Math.min(Math.floor(Date.now() / 1000) + seconds, Math.floor(Date.parse(challenge.expires!) / 1000))
const boundMemo = (challenge: Challenge.Challenge) => attributionMemo({ realm: challenge.realm, challengeId: challenge.id })
const source = (account: { address: Address }, chain = chainId) => `did:pkh:eip155:${chain}:${account.address}`

/** The transfers a correct payer makes for a challenge: primary with the bound memo, then each split. */
function paymentCalls(challenge: Challenge.Challenge & { request: TempoRequest }, memo: Hex = boundMemo(challenge)) {
  const { request } = challenge
  const splits = request.methodDetails.splits ?? []
  const primary = BigInt(request.amount) - splits.reduce((sum, s) => sum + BigInt(s.amount), 0n)
  return [
    transferCall(request.currency, request.recipient, primary, request.methodDetails.memo ?? memo),
    ...splits.map((s) => transferCall(request.currency, s.recipient, BigInt(s.amount), s.memo)),
  ]
}

async function pull(challenge: Challenge.Challenge, payer: PrivateKeyAccount, calls: ReturnType<typeof paymentCalls>, options: { sponsored?: boolean; validBefore?: number; gas?: bigint } = {}) {
  const signature = await signPayment(client, payer, { calls, validBefore: options.validBefore ?? validBefore(challenge), sponsored: options.sponsored, gas: options.gas })
  return Credential.serialize({ challenge, payload: { type: 'transaction', signature }, source: source(payer) })
}

async function push(challenge: Challenge.Challenge, payer: PrivateKeyAccount, calls: ReturnType<typeof paymentCalls>, gas?: bigint) {
  const hash = await pushPayment(client, payer, calls, gas)
  return { hash, credential: Credential.serialize({ challenge, payload: { type: 'hash', hash }, source: source(payer) }) }
}

async function problem(response: Response) {
  return (await response.json()) as { type: string; detail?: string }
}

describe('tempo method on a local Tempo chain', { timeout: 60_000 }, () => {
  let otherToken: Address
  beforeAll(async () => {
    otherToken = await createToken(client)
  }, 60_000)

  it('behavior: pull — the server broadcasts the signed transfer; the receipt names the transaction', async () => {
    const shop = seller()
    const challenge = await challengeOf(shop)
    expect(challenge.request).toMatchObject({ amount: '250000', currency: pathUsd, methodDetails: { chainId } })
    const payer = await fundedAccount(client)
    const before = await balanceOf(client, payer.address)
    const credential = await pull(challenge, payer, paymentCalls(challenge))
    const response = await shop.request('/item', credential)
    expect(response.status).toBe(200)
    const receipt = Receipt.deserialize(response.headers.get('payment-receipt')!)
    expect(receipt).toMatchObject({ method: 'tempo', status: 'success', externalId: 'ord_7' })
    expect(receipt.reference).toMatch(/^0x[0-9a-f]{64}$/)
    const mined = (await client.request({ method: 'eth_getTransactionReceipt', params: [receipt.reference as Hex] })) as { status: string }
    expect(mined.status).toBe('0x1')
    expect(await balanceOf(client, shop.recipient)).toBe(price)
    // The payer paid the price plus its own fee.
    expect(before - (await balanceOf(client, payer.address))).toBeGreaterThan(price)
    // The same credential cannot be used twice.
    expect((await shop.request('/item', credential)).status).toBe(402)
  })

  it('behavior: push — the payer broadcasts; the server settles from the receipt logs', async () => {
    const shop = seller()
    const challenge = await challengeOf(shop)
    const payer = await fundedAccount(client)
    const { hash, credential } = await push(challenge, payer, paymentCalls(challenge))
    const response = await shop.request('/item', credential)
    expect(response.status).toBe(200)
    expect(Receipt.deserialize(response.headers.get('payment-receipt')!).reference).toBe(hash)
    expect(await balanceOf(client, shop.recipient)).toBe(price)
  })

  it('behavior: splits pay each recipient its share; a missing split is refused before broadcast', async () => {
    const platform = freshAddress()
    const splitMemo = `0x${'5e'.repeat(32)}` as Hex
    const shop = seller({ splits: [{ recipient: platform, amount: '0.05', memo: splitMemo }] })
    const challenge = await challengeOf(shop)
    expect(challenge.request.methodDetails.splits).toEqual([{ amount: '50000', recipient: platform, memo: splitMemo }])

    const cheat = await fundedAccount(client)
    const withoutSplit = paymentCalls(challenge).slice(0, 1)
    const refused = await shop.request('/item', await pull(challenge, cheat, withoutSplit))
    expect(refused.status).toBe(402)
    expect((await problem(refused)).detail).toMatch(/split 0/)
    expect(await balanceOf(client, cheat.address)).toBe(10_000_000n)

    const payer = await fundedAccount(client)
    const response = await shop.request('/item', await pull(challenge, payer, paymentCalls(challenge).reverse()))
    expect(response.status).toBe(200)
    expect(await balanceOf(client, shop.recipient)).toBe(200_000n)
    expect(await balanceOf(client, platform)).toBe(50_000n)
  })

  it('behavior: a server-configured memo is required verbatim instead of the attribution memo', async () => {
    const memo = `0x${'0a'.repeat(32)}` as Hex
    const shop = seller({ memo })
    const challenge = await challengeOf(shop)
    expect(challenge.request.methodDetails.memo).toBe(memo)
    const other = await shop.request('/item', await pull(challenge, await fundedAccount(client), [transferCall(pathUsd, shop.recipient, price, boundMemo(challenge))]))
    expect(other.status).toBe(402)
    const ok = await shop.request('/item', await pull(challenge, await fundedAccount(client), paymentCalls(challenge)))
    expect(ok.status).toBe(200)
  })

  it('behavior: a zero-amount charge takes an EIP-712 proof (versions 3 and 2); version 1 is refused', async () => {
    const shop = seller()
    const signer = privateKeyToAccount(generatePrivateKey())
    const prove = async (version: 1 | 2 | 3) => {
      const challenge = await challengeOf(shop, '/free')
      expect(challenge.request.amount).toBe('0')
      const signature = await signer.signTypedData(typedData(version, { chainId, challengeId: challenge.id, realm, account: signer.address }) as never)
      return { challenge, response: await shop.request('/free', Credential.serialize({ challenge, payload: { type: 'proof', signature }, source: source(signer) })) }
    }
    for (const version of [3, 2] as const) {
      const { challenge, response } = await prove(version)
      expect(response.status).toBe(200)
      expect(Receipt.deserialize(response.headers.get('payment-receipt')!).reference).toBe(challenge.id)
    }
    const { response } = await prove(1)
    expect(response.status).toBe(402)
    expect((await problem(response)).detail).toMatch(/version 1/)
  })

  it('error: underpayment is payment-insufficient, in pull (nothing broadcast) and push', async () => {
    const shop = seller()
    const challenge = await challengeOf(shop)
    const short = [transferCall(pathUsd, shop.recipient, price - 1n, boundMemo(challenge))]
    const payer = await fundedAccount(client)
    const pulled = await shop.request('/item', await pull(challenge, payer, short))
    expect(pulled.status).toBe(402)
    expect((await problem(pulled)).type).toMatch(/payment-insufficient$/)
    expect(await balanceOf(client, payer.address)).toBe(10_000_000n)

    const pushed = await shop.request('/item', (await push(challenge, await fundedAccount(client), short)).credential)
    expect(pushed.status).toBe(402)
    expect((await problem(pushed)).type).toMatch(/payment-insufficient$/)
  })

  it('error: the wrong token or the wrong recipient is refused, in pull and push', async () => {
    const shop = seller()
    const challenge = await challengeOf(shop)
    const memo = boundMemo(challenge)
    for (const calls of [[transferCall(otherToken, shop.recipient, price, memo)], [transferCall(pathUsd, freshAddress(), price, memo)]]) {
      const pulled = await shop.request('/item', await pull(challenge, await fundedAccount(client, 10_000_000n, otherToken), calls))
      expect(pulled.status).toBe(402)
      expect((await problem(pulled)).detail).toMatch(/no matching payment call/)
      const pushed = await shop.request('/item', (await push(challenge, await fundedAccount(client, 10_000_000n, otherToken), calls)).credential)
      expect(pushed.status).toBe(402)
      expect((await problem(pushed)).detail).toMatch(/no matching transfer/)
    }
    expect(await balanceOf(client, shop.recipient)).toBe(0n)
  })

  it('error: another chain is refused: a transaction signed for it, a source on it, an RPC endpoint serving another chain', async () => {
    const shop = seller()
    const challenge = await challengeOf(shop)
    const payer = await fundedAccount(client)
    const signature = await signForChain(payer, { chainId: 4217, calls: paymentCalls(challenge), validBefore: validBefore(challenge) })
    const foreign = await shop.request('/item', Credential.serialize({ challenge, payload: { type: 'transaction', signature }, source: source(payer) }))
    expect(foreign.status).toBe(402)
    expect((await problem(foreign)).detail).toMatch(/chain 4217/)

    const { hash } = await push(challenge, payer, paymentCalls(challenge))
    const elsewhere = await shop.request('/item', Credential.serialize({ challenge, payload: { type: 'hash', hash }, source: source(payer, 4217) }))
    expect(elsewhere.status).toBe(402)

    const misconfigured = seller({ chainId: 4217, tokens: [{ address: pathUsd, decimals: 6 }] })
    const mainnetChallenge = await challengeOf(misconfigured)
    const answer = await misconfigured.request('/item', Credential.serialize({ challenge: mainnetChallenge, payload: { type: 'hash', hash } }))
    expect(answer.status).toBe(500)
  })

  it('error: a reverted transfer is verification-failed, in push and in pull (after broadcast)', async () => {
    const shop = seller()
    const challenge = await challengeOf(shop)
    // Enough for the fee, not for the price: the transfer reverts on-chain.
    const poor = () => fundedAccount(client, price - 10_000n)
    const pushed = await shop.request('/item', (await push(challenge, await poor(), paymentCalls(challenge), 1_000_000n)).credential)
    expect(pushed.status).toBe(402)
    expect((await problem(pushed)).detail).toMatch(/reverted/)

    const pulled = await shop.request('/item', await pull(challenge, await poor(), paymentCalls(challenge), { gas: 1_000_000n }))
    expect(pulled.status).toBe(402)
    expect((await problem(pulled)).detail).toMatch(/reverted/)
    expect(await balanceOf(client, shop.recipient)).toBe(0n)
  })

  it('error: a transaction valid past the challenge expiry is refused; an expired challenge is payment-expired', async () => {
    const shop = seller()
    const challenge = await challengeOf(shop)
    const payer = await fundedAccount(client)
    // Signed without asking the node: on T4 it refuses to estimate an expiring nonce valid more than 30 s ahead.
    const lateSignature = await signForChain(payer, { chainId, calls: paymentCalls(challenge), validBefore: Math.floor(Date.parse(challenge.expires!) / 1000) + 30 })
    const late = Credential.serialize({ challenge, payload: { type: 'transaction', signature: lateSignature }, source: source(payer) })
    const refused = await shop.request('/item', late)
    expect(refused.status).toBe(402)
    expect((await problem(refused)).detail).toMatch(/after the challenge expires/)

    // The orchestrator checks the challenge expiry before the method sees the credential.
    const credential = await pull(challenge, payer, paymentCalls(challenge))
    const offers = await Server.chargeOffers(shop.pay.server, { amount: '0.25', externalId: 'ord_7' })
    const after = new Date(Date.parse(challenge.expires!) + 1_000)
    const outcome = await Server.handle(shop.pay.server, new Request(`https://${realm}/item`, { headers: { authorization: credential } }), offers, {
      store: replayStore(env.REPLAY_GUARD),
      now: after,
    })
    expect(outcome.type).toBe('response')
    expect(outcome.type === 'response' && outcome.response.status).toBe(402)
    expect(outcome.type === 'response' && (await problem(outcome.response)).type).toMatch(/payment-expired$/)
    expect(await balanceOf(client, shop.recipient)).toBe(0n)
  })

  it('error: one transaction hash settles one challenge — by its memo, and by the replay store when memos are not required', async () => {
    const bound = seller()
    const first = await challengeOf(bound)
    const second = await challengeOf(bound)
    const { hash } = await push(first, await fundedAccount(client), paymentCalls(first))
    const reuse = await bound.request('/item', Credential.serialize({ challenge: second, payload: { type: 'hash', hash } }))
    expect(reuse.status).toBe(402)
    expect((await problem(reuse)).detail).toMatch(/bound to this challenge/)

    // Without required memos (pull only), the same signed transaction offered for a second challenge is refused.
    const loose = seller({ attribution: 'optional' })
    const plain = [transferCall(pathUsd, loose.recipient, price)]
    const c = await challengeOf(loose)
    const d = await challengeOf(loose)
    const signature = await signPayment(client, await fundedAccount(client), { calls: plain, validBefore: validBefore(c) })
    expect((await loose.request('/item', Credential.serialize({ challenge: c, payload: { type: 'transaction', signature } }))).status).toBe(200)
    const again = await loose.request('/item', Credential.serialize({ challenge: d, payload: { type: 'transaction', signature } }))
    expect(again.status).toBe(402)
    expect((await problem(again)).detail).toMatch(/already settled another challenge/)
    expect(await balanceOf(client, loose.recipient)).toBe(price)
  })

  it("invariant 7: nobody can claim someone else's transfer — without the challenge-bound memo a pushed hash is refused, saying why", async () => {
    // A payer pushes a plain transfer (optional attribution) or one with the server's fixed memo; whoever sees
    // its hash on chain tries to claim it for their own challenge first.
    const memo = `0x${'0b'.repeat(32)}` as Hex
    for (const config of [{ attribution: 'optional' as const }, { memo }]) {
      const shop = seller(config)
      const victim = await challengeOf(shop)
      const thief = await challengeOf(shop)
      const { hash } = await push(victim, await fundedAccount(client), [transferCall(pathUsd, shop.recipient, price, config.memo)])
      const claimed = await shop.request('/item', Credential.serialize({ challenge: thief, payload: { type: 'hash', hash } }))
      expect(claimed.status).toBe(402)
      expect((await problem(claimed)).detail).toMatch(/hash credentials are refused: this server does not require the challenge-bound memo/)
      expect(claimed.headers.get('payment-receipt')).toBeNull()
    }
  })

  it('error: a hash credential is refused when push is not offered', async () => {
    const shop = seller({ modes: ['pull'] })
    const challenge = await challengeOf(shop)
    expect(challenge.request.methodDetails.supportedModes).toEqual(['pull'])
    const { credential } = await push(challenge, await fundedAccount(client), paymentCalls(challenge))
    const response = await shop.request('/item', credential)
    expect(response.status).toBe(402)
    expect((await problem(response)).detail).toMatch(/hash credentials are not accepted/)
  })

  it('behavior: the RPC endpoint failing mid-verification answers 503, and the same credential succeeds afterwards', async () => {
    const proxy = rpcProxy(url)
    const shop = seller({ fetch: proxy.fetch, timeoutMs: 1_000 })
    const challenge = await challengeOf(shop)
    const payer = await fundedAccount(client)
    const credential = await pull(challenge, payer, paymentCalls(challenge))

    // The broadcast goes out, then the endpoint becomes unreachable while the receipt is awaited.
    proxy.state.after = { method: 'eth_sendRawTransaction', then: 'refused' }
    const down = await shop.request('/item', credential)
    expect(down.status).toBe(503)
    expect(down.headers.get('retry-after')).toBeTruthy()
    expect(down.headers.get('payment-receipt')).toBeNull()
    expect(proxy.state.seen).toContain('eth_sendRawTransaction')

    for (const mode of ['error-503', 'hang'] as const) {
      proxy.state.mode = mode
      expect((await shop.request('/item', credential)).status).toBe(503)
    }

    proxy.state.mode = 'up'
    const up = await shop.request('/item', credential)
    expect(up.status).toBe(200)
    // Paid exactly once, though the credential was presented four times.
    expect(await balanceOf(client, shop.recipient)).toBe(price)
  })

  it('behavior: an unreachable endpoint before anything was sent also answers 503 and leaves the credential usable (push)', async () => {
    const proxy = rpcProxy(url)
    const shop = seller({ fetch: proxy.fetch, timeoutMs: 1_000 })
    const challenge = await challengeOf(shop)
    const { credential } = await push(challenge, await fundedAccount(client), paymentCalls(challenge))
    proxy.state.mode = 'refused'
    expect((await shop.request('/item', credential)).status).toBe(503)
    proxy.state.mode = 'up'
    expect((await shop.request('/item', credential)).status).toBe(200)
  })
})

describe('tempo fee sponsorship on a local Tempo chain', { timeout: 60_000 }, () => {
  const sponsorKey = generatePrivateKey()
  const sponsor = privateKeyToAccount(sponsorKey)
  beforeAll(async () => {
    await fund(client, sponsor.address, 5_000_000n)
  })
  // The cap on transactions in flight is the shared Durable Object one, as the gateway wires it.
  const sponsoredSeller = () => seller({ feePayer: { privateKey: sponsorKey, gate: sponsorGate(env.SPONSOR_GATE, sponsor.address, 4) } })
  const slotsHeld = () => env.SPONSOR_GATE.get(env.SPONSOR_GATE.idFromName(`sponsor:${sponsor.address.toLowerCase()}`)).held()

  it('behavior: the server co-signs as fee payer; the payer pays exactly the price, the sponsor the fee', async () => {
    const shop = sponsoredSeller()
    const challenge = await challengeOf(shop)
    expect(challenge.request.methodDetails).toMatchObject({ feePayer: true, supportedModes: ['pull'] })
    const payer = await fundedAccount(client)
    const sponsorBefore = await balanceOf(client, sponsor.address)
    const response = await shop.request('/item', await pull(challenge, payer, paymentCalls(challenge), { sponsored: true }))
    expect(response.status).toBe(200)
    expect(await balanceOf(client, payer.address)).toBe(10_000_000n - price)
    expect(await balanceOf(client, shop.recipient)).toBe(price)
    const fee = sponsorBefore - (await balanceOf(client, sponsor.address))
    expect(fee).toBeGreaterThan(0n)
    expect(fee).toBeLessThanOrEqual(50_000n)
    expect(await slotsHeld()).toBe(0)
  })

  it('error: a hash credential, a foreign memo and a reverting transfer are refused before the sponsor pays', async () => {
    const shop = sponsoredSeller()
    const challenge = await challengeOf(shop)
    const sponsorBefore = await balanceOf(client, sponsor.address)

    const { credential } = await push(challenge, await fundedAccount(client), paymentCalls(challenge))
    const hash = await shop.request('/item', credential)
    expect(hash.status).toBe(402)
    expect((await problem(hash)).detail).toMatch(/server pays the fee/)

    const foreign = [transferCall(pathUsd, shop.recipient, price, `0x${'ab'.repeat(32)}`)]
    const memo = await shop.request('/item', await pull(challenge, await fundedAccount(client), foreign, { sponsored: true }))
    expect(memo.status).toBe(402)

    const poor = await fundedAccount(client, price - 1n)
    const reverting = await shop.request('/item', await pull(challenge, poor, paymentCalls(challenge), { sponsored: true, gas: 1_000_000n }))
    expect(reverting.status).toBe(402)
    expect((await problem(reverting)).detail).toMatch(/would revert/)

    const unsponsored = await shop.request('/item', await pull(challenge, await fundedAccount(client), paymentCalls(challenge)))
    expect(unsponsored.status).toBe(402)
    expect((await problem(unsponsored)).detail).toMatch(/not prepared for fee sponsorship/)
    expect(await balanceOf(client, sponsor.address)).toBe(sponsorBefore)
  })

  it('behavior: a sponsor that cannot cover the fee answers 503 and leaves the credential usable', async () => {
    const brokeKey = generatePrivateKey()
    await fund(client, privateKeyToAccount(brokeKey).address, 10n)
    const shop = seller({ feePayer: { privateKey: brokeKey } })
    const challenge = await challengeOf(shop)
    const credential = await pull(challenge, await fundedAccount(client), paymentCalls(challenge), { sponsored: true })
    const response = await shop.request('/item', credential)
    expect(response.status).toBe(503)
    expect(response.headers.get('retry-after')).toBeTruthy()
    await fund(client, privateKeyToAccount(brokeKey).address, 1_000_000n)
    expect((await shop.request('/item', credential)).status).toBe(200)
  })

  it('error: a gas limit above the sponsor policy is refused', async () => {
    const shop = seller({ feePayer: { privateKey: sponsorKey, policy: { maxGas: 100_000n } } })
    const challenge = await challengeOf(shop)
    const response = await shop.request('/item', await pull(challenge, await fundedAccount(client), paymentCalls(challenge), { sponsored: true, gas: 150_000n }))
    expect(response.status).toBe(402)
    expect((await problem(response)).detail).toMatch(/gas limit exceeds sponsor policy/)
  })
})


describe('tempo push of a transaction the node has not seen', () => {
  it('behavior: an unknown hash answers 503 with Retry-After, leaving the challenge usable', async () => {
    const shop = seller()
    const challenge = await challengeOf(shop)
    const hash = `0x${'ab'.repeat(32)}`
    const response = await shop.request('/item', Credential.serialize({ challenge, payload: { type: 'hash', hash } }))
    expect(response.status).toBe(503)
    expect(response.headers.get('retry-after')).toBe('2')
    expect((await problem(response)).detail).toMatch(/not known/)
  })
})
