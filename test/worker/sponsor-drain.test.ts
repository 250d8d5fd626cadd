/**
 * Fee sponsorship against payers who try to make the sponsor pay for failing transactions, on the local
 * Tempo chain: a payer that empties its account between the server's checks and the broadcast, and a payer
 * racing several sponsored payments backed by one balance.
 */
import { env } from 'cloudflare:workers'
import { Hono } from 'hono'
import type { Address, Hex } from 'viem'
import { type PrivateKeyAccount, generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { sendTransactionSync } from 'viem/actions'
import { beforeAll, describe, expect, it } from 'vitest'
import * as Challenge from '../../src/core/Challenge.js'
import * as Credential from '../../src/core/Credential.js'
import { tempo, type TempoRequest } from '../../src/methods/tempo/method.js'
import { attributionMemo } from '../../src/methods/tempo/memo.js'
import { payment } from '../../src/middleware/payment.js'
import { replayStore } from '../../src/storage/replay-store.js'
import { senderLimit } from '../../src/storage/sender-limit.js'
import { sponsorGate } from '../../src/storage/sponsor-gate.js'
import { balanceOf, chainClient, chainId, freshAddress, fund, fundedAccount, pathUsd, signPayment, transferCall } from '../support/tempo-chain.js'

const url = env.TEST_TEMPO_RPC_URL
const client = chainClient(url)
const realm = 'api.example.com'
const secret = 'sponsor-drain-test-secret-0123456789abcdef'
const price = 250_000n

/** A fetch to the chain that can run a step just before the server broadcasts, or hold that broadcast. */
function chainFetch() {
  const hooks = { beforeBroadcast: undefined as (() => Promise<void>) | undefined }
  const fetcher = (async (_input: RequestInfo | URL, init?: RequestInit) => {
    const body = typeof init?.body === 'string' ? init.body : ''
    if (body.includes('"eth_sendRawTransaction') && hooks.beforeBroadcast) {
      const step = hooks.beforeBroadcast
      hooks.beforeBroadcast = undefined
      await step()
    }
    return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: init?.signal ?? null })
  }) as typeof fetch
  return { fetch: fetcher, hooks }
}

function sponsoredShop(sponsorKey: Hex, fetcher: typeof fetch) {
  const sponsor = privateKeyToAccount(sponsorKey).address
  const policy = { maxRevertsPerSender: 3, revertWindowSeconds: 86_400, maxInFlightPerSender: 1 }
  const method = tempo({
    chainId,
    recipient: freshAddress(),
    rpcUrl: url,
    fetch: fetcher,
    pollIntervalMs: 100,
    receiptTimeoutMs: 10_000,
    feePayer: { privateKey: sponsorKey, policy, gate: sponsorGate(env.SPONSOR_GATE, sponsor, 16), senders: senderLimit(env.SENDER_LIMIT, sponsor, policy) },
  })
  const pay = payment<{ Bindings: Cloudflare.Env }>({ realm, secret, methods: [method], store: (c) => replayStore(c.env.REPLAY_GUARD) })
  const app = new Hono<{ Bindings: Cloudflare.Env }>()
  app.get('/item', pay.charge({ amount: '0.25' }), (c) => c.json({ ok: true }))
  const request = (authorization?: string) => app.request(`https://${realm}/item`, authorization ? { headers: { authorization } } : {}, env)
  return { request }
}

async function sponsoredCredential(shop: ReturnType<typeof sponsoredShop>, payer: PrivateKeyAccount) {
  const response = await shop.request()
  expect(response.status).toBe(402)
  const challenge = Challenge.fromResponse(response)[0]! as Challenge.Challenge & { request: TempoRequest }
  const memo = attributionMemo({ realm: challenge.realm, challengeId: challenge.id })
  // T4 refuses expiring nonces valid more than 30 s ahead.
  const validBefore = Math.min(Math.floor(Date.now() / 1000) + 25, Math.floor(Date.parse(challenge.expires!) / 1000))
  const signature = await signPayment(client, payer, {
    calls: [transferCall(pathUsd, challenge.request.recipient as Address, price, memo)],
    validBefore,
    sponsored: true,
  })
  return Credential.serialize({ challenge, payload: { type: 'transaction', signature } })
}

