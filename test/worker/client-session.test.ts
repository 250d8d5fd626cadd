/**
 * Our client's session wallet on the local session chain: it pays pay.session (open within the deposit limit,
 * vouchers, a metered stream's payment-need-voucher with a topUp, close), and it pays mppx 0.11's session server.
 */
import { env } from 'cloudflare:workers'
import { Hono } from 'hono'
import { bearerAuth } from 'hono/bearer-auth'
import { Mppx, Store, tempo as mppxTempo } from 'mppx/server'
import { createClient, http } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { tempoModerato } from 'viem/chains'
import { describe, expect, it } from 'vitest'
import { paymentFetch } from '../../src/client/fetch.js'
import { type ChannelChange, type SavedChannel, tempoSessionWallet } from '../../src/client/wallets/tempo-session.js'
import * as Credential from '../../src/core/Credential.js'
import { tempoSession } from '../../src/methods/tempo/session-method.js'
import { tip20ChannelReserve } from '../../src/methods/tempo/session/abi.js'
import { sessionChain } from '../../src/methods/tempo/session/chain.js'
import { payment } from '../../src/middleware/payment.js'
import { channelStore } from '../../src/storage/channel-store.js'
import { replayStore } from '../../src/storage/replay-store.js'
import { ledger } from '../support/ledger-method.js'
import { chainClient, chainId, fund, pathUsd } from '../support/tempo-chain.js'

type Env = { Bindings: Cloudflare.Env }
const url = env.TEST_SESSION_RPC_URL
const client = chainClient(url)

async function funded(amount = 5_000_000n) {
  const key = generatePrivateKey()
  const account = privateKeyToAccount(key)
  await fund(client, account.address, amount)
  return { key, account }
}

/** Reads an SSE body into its events. */
async function events(response: Response) {
  const text = await response.text()
  return text
    .split('\n\n')
    .filter(Boolean)
    .map((block) => ({ event: /^event: (.*)$/m.exec(block)?.[1] ?? 'message', data: [...block.matchAll(/^data: (.*)$/gm)].map((m) => m[1]).join('\n') }))
}

/** The payment middleware of a seller paid by sessions on the local session chain (a funded payee). */
async function seller() {
  const payee = await funded(1_000_000n)
  return payment<Env>({
    realm: 'api.example.com',
    secret: 'client-session-secret-0123456789abcdefghij',
    methods: [ledger().method],
    store: (c) => replayStore(c.env.REPLAY_GUARD),
    session: { method: tempoSession({ chainId, recipient: payee.account.address, privateKey: payee.key, rpcUrl: url, pollIntervalMs: 100 }), channels: (c) => channelStore(c.env.CHANNEL_STATE, c.env.PAYER_CHANNELS) },
  })
}

