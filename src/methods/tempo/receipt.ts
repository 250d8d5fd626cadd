/**
 * @module Settles a charge from a transaction receipt: success status, then `Transfer`/`TransferWithMemo`
 * logs emitted by the `currency` token that pay every expected transfer (draft-tempo-charge-00, "Hash Verification").
 */
import { type Address, type Hex, decodeEventLog } from 'viem'
import { VerificationFailedError } from '../../core/Errors.js'
import { tip20 } from './abi.js'
import { type Attribution, type Binding, type Effect, type Terms, expectedTransfers, matchTransfers, sameAddress } from './transfers.js'

/** The receipt fields the check reads (a viem receipt or raw JSON-RPC receipt both fit). */
export type ReceiptLike = {
  transactionHash: string
  /** `success`/`reverted` (viem) or `0x1`/`0x0` (JSON-RPC). */
  status: string
  logs: readonly { address: string; topics: readonly string[]; data: string }[]
}

const tip20Events = tip20.filter((item) => item.type === 'event' && (item.name === 'Transfer' || item.name === 'TransferWithMemo'))

/**
 * The transfers a receipt's logs show. TIP-20 `transferWithMemo` emits a `Transfer` followed by its
 * `TransferWithMemo` twin; the pair counts once, as a transfer with that memo.
 * @example
 * const effects = receiptEffects(receipt.logs)
 */
export function receiptEffects(logs: ReceiptLike['logs']): Effect[] {
  const decoded = logs.map((log) => {
    try {
      const event = decodeEventLog({ abi: tip20Events, topics: log.topics as [Hex, ...Hex[]], data: log.data as Hex, strict: true })
      const args = event.args as { from: Address; to: Address; amount: bigint; memo?: Hex }
      return { kind: event.eventName, token: log.address as Address, ...args }
    } catch {
      return undefined
    }
  })
  const effects: Effect[] = []
  for (let i = 0; i < decoded.length; i++) {
    const log = decoded[i]
    if (!log) continue
    const next = decoded[i + 1]
    const twin =
      log.kind === 'Transfer' &&
      next?.kind === 'TransferWithMemo' &&
      sameAddress(next.token, log.token) &&
      sameAddress(next.from, log.from) &&
      sameAddress(next.to, log.to) &&
      next.amount === log.amount
    if (twin) continue
    effects.push({ token: log.token, to: log.to, amount: log.amount, ...(log.kind === 'TransferWithMemo' ? { memo: log.memo } : {}) })
  }
  return effects
}

/**
 * Checks that a receipt settles the charge; returns the transaction hash as the settlement reference.
 * @example
 * const { reference } = checkReceipt(receipt, { terms: request, binding: { realm, challengeId } })
 */
export function checkReceipt(receipt: ReceiptLike, options: { terms: Terms; binding: Binding; attribution?: Attribution | undefined }): { reference: string } {
  if (receipt.status !== 'success' && receipt.status !== '0x1') {
    throw new VerificationFailedError({ detail: `transaction ${receipt.transactionHash} reverted` })
  }
  const { terms } = options
  matchTransfers(receiptEffects(receipt.logs), expectedTransfers(terms, options.binding, options.attribution), {
    currency: terms.currency,
    noun: 'transfer',
  })
  return { reference: receipt.transactionHash }
}
