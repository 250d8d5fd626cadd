/**
 * @module The accounting of one payment channel as pure functions over plain data (draft-tempo-session-00,
 * "Voucher Verification", "Server-Side Accounting"). Storage applies them inside one serialized step per channel.
 */
import {
  AmountExceedsDepositError,
  ChallengeNotFoundError,
  ChannelFinalizedError,
  ChannelNotFoundError,
  DeltaTooSmallError,
  InsufficientBalanceError,
  InvalidSignatureError,
  RateLimitedError,
  SignerMismatchError,
  type SessionError,
} from './Errors.js'
import type { Descriptor } from './Session.js'

const zeroAddress = '0x0000000000000000000000000000000000000000'

/** What the server knows of one channel: chain state read on open, topUp and close, plus its own accounting. */
export type ChannelAccount = {
  /** Lowercase channel id. */
  channelId: `0x${string}`
  chainId: number
  /** Escrow address (lowercase). */
  escrow: `0x${string}`
  descriptor: Descriptor
  /** On-chain deposit, base units. */
  deposit: bigint
  /** Settled on chain, base units. */
  settled: bigint
  /** Close-request time on chain (seconds), 0 when none. */
  closeRequestedAt: bigint
  /** `open` while serving; `closing` once a close began (no new work); `closed` when final on chain. */
  status: 'open' | 'closing' | 'closed'
  /** Highest accepted voucher amount. */
  accepted: bigint
  /** Its signature. */
  acceptedSignature: `0x${string}` | undefined
  /** Amount charged for delivered work. */
  spent: bigint
  /** Units delivered so far. */
  units: number
}

/** A voucher whose signature verified, with the address it recovers to. */
export type SignedVoucher = {
  cumulative: bigint
  signature: `0x${string}`
  /** The address the EIP-712 signature recovers to, lowercase. */
  signer: `0x${string}`
  /**
   * The payee and token of the resource it pays, checked against the channel's: a v1 payload names its channel by
   * id alone, and one channel store may hold the channels of several payees.
   */
  terms?: Terms | undefined
}

/** Who a resource pays, in what (lowercase addresses): a channel pays a resource only when its descriptor says the same. */
export type Terms = { payee: `0x${string}`; token: `0x${string}` }

/**
 * Throws unless the voucher is signed by the channel signer and the channel pays the resource the voucher is for.
 * Checked before anything else is counted for the voucher, so a stranger's vouchers never touch the channel.
 * @example
 * ChannelAccount.checkSigner(account, voucher)
 */
export function checkSigner(account: ChannelAccount, voucher: SignedVoucher, what = 'voucher'): void {
  const channelId = account.channelId
  if (voucher.signer.toLowerCase() !== expectedSigner(account.descriptor)) {
    throw new SignerMismatchError({ channelId, detail: `the ${what} is not signed by the channel signer` })
  }
  checkTerms(account, voucher.terms)
}

/**
 * Throws ChannelNotFoundError when `terms` name another payee or token than the channel's.
 * @example
 * ChannelAccount.checkTerms(account, { payee: request.recipient, token: request.currency })
 */
export function checkTerms(account: ChannelAccount, terms: Terms | undefined): void {
  if (!terms) return
  if (terms.payee.toLowerCase() !== account.descriptor.payee || terms.token.toLowerCase() !== account.descriptor.token) {
    throw new ChannelNotFoundError({ channelId: account.channelId, detail: 'this channel does not pay this resource' })
  }
}

/**
 * The address allowed to sign vouchers: the descriptor's authorized signer, or the payer when it is zero
 * (draft-tempo-session-00, "Signature Verification"). The descriptor is bound to the channel id, so this is the
 * on-chain signer, never a claim of the payload.
 * @example
 * ChannelAccount.expectedSigner(account.descriptor) // '0x…'
 */
export function expectedSigner(descriptor: Descriptor): `0x${string}` {
  return descriptor.authorizedSigner === zeroAddress ? descriptor.payer : descriptor.authorizedSigner
}

/** What accepting a voucher did. */
export type Accepted = { status: 'accepted' | 'unchanged' }

