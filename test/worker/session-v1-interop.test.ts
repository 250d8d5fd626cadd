/**
 * Session protocol v1 interoperability with the reference SDK: mppx 0.11's legacy session client
 * (`sessionLegacyManager`, which speaks v1 only) pays a Hono app protected by pay.session with
 * `tempoSession({ sessionProtocol: 'v1' })` in workerd, over our v1 stream channel stand-in deployed with a plain
 * transaction on the local session chain: requests, a metered SSE stream that needs vouchers mid-stream (posted to
 * the same URI, answered 204 without running the handler), and a close that pays exactly what was spent. Our own
 * tempoSessionWallet pays the same v1 server.
 */
import { env } from 'cloudflare:workers'
import { Hono } from 'hono'
import { sessionLegacyManager } from 'mppx/client'
import { type Address, type Hex, createClient, http } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { tempoModerato } from 'viem/chains'
import { beforeAll, describe, expect, it, onTestFailed } from 'vitest'
import { paymentFetch } from '../../src/client/fetch.js'
import { tempoSessionWallet } from '../../src/client/wallets/tempo-session.js'
import * as Credential from '../../src/core/Credential.js'
import { tempoSession } from '../../src/methods/tempo/session-method.js'
import { sessionChainV1 } from '../../src/methods/tempo/session/chain-v1.js'
import { payment } from '../../src/middleware/payment.js'
import { channelStore } from '../../src/storage/channel-store.js'
import { replayStore } from '../../src/storage/replay-store.js'
import { deployStreamChannel } from '../../src/testing/session-payer.js'
import { ledger } from '../support/ledger-method.js'
import { balanceOf, chainClient, chainId, fund, pathUsd } from '../support/tempo-chain.js'

type Env = { Bindings: Cloudflare.Env }
const url = env.TEST_SESSION_RPC_URL
const client = chainClient(url)

/**
 * The payer's transport adds gas to what the node fills: anvil's estimate leaves out T4's price of new storage slots
 * (a v1 open creates about six, ~1.57M gas used against ~0.78M filled), and mppx's legacy client adds only 5000.
 */
const roomyFill = (async (input: RequestInfo | URL, init?: RequestInit) => {
  const response = await fetch(input, init)
  const body = JSON.parse(String(init?.body ?? '{}')) as { method?: string }
  if (body.method !== 'eth_fillTransaction') return response
  const answer = (await response.json()) as { result?: { tx?: { gas?: string } } }
  if (answer.result?.tx?.gas) answer.result.tx.gas = `0x${(BigInt(answer.result.tx.gas) + 2_000_000n).toString(16)}`
  return new Response(JSON.stringify(answer), { headers: { 'content-type': 'application/json' } })
}) as typeof fetch

