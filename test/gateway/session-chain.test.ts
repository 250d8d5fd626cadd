/**
 * Per-token sessions through the gateway with the deployed Tempo session method on the local session chain:
 * a payer (our session wallet) who abandons a stream pays only for what was delivered (counted conservatively), an
 * origin that reports more usage than the vouchers cover is paid what they cover (the rest recorded), and the close
 * pays exactly that on chain.
 */
import { env } from 'cloudflare:workers'
import { createPublicClient, http, parseEventLogs } from 'viem'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { describe, expect, it } from 'vitest'
import { paymentFetch } from '../../src/client/fetch.js'
import { tempoSessionWallet } from '../../src/client/wallets/tempo-session.js'
import { createGateway } from '../../src/gateway/gateway.js'
import { methodFactories } from '../../src/gateway/methods.js'
import { escrowAbi } from '../../src/methods/tempo/session/abi.js'
import { chainClient, chainId, fund, pathUsd } from '../support/tempo-chain.js'
import { base, testEnv } from './support.js'

const rpcUrl = (env as unknown as { TEST_SESSION_RPC_URL: string }).TEST_SESSION_RPC_URL
const client = chainClient(rpcUrl)

describe('gateway: per-token sessions on the local chain', { timeout: 90_000 }, () => {
  it('behavior: an abandoned stream pays the input reserve and a token per byte of the output forwarded; usage above what the vouchers cover pays what they cover and is recorded; the close pays exactly that and refunds the rest', async () => {
    const payeeKey = generatePrivateKey()
    const payee = privateKeyToAccount(payeeKey)
    // The payee pays the fee of the close it submits.
    await fund(client, payee.address, 1_000_000n)
    const pricing = {
      service: { title: 'LLM', version: '1.0.0' },
      methods: { tempo: { chainId, recipient: payee.address, rpcUrl, pollIntervalMs: 100 } },
      routes: [
        {
          pattern: '/llm/v1/chat/completions',
          method: 'POST',
          intent: 'session',
          // 1 base unit per input token, 2 per output token.
          session: { unit: 'tokens', input: '0.000001', output: '0.000002', maxInputTokens: 1000, maxOutputTokens: 50, suggestedDeposit: '0.01' },
        },
      ],
    }
    const lines: string[] = []
    const gateway = createGateway({
      pricing,
      env: { ...testEnv, TEMPO_RPC_URL: rpcUrl, TEMPO_PAYEE_KEY: payeeKey, RATE_LIMIT_CHALLENGES: '0', RATE_LIMIT_VERIFICATIONS: '0' },
      factories: methodFactories,
      log: (line) => lines.push(line),
    })
    const pending: Promise<unknown>[] = []
    const ctx = { waitUntil: (promise: Promise<unknown>) => void pending.push(promise) }
    const send = ((input: RequestInfo | URL, init?: RequestInit) => gateway.fetch(new Request(input, init), ctx)) as typeof fetch

    const payerKey = generatePrivateKey()
    const payer = privateKeyToAccount(payerKey)
    await fund(client, payer.address, 1_000_000n)
    const wallet = tempoSessionWallet({ account: payer, rpcUrl, chainId, maxDeposit: 10_000n })
    const pay = paymentFetch({ wallets: [wallet], maxAmount: { [pathUsd]: '1000' }, fetch: send })
    const url = `${base}/llm/v1/chat/completions`
    const body = { stream: true, max_tokens: 20, messages: [{ role: 'user', content: 'hi' }] }
    const chat = (query: string, headers: Record<string, string> = {}) =>
      pay(`${url}${query}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) })
    // The reserve: one input token per byte of the body as forwarded (usage asked for), 20 output tokens at 2.
    const input = BigInt(new TextEncoder().encode(JSON.stringify({ ...body, stream_options: { include_usage: true } })).length)
    const reserve = input + 20n * 2n

    // Abandoned after three content deltas of forty.
    const reply = Array.from({ length: 40 }, (_, i) => `w${i}`).join(' ')
    const abandoned = await chat(`?delay=50&reply=${encodeURIComponent(reply)}`)
    expect(abandoned.status).toBe(200)
    const reader = abandoned.body!.pipeThrough(new TextDecoderStream()).getReader()
    let text = ''
    // Content deltas only (the first event also echoes the request, whose messages have content too).
    while ((text.match(/"delta":\{"content"/g) ?? []).length < 3) text += (await reader.read()).value ?? ''
    await reader.cancel()
    const deadline = Date.now() + 10_000
    while (pending.length === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25))
    expect(pending).toHaveLength(1)
    await Promise.all(pending)

    // The origin reports 5000 in and 900 out: the wallet's voucher covers the reserve only, so that is charged and
    // the rest is recorded for the operator.
    const over = await chat('', { 'x-usage-input': '5000', 'x-usage-output': '900' })
    expect(over.status).toBe(200)
    const events = (await over.text()).split('\n\n').filter((block) => block.startsWith('event: payment-receipt'))
    const receipt = JSON.parse(events.at(-1)!.replace(/^event: payment-receipt\ndata: /, '')) as { spent: string; usage: string }
    expect(receipt.usage).toBe('reported')
    expect(lines.filter((line) => line.includes('"payment.usage-above-reserve"'))).toHaveLength(1)
    // The abandoned request: its input reserve + 2 per output byte forwarded (the role delta counts one, a content
    // delta "w0 " three). The test read three; the client's stream pipes may have taken up to two more from the
    // gateway before the cancel reached it. Below its reserve either way.
    const abandonedCharge = BigInt(receipt.spent) - reserve
    expect(abandonedCharge).toBeGreaterThanOrEqual(input + (1n + 3n * 3n) * 2n)
    expect(abandonedCharge).toBeLessThanOrEqual(input + (1n + 5n * 3n) * 2n)

    const [entry] = [...wallet.channels.values()]
    const closed = await wallet.close(url)
    expect(closed).toMatchObject({ spent: receipt.spent })
    const mined = await createPublicClient({ transport: http(rpcUrl) }).getTransactionReceipt({ hash: closed!.txHash as `0x${string}` })
    const [event] = parseEventLogs({ abi: escrowAbi, logs: mined.logs, eventName: 'ChannelClosed' })
    expect(event!.args.settledToPayee).toBe(BigInt(receipt.spent))
    expect(event!.args.refundedToPayer).toBe(entry!.deposit - BigInt(receipt.spent))
  })
})
