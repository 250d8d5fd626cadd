import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ConfigurationError, PaymentUnavailableError, VerificationFailedError } from '../../src/core/Errors.js'
import { encodeForm, redact, toPaymentError } from '../../src/methods/stripe/api.js'
import { CurrencyError, exponent, toMinorUnits } from '../../src/methods/stripe/currency.js'
import { assertReplayAllowed, attribute } from '../../src/methods/stripe/external-id.js'

describe('toMinorUnits', () => {
  it('behavior: converts with each currency\'s exponent, case-insensitively', () => {
    expect(toMinorUnits('5.00', 'usd')).toBe('500')
    expect(toMinorUnits('0.5', 'EUR')).toBe('50')
    expect(toMinorUnits('19.99', 'gbp')).toBe('1999')
    expect(toMinorUnits('1200', 'jpy')).toBe('1200')
    expect(toMinorUnits('1200.00', 'KRW')).toBe('1200')
    expect(toMinorUnits('1.25', 'kwd')).toBe('1250')
    expect(toMinorUnits('3.5', 'bhd')).toBe('3500')
    expect(toMinorUnits('150', 'isk')).toBe('15000')
    expect(exponent('jpy')).toBe(0)
    expect(exponent('JOD')).toBe(3)
    expect(exponent('chf')).toBe(2)
  })

  it('error: refuses what cannot be charged exactly instead of rounding', () => {
    for (const [price, currency] of [
      ['0.001', 'usd'],
      ['1.5', 'jpy'],
      ['1.234', 'kwd'],
      ['0', 'usd'],
      ['0.00', 'usd'],
      ['-1', 'usd'],
      ['1e3', 'usd'],
      ['1,00', 'eur'],
      [' 1', 'usd'],
      ['150.5', 'isk'],
      ['1', 'usdc'],
      ['1', '0x20c0000000000000000000000000000000000000'],
    ] as const) {
      expect(() => toMinorUnits(price, currency), `${price} ${currency}`).toThrow(CurrencyError)
    }
  })

  it('property: cents round-trip exactly for two-decimal currencies', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: 10n ** 14n }), (cents) => {
        const price = `${cents / 100n}.${(cents % 100n).toString().padStart(2, '0')}`
        expect(toMinorUnits(price, 'usd')).toBe(cents.toString())
      }),
    )
  })
})

describe('toPaymentError', () => {
  const headers = new Headers()
  it('behavior: declines and refused tokens are the payer\'s (402) with Stripe\'s reason', () => {
    const decline = toPaymentError(402, { error: { type: 'card_error', code: 'card_declined', decline_code: 'insufficient_funds', message: 'Your card has insufficient funds.' } }, headers)
    expect(decline).toBeInstanceOf(VerificationFailedError)
    expect(decline.detail).toBe('Stripe declined the payment: card_declined/insufficient_funds: Your card has insufficient funds.')
    const token = toPaymentError(400, { error: { type: 'invalid_request_error', code: 'resource_missing', param: 'shared_payment_granted_token', message: "No such shared_payment_granted_token: 'spt_secret123'" } }, headers)
    expect(token).toBeInstanceOf(VerificationFailedError)
    expect(token.detail).not.toContain('spt_secret123')
    expect(toPaymentError(400, { error: { type: 'idempotency_error', message: "Keys … 'abc_spt_x'" } }, headers)).toBeInstanceOf(VerificationFailedError)
  })

  it('behavior: rate limits, conflicts, 5xx and unreadable errors are transient (503)', () => {
    const limited = toPaymentError(429, { error: { type: 'invalid_request_error', code: 'rate_limit' } }, new Headers({ 'retry-after': '7' }))
    expect(limited).toBeInstanceOf(PaymentUnavailableError)
    expect(limited.retryAfter).toBe(7)
    for (const status of [409, 424, 500, 502, 503, 504]) {
      expect(toPaymentError(status, undefined, headers), String(status)).toBeInstanceOf(PaymentUnavailableError)
    }
  })

  it('behavior: a rejected key or server-set parameter is a configuration fault whose detail stays out of the answer', () => {
    const key = toPaymentError(401, { error: { type: 'invalid_request_error', message: 'Invalid API Key provided: sk_test_abc123' } }, headers)
    expect(key).toBeInstanceOf(ConfigurationError)
    expect(key.detail).not.toContain('sk_test_abc123')
    expect(JSON.stringify(key.toProblem())).not.toContain('API Key')
    expect(toPaymentError(403, undefined, headers)).toBeInstanceOf(ConfigurationError)
    expect(toPaymentError(400, { error: { type: 'invalid_request_error', code: 'amount_too_small', param: 'amount' } }, headers)).toBeInstanceOf(ConfigurationError)
    expect(toPaymentError(400, { error: { type: 'invalid_request_error', param: 'transfer_data[destination]' } }, headers)).toBeInstanceOf(ConfigurationError)
  })

  it('behavior: redact removes keys, tokens and client secrets', () => {
    expect(redact('key sk_live_ABC, token spt_1N4Z, secret pi_123_secret_456, rk_test_x')).toBe('key sk_…, token spt_…, secret [client secret], rk_…')
  })
})

describe('encodeForm', () => {
  it('behavior: nests in bracket notation and leaves out undefined', () => {
    const form = new URLSearchParams(encodeForm({ amount: 500, confirm: true, skip: undefined, automatic_payment_methods: { enabled: true, allow_redirects: 'never' }, metadata: { challenge_id: 'a&b=c' } }))
    expect([...form]).toEqual([
      ['amount', '500'],
      ['confirm', 'true'],
      ['automatic_payment_methods[enabled]', 'true'],
      ['automatic_payment_methods[allow_redirects]', 'never'],
      ['metadata[challenge_id]', 'a&b=c'],
    ])
  })
})

describe('attribution', () => {
  it('behavior: the receipt externalId comes from the bound request only', () => {
    expect(attribute({ externalId: 'order-1' }, { externalId: 'order-1' })).toBe('order-1')
    expect(attribute({}, { externalId: 'attacker' })).toBeUndefined()
    expect(() => attribute({ externalId: 'order-1' }, { externalId: 'order-2' })).toThrow(/differs/)
    expect(() => attribute({ externalId: 'order-1' }, {})).toThrow(/must echo/)
  })

  it('behavior: a replayed PaymentIntent pays only a resumed attempt', () => {
    expect(() => assertReplayAllowed({ replayed: true, resumed: false })).toThrow(VerificationFailedError)
    expect(() => assertReplayAllowed({ replayed: true, resumed: true })).not.toThrow()
    expect(() => assertReplayAllowed({ replayed: false, resumed: false })).not.toThrow()
  })
})