/** The payer moves its pathUSD away on another nonce lane (paying its own fee), leaving less than the price. */
async function drain(payer: PrivateKeyAccount) {
  const balance = (await balanceOf(client, payer.address)) - 200_000n
  const lane = BigInt(`0x${[...crypto.getRandomValues(new Uint8Array(12))].map((b) => b.toString(16).padStart(2, '0')).join('')}`) + 1n
  await sendTransactionSync(client, {
    account: payer,
    calls: [transferCall(pathUsd, freshAddress(), balance)],
    feeToken: pathUsd,
    nonceKey: lane,
    gas: 1_000_000n,
    throwOnReceiptRevert: true,
  } as never)
}

describe('invariant 6: fee sponsorship cannot be drained', { timeout: 120_000 }, () => {
  const sponsorKey = generatePrivateKey()
  const sponsor = privateKeyToAccount(sponsorKey)
  beforeAll(async () => {
    await fund(client, sponsor.address, 20_000_000n)
  }, 60_000)

  it('invariant 6: fee sponsorship cannot be drained — a payer emptying its account before each broadcast is refused sponsorship after 3 reverts', async () => {
    const chain = chainFetch()
    const shop = sponsoredShop(sponsorKey, chain.fetch)
    const payer = await fundedAccount(client, 5_000_000n)
    for (let attempt = 1; attempt <= 3; attempt++) {
      const credential = await sponsoredCredential(shop, payer)
      chain.hooks.beforeBroadcast = () => drain(payer)
      const response = await shop.request(credential)
      expect(response.status).toBe(402)
      expect(((await response.json()) as { detail: string }).detail).toMatch(/reverted/)
      await fund(client, payer.address, 5_000_000n)
    }
    // The checks pass again (the payer holds the amount), but the sender is refused, and the sponsor pays nothing.
    const sponsorBefore = await balanceOf(client, sponsor.address)
    const refused = await shop.request(await sponsoredCredential(shop, payer))
    expect(refused.status).toBe(402)
    expect(((await refused.json()) as { detail: string }).detail).toMatch(
      /fee sponsorship refused: 3 sponsored transactions from this sender reverted within 24 hours; sponsorship resumes at \d{4}-/,
    )
    expect(await balanceOf(client, sponsor.address)).toBe(sponsorBefore)
    // Another sender is still sponsored.
    expect((await shop.request(await sponsoredCredential(shop, await fundedAccount(client, 5_000_000n)))).status).toBe(200)
  })

  it('invariant 6: fee sponsorship cannot be drained — one sponsored transaction in flight per sender; the next waits (503) and then pays', async () => {
    const chain = chainFetch()
    const shop = sponsoredShop(sponsorKey, chain.fetch)
    const payer = await fundedAccount(client, 5_000_000n)
    const [first, second] = [await sponsoredCredential(shop, payer), await sponsoredCredential(shop, payer)]
    let secondAnswer: Response | undefined
    // While the first transaction is about to go out, the same sender presents a second one.
    chain.hooks.beforeBroadcast = async () => {
      secondAnswer = await shop.request(second)
    }
    expect((await shop.request(first)).status).toBe(200)
    expect(secondAnswer!.status).toBe(503)
    expect(secondAnswer!.headers.get('retry-after')).toBeTruthy()
    expect(((await secondAnswer!.json()) as { detail: string }).detail).toMatch(/already has a sponsored transaction in flight/)
    // Once the first is mined, the second credential (not burned) pays.
    expect((await shop.request(second)).status).toBe(200)
    expect(await balanceOf(client, payer.address)).toBe(5_000_000n - 2n * price)
  })
})