describe('tempoSessionWallet', () => {
  it('behavior: pays pay.session: opens within the deposit limit, one voucher per request, follows a stream (topping up), and closes', { timeout: 60_000 }, async () => {
    const pay = await seller()
    let runs = 0
    const app = new Hono<Env>()
    app.on(['GET', 'POST', 'HEAD'], '/report', pay.session({ amount: '0.01', unitType: 'request' }), (c) => {
      runs++
      return c.json({ report: 'ok' })
    })
    app.on(['GET', 'POST', 'HEAD'], '/chat', pay.session({ amount: '0.001', unitType: 'llm_token', upfrontUnits: 0 }), (c) => {
      runs++
      return c.get('session').sse(async function* (s) {
        for (let i = 0; i < 10; i++) {
          await s.charge(1)
          yield `token ${i}`
        }
      })
    })
    const actions: string[] = []
    const fetcher = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init)
      const credential = Credential.fromHeader(request.headers.get('authorization'))
      if (credential) actions.push(`${request.method} ${new URL(request.url).pathname} ${String(credential.payload.action)}`)
      return app.request(request, undefined, env)
    }) as typeof fetch

    const payer = await funded()
    // A small first deposit (25000): the stream's vouchers need a topUp.
    const wallet = tempoSessionWallet({ account: payer.account, rpcUrl: url, chainId, maxDeposit: 100_000n, deposit: 25_000n })
    const paid = paymentFetch({ wallets: [wallet], maxAmount: { [pathUsd]: '10000' }, fetch: fetcher })

    for (let i = 0; i < 2; i++) expect((await paid('https://api.example.com/report')).status).toBe(200)
    const stream = await paid('https://api.example.com/chat')
    expect(stream.status).toBe(200)
    const seen = await events(stream)
    expect(seen.filter((e) => e.event === 'message').map((e) => e.data)).toEqual(Array.from({ length: 10 }, (_, i) => `token ${i}`))
    expect(JSON.parse(seen.at(-1)!.data)).toMatchObject({ spent: '30000' })
    expect(actions).toContain('POST /chat topUp')
    expect(actions).toContain('POST /chat voucher')
    expect(runs).toBe(3)
    const [entry] = [...wallet.channels.values()]
    expect(entry).toMatchObject({ deposit: 30_000n })

    const closed = await wallet.close('https://api.example.com/report')
    expect(closed).toMatchObject({ channelId: entry!.channelId, spent: '30000', txHash: expect.stringMatching(/^0x[0-9a-f]{64}$/) })
    expect(await sessionChain({ url, chainId, escrow: tip20ChannelReserve }).getChannel(entry!.descriptor)).toMatchObject({ deposit: 0n })
    // Nothing above the limit is ever deposited.
    const big = tempoSessionWallet({ account: payer.account, rpcUrl: url, chainId, maxDeposit: 5_000n })
    await expect(paymentFetch({ wallets: [big], maxAmount: { [pathUsd]: '10000' }, fetch: fetcher })('https://api.example.com/report')).rejects.toThrow(/deposit limit/)
  })

  it('behavior: a wallet made from saved channels (JSON, as onChannel reported them) resumes the channel without a second open', { timeout: 60_000 }, async () => {
    const pay = await seller()
    const app = new Hono<Env>()
    app.on(['GET', 'POST', 'HEAD'], '/report', pay.session({ amount: '0.01', unitType: 'request' }), (c) => c.json({ report: 'ok' }))
    const actions: string[] = []
    const fetcher = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init)
      const credential = Credential.fromHeader(request.headers.get('authorization'))
      if (credential) actions.push(String(credential.payload.action))
      return app.request(request, undefined, env)
    }) as typeof fetch
    const payer = await funded()
    let saved = '[]'
    const changes: string[] = []
    const remember = (change: ChannelChange) => {
      changes.push(change.type)
      saved = JSON.stringify([change.channel])
    }
    const first = tempoSessionWallet({ account: payer.account, rpcUrl: url, chainId, maxDeposit: 100_000n, onChannel: remember })
    expect((await paymentFetch({ wallets: [first], maxAmount: { [pathUsd]: '10000' }, fetch: fetcher })('https://api.example.com/report')).status).toBe(200)
    expect(changes).toEqual(['open', 'receipt'])

    // Another run of the program: a new wallet from what was saved.
    const second = tempoSessionWallet({ account: payer.account, rpcUrl: url, chainId, maxDeposit: 100_000n, channels: JSON.parse(saved) as SavedChannel[], onChannel: remember })
    for (let i = 0; i < 2; i++) expect((await paymentFetch({ wallets: [second], maxAmount: { [pathUsd]: '10000' }, fetch: fetcher })('https://api.example.com/report')).status).toBe(200)
    expect(actions).toEqual(['open', 'voucher', 'voucher'])
    expect(JSON.parse(saved)).toMatchObject([{ signed: '30000', accepted: '30000', spent: '30000', closed: false }])
    const closed = await second.close('https://api.example.com/report')
    expect(closed).toMatchObject({ spent: '30000' })
    expect(changes.at(-1)).toBe('close')
    expect(JSON.parse(saved)).toMatchObject([{ closed: true }])
    // A closed channel is not resumed: the next wallet opens a new one.
    const third = tempoSessionWallet({ account: payer.account, rpcUrl: url, chainId, maxDeposit: 100_000n, channels: JSON.parse(saved) as SavedChannel[] })
    expect(third.channels.size).toBe(0)
  })

  it('behavior: pays mppx 0.11\'s session server: requests, then close', { timeout: 60_000 }, async () => {
    const payee = await funded(1_000_000n)
    const chain = { ...tempoModerato, rpcUrls: { default: { http: [url] } } }
    const mppx = Mppx.create({
      realm: 'api.example.com',
      secretKey: 'mppx-session-server-secret-0123456789abcdef',
      methods: [mppxTempo.session({ account: payee.account, currency: pathUsd, getClient: () => createClient({ chain, transport: http(url) }), store: Store.memory() })],
    })
    const fetcher = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init)
      const result = await mppx.session({ amount: '0.01', unitType: 'request' })(request)
      if (result.status === 402) return result.challenge
      return result.withReceipt(Response.json({ report: 'ok' }))
    }) as typeof fetch

    const payer = await funded()
    const wallet = tempoSessionWallet({ account: payer.account, rpcUrl: url, chainId, maxDeposit: 100_000n })
    const paid = paymentFetch({ wallets: [wallet], maxAmount: { [pathUsd]: '10000' }, fetch: fetcher })
    for (let i = 0; i < 3; i++) {
      const response = await paid('https://api.example.com/report')
      expect(response.status).toBe(200)
      expect(await response.json()).toEqual({ report: 'ok' })
    }
    expect([...wallet.channels.values()].map((c) => [c.signed, c.spent])).toEqual([[30_000n, 30_000n]])
    const [entry] = [...wallet.channels.values()]
    const closed = await wallet.close('https://api.example.com/report')
    expect(closed).toMatchObject({ channelId: entry!.channelId, txHash: expect.stringMatching(/^0x[0-9a-f]{64}$/) })
    expect(await sessionChain({ url, chainId, escrow: tip20ChannelReserve }).getChannel(entry!.descriptor)).toMatchObject({ deposit: 0n })
  })

  it('behavior: pays a session route behind the application\'s Bearer key in Payment-Authorization: open, a stream with a mid-stream voucher, close', { timeout: 60_000 }, async () => {
    const payee = await funded(1_000_000n)
    const pay = payment<Env>({
      realm: 'api.example.com',
      secret: 'client-session-secret-0123456789abcdefghij',
      methods: [ledger().method],
      store: (c) => replayStore(c.env.REPLAY_GUARD),
      session: { method: tempoSession({ chainId, recipient: payee.account.address, privateKey: payee.key, rpcUrl: url, pollIntervalMs: 100 }), channels: (c) => channelStore(c.env.CHANNEL_STATE, c.env.PAYER_CHANNELS) },
    })
    let runs = 0
    const app = new Hono<Env>()
    app.on(['GET', 'POST', 'HEAD'], '/chat', bearerAuth({ token: 'app-key' }), pay.session({ amount: '0.001', unitType: 'llm_token', credentialHeader: 'Payment-Authorization' }), (c) => {
      runs++
      return c.get('session').sse(async function* (s) {
        for (let i = 0; i < 3; i++) {
          await s.charge(1)
          yield `token ${i}`
        }
      })
    })
    const seen: { authorization: string | null; action: unknown }[] = []
    const fetcher = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init)
      seen.push({ authorization: request.headers.get('authorization'), action: Credential.fromHeader(request.headers.get('payment-authorization'))?.payload.action })
      return app.request(request, undefined, env)
    }) as typeof fetch
    const payer = await funded()
    const wallet = tempoSessionWallet({ account: payer.account, rpcUrl: url, chainId, maxDeposit: 100_000n })
    const paid = paymentFetch({ wallets: [wallet], maxAmount: { [pathUsd]: '10000' }, fetch: fetcher })
    // One unit up front, then the stream meters 3 more: it asks for vouchers on the way.
    const stream = await paid('https://api.example.com/chat', { headers: { authorization: 'Bearer app-key' } })
    expect(stream.status).toBe(200)
    const events_ = await events(stream)
    expect(events_.filter((e) => e.event === 'message').map((e) => e.data)).toEqual(['token 0', 'token 1', 'token 2'])
    expect(JSON.parse(events_.at(-1)!.data)).toMatchObject({ spent: '4000' })
    expect(runs).toBe(1)
    const [entry] = [...wallet.channels.values()]
    const closed = await wallet.close('https://api.example.com/chat')
    expect(closed).toMatchObject({ channelId: entry!.channelId, spent: '4000', txHash: expect.stringMatching(/^0x[0-9a-f]{64}$/) })
    // Every paid request kept the application's key and paid in Payment-Authorization.
    const paidRequests = seen.filter((s) => s.action !== undefined)
    expect(paidRequests.map((s) => s.action)).toEqual(expect.arrayContaining(['open', 'voucher', 'close']))
    expect(paidRequests.every((s) => s.authorization === 'Bearer app-key')).toBe(true)
  })
})
