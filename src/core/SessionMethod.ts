/** @module What a payment method provides to serve the `session` intent (the chain side of a channel). */
import type { Challenge } from './Challenge.js'
import type { ChannelAccount } from './ChannelAccount.js'
import type { ChainState, StoredVoucher } from './ChannelStore.js'
import type * as Session from './Session.js'

/** A seller's session price: a decimal price per unit in display units, as `pay.session` takes it. */
export type SessionPrice = {
  /** Price of one unit, decimal display units ("0.00001"). */
  amount: string
  /** The unit priced ("llm_token", "request"). */
  unitType?: string | undefined
  /** Deposit suggested for a new channel, decimal display units. */
  suggestedDeposit?: string | undefined
  /** Smallest increase between two vouchers, decimal display units. */
  minVoucherDelta?: string | undefined
  /** Currency (token symbol or address); the method's default when absent. */
  currency?: string | undefined
  /** Display text for the payer. */
  description?: string | undefined
}

/** What open and topUp verification receive. */
export type FundingContext = {
  /** The echoed, HMAC-checked challenge. */
  challenge: Challenge
  /** Its request. */
  request: Session.Request
  /** Reserves a transaction hash for this challenge; throws when it already funded another. Call before broadcasting. */
  claimReference: (reference: string) => Promise<void>
  now: Date
  /**
   * The challenge expired since the transaction was presented (a retry after a 503): record the transaction only if
   * it is already on chain (its validity window, within the challenge's, has passed, so it was mined in time or never
   * will be); broadcast nothing, and throw ChallengeNotFoundError when it is not there.
   */
  recordOnly?: boolean | undefined
}

/** A session-capable payment method. Errors are PaymentErrors (session problem types, 503 for transient faults). */
export type SessionMethod = {
  /** Payment method identifier ("tempo"). */
  name: string
  /** Builds the request of a session challenge. */
  request: (price: SessionPrice) => Session.Request
  /** What a request asks per unit, for a person reading a 402: the amount in display units and the currency's name. */
  display?: ((request: Session.Request) => { amount: string; currency: string }) | undefined
  /**
   * Checks that a payload names its channel for this request (v2: the descriptor against the channel id, escrow, chain,
   * payee, token and operator). Answers the channel's descriptor when the payload establishes it (v2: always; v1: an
   * open, derived from its transaction), else undefined (a v1 channel is then the one stored at open).
   */
  checkDescriptor: (payload: Session.Payload | Session.PayloadV1, request: Session.Request) => Session.Descriptor | undefined
  /** Recovers the signer of a voucher (format and low-s checked first); no network call. */
  recoverVoucher: (voucher: { channelId: `0x${string}`; cumulativeAmount: bigint; signature: `0x${string}` }, request: Session.Request) => Promise<`0x${string}`>
  /** Verifies, broadcasts and confirms an open transaction; answers the channel's chain state. */
  open: (payload: Session.OpenPayload | Session.OpenPayloadV1, context: FundingContext) => Promise<ChainState>
  /** Verifies, broadcasts and confirms a topUp transaction; answers the channel's chain state after it. */
  topUp: (payload: Session.TopUpPayload | Session.TopUpPayloadV1, account: ChannelAccount, context: FundingContext) => Promise<ChainState>
  /**
   * True when `close` pays out the voucher's whole cumulative amount (v1, no capture amount): the server then closes
   * with the highest voucher whose cumulative amount does not exceed what was consumed, and `capture` equals it.
   */
  closePaysVoucher?: boolean | undefined
  /** Closes the channel on chain, capturing `capture` with the payer's close voucher. */
  close: (account: ChannelAccount, voucher: StoredVoucher, capture: bigint) => Promise<{ txHash: `0x${string}`; settled: bigint }>
  /** Settles a voucher on chain (periodic settlement). */
  settle?: ((account: ChannelAccount, voucher: StoredVoucher) => Promise<{ txHash: `0x${string}`; settled: bigint }>) | undefined
  /** Reads the channel's chain state (close-request watch). */
  read?: ((account: ChannelAccount) => Promise<{ deposit: bigint; settled: bigint; closeRequestedAt: bigint }>) | undefined
}
