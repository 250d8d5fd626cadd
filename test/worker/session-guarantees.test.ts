/**
 * The session money invariants through pay.session (S1, S2, S4 of docs/guarantees.md), each tried the hostile way:
 * strangers against someone else's channel, payers whose requests die halfway, closes that race. Money moves on the
 * local session chain (private chains where time moves); the ledger session method stands in where only the
 * accounting is under test.
 */
import { env } from 'cloudflare:workers'
import { runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test'
import { Hono } from 'hono'
import { tempo as mppxTempo } from 'mppx/client'
import { type Address, type Hex, createClient, decodeFunctionData, http, keccak256, toHex } from 'viem'
import { tempoModerato } from 'viem/chains'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { beforeAll, describe, expect, it } from 'vitest'
import * as Challenge from '../../src/core/Challenge.js'
import * as Credential from '../../src/core/Credential.js'
import * as Receipt from '../../src/core/Receipt.js'
import type * as Session from '../../src/core/Session.js'
import { type TempoSessionConfig, tempoSession } from '../../src/methods/tempo/session-method.js'
import { payment } from '../../src/middleware/payment.js'
import { channelStore } from '../../src/storage/channel-store.js'
import { replayStore } from '../../src/storage/replay-store.js'
import { escrowAbi, tip20ChannelReserve } from '../../src/methods/tempo/session/abi.js'
import { sessionChain } from '../../src/methods/tempo/session/chain.js'
import { deployStreamChannel, privateChain, signOpen, signOpenV1, voucherFor } from '../../src/testing/session-payer.js'
import { ledger as chargeLedger } from '../support/ledger-method.js'
import { channelIdOf, fundingTransaction, ledgerSession, pathUsd, signVoucher } from '../support/ledger-session.js'
import { balanceOf, chainClient, chainId, fund } from '../support/tempo-chain.js'

type Env = { Bindings: Cloudflare.Env }
const base = 'https://api.example.com'
const zero = '0x0000000000000000000000000000000000000000'
const problems = 'https://paymentauth.org/problems/'

async function challengeOf(response: Response): Promise<Challenge.Challenge> {
  expect(response.status).toBe(402)
  return Challenge.fromResponse(response).find((c) => c.intent === 'session')!
}

const receiptOf = (response: Response) => Receipt.deserialize(response.headers.get('payment-receipt')!) as Session.SessionReceipt
const problemOf = async (response: Response) => (await response.json()) as { type: string; status: number; channelId?: string; detail?: string }
const channelState = (channelId: string) => channelStore(env.CHANNEL_STATE).channel(channelId).state()

/** A seller of 0.001 pathUSD requests paid through the ledger session method (no chain). */
function ledgerShop() {
  const payee = privateKeyToAccount(generatePrivateKey())
  const ledger = ledgerSession(payee.address)
  const pay = payment<Env>({
    realm: 'api.example.com',
    secret: 'session-guarantees-secret-0123456789abcdef',
    methods: [chargeLedger().method],
    store: (c) => replayStore(c.env.REPLAY_GUARD),
    session: { method: ledger.method, channels: (c) => channelStore(c.env.CHANNEL_STATE, c.env.PAYER_CHANNELS) },
  })
  let runs = 0
  const app = new Hono<Env>()
  app.on(['GET', 'POST', 'HEAD'], '/report', pay.session({ amount: '0.001', unitType: 'request' }), (c) => {
    runs++
    return c.json({ report: 'ok' })
  })
  const request = (path: string, init?: RequestInit) => app.request(`${base}${path}`, init, env)
  return { payee, ledger, request, runs: () => runs }
}

/** A payer of the ledger shop: its key and channel. */
function ledgerPayer(payee: Address, deposit = 100_000n) {
  const account = privateKeyToAccount(generatePrivateKey())
  const descriptor: Session.Descriptor = {
    payer: account.address.toLowerCase() as Hex,
    payee: payee.toLowerCase() as Hex,
    operator: zero,
    token: pathUsd,
    salt: keccak256(toHex(crypto.randomUUID())),
    authorizedSigner: zero,
    expiringNonceHash: keccak256(toHex(crypto.randomUUID())),
  }
  const channelId = channelIdOf(descriptor)
  const credential = (challenge: Challenge.Challenge, payload: Record<string, unknown>) => Credential.serialize({ challenge, payload })
  return {
    account,
    descriptor,
    channelId,
    open: async (challenge: Challenge.Challenge, cumulative: bigint) =>
      credential(challenge, {
        action: 'open',
        type: 'transaction',
        channelId,
        transaction: await fundingTransaction(channelId, deposit),
        descriptor,
        cumulativeAmount: cumulative.toString(),
        signature: await signVoucher(account, channelId, cumulative),
      }),
    /** A voucher for this channel, signed by `signer` (default the payer). */
    voucher: async (challenge: Challenge.Challenge, cumulative: bigint, signer = account, action = 'voucher') =>
      credential(challenge, { action, channelId, descriptor, cumulativeAmount: cumulative.toString(), signature: await signVoucher(signer, channelId, cumulative) }),
  }
}

describe('S4: strangers against someone else\'s channel', () => {
  it('S4 — a stranger\'s vouchers never count against the payer\'s voucher rate: after 40 stranger vouchers the payer\'s own voucher is served', { timeout: 30_000 }, async () => {
    const shop = ledgerShop()
    const victim = ledgerPayer(shop.payee.address)
    const challenge = await challengeOf(await shop.request('/report'))
    expect((await shop.request('/report', { headers: { authorization: await victim.open(challenge, 1000n) } })).status).toBe(200)
    // Strangers sign vouchers for the victim's channel with their own keys, each from its own client and challenge.
    const strangers = await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        const own = await challengeOf(await shop.request('/report'))
        return { authorization: await victim.voucher(own, 5000n + BigInt(i), privateKeyToAccount(generatePrivateKey())), ip: `198.51.100.${i + 1}` }
      }),
    )
    const refused = await Promise.all(strangers.map((s) => shop.request('/report', { method: 'POST', headers: { authorization: s.authorization, 'cf-connecting-ip': s.ip } })))
    for (const response of refused) expect(response.status).toBe(402)
    expect((await problemOf(refused[0]!)).type).toBe(`${problems}session/signer-mismatch`)
    // The payer's own voucher right after: served, not rate-limited.
    const own = await shop.request('/report', { headers: { authorization: await victim.voucher(challenge, 2000n), 'cf-connecting-ip': '203.0.113.7' } })
    expect(own.status).toBe(200)
    expect(receiptOf(own)).toMatchObject({ acceptedCumulative: '2000', spent: '2000' })
    expect(shop.runs()).toBe(2)
  })

  it('S4 — bad signatures are limited per client and per challenge: past the limit they are refused 429 before any signature is checked, and the payer is unaffected', { timeout: 30_000 }, async () => {
    const shop = ledgerShop()
    const victim = ledgerPayer(shop.payee.address)
    const challenge = await challengeOf(await shop.request('/report'))
    expect((await shop.request('/report', { headers: { authorization: await victim.open(challenge, 1000n) } })).status).toBe(200)
    const stranger = privateKeyToAccount(generatePrivateKey())
    // One client, many challenges: refused once it sent too many bad signatures.
    const fromOneClient: number[] = []
    for (let i = 0; i < 40; i++) {
      const own = await challengeOf(await shop.request('/report'))
      const response = await shop.request('/report', { method: 'POST', headers: { authorization: await victim.voucher(own, 5000n + BigInt(i), stranger), 'cf-connecting-ip': '198.51.100.9' } })
      fromOneClient.push(response.status)
      if (response.status === 429) {
        expect(Number(response.headers.get('retry-after'))).toBeGreaterThanOrEqual(1)
        expect((await problemOf(response)).type).toBe(`${problems}rate-limited`)
      }
    }
    expect(fromOneClient.slice(0, 10).every((s) => s === 402)).toBe(true)
    expect(fromOneClient.at(-1)).toBe(429)
    // One challenge, many clients: refused once that challenge carried too many bad signatures.
    const shared = await challengeOf(await shop.request('/report'))
    const underOneChallenge: number[] = []
    for (let i = 0; i < 30; i++) {
      const response = await shop.request('/report', { method: 'POST', headers: { authorization: await victim.voucher(shared, 6000n + BigInt(i), stranger), 'cf-connecting-ip': `192.0.2.${i + 1}` } })
      underOneChallenge.push(response.status)
    }
    expect(underOneChallenge[0]).toBe(402)
    expect(underOneChallenge.at(-1)).toBe(429)
    // The payer, from its own client with its own challenge, pays on.
    const own = await shop.request('/report', { headers: { authorization: await victim.voucher(challenge, 2000n), 'cf-connecting-ip': '203.0.113.7' } })
    expect(own.status).toBe(200)
  })
})

