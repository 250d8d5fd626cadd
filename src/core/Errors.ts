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
    super(options.detail, { cause: options.cause })
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
 * Whether a value is a PaymentError.
 * @example
 * if (isPaymentError(e)) return e.status
 */
export function isPaymentError(value: unknown): value is PaymentError {
  return value instanceof PaymentError
}
