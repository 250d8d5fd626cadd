/** @module Base-unit amounts as decimal text for people (the 402's detail), exactly, without floating point. */

/**
 * An integer amount of base units as a decimal in display units, trailing zeros dropped.
 * @example
 * Amount.display('250000', 6) // '0.25'
 * Amount.display('500', 2) // '5'
 */
export function display(amount: string | bigint, decimals: number): string {
  const digits = BigInt(amount).toString().padStart(decimals + 1, '0')
  const whole = digits.slice(0, digits.length - decimals)
  const fraction = digits.slice(digits.length - decimals).replace(/0+$/, '')
  return fraction ? `${whole}.${fraction}` : whole
}