/** A seller on the local session chain: `tempoSession` with `extra` settings, 0.01 pathUSD per request. */
async function chainShop(extra: Partial<TempoSessionConfig> = {}, url = env.TEST_SESSION_RPC_URL) {
  const client = chainClient(url)
  const payeeKey = generatePrivateKey()
  const payee = privateKeyToAccount(payeeKey)
  await fund(client, payee.address, 1_000_000n)
  const settings: TempoSessionConfig = { chainId, recipient: payee.address, privateKey: payeeKey, rpcUrl: url, pollIntervalMs: 100, ...extra }
  return { client, payee, payeeKey, settings, chain: { url, chainId, ...(settings.escrow ? { escrow: settings.escrow as Address, protocol: settings.sessionProtocol } : {}) } }
}

type ChainShop = Awaited<ReturnType<typeof chainShop>>

/** Serves `/<path>` for each shop in one app, all keeping their channels in the one CHANNEL_STATE namespace. */
function app(shops: { path: string; shop: ChainShop; ttlSeconds?: number }[]) {
  const served: Record<string, number> = {}
  const hono = new Hono<Env>()
  for (const { path, shop, ttlSeconds } of shops) {
    const pay = payment<Env>({
      realm: 'api.example.com',
      secret: 'session-guarantees-chain-secret-0123456789',
      methods: [chargeLedger().method],
      store: (c) => replayStore(c.env.REPLAY_GUARD),
      session: { method: tempoSession(shop.settings), channels: (c) => channelStore(c.env.CHANNEL_STATE, c.env.PAYER_CHANNELS), ttlSeconds },
    })
    served[path] = 0
    hono.on(['GET', 'POST', 'HEAD'], path, pay.session({ amount: '0.01', unitType: 'request', suggestedDeposit: '1' }), (c) => {
      served[path]!++
      return c.json({ path })
    })
  }
  const fetcher = ((input: RequestInfo | URL, init?: RequestInit) => hono.request(new Request(input, init), undefined, env)) as typeof fetch
  return { fetcher, served }
}

