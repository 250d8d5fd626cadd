import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import * as v from 'valibot'
import * as ChannelAccount from '../../src/core/ChannelAccount.js'
import { InsufficientBalanceError, problemTypeUri } from '../../src/core/Errors.js'
import * as Receipt from '../../src/core/Receipt.js'
import * as Session from '../../src/core/Session.js'
import * as VoucherPacing from '../../src/core/VoucherPacing.js'

const descriptor = {
  payer: '0xAAaaAAaaAAaaAAaaAAaaAAaaAAaaAAaaAAaaAAaa',
  payee: '0x3333333333333333333333333333333333333333',
  operator: '0x0000000000000000000000000000000000000000',
  token: '0x20c0000000000000000000000000000000000000',
  salt: `0x${'11'.repeat(32)}`,
  authorizedSigner: '0x0000000000000000000000000000000000000000',
  expiringNonceHash: `0x${'22'.repeat(32)}`,
}
const channelId = `0x${'AB'.repeat(32)}`

describe('Session.Payload', () => {
  it('behavior: parses each action and normalises hex to lowercase', () => {
    const voucher = v.parse(Session.Payload, { action: 'voucher', channelId, descriptor, cumulativeAmount: '250000', signature: `0x${'0a'.repeat(65)}` })
    expect(voucher).toMatchObject({ action: 'voucher', channelId: channelId.toLowerCase(), descriptor: { payer: descriptor.payer.toLowerCase() } })
    expect(v.is(Session.Payload, { action: 'close', channelId, descriptor, cumulativeAmount: '1', signature: `0x${'0a'.repeat(64)}` })).toBe(true)
    expect(v.is(Session.Payload, { action: 'topUp', type: 'transaction', channelId, descriptor, transaction: '0x76aa', additionalDeposit: '5' })).toBe(true)
    expect(
      v.is(Session.Payload, { action: 'open', type: 'transaction', channelId, descriptor, transaction: '0x76aa', cumulativeAmount: '0', signature: `0x${'0a'.repeat(65)}` }),
    ).toBe(true)
  })

  it('error: an unknown action, a uint96 overflow, a padded amount, a short signature or a missing descriptor', () => {
    const base = { channelId, descriptor, cumulativeAmount: '1', signature: `0x${'0a'.repeat(65)}` }
    expect(v.is(Session.Payload, { ...base, action: 'settle' })).toBe(false)
    expect(v.is(Session.Payload, { ...base, action: 'voucher', cumulativeAmount: (1n << 96n).toString() })).toBe(false)
    expect(v.is(Session.Payload, { ...base, action: 'voucher', cumulativeAmount: ((1n << 96n) - 1n).toString() })).toBe(true)
    expect(v.is(Session.Payload, { ...base, action: 'voucher', cumulativeAmount: '01' })).toBe(false)
    expect(v.is(Session.Payload, { ...base, action: 'voucher', signature: `0x${'0a'.repeat(63)}` })).toBe(false)
    expect(v.is(Session.Payload, { ...base, action: 'voucher', descriptor: undefined })).toBe(false)
  })
})

describe('Session.PayloadV1', () => {
  it('behavior: v1 payloads name the channel by id alone, with uint128 amounts; a descriptor sent anyway is dropped', () => {
    const base = { channelId, cumulativeAmount: '1', signature: `0x${'0a'.repeat(65)}` }
    const max = ((1n << 128n) - 1n).toString()
    expect(v.parse(Session.PayloadV1, { ...base, action: 'voucher', cumulativeAmount: max, descriptor })).toEqual({ ...base, channelId: channelId.toLowerCase(), action: 'voucher', cumulativeAmount: max })
    expect(v.is(Session.PayloadV1, { ...base, action: 'close' })).toBe(true)
    expect(v.is(Session.PayloadV1, { action: 'topUp', type: 'transaction', channelId, transaction: '0x76aa', additionalDeposit: max })).toBe(true)
    expect(v.is(Session.PayloadV1, { ...base, action: 'open', type: 'transaction', transaction: '0x76aa', authorizedSigner: descriptor.payer })).toBe(true)
    // A v2 payload needs its descriptor and stays within uint96.
    expect(v.is(Session.Payload, { ...base, action: 'voucher' })).toBe(false)
  })

  it('error: beyond uint128, a padded amount, or an unknown action', () => {
    const base = { channelId, cumulativeAmount: '1', signature: `0x${'0a'.repeat(65)}` }
    expect(v.is(Session.PayloadV1, { ...base, action: 'voucher', cumulativeAmount: (1n << 128n).toString() })).toBe(false)
    expect(v.is(Session.PayloadV1, { ...base, action: 'voucher', cumulativeAmount: '007' })).toBe(false)
    expect(v.is(Session.PayloadV1, { ...base, action: 'settle' })).toBe(false)
  })
})

describe('Session.Request', () => {
  it('behavior: the spec example parses (v2 with chain id and escrow)', () => {
    const request = v.parse(Session.Request, {
      amount: '25',
      unitType: 'llm_token',
      suggestedDeposit: '10000000',
      currency: '0x20c0000000000000000000000000000000000000',
      recipient: '0x742d35cc6634c0532925a3b844bc9e7595f8fe00',
      methodDetails: { escrowContract: '0x1234567890abcdef1234567890abcdef12345678', chainId: 4217, sessionProtocol: 'v2' },
    })
    expect(request.methodDetails.chainId).toBe(4217)
    expect(v.is(Session.Request, { ...request, methodDetails: { ...request.methodDetails, sessionProtocol: 'v1' } })).toBe(true)
    expect(v.is(Session.Request, { ...request, methodDetails: { ...request.methodDetails, sessionProtocol: 'v3' } })).toBe(false)
  })
})

