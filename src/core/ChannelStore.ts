/** @module Per-channel session state, as the session flow sees it (implemented by the ChannelState Durable Object). */
import type { Accepted, ChannelAccount, Failure, SignedVoucher } from './ChannelAccount.js'
import type { Descriptor } from './Session.js'
import type { Rule } from './VoucherPacing.js'

/** A channel's state as the chain reported it on open, topUp or close. */
export type ChainState = {
  channelId: `0x${string}`
  chainId: number
  escrow: `0x${string}`
  descriptor: Descriptor
  deposit: bigint
  settled: bigint
  closeRequestedAt: bigint
}

/** One unit of paid work to record: its cost, its units, and the (challenge, Idempotency-Key) it answers. */
export type Charge = {
  cost: bigint
  units: number
  challengeId: string
  /** The request's Idempotency-Key; a second charge with the same (challenge, key) is not counted again. */
  idempotencyKey?: string | undefined
}

/** The outcome of a channel call: the channel after it and a value, or the session failure as plain data. */
export type Result<T> = { ok: true; account: ChannelAccount; value: T } | { ok: false; failure: Failure }

/** How a stream's wait for a voucher ended: the channel then, and whether a newer stream on the channel replaced it. */
export type StreamWait = { account: ChannelAccount | undefined; superseded: boolean }

/** A voucher kept for settlement. */
export type StoredVoucher = { cumulative: bigint; signature: `0x${string}` }

/** One channel's state; every call is atomic and serialized per channel. */
export interface Channel {
  /** The channel, or undefined when never opened here. */
  state(): Promise<ChannelAccount | undefined>
  /** Records a verified open and accepts its first voucher. */
  open(chain: ChainState, voucher: SignedVoucher, minDelta: bigint): Promise<Result<Accepted>>
  /** Accepts a voucher and, with it, charges for the work it pays for; `rate` limits submissions (default 10 a second, `null` off). */
  voucher(voucher: SignedVoucher, minDelta: bigint, charge?: Charge | undefined, rate?: Rule | null | undefined): Promise<Result<{ accepted: Accepted; duplicate: boolean }>>
  /** Charges out of the accepted vouchers; `duplicate` when this (challenge, key) was charged before. */
  charge(charge: Charge): Promise<Result<{ duplicate: boolean }>>
  /** Gives back a charge whose work was not delivered. */
  refund(charge: Charge): Promise<Result<null>>
  /** Records a verified topUp. */
  topUp(chain: ChainState): Promise<Result<null>>
  /**
   * Checks a close voucher and stops new work; answers what to capture and the voucher to close with. With
   * `paysVoucher` (v1: close pays the whole voucher) that voucher is the highest one not above what was consumed.
   */
  beginClose(voucher: SignedVoucher, options?: { paysVoucher?: boolean | undefined } | undefined): Promise<Result<{ capture: bigint; voucher: StoredVoucher }>>
  /** The close did not go through: serve again. */
  abortClose(): Promise<void>
  /** Records the mined close. */
  finishClose(settled: bigint, txHash: `0x${string}`): Promise<Result<null>>
  /** Waits (up to `timeoutMs`) for the accepted amount to rise above `above`, or the channel to stop serving. */
  waitForVoucher(above: bigint, timeoutMs: number): Promise<ChannelAccount | undefined>
  /** Registers a new stream; an older stream waiting for a voucher stops waiting. Answers the stream's number. */
  beginStream(): Promise<number>
  /** `waitForVoucher` for stream `stream`, which also ends (`superseded`) when a newer stream begins. */
  waitForStreamVoucher(above: bigint, timeoutMs: number, stream: number): Promise<StreamWait>
}

/** Where channels live. */
export interface ChannelStore {
  /** The channel with this (lowercase) id. */
  channel(channelId: string): Channel
  /** Notes that `payer` opened `channelId` (for the operator listing). */
  indexPayer(payer: string, channelId: string): Promise<void>
  /** The channel ids `payer` opened, newest first (for the bootstrap preflight); absent when there is no payer index. */
  payerChannels?(payer: string): Promise<string[]>
}
