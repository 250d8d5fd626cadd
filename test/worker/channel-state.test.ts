import { env } from 'cloudflare:workers'
import { runInDurableObject } from 'cloudflare:test'
import { describe, expect, it } from 'vitest'
import type { SignedVoucher } from '../../src/core/ChannelAccount.js'
import type { ChainState } from '../../src/core/ChannelStore.js'
import { channelStore } from '../../src/storage/channel-store.js'

const payer = '0x1111111111111111111111111111111111111111'
const stranger = '0x2222222222222222222222222222222222222222'
const zero = '0x0000000000000000000000000000000000000000'

function randomHex(bytes: number): `0x${string}` {
  return `0x${[...crypto.getRandomValues(new Uint8Array(bytes))].map((b) => b.toString(16).padStart(2, '0')).join('')}`
}

function chain(overrides: Partial<ChainState> = {}): ChainState {
  return {
    channelId: randomHex(32),
    chainId: 42431,
    escrow: '0x4d50500000000000000000000000000000000000',
    descriptor: {
      payer,
      payee: '0x3333333333333333333333333333333333333333',
      operator: zero,
      token: '0x20c0000000000000000000000000000000000000',
      salt: randomHex(32),
      authorizedSigner: zero,
      expiringNonceHash: randomHex(32),
    },
    deposit: 1_000n,
    settled: 0n,
    closeRequestedAt: 0n,
    ...overrides,
  }
}

const voucher = (cumulative: bigint, signer: `0x${string}` = payer): SignedVoucher => ({ cumulative, signature: randomHex(65), signer })

async function opened(overrides: Partial<ChainState> = {}, first = 100n) {
  const state = chain(overrides)
  const channel = channelStore(env.CHANNEL_STATE, env.PAYER_CHANNELS).channel(state.channelId)
  const result = await channel.open(state, voucher(first), 0n)
  expect(result).toMatchObject({ ok: true, value: { status: first > 0n ? 'accepted' : 'unchanged' } })
  return { state, channel }
}

