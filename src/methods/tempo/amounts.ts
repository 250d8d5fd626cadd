/** @module Decimal token amounts to base units, exactly (never through floating point). */
import { parseUnits } from 'viem'

/**
 * Raised when a configured amount is not a plain decimal or has more digits than the token.
 * @example
 * throw new AmountError('…')
 */
export class AmountError extends Error {
  override readonly name = 'AmountError'
}

/**
 * Converts a decimal string in token units to base units; refuses signs, exponents and excess precision
 * (viem's parseUnits would round it away).
 * @example
 * toBaseUnits('0.01', 6) // 10000n
 */
export function toBaseUnits(amount: string, decimals: number): bigint {
  const match = /^(0|[1-9][0-9]*)(?:\.([0-9]+))?$/.exec(amount)
  if (!match) throw new AmountError(`"${amount}" is not a plain decimal amount`)
  if ((match[2]?.length ?? 0) > decimals) throw new AmountError(`"${amount}" has more than ${decimals} decimal places`)
  return parseUnits(amount, decimals)
}
