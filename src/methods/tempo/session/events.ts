/**
 * @module Reads the escrow's events (the channel reserve's, or a v1 stream channel's) from a transaction receipt:
 * exactly one event of the expected kind, emitted by the escrow, for the expected channel (draft-tempo-session-00, "Open Verification": the
 * emitted open receipt; "Cooperative Close").
 */
import { type Address, type Hex, decodeEventLog } from 'viem'
import { VerificationFailedError } from '../../../core/Errors.js'
import type { ReceiptLike } from '../receipt.js'
import { escrowAbi } from './abi.js'
import { streamChannelAbi } from './v1.js'

type EventName = 'ChannelOpened' | 'TopUp' | 'Settled' | 'ChannelClosed' | 'CloseRequested'

/** Where the event must come from; `protocol` (default `v2`) picks the escrow's event types. */
export type EventScope = { escrow: Address; channelId: Hex; protocol?: 'v1' | 'v2' | undefined }

function single(receipt: ReceiptLike, name: EventName, at: EventScope): Record<string, unknown> {
  if (receipt.status !== 'success' && receipt.status !== '0x1') {
    throw new VerificationFailedError({ detail: `transaction ${receipt.transactionHash} reverted` })
  }
  const found: Record<string, unknown>[] = []
  for (const log of receipt.logs) {
    if (log.address.toLowerCase() !== at.escrow.toLowerCase()) continue
    try {
      const event = decodeEventLog({ abi: at.protocol === 'v1' ? streamChannelAbi : escrowAbi, topics: log.topics as [Hex, ...Hex[]], data: log.data as Hex, strict: true })
      const args = event.args as Record<string, unknown> & { channelId: Hex }
      if (event.eventName === name && args.channelId.toLowerCase() === at.channelId.toLowerCase()) found.push(args)
    } catch {
      // Another event of the escrow, or not one of ours.
    }
  }
  if (found.length !== 1) {
    throw new VerificationFailedError({ detail: `transaction ${receipt.transactionHash} has ${found.length} ${name} events for the channel, expected 1` })
  }
  return found[0]!
}

/**
 * The `ChannelOpened` event of an open transaction.
 * @example
 * const { deposit, expiringNonceHash } = channelOpenedIn(receipt, { escrow, channelId })
 */
export function channelOpenedIn(receipt: ReceiptLike, at: EventScope) {
  const args = single(receipt, 'ChannelOpened', at)
  return args as {
    payer: Address
    payee: Address
    operator: Address
    token: Address
    authorizedSigner: Address
    salt: Hex
    expiringNonceHash: Hex
    deposit: bigint
  }
}

/**
 * The `TopUp` event of a topUp transaction.
 * @example
 * const { additionalDeposit, newDeposit } = topUpIn(receipt, { escrow, channelId })
 */
export function topUpIn(receipt: ReceiptLike, at: EventScope): { additionalDeposit: bigint; newDeposit: bigint } {
  const args = single(receipt, 'TopUp', at)
  return { additionalDeposit: args.additionalDeposit as bigint, newDeposit: args.newDeposit as bigint }
}

/**
 * The `Settled` event of a settle transaction.
 * @example
 * const { newSettled } = settledIn(receipt, { escrow, channelId })
 */
export function settledIn(receipt: ReceiptLike, at: EventScope): { cumulativeAmount: bigint; deltaPaid: bigint; newSettled: bigint } {
  const args = single(receipt, 'Settled', at)
  return { cumulativeAmount: args.cumulativeAmount as bigint, deltaPaid: args.deltaPaid as bigint, newSettled: args.newSettled as bigint }
}

/**
 * The `ChannelClosed` event of a close (or withdraw) transaction.
 * @example
 * const { settledToPayee, refundedToPayer } = channelClosedIn(receipt, { escrow, channelId })
 */
export function channelClosedIn(receipt: ReceiptLike, at: EventScope): { settledToPayee: bigint; refundedToPayer: bigint } {
  const args = single(receipt, 'ChannelClosed', at)
  return { settledToPayee: args.settledToPayee as bigint, refundedToPayer: args.refundedToPayer as bigint }
}

/**
 * The `CloseRequested` event of a requestClose transaction.
 * @example
 * const { closeGraceEnd } = closeRequestedIn(receipt, { escrow, channelId })
 */
export function closeRequestedIn(receipt: ReceiptLike, at: EventScope): { closeGraceEnd: bigint } {
  return { closeGraceEnd: single(receipt, 'CloseRequested', at).closeGraceEnd as bigint }
}
