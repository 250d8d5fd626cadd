/**
 * mppx 0.11's session manager pays a per-token route of the gateway (in workerd, on the local session chain): the
 * reserve asked for after its one-unit open is followed (the 402 names the channel with its snapshot), two
 * completions are paid on the one channel, receipts never show a reserve as spent, and its close completes; the
 * seller receives exactly what the receipts say and the payer the rest of the deposit.
 */
import { env } from 'cloudflare:workers'
import { tempo as mppxTempo } from 'mppx/client'
import { type Hex, createClient, http } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { tempoModerato } from 'viem/chains'
import { describe, expect, it, onTestFailed } from 'vitest'
import { createGateway } from '../../src/gateway/gateway.js'
import { methodFactories } from '../../src/gateway/methods.js'
import { sessionChain } from '../../src/methods/tempo/session/chain.js'
import { tip20ChannelReserve } from '../../src/methods/tempo/session/abi.js'
import { traced } from '../support/mppx-trace.js'
import { balanceOf, chainClient, chainId, freshAddress, fund } from '../support/tempo-chain.js'
import { base, testEnv } from './support.js'

const rpcUrl = (env as unknown as { TEST_SESSION_RPC_URL: string }).TEST_SESSION_RPC_URL
const client = chainClient(rpcUrl)

describe('mppx session manager → gateway per-token route', { timeout: 90_000 }, () => {
  it('behavior: mppx opens once, follows the reserve the 402 snapshot asks for, pays two completions on one channel and closes; the seller gets exactly the receipts’ spent, the payer the rest', async () => {
    // The channel pays `recipient`; an operator (another key) closes it and pays that fee, so balances are exact.
    const operatorKey = generatePrivateKey()
    const operator = privateKeyToAccount(operatorKey)
    await fund(client, operator.address, 1_000_000n)
    const recipient = freshAddress()
    const pricing = {
      service: { title: 'LLM', version: '1.0.0' },
      methods: { tempo: { chainId, recipient, rpcUrl, pollIntervalMs: 100, session: { operator: operator.address } } },
      routes: [
        // 10 base units per input token, 20 per output token.
        { pattern: '/llm/v1/chat/completions', method: 'POST', intent: 'session', session: { unit: 'tokens', input: '0.00001', output: '0.00002', maxInputTokens: 1000, maxOutputTokens: 256, suggestedDeposit: '1' } },
      ],
    }
    const gateway = createGateway({ pricing, env: { ...testEnv, TEMPO_RPC_URL: rpcUrl, TEMPO_PAYEE_KEY: operatorKey, RATE_LIMIT_CHALLENGES: '0', RATE_LIMIT_VERIFICATIONS: '0' }, factories: methodFactories, log: () => {} })
    const trace = traced(((request: Request) => gateway.fetch(request, { waitUntil: () => {} })) as typeof fetch)
    onTestFailed(() => console.log(JSON.stringify(trace.sent)))

    const payer = privateKeyToAccount(generatePrivateKey())
    await fund(client, payer.address, 5_000_000n)
    const manager = mppxTempo.session.manager({
      account: payer,
      client: createClient({ account: payer, chain: { ...tempoModerato, rpcUrls: { default: { http: [rpcUrl] } } }, transport: http(rpcUrl) }),
      maxDeposit: '1',
      fetch: trace.fetch,
    })
    const url = `${base}/llm/v1/chat/completions`
    const init = { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ stream: true, max_tokens: 20, messages: [{ role: 'user', content: 'hi' }] }) }
    const spentSeen: bigint[] = []

    const first = await manager.fetch(url, init)
    expect(first.status).toBe(200)
    const text = await first.text()
    expect(text).toContain('"content":"five "')
    spentSeen.push(BigInt(first.receipt!.spent))
    const final = /event: payment-receipt\ndata: (.*)\n/.exec(text)![1]!
    spentSeen.push(BigInt(JSON.parse(final).spent))
    // One channel: the 402 answering the open named it with its snapshot, so mppx kept it and signed what it asked.
    const firstCredentials = trace.credentials()
    expect(firstCredentials.filter((c) => c.startsWith('open'))).toHaveLength(1)
    expect(trace.sent.filter((s) => s.problem === 'session/insufficient-balance').every((s) => s.snapshot)).toBe(true)
    // mppx's fetch retries a 402 up to three times, one unit more each time, before its manager reads the snapshot.
    expect(firstCredentials).toHaveLength(4)

    const mark = trace.sent.length
    const tokens: string[] = []
    for await (const data of await manager.sse(url, { ...init, onReceipt: (receipt) => spentSeen.push(BigInt(receipt.spent)) })) tokens.push(data)
    expect(tokens.join('')).toContain('five')
    expect(trace.credentials(mark).filter((c) => c.startsWith('open'))).toHaveLength(0)
    expect(trace.credentials(mark).length).toBeLessThanOrEqual(4)
    // A receipt's spent is what delivered work cost: it never includes a reserve still held, so it only grows.
    for (const receipt of trace.sent.flatMap((s) => (s.receipt ? [BigInt(s.receipt.spent as string)] : []))) spentSeen.push(receipt)
    expect([...spentSeen].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))).toEqual(spentSeen.slice().sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)))

    const channelId = manager.channelId as Hex
    const chain = sessionChain({ url: rpcUrl, chainId, escrow: tip20ChannelReserve })
    const descriptor = (await env.CHANNEL_STATE.get(env.CHANNEL_STATE.idFromName(channelId)).state())!.descriptor
    const { deposit } = await chain.getChannel(descriptor)
    const payerBefore = await balanceOf(client, payer.address)
    const closed = await manager.close()
    expect(closed).toMatchObject({ channelId, txHash: expect.stringMatching(/^0x[0-9a-f]{64}$/) })
    const spent = BigInt(closed!.spent)
    expect(spent).toBeGreaterThan(0n)
    expect(spent).toBe(spentSeen.reduce((a, b) => (a > b ? a : b)))
    expect(await chain.getChannel(descriptor)).toMatchObject({ deposit: 0n })
    expect(await balanceOf(client, recipient)).toBe(spent)
    expect((await balanceOf(client, payer.address)) - payerBefore).toBe(deposit - spent)
  })
})