describe('ChannelState', () => {
  it('behavior: open records the chain state and accepts the first voucher', async () => {
    const { state, channel } = await opened()
    expect(await channel.state()).toMatchObject({
      channelId: state.channelId,
      deposit: 1_000n,
      settled: 0n,
      accepted: 100n,
      spent: 0n,
      status: 'open',
    })
  })

  it('behavior: an equal voucher is an idempotent no-op; a lower one, a small delta, another signer and more than the deposit are refused', async () => {
    const { channel } = await opened()
    expect(await channel.voucher(voucher(100n), 0n)).toMatchObject({ ok: true, value: { accepted: { status: 'unchanged' } } })
    expect(await channel.voucher(voucher(99n), 0n)).toMatchObject({ ok: false, failure: { problem: 'session/delta-too-small' } })
    expect(await channel.voucher(voucher(105n), 10n)).toMatchObject({ ok: false, failure: { problem: 'session/delta-too-small' } })
    expect(await channel.voucher(voucher(200n, stranger), 0n)).toMatchObject({ ok: false, failure: { problem: 'session/signer-mismatch' } })
    expect(await channel.voucher(voucher(1_001n), 0n)).toMatchObject({ ok: false, failure: { problem: 'session/amount-exceeds-deposit' } })
    expect(await channel.voucher(voucher(110n), 10n)).toMatchObject({ ok: true, value: { accepted: { status: 'accepted' } } })
    expect((await channel.state())?.accepted).toBe(110n)
  })

  it('behavior: the authorized signer, not the payer, signs when the descriptor names one', async () => {
    const base = chain()
    const state = chain({ descriptor: { ...base.descriptor, authorizedSigner: stranger } })
    const channel = channelStore(env.CHANNEL_STATE).channel(state.channelId)
    expect(await channel.open(state, voucher(10n, payer), 0n)).toMatchObject({ ok: false, failure: { problem: 'session/signer-mismatch' } })
    expect(await channel.open(state, voucher(10n, stranger), 0n)).toMatchObject({ ok: true })
    expect(await channel.voucher(voucher(20n, payer), 0n)).toMatchObject({ ok: false, failure: { problem: 'session/signer-mismatch' } })
    expect(await channel.voucher(voucher(20n, stranger), 0n)).toMatchObject({ ok: true })
  })

  it('behavior: a charge is taken from the accepted vouchers; beyond them it answers the top-up needed', async () => {
    const { channel } = await opened()
    expect(await channel.charge({ cost: 60n, units: 6, challengeId: 'c1' })).toMatchObject({ ok: true })
    expect(await channel.charge({ cost: 60n, units: 6, challengeId: 'c1' })).toMatchObject({
      ok: false,
      failure: { problem: 'session/insufficient-balance', requiredTopUp: '20' },
    })
    expect(await channel.state()).toMatchObject({ spent: 60n, units: 6 })
  })

  it('behavior: a voucher that does not cover its charge is still kept', async () => {
    const { channel } = await opened()
    const result = await channel.voucher(voucher(150n), 0n, { cost: 200n, units: 1, challengeId: 'c1' })
    expect(result).toMatchObject({ ok: false, failure: { problem: 'session/insufficient-balance', requiredTopUp: '50' } })
    expect(await channel.state()).toMatchObject({ accepted: 150n, spent: 0n })
  })

  it('behavior: one (challenge, Idempotency-Key) is charged once', async () => {
    const { channel } = await opened()
    const charge = { cost: 30n, units: 3, challengeId: 'c1', idempotencyKey: 'k1' }
    expect(await channel.charge(charge)).toMatchObject({ ok: true, value: { duplicate: false } })
    expect(await channel.charge(charge)).toMatchObject({ ok: true, value: { duplicate: true } })
    expect(await channel.charge({ ...charge, challengeId: 'c2' })).toMatchObject({ ok: true, value: { duplicate: false } })
    expect((await channel.state())?.spent).toBe(60n)
  })

  it('behavior: two racing vouchers paying for work on one channel: exactly one is served', async () => {
    const { channel } = await opened({}, 0n)
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => channel.voucher(voucher(100n), 0n, { cost: 100n, units: 1, challengeId: `c${i}` })),
    )
    expect(results.filter((r) => r.ok)).toHaveLength(1)
    expect(results.filter((r) => !r.ok).map((r) => !r.ok && r.failure.problem)).toEqual(Array(7).fill('session/insufficient-balance'))
    expect(await channel.state()).toMatchObject({ accepted: 100n, spent: 100n })
  })

  it('behavior: a refund gives back an undelivered charge and frees its Idempotency-Key', async () => {
    const { channel } = await opened()
    const charge = { cost: 40n, units: 4, challengeId: 'c1', idempotencyKey: 'k' }
    await channel.charge(charge)
    await channel.refund(charge)
    expect(await channel.state()).toMatchObject({ spent: 0n, units: 0 })
    expect(await channel.charge(charge)).toMatchObject({ ok: true, value: { duplicate: false } })
  })

  it('behavior: the settleable voucher is the highest one not above spent', async () => {
    const { channel } = await opened()
    await channel.voucher(voucher(200n), 0n, { cost: 150n, units: 1, challengeId: 'c' })
    await channel.voucher(voucher(300n), 0n)
    const settleable = await runInDurableObject(env.CHANNEL_STATE.get(env.CHANNEL_STATE.idFromName((await channel.state())!.channelId)), (instance) =>
      (instance as unknown as { settleable(): Promise<{ cumulative: bigint } | undefined> }).settleable(),
    )
    expect(settleable?.cumulative).toBe(100n)
    await channel.charge({ cost: 50n, units: 1, challengeId: 'c' })
    const after = await runInDurableObject(env.CHANNEL_STATE.get(env.CHANNEL_STATE.idFromName((await channel.state())!.channelId)), async (instance, state) => ({
      best: await (instance as unknown as { settleable(): Promise<{ cumulative: bigint } | undefined> }).settleable(),
      kept: state.storage.sql.exec<{ cumulative: string }>('SELECT cumulative FROM vouchers ORDER BY cumulative').toArray().map((r) => BigInt(r.cumulative)),
    }))
    expect(after.best?.cumulative).toBe(200n)
    expect(after.kept).toEqual([200n, 300n])
  })

  it('behavior: a close captures max(spent, settled), its voucher reaches the accepted one, and it stops new work', async () => {
    const { channel } = await opened({ settled: 0n })
    await channel.charge({ cost: 70n, units: 7, challengeId: 'c' })
    expect(await channel.beginClose(voucher(60n))).toMatchObject({ ok: false, failure: { problem: 'session/delta-too-small' } })
    expect(await channel.beginClose(voucher(100n, stranger))).toMatchObject({ ok: false, failure: { problem: 'session/signer-mismatch' } })
    // Covering spent is not enough: the close voucher reaches the accepted one (100), as any later voucher must.
    expect(await channel.beginClose(voucher(80n))).toMatchObject({ ok: false, failure: { problem: 'session/delta-too-small' } })
    expect(await channel.beginClose(voucher(100n))).toMatchObject({ ok: true, value: { capture: 70n, voucher: { cumulative: 100n } } })
    expect(await channel.charge({ cost: 1n, units: 1, challengeId: 'c' })).toMatchObject({ ok: false, failure: { problem: 'session/channel-finalized' } })
    expect(await channel.voucher(voucher(90n), 0n)).toMatchObject({ ok: false, failure: { problem: 'session/channel-finalized' } })
    await channel.finishClose(70n, randomHex(32))
    expect(await channel.state()).toMatchObject({ status: 'closed', settled: 70n, spent: 70n })
  })

  it('behavior: a close that pays the whole voucher (v1) closes with the highest voucher not above spent, never the one ahead', async () => {
    const { channel } = await opened({ settled: 0n }, 100n)
    await channel.voucher(voucher(200n), 0n)
    await channel.charge({ cost: 200n, units: 2, challengeId: 'c' })
    await channel.voucher(voucher(500n), 0n)
    await channel.charge({ cost: 50n, units: 1, challengeId: 'c' })
    // spent 250: the 200 voucher is the best not above it; the close voucher (600) runs ahead and is not used.
    const begun = await channel.beginClose(voucher(600n), { paysVoucher: true })
    expect(begun).toMatchObject({ ok: true, value: { capture: 200n, voucher: { cumulative: 200n } } })
  })

  it('behavior: a v1 close voucher equal to spent is the one closed with; amounts beyond uint96 order numerically', async () => {
    const big = 2n ** 100n
    const { channel } = await opened({ deposit: 2n ** 127n }, big)
    await channel.charge({ cost: big, units: 1, challengeId: 'c' })
    await channel.voucher(voucher(big * 3n), 0n)
    await channel.charge({ cost: big, units: 1, challengeId: 'c' })
    const begun = await channel.beginClose(voucher(big * 2n), { paysVoucher: true })
    expect(begun).toMatchObject({ ok: true, value: { capture: big * 2n, voucher: { cumulative: big * 2n } } })
  })

  it('behavior: vouchers kept with the earlier 29-digit padding are re-padded when the object starts', async () => {
    const { state, channel } = await opened({}, 100n)
    const stub = env.CHANNEL_STATE.get(env.CHANNEL_STATE.idFromName(state.channelId))
    await runInDurableObject(stub, (_, ctx) => {
      ctx.storage.sql.exec('DELETE FROM vouchers')
      ctx.storage.sql.exec('INSERT INTO vouchers (cumulative, signature, accepted_at) VALUES (?, ?, 0)', '90'.padStart(29, '0'), randomHex(65))
    })
    await runInDurableObject(stub, (_, ctx) => ctx.abort('restart')).catch(() => {})
    const restarted = await runInDurableObject(env.CHANNEL_STATE.get(env.CHANNEL_STATE.idFromName(state.channelId)), (_, ctx) =>
      ctx.storage.sql.exec<{ cumulative: string }>('SELECT cumulative FROM vouchers').toArray().map((r) => r.cumulative),
    )
    expect(restarted).toEqual(['90'.padStart(39, '0')])
    const again = channelStore(env.CHANNEL_STATE).channel(state.channelId)
    await again.charge({ cost: 95n, units: 1, challengeId: 'c' })
    expect(await again.beginClose(voucher(100n), { paysVoucher: true })).toMatchObject({ ok: true, value: { capture: 90n } })
  })

  it('behavior: a pending close request stops vouchers and charges; a topUp that cancels it serves again', async () => {
    const { state, channel } = await opened()
    await channel.topUp({ ...state, closeRequestedAt: 1_700_000_000n })
    expect(await channel.voucher(voucher(200n), 0n)).toMatchObject({ ok: false, failure: { problem: 'session/channel-finalized' } })
    expect(await channel.charge({ cost: 1n, units: 1, challengeId: 'c' })).toMatchObject({ ok: false, failure: { problem: 'session/channel-finalized' } })
    await channel.topUp({ ...state, deposit: 2_000n, closeRequestedAt: 0n })
    expect(await channel.voucher(voucher(1_500n), 0n)).toMatchObject({ ok: true })
  })

  it('behavior: a waiting stream wakes when a voucher arrives, and gives up after its timeout', async () => {
    const { channel } = await opened()
    const started = Date.now()
    expect((await channel.waitForVoucher(100n, 50))?.accepted).toBe(100n)
    expect(Date.now() - started).toBeGreaterThanOrEqual(40)
    const waiting = channel.waitForVoucher(100n, 10_000)
    await channel.voucher(voucher(150n), 0n)
    expect((await waiting)?.accepted).toBe(150n)
  })

  it('behavior: the state survives the object being reset', async () => {
    const { state, channel } = await opened()
    await channel.voucher(voucher(300n), 0n, { cost: 120n, units: 2, challengeId: 'c' })
    const stub = env.CHANNEL_STATE.get(env.CHANNEL_STATE.idFromName(state.channelId))
    await runInDurableObject(stub, (_, ctx) => {
      try {
        ctx.abort('reset')
      } catch {
        // abort throws in the calling context; the next call gets a fresh instance.
      }
    }).catch(() => {})
    const fresh = channelStore(env.CHANNEL_STATE).channel(state.channelId)
    expect(await fresh.state()).toMatchObject({ accepted: 300n, spent: 120n, units: 2 })
    expect(await fresh.voucher(voucher(300n), 0n, { cost: 180n, units: 3, challengeId: 'c' })).toMatchObject({ ok: true })
  })
})

describe('PayerChannels', () => {
  it('behavior: lists the channels of one payer, each once', async () => {
    const store = channelStore(env.CHANNEL_STATE, env.PAYER_CHANNELS)
    const who = randomHex(20)
    const a = randomHex(32)
    const b = randomHex(32)
    await store.indexPayer(who, a)
    await store.indexPayer(who.toUpperCase().replace('0X', '0x'), b)
    await store.indexPayer(who, a)
    const listed = await env.PAYER_CHANNELS.get(env.PAYER_CHANNELS.idFromName(who)).list()
    expect(listed.map((c) => c.channelId).sort()).toEqual([a, b].sort())
  })
})
