/** @module Typed payment errors that render as RFC 9457 problem details (core spec, "Error Codes"). */

/**
 * Base URI of the problem types the core spec defines.
 * @example
 * problemBase + 'verification-failed'
 */
export const problemBase = 'https://paymentauth.org/problems/'

/** Problem type slugs defined by the core spec, plus the ones mpp-edge adds for operational faults. */
export type ProblemType =
  | 'payment-required'
  | 'payment-insufficient'
  | 'payment-expired'
  | 'verification-failed'
  | 'method-unsupported'
  | 'malformed-credential'
  | 'invalid-challenge'
  // Not in the core spec: answers that are not a payment failure of the payer.
  | 'payment-in-progress'
  | 'payment-unavailable'
  | 'configuration-error'
  | 'bad-request'
  | 'rate-limited'
  | 'origin-failed'
  | 'method-not-allowed'
  | 'content-too-large'
  | 'unsupported-media-type'
  | SessionProblem

/** Problem types of the session intent (draft-tempo-session-00, "Rejection and Error Responses"). */
export type SessionProblem =
  | 'session/invalid-signature'
  | 'session/signer-mismatch'
  | 'session/amount-exceeds-deposit'
  | 'session/delta-too-small'
  | 'session/channel-not-found'
  | 'session/channel-finalized'
  | 'session/challenge-not-found'
  | 'session/insufficient-balance'

/** An RFC 9457 problem details object. */
export type ProblemDetails = {
  type: string
  title: string
  status: number
  detail?: string | undefined
  challengeId?: string | undefined
  [extension: string]: unknown
}

type Options = {
  /** Human-readable explanation; never carries secrets or credential material. */
  detail?: string | undefined
  /** Seconds after which a retry may succeed (sent as `Retry-After`). */
  retryAfter?: number | undefined
  cause?: unknown
}

/**
 * A payment failure with its problem type, HTTP status and whether a fresh challenge goes with it.
 * @example
 * throw new VerificationFailedError({ detail: 'recipient does not match' })
 */
export abstract class PaymentError extends Error {
  abstract readonly problem: ProblemType
  abstract readonly status: number
  abstract readonly title: string
  /** Whether the answer carries fresh challenges (every 402 must). */
  readonly challenge: boolean = true
  readonly detail: string | undefined
  readonly retryAfter: number | undefined

  constructor(options: Options = {}) {
    // A payment error is an answer, not a fault, and several are built on the paths every bot hits: capturing a
    // stack trace was the largest cost of an unpaid request's error. Its cause keeps its own stack.
    const limit = Error.stackTraceLimit
    Error.stackTraceLimit = 0
    super(options.detail, { cause: options.cause })
    Error.stackTraceLimit = limit
    this.detail = options.detail
    this.retryAfter = options.retryAfter
  }

  override get message(): string {
    return this.detail ?? this.title
  }

  /** The RFC 9457 body for this error. */
  toProblem(extra: Record<string, unknown> = {}): ProblemDetails {
    return {
      type: problemTypeUri(this.problem),
      title: this.title,
      status: this.status,
      ...(this.detail ? { detail: this.detail } : {}),
      ...extra,
    }
  }
}

/**
 * The full URI of a problem type.
 * @example
 * problemTypeUri('verification-failed') // 'https://paymentauth.org/problems/verification-failed'
 */
export function problemTypeUri(problem: ProblemType): string {
  return problemBase + problem
}

/** No credential was sent: answer with challenges. @example new PaymentRequiredError() */
export class PaymentRequiredError extends PaymentError {
  override readonly name = 'PaymentRequiredError'
  readonly problem = 'payment-required'
  readonly status = 402
  readonly title = 'Payment Required'
}

/** The amount paid is below the amount requested. @example new PaymentInsufficientError({ detail: 'paid 1, owed 2' }) */
export class PaymentInsufficientError extends PaymentError {
  override readonly name = 'PaymentInsufficientError'
  readonly problem = 'payment-insufficient'
  readonly status = 402
  readonly title = 'Payment Insufficient'
}

/** The challenge or authorization has expired. @example new PaymentExpiredError() */
export class PaymentExpiredError extends PaymentError {
  override readonly name = 'PaymentExpiredError'
  readonly problem = 'payment-expired'
  readonly status = 402
  readonly title = 'Payment Expired'
}

/** The payment proof does not satisfy the challenge. @example new VerificationFailedError({ detail: 'wrong token' }) */
export class VerificationFailedError extends PaymentError {
  override readonly name = 'VerificationFailedError'
  readonly problem = 'verification-failed'
  readonly status = 402
  readonly title = 'Verification Failed'
}

/** The credential names a method or intent this route does not accept (core spec: 400). @example new MethodUnsupportedError() */
export class MethodUnsupportedError extends PaymentError {
  override readonly name = 'MethodUnsupportedError'
  readonly problem = 'method-unsupported'
  readonly status = 400
  readonly title = 'Method Unsupported'
}

