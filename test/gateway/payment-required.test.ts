/**
 * What a person reads in a 402: the problem's `detail` says what each offer asks (amount, currency, method) and
 * where the prices of every route are; the machine-readable fields and the challenges stay as they were.
 */
import { SELF } from 'cloudflare:test'
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts'
import { describe, expect, it } from 'vitest'
import * as Challenge from '../../src/core/Challenge.js'
import { createGateway } from '../../src/gateway/gateway.js'
import { methodFactories } from '../../src/gateway/methods.js'
import { base, testEnv } from './support.js'

describe('the 402 detail', () => {
  it('behavior: the deployed gateway names each offer in words and the discovery document; type, title, status and challengeId are unchanged', async () => {
    const response = await SELF.fetch(`${base}/v1/exports`, { method: 'POST' })
    expect(response.status).toBe(402)
    const problem = (await response.json()) as Record<string, unknown>
    expect(problem.detail).toBe('Payment is required: 1 pathUSD by tempo, or 1 USD by stripe. Prices of every route: /openapi.json.')
    const challenges = Challenge.fromResponse(response)
    expect(challenges.map((c) => c.method)).toEqual(['tempo', 'stripe'])
    expect(problem).toEqual({
      type: 'https://paymentauth.org/problems/payment-required',
      title: 'Payment Required',
      status: 402,
      detail: problem.detail,
      challengeId: challenges[0]!.id,
    })
  })

  it('behavior: a route priced per token says both prices, in the detail and in its challenge description', async () => {
    const payeeKey = generatePrivateKey()
    const gateway = createGateway({
      pricing: {
        service: { title: 'Chat', version: '1.0.0' },
        methods: { tempo: { chainId: 42431, recipient: privateKeyToAccount(payeeKey).address } },
        routes: [
          { pattern: '/v1/chat/completions', method: 'POST', intent: 'session', description: 'A chat completion',
            session: { unit: 'tokens', input: '0.00001', output: '0.00002', maxOutputTokens: 256 } },
          { pattern: '/v1/ticks', method: ['GET', 'POST'], intent: 'session', session: { unit: 'event', price: '0.0001' } },
        ],
      },
      env: { ...testEnv, TEMPO_PAYEE_KEY: payeeKey, RATE_LIMIT_CHALLENGES: '0' },
      factories: methodFactories,
      log: () => {},
    })
    const chat = await gateway.fetch(new Request(`${base}/v1/chat/completions`, { method: 'POST', body: '{}' }))
    expect(chat.status).toBe(402)
    const asked = '0.00001 pathUSD per input token, 0.00002 pathUSD per output token'
    expect(((await chat.json()) as { detail: string }).detail).toBe(`Payment is required: ${asked} by tempo (session). Prices of every route: /openapi.json.`)
    const [challenge] = Challenge.fromResponse(chat)
    expect(challenge!.description).toBe(`A chat completion; ${asked}`)
    // The machine-readable price is still one unit's, in base units.
    expect(challenge!.request).toMatchObject({ amount: '20', unitType: 'llm_token' })

    const ticks = await gateway.fetch(new Request(`${base}/v1/ticks`))
    expect(((await ticks.json()) as { detail: string }).detail).toBe('Payment is required: 0.0001 pathUSD per event by tempo (session). Prices of every route: /openapi.json.')
  })
})
