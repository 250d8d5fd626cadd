/**
 * @module The payment effects a charge requires (primary remainder, splits, memos) and how observed
 * transfers (decoded calls or receipt logs) are matched against them (draft-tempo-charge-00,
 * "Split Payments", "Transaction Verification", "Hash Verification").
 */
import type { Address, Hex } from 'viem'
import { PaymentInsufficientError, VerificationFailedError } from '../../core/Errors.js'
import { isBoundMemo } from './memo.js'
import { splitTotal } from './schema.js'

/** The part of a charge request that decides which transfers must happen. */
export type Terms = {
  amount: string
  currency: string
  recipient: string
  methodDetails?:
    | {
        chainId?: number | undefined
        memo?: string | undefined
        splits?: readonly { amount: string; recipient: string; memo?: string | undefined }[] | undefined
      }
    | undefined
}

/** The challenge a payment must be attributed to. */
export type Binding = { realm: string; challengeId: string }

/**
 * How the primary transfer is tied to the challenge when the server set no memo of its own:
 * `required` (default) demands a challenge-bound attribution memo; `optional` also accepts a plain
 * transfer, which only the single use of its transaction hash ties to one challenge.
 */
export type Attribution = 'required' | 'optional'

/** What the memo of a transfer must be. */
export type MemoRule = { type: 'exact'; memo: string } | { type: 'bound'; binding: Binding } | { type: 'any' }

/** One transfer the payment must contain. */
export type ExpectedTransfer = { role: string; recipient: string; amount: bigint; memo: MemoRule }

/** One transfer observed in a transaction's calls or a receipt's logs. */
export type Effect = { token: Address; to: Address; amount: bigint; memo?: Hex | undefined }

/**
 * The transfers a charge requires: the primary recipient gets `amount - sum(splits)`, each split its amount.
 * @example
 * expectedTransfers(request, { realm, challengeId }) // [{ role: 'primary', recipient, amount: 950000n, memo: { type: 'bound', … } }, …]
 */
export function expectedTransfers(terms: Terms, binding: Binding, attribution: Attribution = 'required'): ExpectedTransfer[] {
  const splits = terms.methodDetails?.splits ?? []
  const primary = BigInt(terms.amount) - splitTotal(splits)
  if (primary <= 0n) throw new VerificationFailedError({ detail: 'the charge leaves nothing for the primary recipient' })
  const serverMemo = terms.methodDetails?.memo
  const memo: MemoRule = serverMemo
    ? { type: 'exact', memo: serverMemo }
    : attribution === 'required'
      ? { type: 'bound', binding }
      : { type: 'any' }
  return [
    { role: 'primary transfer', recipient: terms.recipient, amount: primary, memo },
    ...splits.map((split, i) => ({
      role: `split ${i}`,
      recipient: split.recipient,
      amount: BigInt(split.amount),
      memo: split.memo ? ({ type: 'exact', memo: split.memo } as const) : ({ type: 'any' } as const),
    })),
  ]
}

/**
 * Matches each expected transfer to a distinct observed one (order does not matter). Throws
 * PaymentInsufficientError when the only candidate pays less, VerificationFailedError otherwise.
 * @example
 * matchTransfers(effects, expected, { currency, noun: 'payment call' })
 */
export function matchTransfers(effects: readonly Effect[], expected: readonly ExpectedTransfer[], options: { currency: string; noun: string }): Effect[] {
  const used = new Set<number>()
  const matched: Effect[] = []
  // Memo-specific expectations first, so a wildcard cannot take the transfer a memo rule needs.
  const ordered = [...expected].sort((a, b) => Number(a.memo.type === 'any') - Number(b.memo.type === 'any'))
  for (const want of ordered) {
    const candidate = (effect: Effect, i: number) =>
      !used.has(i) && sameAddress(effect.token, options.currency) && sameAddress(effect.to, want.recipient) && memoMatches(effect.memo, want.memo)
    const index = effects.findIndex((effect, i) => candidate(effect, i) && effect.amount === want.amount)
    if (index === -1) {
      const short = effects.find((effect, i) => candidate(effect, i) && effect.amount < want.amount)
      if (short) {
        throw new PaymentInsufficientError({ detail: `${want.role} pays ${short.amount} base units, ${want.amount} are due` })
      }
      throw new VerificationFailedError({ detail: `no matching ${options.noun} found for the ${want.role} (${want.amount} base units to ${want.recipient}${describe(want.memo)})` })
    }
    used.add(index)
    matched.push(effects[index]!)
  }
  return matched
}

function memoMatches(memo: Hex | undefined, rule: MemoRule): boolean {
  if (rule.type === 'any') return true
  if (memo === undefined) return false
  if (rule.type === 'exact') return memo.toLowerCase() === rule.memo.toLowerCase()
  return isBoundMemo(memo, rule.binding)
}

function describe(rule: MemoRule): string {
  if (rule.type === 'exact') return ` with memo ${rule.memo}`
  if (rule.type === 'bound') return ' with a memo bound to this challenge'
  return ''
}

/**
 * Compares two addresses by their 20 bytes.
 * @example
 * sameAddress('0xAbC…', '0xabc…') // true
 */
export function sameAddress(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase()
}