/** The credential cannot be decoded or does not match its schema. @example new MalformedCredentialError() */
export class MalformedCredentialError extends PaymentError {
  override readonly name = 'MalformedCredentialError'
  readonly problem = 'malformed-credential'
  readonly status = 402
  readonly title = 'Malformed Credential'
}

/** The echoed challenge is unknown, not ours, for another route, or already used. @example new InvalidChallengeError() */
export class InvalidChallengeError extends PaymentError {
  override readonly name = 'InvalidChallengeError'
  readonly problem = 'invalid-challenge'
  readonly status = 402
  readonly title = 'Invalid Challenge'
}

/** Another request is settling the same challenge right now; retry shortly with the same credential. @example new PaymentInProgressError({ retryAfter: 1 }) */
export class PaymentInProgressError extends PaymentError {
  override readonly name = 'PaymentInProgressError'
  readonly problem = 'payment-in-progress'
  readonly status = 409
  readonly title = 'Payment In Progress'
  override readonly challenge = false
}

/**
 * A transient fault upstream (RPC, payment processor, storage): the credential was not consumed and may be sent again.
 * @example
 * throw new PaymentUnavailableError({ detail: 'RPC timeout', retryAfter: 2 })
 */
export class PaymentUnavailableError extends PaymentError {
  override readonly name = 'PaymentUnavailableError'
  readonly problem = 'payment-unavailable'
  readonly status = 503
  readonly title = 'Payment Service Unavailable'
  override readonly challenge = false
  constructor(options: Options = {}) {
    super({ retryAfter: 2, ...options })
  }
}

/** The server is misconfigured (for example a rejected processor key); details go to logs, not to the payer. @example new ConfigurationError({ detail: 'stripe key rejected' }) */
export class ConfigurationError extends PaymentError {
  override readonly name = 'ConfigurationError'
  readonly problem = 'configuration-error'
  readonly status = 500
  readonly title = 'Payment Configuration Error'
  override readonly challenge = false
  override toProblem(extra: Record<string, unknown> = {}): ProblemDetails {
    // The detail names internal settings: keep it for logs only.
    return { type: problemTypeUri(this.problem), title: this.title, status: this.status, ...extra }
  }
}

/** The request itself is unacceptable (for example several Payment credentials at once). @example new BadRequestError({ detail: 'two credentials' }) */
export class BadRequestError extends PaymentError {
  override readonly name = 'BadRequestError'
  readonly problem = 'bad-request'
  readonly status = 400
  readonly title = 'Bad Request'
  override readonly challenge = false
}

/** Too many attempts from one client. @example new RateLimitedError({ retryAfter: 10 }) */
export class RateLimitedError extends PaymentError {
  override readonly name = 'RateLimitedError'
  readonly problem = 'rate-limited'
  readonly status = 429
  readonly title = 'Too Many Requests'
  override readonly challenge = false
}

/**
 * The upstream that serves a paid request failed after the payment settled (a gateway answers 502). The
 * payment stays settled but undelivered: the same credential is served again, without a second charge,
 * until its challenge expires and for `Server.redeliveryGraceMs` after.
 * @example
 * Server.problemResponse(new OriginFailedError({ detail: 'origin answered 503' }), { reference })
 */
export class OriginFailedError extends PaymentError {
  override readonly name = 'OriginFailedError'
  readonly problem = 'origin-failed'
  readonly status = 502
  readonly title = 'Origin Failed'
  override readonly challenge = false
}

/** Options of the session errors: the channel they concern goes into the problem body. */
type SessionOptions = Options & {
  /** Channel id (lowercase hex) the failure concerns. */
  channelId?: string | undefined
}

/**
 * A session failure (draft-tempo-session-00, "Rejection and Error Responses"); the problem body carries `channelId`.
 * @example
 * if (error instanceof SessionError) console.log(error.channelId)
 */
export abstract class SessionError extends PaymentError {
  abstract override readonly problem: SessionProblem
  readonly channelId: string | undefined
  constructor(options: SessionOptions = {}) {
    super(options)
    this.channelId = options.channelId
  }
  override toProblem(extra: Record<string, unknown> = {}): ProblemDetails {
    return super.toProblem({ ...(this.channelId ? { channelId: this.channelId } : {}), ...extra })
  }
}

/** A voucher or close signature does not verify, is malformed or not low-s. @example new InvalidSignatureError({ channelId }) */
export class InvalidSignatureError extends SessionError {
  override readonly name = 'InvalidSignatureError'
  readonly problem = 'session/invalid-signature'
  readonly status = 402
  readonly title = 'Invalid Signature'
}

