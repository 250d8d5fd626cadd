/** @module Decimal prices to Stripe amounts in a currency's smallest unit, with exact integer arithmetic. */

/**
 * Raised when a price cannot be expressed as a Stripe amount in its currency.
 * @example
 * throw new CurrencyError('…')
 */
export class CurrencyError extends Error {
  override readonly name = 'CurrencyError'
}

// Stripe "Supported currencies": these are charged in whole units (no minor unit in the API amount).
const zeroDecimal = new Set(['bif', 'clp', 'djf', 'gnf', 'jpy', 'kmf', 'krw', 'mga', 'pyg', 'rwf', 'ugx', 'vnd', 'vuv', 'xaf', 'xof', 'xpf'])
// ISO 4217 exponent 3; Stripe requires the last digit of the amount to be 0 for these.
const threeDecimal = new Set(['bhd', 'jod', 'kwd', 'omr', 'tnd'])
// Zero-decimal in ISO 4217, but Stripe takes the amount with two decimals, which must be 00.
const wholeUnitsOnly = new Set(['isk'])

/**
 * The number of decimals of a currency's amounts in Stripe's API.
 * @example
 * exponent('usd') // 2
 * exponent('JPY') // 0
 */
export function exponent(currency: string): number {
  const code = normalize(currency)
  if (zeroDecimal.has(code)) return 0
  if (threeDecimal.has(code)) return 3
  return 2
}

/**
 * Lowercases a three-letter ISO 4217 code (Stripe wants lowercase); throws on anything else.
 * @example
 * normalize('USD') // 'usd'
 */
export function normalize(currency: string): string {
  if (!/^[A-Za-z]{3}$/.test(currency)) throw new CurrencyError(`"${currency}" is not a three-letter ISO 4217 currency code`)
  return currency.toLowerCase()
}

/**
 * Converts a decimal price ("5.00", "0.5", "1200") to the integer amount Stripe charges, as a string.
 * Refuses negative, zero, malformed and over-precise prices instead of rounding.
 * @example
 * toMinorUnits('5.00', 'usd') // '500'
 * toMinorUnits('1200', 'jpy') // '1200'
 * toMinorUnits('1.25', 'kwd') // '1250'
 */
export function toMinorUnits(price: string, currency: string): string {
  const code = normalize(currency)
  const match = /^(\d+)(?:\.(\d+))?$/.exec(price)
  if (!match) throw new CurrencyError(`price "${price}" must be a plain decimal such as "5.00"`)
  const whole = match[1]!
  const fraction = (match[2] ?? '').replace(/0+$/, '')
  const places = exponent(code)
  if (fraction.length > places) {
    throw new CurrencyError(`price "${price}" has more decimals than ${code.toUpperCase()} allows (${places})`)
  }
  const amount = BigInt(whole) * 10n ** BigInt(places) + BigInt(fraction.padEnd(places, '0') || '0')
  if (amount <= 0n) throw new CurrencyError(`price "${price}" must be greater than zero`)
  if (threeDecimal.has(code) && amount % 10n !== 0n) {
    throw new CurrencyError(`Stripe charges ${code.toUpperCase()} in multiples of 0.01: "${price}" cannot be charged`)
  }
  if (wholeUnitsOnly.has(code) && amount % 100n !== 0n) {
    throw new CurrencyError(`Stripe charges ${code.toUpperCase()} in whole units: "${price}" cannot be charged`)
  }
  // Stripe itself caps amounts at eight digits in most currencies; 15 digits keeps every amount exact as a number.
  if (amount >= 10n ** 15n) throw new CurrencyError(`price "${price}" is too large`)
  return amount.toString()
}