/**
 * Checks a voucher against the channel, in the spec's order after signature recovery: signer (and terms), no close pending,
 * monotonic (an equal amount is an idempotent retry), `minVoucherDelta`, within the deposit. Throws the session error.
 * @example
 * const result = ChannelAccount.checkVoucher(account, voucher, 0n)
 * if (result.status === 'accepted') account.accepted = voucher.cumulative
 */
export function checkVoucher(account: ChannelAccount, voucher: SignedVoucher, minDelta: bigint): Accepted {
  const channelId = account.channelId
  checkSigner(account, voucher)
  assertServing(account)
  if (voucher.cumulative === account.accepted) return { status: 'unchanged' }
  if (voucher.cumulative < account.accepted) {
    throw new DeltaTooSmallError({ channelId, detail: `the voucher is below the accepted cumulative amount ${account.accepted}` })
  }
  if (voucher.cumulative - account.accepted < minDelta) {
    throw new DeltaTooSmallError({ channelId, detail: `the voucher must raise the cumulative amount by at least ${minDelta}` })
  }
  if (voucher.cumulative > account.deposit) {
    throw new AmountExceedsDepositError({ channelId, detail: `the voucher exceeds the channel deposit ${account.deposit}` })
  }
  return { status: 'accepted' }
}

/**
 * Throws unless the channel may serve new work: open, and no forced close requested (a voucher on a closing channel
 * could not be settled).
 * @example
 * ChannelAccount.assertServing(account)
 */
export function assertServing(account: ChannelAccount): void {
  if (account.status !== 'open') {
    throw new ChannelFinalizedError({ channelId: account.channelId, detail: `the channel is ${account.status}` })
  }
  if (account.closeRequestedAt !== 0n) {
    throw new ChannelFinalizedError({ channelId: account.channelId, detail: 'the payer requested to close the channel' })
  }
}

/**
 * Available balance: accepted vouchers minus what was spent.
 * @example
 * ChannelAccount.available(account) // 12500n
 */
export function available(account: ChannelAccount): bigint {
  return account.accepted - account.spent
}

/**
 * Checks that `cost` fits in the available balance; throws InsufficientBalanceError with `requiredTopUp` otherwise.
 * @example
 * ChannelAccount.checkCharge(account, 25n)
 * account.spent += 25n
 */
export function checkCharge(account: ChannelAccount, cost: bigint): void {
  assertServing(account)
  const left = available(account)
  if (cost > left) {
    throw new InsufficientBalanceError({
      channelId: account.channelId,
      requiredTopUp: cost - left,
      requiredCumulative: account.spent + cost,
      detail: `the accepted vouchers cover ${left} more; this costs ${cost}`,
    })
  }
}

/**
 * What a cooperative close captures: exactly what was consumed, never less than already settled
 * (draft-tempo-session-00, "Cooperative Close": `captureAmount = max(spent, settledOnChain)`).
 * @example
 * ChannelAccount.captureAmount(account) // 237500n
 */
export function captureAmount(account: Pick<ChannelAccount, 'spent' | 'settled'>): bigint {
  return account.spent > account.settled ? account.spent : account.settled
}

/**
 * The highest cumulative amount a settlement may put on chain: what was consumed, and below the newest accepted
 * voucher, which stays private to the payer and the server (a voucher on chain must never serve as a close).
 * @example
 * const voucher = highestVoucherAtMost(ChannelAccount.settleLimit(account))
 */
export function settleLimit(account: Pick<ChannelAccount, 'spent' | 'accepted'>): bigint {
  return account.spent < account.accepted ? account.spent : account.accepted - 1n
}