async function chainPayer(client: ReturnType<typeof chainClient>, amount = 5_000_000n) {
  const account = privateKeyToAccount(generatePrivateKey())
  await fund(client, account.address, amount)
  return account
}

describe('S4: v1 channels of several payees in one channel store', { timeout: 120_000 }, () => {
  let escrow: Address
  beforeAll(async () => {
    escrow = await deployStreamChannel(env.TEST_SESSION_RPC_URL)
  })

  it('S4 — a v1 voucher pays only the route of its channel\'s payee: a channel paying one seller is refused by another seller sharing the channel store', async () => {
    const first = await chainShop({ sessionProtocol: 'v1', escrow })
    const second = await chainShop({ sessionProtocol: 'v1', escrow })
    const { fetcher, served } = app([
      { path: '/first', shop: first },
      { path: '/second', shop: second },
    ])
    const p = await chainPayer(first.client)
    const firstChallenge = await challengeOf(await fetcher(`${base}/first`))
    const opened = await signOpenV1(first.chain as never, p, { payee: first.payee.address, token: pathUsd, deposit: 200_000n })
    const sign = async (cumulative: bigint) => (await voucherFor(first.chain, p, opened.channelId, cumulative)).signature
    const open = Credential.serialize({
      challenge: firstChallenge,
      payload: { action: 'open', type: 'transaction', channelId: opened.channelId, transaction: opened.serialized, cumulativeAmount: '10000', signature: await sign(10_000n) },
    })
    expect((await fetcher(`${base}/first`, { headers: { authorization: open } })).status).toBe(200)
    // The same channel's voucher on the other seller's route: that seller would serve and the first one be paid.
    const secondChallenge = await challengeOf(await fetcher(`${base}/second`))
    const elsewhere = Credential.serialize({ challenge: secondChallenge, payload: { action: 'voucher', channelId: opened.channelId, cumulativeAmount: '20000', signature: await sign(20_000n) } })
    const refused = await fetcher(`${base}/second`, { headers: { authorization: elsewhere } })
    expect(refused.status).toBe(410)
    expect((await problemOf(refused)).type).toBe(`${problems}session/channel-not-found`)
    expect(served['/second']).toBe(0)
    expect(await channelState(opened.channelId)).toMatchObject({ accepted: 10_000n, spent: 10_000n })
    // A close of that channel through the other seller's route is refused the same way.
    const close = Credential.serialize({ challenge: secondChallenge, payload: { action: 'close', channelId: opened.channelId, cumulativeAmount: '20000', signature: await sign(20_000n) } })
    expect((await fetcher(`${base}/second`, { method: 'POST', headers: { authorization: close } })).status).toBe(410)
    expect(await channelState(opened.channelId)).toMatchObject({ status: 'open' })
  })
})

