import { describe, expect, it } from 'vitest'
import { setup, testEnv } from './support.js'

type Bindings = { CHANNEL_STATE: DurableObjectNamespace<import('../../src/storage/ChannelState.js').ChannelState>; PAYER_CHANNELS: DurableObjectNamespace<import('../../src/storage/PayerChannels.js').PayerChannels> }
const bindings = testEnv as unknown as Bindings
const secret = 'operator-test-secret-0123456789'
const hex = (bytes: number) => `0x${[...crypto.getRandomValues(new Uint8Array(bytes))].map((b) => b.toString(16).padStart(2, '0')).join('')}` as `0x${string}`

describe('gateway: operator channel listing', () => {
  it('behavior: lists a payer\'s channels with deposit, spent, settled and state for the bearer of the operator secret', async () => {
    const t = setup()
    const payer = hex(20)
    const channelId = hex(32)
    const zero = '0x0000000000000000000000000000000000000000' as const
    const channel = bindings.CHANNEL_STATE.get(bindings.CHANNEL_STATE.idFromName(channelId))
    const descriptor = { payer, payee: hex(20), operator: zero, token: '0x20c0000000000000000000000000000000000000' as const, salt: hex(32), authorizedSigner: zero, expiringNonceHash: hex(32) }
    await channel.open({ channelId, chainId: 42431, escrow: '0x4d50500000000000000000000000000000000000', descriptor, deposit: 5000n, settled: 0n, closeRequestedAt: 0n }, { cumulative: 700n, signature: hex(65), signer: payer }, 0n)
    await channel.charge({ cost: 300n, units: 3, challengeId: 'c' })
    await bindings.PAYER_CHANNELS.get(bindings.PAYER_CHANNELS.idFromName(payer)).add(channelId)

    const url = `/__mpp/channels?payer=${payer}`
    expect((await t.request(url)).status).toBe(401)
    expect((await t.request(url, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401)
    expect((await t.request('/__mpp/channels?payer=nope', { headers: { authorization: `Bearer ${secret}` } })).status).toBe(400)
    const listed = await t.request(url, { headers: { authorization: `Bearer ${secret}` } })
    expect(listed.status).toBe(200)
    expect(listed.headers.get('cache-control')).toBe('no-store')
    expect(await listed.json()).toMatchObject({
      payer,
      channels: [{ channelId, status: 'open', deposit: '5000', accepted: '700', spent: '300', settled: '0', units: 3 }],
    })
    // Answered by the gateway itself: nothing reached the origin.
    expect(await t.hits()).toBe(0)
  })

  it('behavior: without an operator secret the listing does not exist', async () => {
    const t = setup({ env: { MPP_OPERATOR_SECRET: undefined } })
    expect((await t.request(`/__mpp/channels?payer=${hex(20)}`, { headers: { authorization: `Bearer ${secret}` } })).status).toBe(404)
  })
})
