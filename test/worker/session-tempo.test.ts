/**
 * Sessions end to end on the local session chain (anvil T4, the channel reserve stand-in, the session shim): pay.session
 * with the tempo session method in workerd; payers sign real open and topUp transactions and vouchers; the server
 * broadcasts, reads the chain, closes and settles, and the amounts on chain are exact.
 */
import { env } from 'cloudflare:workers'
import { runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test'
import { Hono } from 'hono'
import { type Address, type Hex, decodeEventLog, parseAbi } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { describe, expect, it } from 'vitest'
import * as Challenge from '../../src/core/Challenge.js'
import * as Credential from '../../src/core/Credential.js'
import * as Receipt from '../../src/core/Receipt.js'
import type * as Session from '../../src/core/Session.js'
import { type TempoSessionConfig, tempoSession } from '../../src/methods/tempo/session-method.js'
import { closeGracePeriodSeconds, tip20ChannelReserve } from '../../src/methods/tempo/session/abi.js'
import { sessionChain } from '../../src/methods/tempo/session/chain.js'
import { payment } from '../../src/middleware/payment.js'
import { channelStore } from '../../src/storage/channel-store.js'
import { replayStore } from '../../src/storage/replay-store.js'
import { increaseTime, privateChain, requestClose, signOpen, signTopUp, voucherFor } from '../../src/testing/session-payer.js'
import { balanceOf, chainClient, chainId, fund, pathUsd } from '../support/tempo-chain.js'
import { ledger } from '../support/ledger-method.js'

type Env = { Bindings: Cloudflare.Env }
const transferEvent = parseAbi(['event Transfer(address indexed from, address indexed to, uint256 amount)'])

/** A seller on `url`: 0.01 pathUSD per request, and a stream at 0.001 per token. */
async function seller(url = env.TEST_SESSION_RPC_URL, extra: Partial<TempoSessionConfig> = {}) {
  const client = chainClient(url)
  const payeeKey = generatePrivateKey()
  const payee = privateKeyToAccount(payeeKey)
  // The payee pays the fees of its close and settle transactions.
  await fund(client, payee.address, 1_000_000n)
  const settings = { chainId, recipient: payee.address, privateKey: payeeKey, rpcUrl: url }
  const pay = payment<Env>({
    realm: 'api.example.com',
    secret: 'session-tempo-secret-0123456789abcdefghij',
    methods: [ledger().method],
    store: (c) => replayStore(c.env.REPLAY_GUARD),
    session: { method: tempoSession({ ...settings, ...extra, pollIntervalMs: 100 }), channels: (c) => channelStore(c.env.CHANNEL_STATE, c.env.PAYER_CHANNELS) },
  })
  let runs = 0
  const app = new Hono<Env>()
  app.on(['GET', 'POST', 'HEAD'], '/report', pay.session({ amount: '0.01', unitType: 'request', suggestedDeposit: '1' }), (c) => {
    runs++
    return c.json({ report: 'ok' })
  })
  app.on(['GET', 'POST', 'HEAD'], '/chat', pay.session({ amount: '0.001', unitType: 'llm_token', upfrontUnits: 0 }), (c) =>
    c.get('session').sse(async function* (s) {
      for (let i = 0; i < Number(c.req.query('tokens') ?? '10'); i++) {
        await s.charge(1)
        yield `token ${i}`
      }
    }),
  )
  const fetcher = ((input: RequestInfo | URL, init?: RequestInit) => app.request(new Request(input, init), undefined, env)) as typeof fetch
  return { client, payee, settings, fetcher, runs: () => runs, chain: { url, chainId } }
}

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

function transfers(receipt: { logs: readonly { address: string; topics: readonly string[]; data: string }[] }) {
  const out: { from: string; to: string; amount: bigint }[] = []
  for (const log of receipt.logs) {
    if (log.address.toLowerCase() !== pathUsd) continue
    try {
      const args = decodeEventLog({ abi: transferEvent, topics: log.topics as [Hex], data: log.data as Hex }).args as { from: Address; to: Address; amount: bigint }
      out.push({ from: args.from.toLowerCase(), to: args.to.toLowerCase(), amount: args.amount })
    } catch {
      // Not a transfer.
    }
  }
  return out
}

describe('sessions on the local chain', () => {
  it('behavior: open, vouchers for many requests, a topUp, then close: the payee gets exactly what was spent and the payer the rest', async () => {
    const shop = await seller()
    const p = await payer(shop.client)
    const challenge = await challengeOf(await shop.fetcher('https://api.example.com/report'))
    const deposit = 100_000n
    const opened = await signOpen(shop.chain, p, { payee: shop.payee.address, token: pathUsd, deposit })
    const credential = async (payload: Record<string, unknown>) => Credential.serialize({ challenge, payload })
    const voucher = async (cumulative: bigint, action = 'voucher') => {
      const v = await voucherFor(shop.chain, p, opened.channelId, cumulative)
      return credential({ action, channelId: opened.channelId, descriptor: opened.descriptor, cumulativeAmount: cumulative.toString(), signature: v.signature })
    }
    const first = await shop.fetcher('https://api.example.com/report', {
      headers: {
        authorization: await credential({
          action: 'open',
          type: 'transaction',
          channelId: opened.channelId,
          transaction: opened.serialized,
          descriptor: opened.descriptor,
          cumulativeAmount: '10000',
          signature: (await voucherFor(shop.chain, p, opened.channelId, 10_000n)).signature,
        }),
      },
    })
    expect(first.status).toBe(200)
    expect(receiptOf(first)).toMatchObject({ channelId: opened.channelId, acceptedCumulative: '10000', spent: '10000' })
    for (const cumulative of [20_000n, 30_000n, 40_000n]) {
      expect((await shop.fetcher('https://api.example.com/report', { headers: { authorization: await voucher(cumulative) } })).status).toBe(200)
    }
    // The same open transaction cannot fund a second channel action.
    const other = await challengeOf(await shop.fetcher('https://api.example.com/report'))
    const reopen = Credential.serialize({
      challenge: other,
      payload: { action: 'open', type: 'transaction', channelId: opened.channelId, transaction: opened.serialized, descriptor: opened.descriptor, cumulativeAmount: '40000', signature: (await voucherFor(shop.chain, p, opened.channelId, 40_000n)).signature },
    })
    expect((await shop.fetcher('https://api.example.com/report', { headers: { authorization: reopen } })).status).toBe(402)

    // A topUp, as a management request: the deposit grows on chain and in the channel object.
    const top = await signTopUp(shop.chain, p, opened.descriptor, 50_000n)
    const topped = await shop.fetcher('https://api.example.com/report', {
      method: 'POST',
      headers: { authorization: await credential({ action: 'topUp', type: 'transaction', channelId: opened.channelId, transaction: top.serialized, descriptor: opened.descriptor, additionalDeposit: '50000' }) },
    })
    expect(topped.status).toBe(204)
    expect((await channelStore(env.CHANNEL_STATE).channel(opened.channelId).state())?.deposit).toBe(150_000n)
    // A voucher beyond the first deposit is accepted now (a management POST: it runs nothing).
    expect((await shop.fetcher('https://api.example.com/report', { method: 'POST', headers: { authorization: await voucher(120_000n) } })).status).toBe(204)
    expect(shop.runs()).toBe(4)

    const payeeBefore = await balanceOf(shop.client, shop.payee.address)
    const closed = await shop.fetcher('https://api.example.com/report', { method: 'POST', headers: { authorization: await voucher(120_000n, 'close') } })
    expect(closed.status).toBe(200)
    const receipt = receiptOf(closed)
    expect(receipt).toMatchObject({ channelId: opened.channelId, spent: '40000', acceptedCumulative: '120000', txHash: expect.stringMatching(/^0x[0-9a-f]{64}$/) })
    const mined = (await shop.client.request({ method: 'eth_getTransactionReceipt', params: [receipt.txHash as Hex] })) as never
    // Exactly what was spent to the payee, the rest of the deposit back to the payer, from the escrow.
    expect(transfers(mined).filter((t) => t.from === tip20ChannelReserve)).toEqual([
      { from: tip20ChannelReserve, to: shop.payee.address.toLowerCase(), amount: 40_000n },
      { from: tip20ChannelReserve, to: p.address.toLowerCase(), amount: 110_000n },
    ])
    expect(await balanceOf(shop.client, shop.payee.address)).toBeGreaterThan(payeeBefore + 30_000n)
    expect(await sessionChain({ url: shop.chain.url, chainId, escrow: tip20ChannelReserve }).getChannel(opened.descriptor)).toMatchObject({ deposit: 0n })
    // The channel serves no more.
    expect((await shop.fetcher('https://api.example.com/report', { headers: { authorization: await voucher(130_000n) } })).status).toBe(410)
  })

  it('behavior: periodic settlement captures only what was spent, and a forced close stops service and is settled before the grace ends', async () => {
    const own = await privateChain(env.TEST_CHAIN_FACTORY_URL)
    try {
      const shop = await seller(own.url)
      const p = await payer(shop.client)
      const challenge = await challengeOf(await shop.fetcher('https://api.example.com/report'))
      const opened = await signOpen(shop.chain, p, { payee: shop.payee.address, token: pathUsd, deposit: 200_000n })
      const sign = async (cumulative: bigint) => (await voucherFor(shop.chain, p, opened.channelId, cumulative)).signature
      const open = Credential.serialize({
        challenge,
        payload: { action: 'open', type: 'transaction', channelId: opened.channelId, transaction: opened.serialized, descriptor: opened.descriptor, cumulativeAmount: '10000', signature: await sign(10_000n) },
      })
      expect((await shop.fetcher('https://api.example.com/report', { headers: { authorization: open } })).status).toBe(200)
      const voucher = async (cumulative: bigint, method = 'GET') =>
        shop.fetcher('https://api.example.com/report', {
          method,
          headers: { authorization: Credential.serialize({ challenge, payload: { action: 'voucher', channelId: opened.channelId, descriptor: opened.descriptor, cumulativeAmount: cumulative.toString(), signature: await sign(cumulative) } }) },
        })
      expect((await voucher(20_000n)).status).toBe(200)
      // A voucher runs ahead of spent (50000 accepted, 20000 spent).
      expect((await voucher(50_000n, 'POST')).status).toBe(204)

      const stub = env.CHANNEL_STATE.get(env.CHANNEL_STATE.idFromName(opened.channelId))
      // Settlement on, as a deployment has it from the start (its alarm was scheduled by the open).
      await runInDurableObject(stub, async (_, ctx) => {
        ctx.storage.kv.put('settlement:config', shop.settings)
        await ctx.storage.setAlarm(Date.now() + 300_000)
      })
      // The alarm settles the highest voucher not above spent: 20000, not the 50000 accepted.
      expect(await runDurableObjectAlarm(stub)).toBe(true)
      const node = sessionChain({ url: own.url, chainId, escrow: tip20ChannelReserve })
      expect(await node.getChannel(opened.descriptor)).toMatchObject({ settled: 20_000n, deposit: 200_000n })
      expect((await channelStore(env.CHANNEL_STATE).channel(opened.channelId).state())?.settled).toBe(20_000n)

      expect((await voucher(50_000n)).status).toBe(200) // spent 30000; no voucher is exactly 30000
      // Nothing new to settle: the highest voucher not above spent (20000) is settled already.
      expect(await runDurableObjectAlarm(stub)).toBe(true)
      expect(await node.getChannel(opened.descriptor)).toMatchObject({ settled: 20_000n })

      // The payer asks for a forced close; chain time moves on (workerd's clock does not: the test fires the alarm).
      await requestClose(shop.chain, p, opened.descriptor)
      const requested = await node.getChannel(opened.descriptor)
      expect(requested.closeRequestedAt).toBeGreaterThan(0)
      await increaseTime(shop.chain, 60)
      const payerBefore = await balanceOf(shop.client, p.address)
      expect(await runDurableObjectAlarm(stub)).toBe(true)
      // Closed within the grace period, capturing exactly what was spent (30000): 10000 more to the payee, the rest back.
      const state = await channelStore(env.CHANNEL_STATE).channel(opened.channelId).state()
      expect(state).toMatchObject({ status: 'closed', settled: 30_000n, spent: 30_000n })
      expect(await node.getChannel(opened.descriptor)).toMatchObject({ deposit: 0n })
      expect(await balanceOf(shop.client, p.address)).toBe(payerBefore + 170_000n)
      const head = (await shop.client.request({ method: 'eth_getBlockByNumber', params: ['latest', false] })) as { timestamp: Hex }
      expect(BigInt(head.timestamp)).toBeLessThan(BigInt(requested.closeRequestedAt) + closeGracePeriodSeconds)
      // No new work on a channel whose payer asked to close it.
      const refused = await voucher(60_000n)
      expect(refused.status).toBe(410)
      expect(((await refused.json()) as { type: string }).type).toBe('https://paymentauth.org/problems/session/channel-finalized')
    } finally {
      await own.stop()
    }
  })

  it('behavior: a sponsored open and topUp: the server co-signs as fee payer under the sponsor policy; the payer pays exactly the deposit, the sponsor the fees', async () => {
    const url = env.TEST_SESSION_RPC_URL
    const client = chainClient(url)
    const sponsorKey = generatePrivateKey()
    const sponsor = privateKeyToAccount(sponsorKey)
    await fund(client, sponsor.address, 1_000_000n)
    const shop = await seller(url, { feePayer: { privateKey: sponsorKey } })
    const p = await payer(shop.client)
    const challenge = await challengeOf(await shop.fetcher('https://api.example.com/report'))
    expect((challenge.request.methodDetails as Record<string, unknown>).feePayer).toBe(true)
    const credential = (payload: Record<string, unknown>) => Credential.serialize({ challenge, payload })
    const payerStart = await balanceOf(client, p.address)
    const sponsorStart = await balanceOf(client, sponsor.address)

    const opened = await signOpen(shop.chain, p, { payee: shop.payee.address, token: pathUsd, deposit: 100_000n, sponsored: true })
    const first = await shop.fetcher('https://api.example.com/report', {
      headers: {
        authorization: credential({
          action: 'open',
          type: 'transaction',
          channelId: opened.channelId,
          transaction: opened.serialized,
          descriptor: opened.descriptor,
          cumulativeAmount: '10000',
          signature: (await voucherFor(shop.chain, p, opened.channelId, 10_000n)).signature,
        }),
      },
    })
    expect(first.status).toBe(200)
    expect(await balanceOf(client, p.address)).toBe(payerStart - 100_000n)
    const afterOpen = await balanceOf(client, sponsor.address)
    expect(afterOpen).toBeLessThan(sponsorStart)

    const top = await signTopUp(shop.chain, p, opened.descriptor, 50_000n, { sponsored: true })
    const topped = await shop.fetcher('https://api.example.com/report', {
      method: 'POST',
      headers: { authorization: credential({ action: 'topUp', type: 'transaction', channelId: opened.channelId, transaction: top.serialized, descriptor: opened.descriptor, additionalDeposit: '50000' }) },
    })
    expect(topped.status).toBe(204)
    expect(await balanceOf(client, p.address)).toBe(payerStart - 150_000n)
    expect(await balanceOf(client, sponsor.address)).toBeLessThan(afterOpen)
    expect(await sessionChain({ url, chainId, escrow: tip20ChannelReserve }).getChannel(opened.descriptor)).toMatchObject({ deposit: 150_000n })

    // Close (the payee's own transaction): the payer ends down exactly what it spent, having paid no fee at all.
    const close = credential({ action: 'close', channelId: opened.channelId, descriptor: opened.descriptor, cumulativeAmount: '10000', signature: (await voucherFor(shop.chain, p, opened.channelId, 10_000n)).signature })
    expect((await shop.fetcher('https://api.example.com/report', { method: 'POST', headers: { authorization: close } })).status).toBe(200)
    expect(await balanceOf(client, p.address)).toBe(payerStart - 10_000n)
  })

  it('error: a sponsored open outside the sponsor policy is refused before anything is sent; the payer pays nothing', async () => {
    const url = env.TEST_SESSION_RPC_URL
    const client = chainClient(url)
    const sponsorKey = generatePrivateKey()
    const sponsor = privateKeyToAccount(sponsorKey)
    await fund(client, sponsor.address, 1_000_000n)
    // A policy that sponsors no transaction this large (an open uses ~0.8M gas).
    const shop = await seller(url, { feePayer: { privateKey: sponsorKey, policy: { maxGas: 100_000n } } })
    const p = await payer(shop.client)
    const challenge = await challengeOf(await shop.fetcher('https://api.example.com/report'))
    const payerStart = await balanceOf(client, p.address)
    const opened = await signOpen(shop.chain, p, { payee: shop.payee.address, token: pathUsd, deposit: 100_000n, sponsored: true })
    const refused = await shop.fetcher('https://api.example.com/report', {
      headers: {
        authorization: Credential.serialize({
          challenge,
          payload: {
            action: 'open',
            type: 'transaction',
            channelId: opened.channelId,
            transaction: opened.serialized,
            descriptor: opened.descriptor,
            cumulativeAmount: '10000',
            signature: (await voucherFor(shop.chain, p, opened.channelId, 10_000n)).signature,
          },
        }),
      },
    })
    expect(refused.status).toBe(402)
    expect(shop.runs()).toBe(0)
    expect(await balanceOf(client, p.address)).toBe(payerStart)
    expect(await balanceOf(client, sponsor.address)).toBe(1_000_000n)
    expect(await client.request({ method: 'eth_getTransactionReceipt', params: [opened.hash as Hex] })).toBeNull()
  })
})