/** A fetch for the RPC client that answers "not mined yet" for every receipt while `hidden` is set. */
function receiptsHidden() {
  const control = { hidden: false }
  const fetcher = (async (input: RequestInfo | URL, init?: RequestInit) => {
    if (control.hidden && typeof init?.body === 'string') {
      const call = JSON.parse(init.body) as { id: number; method: string }
      if (call.method === 'eth_getTransactionReceipt') return Response.json({ jsonrpc: '2.0', id: call.id, result: null })
    }
    return fetch(input, init)
  }) as typeof fetch
  return { control, fetch: fetcher }
}

describe('an open answered 503 whose challenge then expired', { timeout: 60_000 }, () => {
  it('S1 — an open broadcast before a 503 is still recorded when its challenge expired meanwhile: the retry names the channel and the payer pays on with it', async () => {
    const rpc = receiptsHidden()
    const shop = await chainShop({ fetch: rpc.fetch, receiptTimeoutMs: 1000 })
    const { fetcher, served } = app([{ path: '/report', shop, ttlSeconds: 10 }])
    const p = await chainPayer(shop.client)
    const challenge = await challengeOf(await fetcher(`${base}/report`))
    // Valid for 5 s: within the challenge's 10 s, as the server requires.
    const opened = await signOpen(shop.chain, p, { payee: shop.payee.address, token: pathUsd, deposit: 200_000n, validFor: 5 })
    const sign = async (cumulative: bigint) => (await voucherFor(shop.chain, p, opened.channelId, cumulative)).signature
    const open = Credential.serialize({
      challenge,
      payload: { action: 'open', type: 'transaction', channelId: opened.channelId, transaction: opened.serialized, descriptor: opened.descriptor, cumulativeAmount: '10000', signature: await sign(10_000n) },
    })
    // The open is broadcast (and mines), but its receipt does not come in time: 503, the credential stays good.
    rpc.control.hidden = true
    const unavailable = await fetcher(`${base}/report`, { headers: { authorization: open } })
    expect(unavailable.status).toBe(503)
    expect(unavailable.headers.get('retry-after')).toBeTruthy()
    rpc.control.hidden = false
    // The payer retries only after the challenge expired.
    await new Promise((resolve) => setTimeout(resolve, Date.parse(challenge.expires!) - Date.now() + 500))
    const retried = await fetcher(`${base}/report`, { headers: { authorization: open } })
    expect(retried.status).toBe(402)
    expect(await problemOf(retried)).toMatchObject({ type: `${problems}session/challenge-not-found`, channelId: opened.channelId })
    const fresh = await challengeOf(retried)
    expect(fresh.request.methodDetails).toMatchObject({ channelId: opened.channelId })
    // Recorded: the channel the payer funded serves it under the fresh challenge.
    expect(await channelState(opened.channelId)).toMatchObject({ status: 'open', deposit: 200_000n, accepted: 10_000n, spent: 0n })
    const voucher = Credential.serialize({ challenge: fresh, payload: { action: 'voucher', channelId: opened.channelId, descriptor: opened.descriptor, cumulativeAmount: '10000', signature: await sign(10_000n) } })
    const paid = await fetcher(`${base}/report`, { headers: { authorization: voucher } })
    expect(paid.status).toBe(200)
    expect(receiptOf(paid)).toMatchObject({ spent: '10000' })
    expect(served['/report']).toBe(1)
  })

  it('S1 — an open transaction that never reached the chain is not recorded on an expired challenge (nothing is broadcast for it)', async () => {
    const shop = await chainShop()
    const { fetcher } = app([{ path: '/report', shop, ttlSeconds: 10 }])
    const p = await chainPayer(shop.client)
    const challenge = await challengeOf(await fetcher(`${base}/report`))
    const opened = await signOpen(shop.chain, p, { payee: shop.payee.address, token: pathUsd, deposit: 200_000n, validFor: 5 })
    const open = Credential.serialize({
      challenge,
      payload: { action: 'open', type: 'transaction', channelId: opened.channelId, transaction: opened.serialized, descriptor: opened.descriptor, cumulativeAmount: '10000', signature: (await voucherFor(shop.chain, p, opened.channelId, 10_000n)).signature },
    })
    await new Promise((resolve) => setTimeout(resolve, Date.parse(challenge.expires!) - Date.now() + 500))
    const refused = await fetcher(`${base}/report`, { headers: { authorization: open } })
    expect(refused.status).toBe(402)
    expect((await problemOf(refused)).type).toBe(`${problems}session/challenge-not-found`)
    expect(await channelState(opened.channelId)).toBeUndefined()
    const mined = await shop.client.request({ method: 'eth_getTransactionReceipt', params: [opened.hash] })
    expect(mined).toBeNull()
  })
})