describe('v1 session clients → pay.session on protocol v1', () => {
  let escrow: Address

  beforeAll(async () => {
    escrow = await deployStreamChannel(url)
  })

  it('behavior: mppx opens a v1 channel, pays two requests, streams with vouchers posted mid-stream, and closes; the chain pays exactly what was spent', { timeout: 90_000 }, async () => {
    const payeeKey = generatePrivateKey()
    const payee = privateKeyToAccount(payeeKey)
    await fund(client, payee.address, 1_000_000n)
    const method = tempoSession({ chainId, recipient: payee.address, privateKey: payeeKey, rpcUrl: url, pollIntervalMs: 100, sessionProtocol: 'v1', escrow })
    const pay = payment<Env>({
      realm: 'api.example.com',
      secret: 'session-v1-interop-secret-0123456789abcd',
      methods: [ledger().method],
      store: (c) => replayStore(c.env.REPLAY_GUARD),
      session: { method, channels: (c) => channelStore(c.env.CHANNEL_STATE, c.env.PAYER_CHANNELS) },
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
    const seen: { method: string; path: string; action?: unknown; status: number; detail?: string }[] = []
    const fetcher = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init)
      const credential = Credential.fromHeader(request.headers.get('authorization'))
      const response = await app.request(request, undefined, env)
      const detail = response.status >= 400 && credential ? ((await response.clone().json()) as { detail?: string }).detail : undefined
      seen.push({ method: request.method, path: new URL(request.url).pathname, action: credential?.payload.action, status: response.status, ...(detail ? { detail } : {}) })
      return response
    }) as typeof fetch

    const account = privateKeyToAccount(generatePrivateKey())
    await fund(client, account.address, 5_000_000n)
    const before = await balanceOf(client, account.address)
    const payeeBefore = await balanceOf(client, payee.address)
    const manager = sessionLegacyManager({
      account,
      client: createClient({ account, chain: { ...tempoModerato, rpcUrls: { default: { http: [url] } } }, transport: http(url, { fetchFn: roomyFill }) }),
      // mppx pins the v1 escrow per chain; ours is deployed locally.
      escrowContract: escrow,
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
    const onChain = sessionChainV1({ url, chainId, escrow })
    // mppx opened the channel with the whole deposit limit it was given (approve + open in one transaction).
    expect(await onChain.getChannel(channelId)).toMatchObject({ finalized: false, deposit: 1_000_000n, payer: account.address.toLowerCase() })

    const tokens: string[] = []
    for await (const token of await manager.sse('https://api.example.com/chat')) tokens.push(token)
    expect(tokens).toEqual(Array.from({ length: 10 }, (_, i) => `token ${i}`))
    // The stream asked for vouchers; mppx posted them to the same URI and got 204, and no second stream ran.
    const midStream = seen.filter((s) => s.path === '/chat' && s.method === 'POST' && s.action === 'voucher')
    expect(midStream.length).toBeGreaterThan(0)
    expect(midStream.every((s) => s.status === 204)).toBe(true)
    expect(runs).toBe(3)
    expect(await channelStore(env.CHANNEL_STATE).channel(channelId).state()).toMatchObject({ spent: 30_000n })

    const closed = await manager.close()
    expect(closed).toMatchObject({ channelId, txHash: expect.stringMatching(/^0x[0-9a-f]{64}$/) })
    expect(await onChain.getChannel(channelId)).toMatchObject({ finalized: true, deposit: 0n })
    // The payer paid exactly what it consumed (30000), plus the fee of its open transaction; the payee got 30000,
    // less the fee of its close.
    const paid = before - (await balanceOf(client, account.address))
    expect(paid).toBeGreaterThanOrEqual(30_000n)
    expect(paid).toBeLessThan(30_000n + 100_000n)
    const earned = (await balanceOf(client, payee.address)) - payeeBefore
    expect(earned).toBeGreaterThan(20_000n)
    expect(earned).toBeLessThanOrEqual(30_000n)
    expect(await channelStore(env.CHANNEL_STATE).channel(channelId).state()).toMatchObject({ status: 'closed', settled: 30_000n })
  })

  it('behavior: our tempoSessionWallet pays the v1 server: opens (approve + open), pays requests, follows a stream with a topUp, and closes paying exactly what was spent', { timeout: 90_000 }, async () => {
    const payeeKey = generatePrivateKey()
    const payee = privateKeyToAccount(payeeKey)
    await fund(client, payee.address, 1_000_000n)
    const pay = payment<Env>({
      realm: 'api.example.com',
      secret: 'session-v1-wallet-secret-0123456789abcdef',
      methods: [ledger().method],
      store: (c) => replayStore(c.env.REPLAY_GUARD),
      session: {
        method: tempoSession({ chainId, recipient: payee.address, privateKey: payeeKey, rpcUrl: url, pollIntervalMs: 100, sessionProtocol: 'v1', escrow }),
        channels: (c) => channelStore(c.env.CHANNEL_STATE, c.env.PAYER_CHANNELS),
      },
    })
    const app = new Hono<Env>()
    app.on(['GET', 'POST', 'HEAD'], '/report', pay.session({ amount: '0.01', unitType: 'request' }), (c) => c.json({ report: 'ok' }))
    app.on(['GET', 'POST', 'HEAD'], '/chat', pay.session({ amount: '0.001', unitType: 'llm_token', upfrontUnits: 0 }), (c) =>
      c.get('session').sse(async function* (s) {
        for (let i = 0; i < 10; i++) {
          await s.charge(1)
          yield `token ${i}`
        }
      }),
    )
    const actions: string[] = []
    const fetcher = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init)
      const credential = Credential.fromHeader(request.headers.get('authorization'))
      if (credential) actions.push(`${request.method} ${new URL(request.url).pathname} ${String(credential.payload.action)}`)
      return app.request(request, undefined, env)
    }) as typeof fetch

    const account = privateKeyToAccount(generatePrivateKey())
    await fund(client, account.address, 5_000_000n)
    // The wallet opens v1 channels on the escrow it is given; a small first deposit makes the stream top up.
    const wallet = tempoSessionWallet({ account, rpcUrl: url, chainId, maxDeposit: 100_000n, deposit: 25_000n, escrows: [escrow], fetch: roomyFill })
    const paid = paymentFetch({ wallets: [wallet], maxAmount: { [pathUsd]: '10000' }, fetch: fetcher })
    for (let i = 0; i < 2; i++) expect((await paid('https://api.example.com/report')).status).toBe(200)
    const stream = await paid('https://api.example.com/chat')
    expect(stream.status).toBe(200)
    const text = await stream.text()
    expect([...text.matchAll(/^data: (token \d+)$/gm)].map((m) => m[1])).toEqual(Array.from({ length: 10 }, (_, i) => `token ${i}`))
    expect(actions).toContain('POST /chat topUp')
    expect(actions).toContain('POST /chat voucher')
    const [entry] = [...wallet.channels.values()]
    expect(entry).toMatchObject({ protocol: 'v1', deposit: 30_000n })
    const onChain = sessionChainV1({ url, chainId, escrow })
    expect(await onChain.getChannel(entry!.channelId)).toMatchObject({ deposit: 30_000n, payer: account.address.toLowerCase() })

    const closed = await wallet.close('https://api.example.com/report')
    expect(closed).toMatchObject({ channelId: entry!.channelId, spent: '30000', txHash: expect.stringMatching(/^0x[0-9a-f]{64}$/) })
    expect(await onChain.getChannel(entry!.channelId)).toMatchObject({ finalized: true })
    expect(await channelStore(env.CHANNEL_STATE).channel(entry!.channelId).state()).toMatchObject({ status: 'closed', settled: 30_000n })
  })
})
