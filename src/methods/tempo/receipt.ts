/**
 * @module Settles a charge from a transaction receipt: success status, then `Transfer`/`TransferWithMemo`
 * logs emitted by the `currency` token that pay every expected transfer (draft-tempo-charge-00, "Hash Verification").
 */
import type { Address, Hex } from 'viem'
import { VerificationFailedError } from '../../core/Errors.js'
import { type Attribution, type Binding, type Effect, type Terms, expectedTransfers, matchTransfers, sameAddress } from './transfers.js'

/** The receipt fields the check reads (a viem receipt or raw JSON-RPC receipt both fit). */
export type ReceiptLike = {
  transactionHash: string
  /** `success`/`reverted` (viem) or `0x1`/`0x0` (JSON-RPC). */
  status: string
  logs: readonly { address: string; topics: readonly string[]; data: string }[]
}

/**
 * The topic0 of TIP-20 `Transfer(address,address,uint256)` and `TransferWithMemo(address,address,uint256,bytes32)`
 * (keccak256 of the signatures, as viem's `encodeEventTopics` gives them for the events in ./abi.ts): written out, so
 * reading a receipt hashes nothing.
 * @example
 * log.topics[0] === transferTopic
 */
export const transferTopic = '0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef'
/** See `transferTopic`. */
export const transferWithMemoTopic = '0x57bc7354aa85aed339e000bccffabbc529466af35f0772c8f8ee1145927de7f0'

type Decoded = { kind: 'Transfer' | 'TransferWithMemo'; token: Address; from: Address; to: Address; amount: bigint; memo?: Hex | undefined }

const word = /^0x[0-9a-fA-F]{64}$/
const addressWord = /^0x0{24}[0-9a-fA-F]{40}$/

// One log as a TIP-20 transfer event, decoded strictly (the exact topics and one 32-byte amount), or undefined.
function decodeLog(log: ReceiptLike['logs'][number]): Decoded | undefined {
  const [topic, from, to, memo] = log.topics
  const kind = topic?.toLowerCase() === transferTopic ? 'Transfer' : topic?.toLowerCase() === transferWithMemoTopic ? 'TransferWithMemo' : undefined
  if (!kind || log.topics.length !== (kind === 'Transfer' ? 3 : 4)) return undefined
  if (!addressWord.test(from!) || !addressWord.test(to!) || !word.test(log.data) || (memo !== undefined && !word.test(memo))) return undefined
  return {
    kind,
    token: log.address as Address,
    from: `0x${from!.slice(26)}` as Address,
    to: `0x${to!.slice(26)}` as Address,
    amount: BigInt(log.data),
    ...(memo !== undefined ? { memo: memo as Hex } : {}),
  }
}

/**
 * The transfers a receipt's logs show (recipients in lowercase hex). TIP-20 `transferWithMemo` emits a `Transfer` followed by its
 * `TransferWithMemo` twin; the pair counts once, as a transfer with that memo.
 * @example
 * const effects = receiptEffects(receipt.logs)
 */
export function receiptEffects(logs: ReceiptLike['logs']): Effect[] {
  const decoded = logs.map(decodeLog)
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