/** Runs the channel object's alarm now (settlement on, as a deployment has it). */
async function settleNow(channelId: string, settings: TempoSessionConfig) {
  const stub = env.CHANNEL_STATE.get(env.CHANNEL_STATE.idFromName(channelId))
  await runInDurableObject(stub, async (_, ctx) => {
    if (!settings.fetch) ctx.storage.kv.put('settlement:config', settings)
    await ctx.storage.setAlarm(Date.now() + 300_000)
  })
  expect(await runDurableObjectAlarm(stub)).toBe(true)
}

/** The settle transactions the latest blocks of a private chain carry: anyone can read their vouchers. */
async function publishedVouchers(client: ReturnType<typeof chainClient>) {
  const head = BigInt((await client.request({ method: 'eth_blockNumber' })) as Hex)
  const found: { cumulative: bigint; signature: Hex }[] = []
  for (let n = head; n > 0n && n > head - 5n; n--) {
    const block = (await client.request({ method: 'eth_getBlockByNumber', params: [toHex(n), true] })) as { transactions: { to: string | null; input?: Hex; calls?: { to: string; input?: Hex; data?: Hex }[] }[] }
    for (const tx of block.transactions) {
      const calls = tx.calls?.length ? tx.calls.map((c) => ({ to: c.to, input: (c.input ?? c.data)! })) : [{ to: tx.to ?? '', input: tx.input! }]
      for (const call of calls) {
        if (call.to?.toLowerCase() !== tip20ChannelReserve) continue
        try {
          const decoded = decodeFunctionData({ abi: escrowAbi, data: call.input })
          if (decoded.functionName === 'settle') found.push({ cumulative: decoded.args[1] as bigint, signature: decoded.args[2] as Hex })
        } catch {
          // Another call.
        }
      }
    }
  }
  return found
}