/**
 * Checks a close voucher: signed by the channel signer, covering the capture amount, within the deposit, and above
 * `published`, the highest voucher of the channel anyone could have read on chain (settled, or sent in a settle
 * transaction). Only the payer holds a newer one, so only the payer closes its channel; settlement never publishes
 * the newest voucher (`settleLimit`), so the payer's newest always closes. With `reachAccepted` (a close that captures
 * `max(spent, settled)` out of the voucher, v2) it must also reach the highest accepted voucher, like any voucher
 * (draft-tempo-session-00, "Idempotency": a lower one is rejected): the close receipt's `acceptedCumulative` then is
 * the amount the close was signed for, which is what mppx checks.
 * @example
 * ChannelAccount.checkCloseVoucher(account, voucher, published, { reachAccepted: true })
 */
export function checkCloseVoucher(account: ChannelAccount, voucher: SignedVoucher, published = 0n, options: { reachAccepted?: boolean | undefined } = {}): void {
  const channelId = account.channelId
  checkSigner(account, voucher, 'close voucher')
  if (account.status === 'closed') throw new ChannelFinalizedError({ channelId, detail: 'the channel is closed' })
  const capture = captureAmount(account)
  if (voucher.cumulative < capture) {
    throw new DeltaTooSmallError({ channelId, detail: `the close voucher must cover ${capture}` })
  }
  const seen = published > account.settled ? published : account.settled
  if (seen > 0n && voucher.cumulative <= seen) {
    throw new DeltaTooSmallError({ channelId, detail: `the close voucher must be above ${seen}, a voucher already on chain: close with your newest voucher` })
  }
  if (options.reachAccepted && voucher.cumulative < account.accepted) {
    throw new DeltaTooSmallError({ channelId, detail: `the close voucher must reach the accepted cumulative amount ${account.accepted}` })
  }
  if (voucher.cumulative > account.deposit) {
    throw new AmountExceedsDepositError({ channelId, detail: `the close voucher exceeds the channel deposit ${account.deposit}` })
  }
}

/** A session error (or a voucher rate refusal) as plain data, for passing across an RPC boundary (class identity does not survive it). */
export type Failure = {
  problem: SessionError['problem'] | 'rate-limited'
  detail: string | undefined
  requiredTopUp?: string | undefined
  requiredCumulative?: string | undefined
  /** Seconds to wait, for `rate-limited`. */
  retryAfter?: number | undefined
}

/**
 * Turns a session error into plain data.
 * @example
 * catch (error) { if (error instanceof SessionError) return { ok: false, failure: ChannelAccount.toFailure(error) } }
 */
export function toFailure(error: SessionError | RateLimitedError): Failure {
  return {
    problem: error.problem,
    detail: error.detail,
    ...(error instanceof InsufficientBalanceError
      ? { requiredTopUp: error.requiredTopUp.toString(), ...(error.requiredCumulative !== undefined ? { requiredCumulative: error.requiredCumulative.toString() } : {}) }
      : {}),
    ...(error instanceof RateLimitedError ? { retryAfter: error.retryAfter } : {}),
  }
}

/**
 * Rebuilds the session error a Failure describes.
 * @example
 * if (!result.ok) throw ChannelAccount.fromFailure(result.failure, channelId)
 */
export function fromFailure(failure: Failure, channelId: string): SessionError | RateLimitedError {
  const options = { channelId, detail: failure.detail }
  switch (failure.problem) {
    case 'rate-limited':
      return new RateLimitedError({ detail: failure.detail, retryAfter: failure.retryAfter ?? 1 })
    case 'session/invalid-signature':
      return new InvalidSignatureError(options)
    case 'session/signer-mismatch':
      return new SignerMismatchError(options)
    case 'session/amount-exceeds-deposit':
      return new AmountExceedsDepositError(options)
    case 'session/delta-too-small':
      return new DeltaTooSmallError(options)
    case 'session/channel-not-found':
      return new ChannelNotFoundError(options)
    case 'session/channel-finalized':
      return new ChannelFinalizedError(options)
    case 'session/challenge-not-found':
      return new ChallengeNotFoundError(options)
    case 'session/insufficient-balance':
      return new InsufficientBalanceError({
        ...options,
        requiredTopUp: BigInt(failure.requiredTopUp ?? '0'),
        requiredCumulative: failure.requiredCumulative !== undefined ? BigInt(failure.requiredCumulative) : undefined,
      })
  }
}