/** The voucher was signed by someone the channel does not authorize. @example new SignerMismatchError({ channelId }) */
export class SignerMismatchError extends SessionError {
  override readonly name = 'SignerMismatchError'
  readonly problem = 'session/signer-mismatch'
  readonly status = 402
  readonly title = 'Signer Mismatch'
}

/** The voucher authorizes more than the channel's deposit. @example new AmountExceedsDepositError({ channelId }) */
export class AmountExceedsDepositError extends SessionError {
  override readonly name = 'AmountExceedsDepositError'
  readonly problem = 'session/amount-exceeds-deposit'
  readonly status = 402
  readonly title = 'Amount Exceeds Deposit'
}

/** The voucher is lower than the accepted one, or raises it by less than `minVoucherDelta`. @example new DeltaTooSmallError({ channelId }) */
export class DeltaTooSmallError extends SessionError {
  override readonly name = 'DeltaTooSmallError'
  readonly problem = 'session/delta-too-small'
  readonly status = 402
  readonly title = 'Delta Too Small'
}

/** No open channel with this id exists (draft-tempo-session-00: 410). @example new ChannelNotFoundError({ channelId }) */
export class ChannelNotFoundError extends SessionError {
  override readonly name = 'ChannelNotFoundError'
  readonly problem = 'session/channel-not-found'
  readonly status = 410
  readonly title = 'Channel Not Found'
}

/** The channel is closed, or closing after a forced-close request (draft-tempo-session-00: 410). @example new ChannelFinalizedError({ channelId }) */
export class ChannelFinalizedError extends SessionError {
  override readonly name = 'ChannelFinalizedError'
  readonly problem = 'session/channel-finalized'
  readonly status = 410
  readonly title = 'Channel Finalized'
}

/** The session challenge is unknown or expired; a fresh one carries the channel id. @example new ChallengeNotFoundError({ channelId }) */
export class ChallengeNotFoundError extends SessionError {
  override readonly name = 'ChallengeNotFoundError'
  readonly problem = 'session/challenge-not-found'
  readonly status = 402
  readonly title = 'Challenge Not Found'
}

/**
 * The accepted vouchers do not cover the request; `requiredTopUp` says by how much (draft-tempo-session-00, "Per-Request Processing").
 * @example
 * throw new InsufficientBalanceError({ channelId, requiredTopUp: 500n })
 */
export class InsufficientBalanceError extends SessionError {
  override readonly name = 'InsufficientBalanceError'
  readonly problem = 'session/insufficient-balance'
  readonly status = 402
  readonly title = 'Insufficient Balance'
  readonly requiredTopUp: bigint
  /** The cumulative amount a voucher must reach to pay for the request (`spent + cost`), when known. */
  readonly requiredCumulative: bigint | undefined
  constructor(options: SessionOptions & { requiredTopUp: bigint; requiredCumulative?: bigint | undefined }) {
    super(options)
    this.requiredTopUp = options.requiredTopUp
    this.requiredCumulative = options.requiredCumulative
  }
  override toProblem(extra: Record<string, unknown> = {}): ProblemDetails {
    return super.toProblem({ requiredTopUp: this.requiredTopUp.toString(), ...extra })
  }
}

/**
 * The method is neither priced nor free where the path is priced (answered `405` with `Allow`).
 * @example
 * Server.problemResponse(new MethodNotAllowedError({ detail: 'DELETE is not served here' }))
 */
export class MethodNotAllowedError extends PaymentError {
  override readonly name = 'MethodNotAllowedError'
  readonly problem = 'method-not-allowed'
  readonly status = 405
  readonly title = 'Method Not Allowed'
  override readonly challenge = false
}

/**
 * A request body is larger than what must be read to decide how it is priced (answered `413`).
 * @example
 * Server.problemResponse(new ContentTooLargeError({ detail: 'form bodies are limited to 65536 bytes here' }))
 */
export class ContentTooLargeError extends PaymentError {
  override readonly name = 'ContentTooLargeError'
  readonly problem = 'content-too-large'
  readonly status = 413
  readonly title = 'Content Too Large'
  override readonly challenge = false
}

/**
 * A request body in an encoding that must be read to decide how it is priced, and that cannot be read with
 * certainty (answered `415`).
 * @example
 * Server.problemResponse(new UnsupportedMediaTypeError({ detail: 'text/plain bodies are not accepted here' }))
 */
export class UnsupportedMediaTypeError extends PaymentError {
  override readonly name = 'UnsupportedMediaTypeError'
  readonly problem = 'unsupported-media-type'
  readonly status = 415
  readonly title = 'Unsupported Media Type'
  override readonly challenge = false
}

/**
 * Whether a value is a PaymentError.
 * @example
 * if (isPaymentError(e)) return e.status
 */
export function isPaymentError(value: unknown): value is PaymentError {
  return value instanceof PaymentError
}