describe('S4: only the payer closes its channel', { timeout: 120_000 }, () => {
  it('S4 — a voucher seen on chain never serves as a close: a stranger replaying the settled voucher is refused, the payer\'s own close works and pays exactly what was spent', async () => {
    const own = await privateChain(env.TEST_CHAIN_FACTORY_URL)
    try {
      const shop = await chainShop({}, own.url)
      const { fetcher } = app([{ path: '/report', shop }])
      const p = await chainPayer(shop.client)
      const challenge = await challengeOf(await fetcher(`${base}/report`))
      const opened = await signOpen(shop.chain, p, { payee: shop.payee.address, token: pathUsd, deposit: 200_000n })
      const sign = async (cumulative: bigint) => (await voucherFor(shop.chain, p, opened.channelId, cumulative)).signature
      const credential = (payload: Record<string, unknown>, on = challenge) => Credential.serialize({ challenge: on, payload: { channelId: opened.channelId, descriptor: opened.descriptor, ...payload } })
      const open = credential({ action: 'open', type: 'transaction', transaction: opened.serialized, cumulativeAmount: '10000', signature: await sign(10_000n) })
      expect((await fetcher(`${base}/report`, { headers: { authorization: open } })).status).toBe(200)
      expect((await fetcher(`${base}/report`, { headers: { authorization: credential({ action: 'voucher', cumulativeAmount: '20000', signature: await sign(20_000n) }) } })).status).toBe(200)
      // The idle channel is settled periodically: its voucher is now public calldata.
      await settleNow(opened.channelId, shop.settings)
      const node = sessionChain({ url: own.url, chainId, escrow: tip20ChannelReserve })
      const settled = (await node.getChannel(opened.descriptor)).settled
      expect(settled).toBeGreaterThan(0n)
      const seen = await publishedVouchers(shop.client)
      expect(seen.map((v) => v.cumulative)).toContain(settled)
      // A stranger with a fresh challenge closes with every voucher it can read: refused, the channel stays open.
      const stranger = await challengeOf(await fetcher(`${base}/report`))
      for (const voucher of seen) {
        const refused = await fetcher(`${base}/report`, { method: 'POST', headers: { authorization: credential({ action: 'close', cumulativeAmount: voucher.cumulative.toString(), signature: voucher.signature }, stranger) } })
        expect(refused.status).toBe(402)
      }
      expect(await node.getChannel(opened.descriptor)).toMatchObject({ deposit: 200_000n })
      expect(await channelState(opened.channelId)).toMatchObject({ status: 'open' })
      // The payer closes with its newest voucher: the payee gets exactly what was spent, the payer the rest.
      const payerBefore = await balanceOf(shop.client, p.address)
      const closed = await fetcher(`${base}/report`, { method: 'POST', headers: { authorization: credential({ action: 'close', cumulativeAmount: '20000', signature: await sign(20_000n) }) } })
      expect(closed.status).toBe(200)
      expect(receiptOf(closed)).toMatchObject({ spent: '20000', txHash: expect.stringMatching(/^0x[0-9a-f]{64}$/) })
      expect(await node.getChannel(opened.descriptor)).toMatchObject({ deposit: 0n })
      expect(await balanceOf(shop.client, p.address)).toBe(payerBefore + 180_000n)
    } finally {
      await own.stop()
    }
  })

  it('S4 — mppx 0.11\'s manager.close() still closes a channel that was settled periodically, paying exactly what was spent', async () => {
    const own = await privateChain(env.TEST_CHAIN_FACTORY_URL)
    try {
      const shop = await chainShop({}, own.url)
      const { fetcher } = app([{ path: '/report', shop }])
      const account = await chainPayer(shop.client)
      const manager = mppxTempo.session.manager({
        account,
        client: createClient({ account, chain: { ...tempoModerato, rpcUrls: { default: { http: [own.url] } } }, transport: http(own.url) }),
        maxDeposit: '1',
        fetch: fetcher,
      })
      expect((await manager.fetch(`${base}/report`)).status).toBe(200)
      expect((await manager.fetch(`${base}/report`)).status).toBe(200)
      const channelId = manager.channelId as Hex
      await settleNow(channelId, shop.settings)
      const state = await channelState(channelId)
      expect(state!.settled).toBeGreaterThan(0n)
      const payeeBefore = await balanceOf(shop.client, shop.payee.address)
      const closed = await manager.close()
      expect(closed).toMatchObject({ channelId, txHash: expect.stringMatching(/^0x[0-9a-f]{64}$/) })
      expect(await sessionChain({ url: own.url, chainId, escrow: tip20ChannelReserve }).getChannel(state!.descriptor)).toMatchObject({ deposit: 0n })
      expect(await channelState(channelId)).toMatchObject({ status: 'closed', settled: 20_000n })
      // The close paid the payee the rest of what was spent (less the fee of its close transaction).
      expect(await balanceOf(shop.client, shop.payee.address)).toBeGreaterThan(payeeBefore + 20_000n - state!.settled - 50_000n)
    } finally {
      await own.stop()
    }
  })
})
