/**
 * Session interoperability with the reference SDK: mppx 0.11's session client (`tempo.session.manager`) pays a Hono
 * app protected by pay.session in workerd, on the local session chain: requests, a metered SSE stream that needs
 * vouchers mid-stream (posted to the same URI, answered 204 without running the handler), and a close.
 */
import { env } from 'cloudflare:workers'
import { Hono } from 'hono'
import { tempo as mppxTempo } from 'mppx/client'
import { type Hex, createClient, http } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { tempoModerato } from 'viem/chains'
import { describe, expect, it, onTestFailed } from 'vitest'
import * as Credential from '../../src/core/Credential.js'
import { tempo } from '../../src/methods/tempo/method.js'
import { tempoSession } from '../../src/methods/tempo/session-method.js'
import { tip20ChannelReserve } from '../../src/methods/tempo/session/abi.js'
import { sessionChain } from '../../src/methods/tempo/session/chain.js'
import { payment } from '../../src/middleware/payment.js'
import { channelStore } from '../../src/storage/channel-store.js'
import { replayStore } from '../../src/storage/replay-store.js'
import { ledger } from '../support/ledger-method.js'
import { balanceOf, chainClient, chainId, fund } from '../support/tempo-chain.js'

type Env = { Bindings: Cloudflare.Env }
const url = env.TEST_SESSION_RPC_URL
const client = chainClient(url)

