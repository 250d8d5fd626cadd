/**
 * Sessions on protocol v1 end to end: pay.session with `tempoSession({ sessionProtocol: 'v1', escrow })` in workerd,
 * over our v1 stream channel stand-in deployed with a plain transaction on the local session chain. Payers sign real
 * approve+open and approve+topUp transactions and v1 vouchers; the server checks them before broadcast, reads the
 * chain, and closes with the highest voucher not above what was spent (v1's close pays the whole voucher).
 */
import { env } from 'cloudflare:workers'
import { runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test'
import { Hono } from 'hono'
import { type Address, type Hex, decodeEventLog, numberToHex, parseAbi } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { beforeAll, describe, expect, it } from 'vitest'
import * as Challenge from '../../src/core/Challenge.js'
import * as Credential from '../../src/core/Credential.js'
import { ConfigError } from '../../src/core/Server.js'
import * as Receipt from '../../src/core/Receipt.js'
import type * as Session from '../../src/core/Session.js'
import { tempoSession } from '../../src/methods/tempo/session-method.js'
import { closeGracePeriodSeconds } from '../../src/methods/tempo/session/abi.js'
import { sessionChainV1 } from '../../src/methods/tempo/session/chain-v1.js'
import { payment } from '../../src/middleware/payment.js'
import { channelStore } from '../../src/storage/channel-store.js'
import { replayStore } from '../../src/storage/replay-store.js'
import { deployStreamChannel, increaseTime, privateChain, requestCloseV1, signOpen, signOpenV1, signTopUpV1, voucherFor } from '../../src/testing/session-payer.js'
import { balanceOf, chainClient, chainId, fund, pathUsd } from '../support/tempo-chain.js'
import { ledger } from '../support/ledger-method.js'

type Env = { Bindings: Cloudflare.Env }
const transferEvent = parseAbi(['event Transfer(address indexed from, address indexed to, uint256 amount)'])
const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n
const problems = 'https://paymentauth.org/problems/session/'

/** A v1 seller on `url` over the stream channel at `escrow`: 0.01 pathUSD per request. */
async function seller(url: string, escrow: Address) {
  const client = chainClient(url)
  const payeeKey = generatePrivateKey()
  const payee = privateKeyToAccount(payeeKey)
  // The payee pays the fees of its close and settle transactions.
  await fund(client, payee.address, 1_000_000n)
  const settings = { chainId, recipient: payee.address, privateKey: payeeKey, rpcUrl: url, sessionProtocol: 'v1' as const, escrow }
  const pay = payment<Env>({
    realm: 'api.example.com',
    secret: 'session-v1-secret-0123456789abcdefghijkl',
    methods: [ledger().method],
    store: (c) => replayStore(c.env.REPLAY_GUARD),
    session: { method: tempoSession({ ...settings, pollIntervalMs: 100 }), channels: (c) => channelStore(c.env.CHANNEL_STATE, c.env.PAYER_CHANNELS) },
  })
  let runs = 0
  const app = new Hono<Env>()
  app.on(['GET', 'POST', 'HEAD'], '/report', pay.session({ amount: '0.01', unitType: 'request', suggestedDeposit: '1' }), (c) => {
    runs++
    return c.json({ report: 'ok' })
  })
  const fetcher = ((input: RequestInfo | URL, init?: RequestInit) => app.request(new Request(input, init), undefined, env)) as typeof fetch
  return { client, payee, settings, fetcher, runs: () => runs, chain: { url, chainId, escrow, protocol: 'v1' as const } }
}

type Shop = Awaited<ReturnType<typeof seller>>

async function payer(client: ReturnType<typeof chainClient>, amount = 5_000_000n) {
  const account = privateKeyToAccount(generatePrivateKey())
  await fund(client, account.address, amount)
  return account
}

async function challengeOf(response: Response): Promise<Challenge.Challenge> {
  expect(response.status).toBe(402)
  return Challenge.deserialize(response.headers.get('www-authenticate')!)
}

const receiptOf = (response: Response) => Receipt.deserialize(response.headers.get('payment-receipt')!) as Session.SessionReceipt
const typeOf = async (response: Response) => ((await response.json()) as { type: string }).type

function transfersFrom(receipt: { logs: readonly { address: string; topics: readonly string[]; data: string }[] }, from: Address) {
  const out: { to: string; amount: bigint }[] = []
  for (const log of receipt.logs) {
    if (log.address.toLowerCase() !== pathUsd) continue
    try {
      const args = decodeEventLog({ abi: transferEvent, topics: log.topics as [Hex], data: log.data as Hex }).args as { from: Address; to: Address; amount: bigint }
      if (args.from.toLowerCase() === from) out.push({ to: args.to.toLowerCase(), amount: args.amount })
    } catch {
      // Not a transfer.
    }
  }
  return out
}

/** A payer's open of a v1 channel through the seller: the signed transaction, and credentials for its actions. */
async function channelOf(shop: Shop, challenge: Challenge.Challenge, p: ReturnType<typeof privateKeyToAccount>, deposit: bigint) {
  const opened = await signOpenV1(shop.chain, p, { payee: shop.payee.address, token: pathUsd, deposit })
  const credential = (payload: Record<string, unknown>, on = challenge) => Credential.serialize({ challenge: on, payload })
  const sign = async (cumulative: bigint) => (await voucherFor(shop.chain, p, opened.channelId, cumulative)).signature
  return {
    ...opened,
    sign,
    credential,
    open: async (cumulative: bigint, on = challenge) =>
      credential({ action: 'open', type: 'transaction', channelId: opened.channelId, transaction: opened.serialized, cumulativeAmount: cumulative.toString(), signature: await sign(cumulative) }, on),
    voucher: async (cumulative: bigint, action = 'voucher', signature?: Hex) =>
      credential({ action, channelId: opened.channelId, cumulativeAmount: cumulative.toString(), signature: signature ?? (await sign(cumulative)) }),
  }
}

describe('sessions on protocol v1', { timeout: 120_000 }, () => {
  let escrow: Address

  beforeAll(async () => {
    // The v1 escrow is an ordinary contract: deployed with a plain type-2 transaction, no anvil_setCode.
    escrow = await deployStreamChannel(env.TEST_SESSION_RPC_URL)
  })

  it('the challenge names protocol v1 and the configured escrow; v1 needs an escrow and has no operator', async () => {
    const shop = await seller(env.TEST_SESSION_RPC_URL, escrow)
    const challenge = await challengeOf(await shop.fetcher('https://api.example.com/report'))
    expect(challenge.intent).toBe('session')
    expect(challenge.request).toMatchObject({ amount: '10000', methodDetails: { sessionProtocol: 'v1', escrowContract: escrow, chainId } })
    const base = { chainId, recipient: shop.payee.address, privateKey: generatePrivateKey(), rpcUrl: env.TEST_SESSION_RPC_URL }
    const key = shop.settings.privateKey
    expect(() => tempoSession({ ...base, privateKey: key, sessionProtocol: 'v1' })).toThrow(ConfigError)
    expect(() => tempoSession({ ...base, privateKey: key, sessionProtocol: 'v1', escrow, operator: shop.payee.address })).toThrow(ConfigError)
    expect(() => tempoSession({ ...base, privateKey: key, sessionProtocol: 'v3' as never, escrow })).toThrow(ConfigError)
  })

  it('behavior: open, vouchers, a topUp, then close with a voucher ahead of spent: the payee gets exactly what was spent and the payer the rest', async () => {
    const shop = await seller(env.TEST_SESSION_RPC_URL, escrow)
    const p = await payer(shop.client)
    const challenge = await challengeOf(await shop.fetcher('https://api.example.com/report'))
    const c = await channelOf(shop, challenge, p, 100_000n)

    const first = await shop.fetcher('https://api.example.com/report', { headers: { authorization: await c.open(10_000n) } })
    expect(first.status).toBe(200)
    expect(receiptOf(first)).toMatchObject({ channelId: c.channelId, acceptedCumulative: '10000', spent: '10000' })
    // v1 has no session snapshot (a v2 structure); the channel id header is there.
    expect(first.headers.get('payment-session')).toBe(c.channelId)
    expect(first.headers.get('payment-session-snapshot')).toBeNull()
    const stored = await channelStore(env.CHANNEL_STATE).channel(c.channelId).state()
    expect(stored).toMatchObject({ deposit: 100_000n, escrow, descriptor: { payer: p.address.toLowerCase(), payee: shop.payee.address.toLowerCase(), token: pathUsd } })
    for (const cumulative of [20_000n, 30_000n, 40_000n]) {
      expect((await shop.fetcher('https://api.example.com/report', { headers: { authorization: await c.voucher(cumulative) } })).status).toBe(200)
    }
    // An equal voucher on a management request is an idempotent retry.
    expect((await shop.fetcher('https://api.example.com/report', { method: 'POST', headers: { authorization: await c.voucher(40_000n) } })).status).toBe(204)

    // A topUp (approve + topUp in one transaction), as a management request.
    const top = await signTopUpV1(shop.chain, p, { channelId: c.channelId, token: pathUsd, additionalDeposit: 50_000n })
    const topped = await shop.fetcher('https://api.example.com/report', {
      method: 'POST',
      headers: { authorization: c.credential({ action: 'topUp', type: 'transaction', channelId: c.channelId, transaction: top.serialized, additionalDeposit: '50000' }) },
    })
    expect(topped.status).toBe(204)
    expect((await channelStore(env.CHANNEL_STATE).channel(c.channelId).state())?.deposit).toBe(150_000n)
    // A voucher beyond the first deposit is accepted now, and runs ahead of spent.
    expect((await shop.fetcher('https://api.example.com/report', { method: 'POST', headers: { authorization: await c.voucher(120_000n) } })).status).toBe(204)
    expect(shop.runs()).toBe(4)

    const payerBefore = await balanceOf(shop.client, p.address)
    const payeeBefore = await balanceOf(shop.client, shop.payee.address)
    const closed = await shop.fetcher('https://api.example.com/report', { method: 'POST', headers: { authorization: await c.voucher(120_000n, 'close') } })
    expect(closed.status).toBe(200)
    const receipt = receiptOf(closed)
    expect(receipt).toMatchObject({ channelId: c.channelId, spent: '40000', txHash: expect.stringMatching(/^0x[0-9a-f]{64}$/) })
    const mined = (await shop.client.request({ method: 'eth_getTransactionReceipt', params: [receipt.txHash as Hex] })) as never
    // v1's close pays out the whole voucher, so the server closed with the 40000 voucher (= spent), not the 120000 one.
    expect(transfersFrom(mined, escrow)).toEqual([
      { to: shop.payee.address.toLowerCase(), amount: 40_000n },
      { to: p.address.toLowerCase(), amount: 110_000n },
    ])
    expect(await balanceOf(shop.client, p.address)).toBe(payerBefore + 110_000n)
    // The payee gets 40000, less the fee of its close transaction (paid in the same token).
    const payeeAfter = await balanceOf(shop.client, shop.payee.address)
    expect(payeeAfter).toBeGreaterThan(payeeBefore + 30_000n)
    expect(payeeAfter).toBeLessThanOrEqual(payeeBefore + 40_000n)
    expect(await sessionChainV1({ url: shop.chain.url, chainId, escrow }).getChannel(c.channelId)).toMatchObject({ finalized: true, deposit: 0n })
    expect((await channelStore(env.CHANNEL_STATE).channel(c.channelId).state())).toMatchObject({ status: 'closed', settled: 40_000n, spent: 40_000n })
    // The channel serves no more.
    const after = await shop.fetcher('https://api.example.com/report', { headers: { authorization: await c.voucher(130_000n) } })
    expect(after.status).toBe(410)
  })

  it('behavior: tampered, high-s, over-deposit, over-uint128 and v2-domain vouchers are refused with the session problem types', async () => {
    const shop = await seller(env.TEST_SESSION_RPC_URL, escrow)
    const p = await payer(shop.client)
    const challenge = await challengeOf(await shop.fetcher('https://api.example.com/report'))
    const c = await channelOf(shop, challenge, p, 50_000n)
    expect((await shop.fetcher('https://api.example.com/report', { headers: { authorization: await c.open(10_000n) } })).status).toBe(200)
    const ask = (authorization: string) => shop.fetcher('https://api.example.com/report', { headers: { authorization } })

    // A signature over another amount recovers to another address: not the channel's signer.
    const tampered = await ask(await c.voucher(20_000n, 'voucher', await c.sign(21_000n)))
    expect(tampered.status).toBe(402)
    expect(await typeOf(tampered)).toBe(`${problems}signer-mismatch`)
    expect(tampered.headers.get('www-authenticate')).toContain('Payment')

    // The malleated (high-s) twin of a valid signature: our check refuses it (the reference v1 contract would not).
    const good = await c.sign(20_000n)
    const s = BigInt(`0x${good.slice(66, 130)}`)
    const high = `${good.slice(0, 66)}${numberToHex(n - s, { size: 32 }).slice(2)}${good.endsWith('1b') ? '1c' : '1b'}` as Hex
    const malleated = await ask(await c.voucher(20_000n, 'voucher', high))
    expect(malleated.status).toBe(402)
    expect(await typeOf(malleated)).toBe(`${problems}invalid-signature`)

    const over = await ask(await c.voucher(60_000n))
    expect(over.status).toBe(402)
    expect(await typeOf(over)).toBe(`${problems}amount-exceeds-deposit`)

    // Beyond uint128: refused before any signature work.
    const huge = await ask(c.credential({ action: 'voucher', channelId: c.channelId, cumulativeAmount: (2n ** 128n).toString(), signature: good }))
    expect(huge.status).toBe(402)
    expect(await typeOf(huge)).toBe('https://paymentauth.org/problems/malformed-credential')

    // A v2 voucher (the channel reserve's domain, uint96) is not a v1 voucher for this channel.
    const v2 = await voucherFor({ ...shop.chain, protocol: 'v2' }, p, c.channelId, 20_000n)
    const crossed = await ask(await c.voucher(20_000n, 'voucher', v2.signature))
    expect(await typeOf(crossed)).toBe(`${problems}signer-mismatch`)

    // None of these served anything or moved the channel.
    expect(shop.runs()).toBe(1)
    expect(await channelStore(env.CHANNEL_STATE).channel(c.channelId).state()).toMatchObject({ accepted: 10_000n, spent: 10_000n })
    expect((await ask(await c.voucher(20_000n))).status).toBe(200)
  })

  it('behavior: a v2 answer to a v1 challenge, or a challenge whose protocol was changed, is refused before anything is broadcast', async () => {
    const shop = await seller(env.TEST_SESSION_RPC_URL, escrow)
    const p = await payer(shop.client)
    const challenge = await challengeOf(await shop.fetcher('https://api.example.com/report'))
    // A v2 open (the channel reserve's open, with a descriptor) answering the v1 challenge.
    const v2 = await signOpen({ url: shop.chain.url, chainId }, p, { payee: shop.payee.address, token: pathUsd, deposit: 50_000n })
    const v2Voucher = await voucherFor({ url: shop.chain.url, chainId }, p, v2.channelId, 10_000n)
    const wrong = await shop.fetcher('https://api.example.com/report', {
      headers: {
        authorization: Credential.serialize({
          challenge,
          payload: { action: 'open', type: 'transaction', channelId: v2.channelId, transaction: v2.serialized, descriptor: v2.descriptor, cumulativeAmount: '10000', signature: v2Voucher.signature },
        }),
      },
    })
    expect(wrong.status).toBe(402)
    expect(await typeOf(wrong)).toBe('https://paymentauth.org/problems/verification-failed')
    expect(await shop.client.request({ method: 'eth_getTransactionReceipt', params: [v2.hash] })).toBeNull()

    // The echoed challenge with its protocol removed, or set to v2, no longer matches its binding.
    const c = await channelOf(shop, challenge, p, 50_000n)
    for (const sessionProtocol of [undefined, 'v2']) {
      const request = challenge.request as unknown as Session.Request
      const altered = { ...challenge, request: { ...request, methodDetails: { ...request.methodDetails, sessionProtocol } } } as unknown as Challenge.Challenge
      const refused = await shop.fetcher('https://api.example.com/report', { headers: { authorization: await c.open(10_000n, altered) } })
      expect(refused.status).toBe(402)
      expect(await typeOf(refused)).toBe('https://paymentauth.org/problems/invalid-challenge')
    }
    expect(await shop.client.request({ method: 'eth_getTransactionReceipt', params: [c.hash] })).toBeNull()
  })

  it('behavior: racing duplicate opens and racing vouchers: exactly one succeeds', async () => {
    const shop = await seller(env.TEST_SESSION_RPC_URL, escrow)
    const p = await payer(shop.client)
    const challenge = await challengeOf(await shop.fetcher('https://api.example.com/report'))
    const c = await channelOf(shop, challenge, p, 100_000n)
    const open = await c.open(10_000n)
    const opens = await Promise.all(Array.from({ length: 4 }, () => shop.fetcher('https://api.example.com/report', { headers: { authorization: open } })))
    expect(opens.filter((r) => r.status === 200)).toHaveLength(1)
    expect(shop.runs()).toBe(1)

    const authorization = await c.voucher(20_000n)
    const answers = await Promise.all(Array.from({ length: 6 }, () => shop.fetcher('https://api.example.com/report', { headers: { authorization } })))
    expect(answers.map((r) => r.status).sort()).toEqual([200, 402, 402, 402, 402, 402])
    expect(shop.runs()).toBe(2)
    expect((await channelStore(env.CHANNEL_STATE).channel(c.channelId).state())?.spent).toBe(20_000n)
    const onChain = await sessionChainV1({ url: shop.chain.url, chainId, escrow }).getChannel(c.channelId)
    expect(onChain).toMatchObject({ deposit: 100_000n, finalized: false })
  })

  it('behavior: periodic settlement captures only what was spent, and a forced close is closed with the spent-bounded voucher before the grace ends', async () => {
    const own = await privateChain(env.TEST_CHAIN_FACTORY_URL)
    try {
      const ownEscrow = await deployStreamChannel(own.url)
      const shop = await seller(own.url, ownEscrow)
      const p = await payer(shop.client)
      const challenge = await challengeOf(await shop.fetcher('https://api.example.com/report'))
      const c = await channelOf(shop, challenge, p, 200_000n)
      expect((await shop.fetcher('https://api.example.com/report', { headers: { authorization: await c.open(10_000n) } })).status).toBe(200)
      expect((await shop.fetcher('https://api.example.com/report', { headers: { authorization: await c.voucher(20_000n) } })).status).toBe(200)
      // A voucher runs ahead of spent (50000 accepted, 20000 spent).
      expect((await shop.fetcher('https://api.example.com/report', { method: 'POST', headers: { authorization: await c.voucher(50_000n) } })).status).toBe(204)

      const stub = env.CHANNEL_STATE.get(env.CHANNEL_STATE.idFromName(c.channelId))
      await runInDurableObject(stub, async (_, ctx) => {
        ctx.storage.kv.put('settlement:config', shop.settings)
        await ctx.storage.setAlarm(Date.now() + 300_000)
      })
      // The alarm settles the highest voucher not above spent: 20000, not the 50000 accepted.
      expect(await runDurableObjectAlarm(stub)).toBe(true)
      const node = sessionChainV1({ url: own.url, chainId, escrow: ownEscrow })
      expect(await node.getChannel(c.channelId)).toMatchObject({ settled: 20_000n, deposit: 200_000n })

      expect((await shop.fetcher('https://api.example.com/report', { headers: { authorization: await c.voucher(50_000n) } })).status).toBe(200) // spent 30000
      await requestCloseV1(shop.chain, p, c.channelId)
      const requested = await node.getChannel(c.channelId)
      expect(requested.closeRequestedAt).toBeGreaterThan(0)
      await increaseTime(shop.chain, 60)
      const payerBefore = await balanceOf(shop.client, p.address)
      expect(await runDurableObjectAlarm(stub)).toBe(true)
      // No voucher is exactly 30000: the highest not above spent is 20000, already settled; v1 pays the whole voucher, so
      // the close pays nothing more (never what was not consumed) and refunds the rest of the deposit.
      expect(await channelStore(env.CHANNEL_STATE).channel(c.channelId).state()).toMatchObject({ status: 'closed', settled: 20_000n })
      expect(await node.getChannel(c.channelId)).toMatchObject({ finalized: true })
      expect(await balanceOf(shop.client, p.address)).toBe(payerBefore + 180_000n)
      const head = (await shop.client.request({ method: 'eth_getBlockByNumber', params: ['latest', false] })) as { timestamp: Hex }
      expect(BigInt(head.timestamp)).toBeLessThan(BigInt(requested.closeRequestedAt) + closeGracePeriodSeconds)
      const refused = await shop.fetcher('https://api.example.com/report', { headers: { authorization: await c.voucher(60_000n) } })
      expect(refused.status).toBe(410)
    } finally {
      await own.stop()
    }
  })
})