describe('Session.receipt', () => {
  it('behavior: reference is the channel id; the receipt encodes as a Payment-Receipt', () => {
    const receipt = Session.receipt({ challengeId: 'c1', channelId: '0xab', acceptedCumulative: 250000n, spent: 237500n, units: 500 })
    expect(receipt).toMatchObject({ method: 'tempo', intent: 'session', status: 'success', reference: '0xab', acceptedCumulative: '250000', spent: '237500', units: 500 })
    expect(Receipt.deserialize(Receipt.serialize(receipt))).toEqual(receipt)
    expect(Session.receiptEvent(receipt)).toMatch(/^event: payment-receipt\ndata: \{.*\}\n\n$/)
  })

  it('behavior: SSE events carry the spec fields, one data line per text line', () => {
    expect(Session.needVoucherEvent({ channelId: '0xab', requiredCumulative: '2', acceptedCumulative: '1', deposit: '9' })).toBe(
      'event: payment-need-voucher\ndata: {"channelId":"0xab","requiredCumulative":"2","acceptedCumulative":"1","deposit":"9"}\n\n',
    )
    expect(Session.messageEvent('a\nb')).toBe('event: message\ndata: a\ndata: b\n\n')
  })
})

describe('Session snapshot', () => {
  it('behavior: round-trips through the header form', () => {
    const snapshot = v.parse(Session.Snapshot, {
      acceptedCumulative: '10',
      chainId: 42431,
      channelId,
      deposit: '100',
      descriptor,
      escrow: '0x4d50500000000000000000000000000000000000',
      requiredCumulative: '11',
      settled: '0',
      spent: '10',
    })
    expect(Session.deserializeSnapshot(Session.serializeSnapshot(snapshot))).toEqual(snapshot)
    expect(() => Session.deserializeSnapshot('e30')).toThrow()
  })
})

describe('ChannelAccount', () => {
  const account = (): ChannelAccount.ChannelAccount => ({
    channelId: channelId.toLowerCase() as `0x${string}`,
    chainId: 42431,
    escrow: '0x4d50500000000000000000000000000000000000',
    descriptor: v.parse(Session.Descriptor, descriptor),
    deposit: 1000n,
    settled: 40n,
    closeRequestedAt: 0n,
    status: 'open',
    accepted: 100n,
    acceptedSignature: undefined,
    spent: 30n,
    units: 3,
  })

  it('behavior: capture is max(spent, settled)', () => {
    expect(ChannelAccount.captureAmount(account())).toBe(40n)
    expect(ChannelAccount.captureAmount({ ...account(), spent: 90n })).toBe(90n)
  })

  it('error: a charge beyond the balance names the top-up needed, with its problem type', () => {
    let caught: unknown
    try {
      ChannelAccount.checkCharge(account(), 100n)
    } catch (error) {
      caught = error
    }
    expect(caught).toBeInstanceOf(InsufficientBalanceError)
    const problem = (caught as InsufficientBalanceError).toProblem()
    expect(problem).toMatchObject({ type: problemTypeUri('session/insufficient-balance'), status: 402, requiredTopUp: '30', channelId: channelId.toLowerCase() })
    expect(problem.type).toBe('https://paymentauth.org/problems/session/insufficient-balance')
  })

  it('behavior: a failure survives the trip to plain data and back', () => {
    const error = ChannelAccount.fromFailure({ problem: 'session/insufficient-balance', detail: 'x', requiredTopUp: '7' }, '0xab')
    expect(error).toBeInstanceOf(InsufficientBalanceError)
    expect(ChannelAccount.toFailure(error)).toEqual({ problem: 'session/insufficient-balance', detail: 'x', requiredTopUp: '7' })
  })
})

describe('VoucherPacing', () => {
  it('behavior: 10 at once, then one per 100 ms waiting at most 1 s, then refused with Retry-After; a second later it admits again', () => {
    let due = 0
    const at = 1_000_000
    const waits: number[] = []
    for (let i = 0; i < 20; i++) {
      const decision = VoucherPacing.pace(due, at)
      if (!decision.admitted) throw new Error(`refused at ${i}`)
      waits.push(decision.waitMs)
      due = decision.due
    }
    expect(waits.slice(0, 10)).toEqual(Array(10).fill(0))
    expect(waits.slice(10).map(Math.round)).toEqual([100, 200, 300, 400, 500, 600, 700, 800, 900, 1000])
    expect(VoucherPacing.pace(due, at)).toEqual({ admitted: false, retryAfterSeconds: 1 })
    // Refusals keep no state: the rate recovers with time alone (the queue drains at 10 a second).
    expect(VoucherPacing.pace(due, at + 1_000)).toMatchObject({ admitted: true, waitMs: expect.closeTo(100, 6) })
    expect(VoucherPacing.pace(due, at + 2_900)).toMatchObject({ admitted: true, waitMs: 0 })
  })

  it('property: whatever the arrival times, at most perSecond·t + burst submissions are processed within any t seconds', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 200 }), { minLength: 1, maxLength: 200 }), (gaps) => {
        let due = 0
        let now = 0
        const processed: number[] = []
        for (const gap of gaps) {
          now += gap
          const decision = VoucherPacing.pace(due, now)
          if (!decision.admitted) continue
          due = decision.due
          processed.push(now + decision.waitMs)
        }
        const times = processed.sort((a, b) => a - b)
        for (let i = 0; i < times.length; i++) {
          for (let j = i; j < times.length; j++) {
            const span = times[j]! - times[i]!
            expect(j - i + 1).toBeLessThanOrEqual(Math.floor((span * VoucherPacing.defaultRule.perSecond) / 1000 + 1e-9) + VoucherPacing.defaultRule.burst)
          }
        }
      }),
    )
  })
})