describe('mppx session client → pay.session', () => {
  it('behavior: mppx opens a channel, pays two requests, streams with vouchers posted mid-stream, and closes; the chain pays exactly what was spent', { timeout: 60_000 }, async () => {
    const payeeKey = generatePrivateKey()
    const payee = privateKeyToAccount(payeeKey)
    await fund(client, payee.address, 1_000_000n)
    const pay = payment<Env>({
      realm: 'api.example.com',
      secret: 'session-interop-secret-0123456789abcdefgh',
      methods: [ledger().method],
      store: (c) => replayStore(c.env.REPLAY_GUARD),
      session: { method: tempoSession({ chainId, recipient: payee.address, privateKey: payeeKey, rpcUrl: url, pollIntervalMs: 100 }), channels: (c) => channelStore(c.env.CHANNEL_STATE, c.env.PAYER_CHANNELS) },
    })
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
    const seen: { method: string; path: string; action?: unknown; status: number }[] = []
    const fetcher = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init)
      const credential = Credential.fromHeader(request.headers.get('authorization'))
      const response = await app.request(request, undefined, env)
      seen.push({ method: request.method, path: new URL(request.url).pathname, action: credential?.payload.action, status: response.status })
      return response
    }) as typeof fetch

    const account = privateKeyToAccount(generatePrivateKey())
    await fund(client, account.address, 5_000_000n)
    const before = await balanceOf(client, account.address)
    const manager = mppxTempo.session.manager({
      account,
      client: createClient({ account, chain: { ...tempoModerato, rpcUrls: { default: { http: [url] } } }, transport: http(url) }),
      maxDeposit: '1',
      fetch: fetcher,
    })

    onTestFailed(() => console.log(JSON.stringify(seen)))
    const first = await manager.fetch('https://api.example.com/report')
    expect(first.status).toBe(200)
    expect(first.receipt).toMatchObject({ intent: 'session', spent: '10000', acceptedCumulative: '10000' })
    const second = await manager.fetch('https://api.example.com/report')
    expect(second.status).toBe(200)
    expect(second.receipt).toMatchObject({ spent: '20000' })
    const channelId = manager.channelId as Hex

    const tokens: string[] = []
    for await (const token of await manager.sse('https://api.example.com/chat')) tokens.push(token)
    expect(tokens).toEqual(Array.from({ length: 10 }, (_, i) => `token ${i}`))
    // The stream asked for vouchers; mppx posted them to the same URI and got 204, and no second stream ran.
    const midStream = seen.filter((s) => s.path === '/chat' && s.method === 'POST' && s.action === 'voucher')
    expect(midStream.length).toBeGreaterThan(0)
    expect(midStream.every((s) => s.status === 204)).toBe(true)
    expect(runs).toBe(3)
    const state = await channelStore(env.CHANNEL_STATE).channel(channelId).state()
    expect(state).toMatchObject({ spent: 30_000n })

    const closed = await manager.close()
    expect(closed).toMatchObject({ channelId, txHash: expect.stringMatching(/^0x[0-9a-f]{64}$/) })
    expect(await sessionChain({ url, chainId, escrow: tip20ChannelReserve }).getChannel(state!.descriptor)).toMatchObject({ deposit: 0n })
    // The payer paid exactly what it consumed (30000), plus the fee of its open transaction.
    const paid = before - (await balanceOf(client, account.address))
    expect(paid).toBeGreaterThanOrEqual(30_000n)
    expect(paid).toBeLessThan(30_000n + 100_000n)
    expect((await channelStore(env.CHANNEL_STATE).channel(channelId).state())?.status).toBe('closed')
  })

  it('behavior: bootstrap preflight: a fresh mppx client of the same payer proves itself on HEAD with a zero-amount charge, gets its open channel (204, no handler run) and resumes it instead of opening another', { timeout: 60_000 }, async () => {
    const payeeKey = generatePrivateKey()
    const payee = privateKeyToAccount(payeeKey)
    await fund(client, payee.address, 1_000_000n)
    const pay = payment<Env>({
      realm: 'api.example.com',
      secret: 'session-interop-secret-0123456789abcdefgh',
      methods: [tempo({ chainId, recipient: payee.address, rpcUrl: url, pollIntervalMs: 100 })],
      store: (c) => replayStore(c.env.REPLAY_GUARD),
      session: { method: tempoSession({ chainId, recipient: payee.address, privateKey: payeeKey, rpcUrl: url, pollIntervalMs: 100 }), channels: (c) => channelStore(c.env.CHANNEL_STATE, c.env.PAYER_CHANNELS) },
    })
    let runs = 0
    const app = new Hono<Env>()
    app.on(['GET', 'POST', 'HEAD'], '/report', pay.session({ amount: '0.01', unitType: 'request', suggestedDeposit: '0.1', bootstrap: true }), (c) => {
      runs++
      return c.json({ report: 'ok' })
    })
    const seen: { method: string; intent?: unknown; action?: unknown; status: number }[] = []
    const fetcher = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init)
      const credential = Credential.fromHeader(request.headers.get('authorization'))
      const response = await app.request(request, undefined, env)
      seen.push({ method: request.method, intent: credential?.challenge.intent, action: credential?.payload.action, status: response.status })
      return response
    }) as typeof fetch
    onTestFailed(() => console.log(JSON.stringify(seen)))
    const account = privateKeyToAccount(generatePrivateKey())
    await fund(client, account.address, 5_000_000n)
    const manager = (bootstrap: boolean) =>
      mppxTempo.session.manager({
        account,
        client: createClient({ account, chain: { ...tempoModerato, rpcUrls: { default: { http: [url] } } }, transport: http(url) }),
        maxDeposit: '1',
        fetch: fetcher,
        bootstrap,
      })
    const first = manager(false)
    expect((await first.fetch('https://api.example.com/report')).status).toBe(200)
    const channelId = first.channelId as Hex
    seen.length = 0

    // Another process of the same payer, with no local state.
    const fresh = manager(true)
    const resumed = await fresh.fetch('https://api.example.com/report')
    expect(resumed.status).toBe(200)
    expect(resumed.receipt).toMatchObject({ channelId, spent: '20000' })
    expect(fresh.channelId).toBe(channelId)
    // A HEAD got the challenges, a HEAD paid the zero-amount charge (204: no handler), then a voucher paid the request.
    expect(seen.filter((s) => s.method === 'HEAD')).toEqual([
      { method: 'HEAD', status: 402 },
      { method: 'HEAD', intent: 'charge', status: 204 },
    ])
    expect(seen.some((s) => s.action === 'open')).toBe(false)
    expect(seen.filter((s) => s.method !== 'HEAD').at(-1)).toMatchObject({ action: 'voucher', status: 200 })
    expect(runs).toBe(2)
    expect((await env.PAYER_CHANNELS.get(env.PAYER_CHANNELS.idFromName(account.address.toLowerCase())).list()).map((row) => row.channelId)).toEqual([channelId])
  })
})
