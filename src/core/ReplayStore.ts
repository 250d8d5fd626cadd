/** @module Single-use state for challenges and settlement references (core spec, "Replay Protection"). */

/** What `begin` found for a challenge. */
export type BeginResult =
  /** No earlier attempt: this attempt holds the challenge and must verify the payment. */
  | { status: 'fresh' }
  /**
   * An earlier attempt ended without a final answer: this attempt holds it and must verify again. When that
   * attempt committed a payment with this same credential, `committed` is the reference it recorded: resolve
   * that payment, never start another.
   */
  | { status: 'resumed'; committed?: string | undefined }
  /**
   * The payment settled but was never delivered (the handler or origin failed): deliver without charging again,
   * but only to the credential that paid (`credential` is its digest, when the settlement recorded one).
   */
  | { status: 'settled'; reference: string; credential?: string | undefined }
  /** Another attempt holds the challenge right now; `otherCredential` when it committed a payment with another credential. */
  | { status: 'busy'; retryAfterMs: number; otherCredential?: boolean | undefined }
  /**
   * Another credential committed a payment to this challenge: `unknown` while its outcome is not known (resend
   * the credential first sent), `settled` once it paid (this credential is refused). Nothing was taken.
   */
  | { status: 'paid-elsewhere'; outcome: 'unknown' | 'settled' }
  /** The challenge was paid and delivered: it cannot be used again. */
  | { status: 'delivered'; reference: string }

/**
 * Two-phase, single-use claims. A challenge moves pending → (committed) → settled → delivered; a committed
 * payment whose outcome is unknown binds the challenge to the credential that made it until it settles or is
 * known to have failed. A settlement reference belongs to at most one challenge. Every write is atomic per key.
 */
export interface ReplayStore {
  /**
   * Takes the challenge for this attempt (a lease until `leaseUntil`) unless another attempt holds it, or
   * another credential than `credential` (a digest) committed a payment to it.
   */
  begin(challengeId: string, attempt: string, leaseUntil: number, expiresAt: number, credential?: string | undefined): Promise<BeginResult>
  /**
   * Records, before the payment is committed (broadcast, created), the reference it has and the credential
   * making it. Later attempts with another credential are refused while its outcome is unknown. A later call
   * of the same attempt replaces the reference (a PaymentIntent id once known). False when the attempt lost its
   * lease or another credential committed first.
   */
  commit(challengeId: string, attempt: string, reference: string, credential: string): Promise<boolean>
  /** Extends the attempt's lease to `leaseUntil` while it runs; false when it lost the lease. */
  renew(challengeId: string, attempt: string, leaseUntil: number): Promise<boolean>
  /** The committed payment failed for good (reverted, declined): the commitment is dropped and the lease ended, so any credential may pay. */
  fail(challengeId: string, attempt: string): Promise<void>
  /**
   * Binds a reference to the challenge; false when it already belongs to another challenge. `keepUntil` (ms
   * epoch) is when no challenge the reference could still pay is alive any more (the owning challenge's later
   * claim sets it anew); without it the reference is kept for good.
   */
  claimReference(reference: string, challengeId: string, keepUntil?: number | undefined): Promise<boolean>
  /**
   * Records that the payment is final, and the digest of the credential that paid; the attempt keeps the
   * challenge to deliver, its lease renewed to `leaseUntil` when given. False when the attempt lost its lease.
   */
  settle(challengeId: string, attempt: string, reference: string, credential?: string | undefined, leaseUntil?: number | undefined): Promise<boolean>
  /** Records that the response was delivered: the challenge is spent. False when the attempt lost its lease. */
  deliver(challengeId: string, attempt: string): Promise<boolean>
  /** Gives the lease back without spending the challenge (a transient fault, a failed delivery); a commitment stays. */
  release(challengeId: string, attempt: string): Promise<void>
}

type Row = {
  state: 'pending' | 'settled' | 'delivered'
  attempt: string
  leaseUntil: number
  reference?: string | undefined
  credential?: string | undefined
  committed?: string | undefined
}

/**
 * The decision `begin` makes on an existing row, shared by every store so they agree.
 * @example
 * const result = decide(row, credential, Date.now())
 */
export function decide(
  row: { state: string; leaseUntil: number; reference?: string | null | undefined; credential?: string | null | undefined; committed?: string | null | undefined },
  credential: string | undefined,
  now: number,
): BeginResult | 'take' {
  if (row.state === 'delivered') return { status: 'delivered', reference: row.reference ?? '' }
  const other = credential !== undefined && row.credential != null && row.credential !== credential
  const committed = row.state === 'settled' || row.committed != null
  if (row.leaseUntil > now) return { status: 'busy', retryAfterMs: row.leaseUntil - now, ...(other && committed ? { otherCredential: true } : {}) }
  if (other && committed) return { status: 'paid-elsewhere', outcome: row.state === 'settled' ? 'settled' : 'unknown' }
  return 'take'
}

/**
 * An in-memory ReplayStore with the same semantics as the Durable Object one, for tests and tools.
 * @example
 * const store = ReplayStore.memory()
 */
export function memory(now: () => number = Date.now): ReplayStore {
  const challenges = new Map<string, Row>()
  const references = new Map<string, string>()
  const holds = (row: Row | undefined, attempt: string): row is Row => row !== undefined && row.attempt === attempt
  return {
    async begin(id, attempt, leaseUntil, _expiresAt, credential) {
      const row = challenges.get(id)
      if (!row) {
        challenges.set(id, { state: 'pending', attempt, leaseUntil })
        return { status: 'fresh' }
      }
      const decision = decide(row, credential, now())
      if (decision !== 'take') return decision
      row.attempt = attempt
      row.leaseUntil = leaseUntil
      if (row.state === 'settled') {
        return { status: 'settled', reference: row.reference ?? '', ...(row.credential !== undefined ? { credential: row.credential } : {}) }
      }
      return { status: 'resumed', ...(row.committed !== undefined ? { committed: row.committed } : {}) }
    },
    async commit(id, attempt, reference, credential) {
      const row = challenges.get(id)
      if (!holds(row, attempt) || row.state !== 'pending') return false
      if (row.committed !== undefined && row.credential !== credential) return false
      row.committed = reference
      row.credential = credential
      return true
    },
    async renew(id, attempt, leaseUntil) {
      const row = challenges.get(id)
      if (!holds(row, attempt) || row.state === 'delivered') return false
      row.leaseUntil = leaseUntil
      return true
    },
    async fail(id, attempt) {
      const row = challenges.get(id)
      if (!holds(row, attempt) || row.state !== 'pending') return
      row.committed = undefined
      row.credential = undefined
      row.leaseUntil = 0
    },
    async claimReference(reference, challengeId) {
      const owner = references.get(reference)
      if (owner !== undefined) return owner === challengeId
      references.set(reference, challengeId)
      return true
    },
    async settle(id, attempt, reference, credential, leaseUntil) {
      const row = challenges.get(id)
      if (!holds(row, attempt) || row.state !== 'pending') return false
      if (leaseUntil !== undefined) row.leaseUntil = leaseUntil
      row.state = 'settled'
      row.reference = reference
      row.credential = credential
      row.committed = undefined
      return true
    },
    async deliver(id, attempt) {
      const row = challenges.get(id)
      if (!holds(row, attempt) || row.state !== 'settled') return false
      row.state = 'delivered'
      row.leaseUntil = 0
      return true
    },
    async release(id, attempt) {
      const row = challenges.get(id)
      if (holds(row, attempt) && row.state !== 'delivered') row.leaseUntil = 0
    },
  }
}
