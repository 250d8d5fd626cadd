/** @module Single-use state for challenges and settlement references (core spec, "Replay Protection"). */

/** What `begin` found for a challenge. */
export type BeginResult =
  /** No earlier attempt: this attempt holds the challenge and must verify the payment. */
  | { status: 'fresh' }
  /** An earlier attempt ended without a final answer: this attempt holds it and must verify again. */
  | { status: 'resumed' }
  /**
   * The payment settled but was never delivered (the handler or origin failed): deliver without charging again,
   * but only to the credential that paid (`credential` is its digest, when the settlement recorded one).
   */
  | { status: 'settled'; reference: string; credential?: string | undefined }
  /** Another attempt holds the challenge right now. */
  | { status: 'busy'; retryAfterMs: number }
  /** The challenge was paid and delivered: it cannot be used again. */
  | { status: 'delivered'; reference: string }

/**
 * Two-phase, single-use claims. A challenge moves pending → settled → delivered; a settlement
 * reference belongs to at most one challenge, forever. Every write is atomic per key.
 */
export interface ReplayStore {
  /** Takes the challenge for this attempt (a lease until `leaseUntil`) unless another attempt holds it. */
  begin(challengeId: string, attempt: string, leaseUntil: number, expiresAt: number): Promise<BeginResult>
  /** Binds a reference to the challenge; false when it already belongs to another challenge. */
  claimReference(reference: string, challengeId: string): Promise<boolean>
  /**
   * Records that the payment is final, and the digest of the credential that paid; the attempt keeps the
   * challenge to deliver, its lease renewed to `leaseUntil` when given. False when the attempt lost its lease.
   */
  settle(challengeId: string, attempt: string, reference: string, credential?: string | undefined, leaseUntil?: number | undefined): Promise<boolean>
  /** Records that the response was delivered: the challenge is spent. False when the attempt lost its lease. */
  deliver(challengeId: string, attempt: string): Promise<boolean>
  /** Gives the lease back without spending the challenge (a transient fault, a failed delivery). */
  release(challengeId: string, attempt: string): Promise<void>
}

type Row = {
  state: 'pending' | 'settled' | 'delivered'
  attempt: string
  leaseUntil: number
  reference?: string | undefined
  credential?: string | undefined
}

/**
 * An in-memory ReplayStore with the same semantics as the Durable Object one, for tests and tools.
 * @example
 * const store = ReplayStore.memory()
 */
export function memory(now: () => number = Date.now): ReplayStore {
  const challenges = new Map<string, Row>()
  const references = new Map<string, string>()
  return {
    async begin(id, attempt, leaseUntil) {
      const row = challenges.get(id)
      if (!row) {
        challenges.set(id, { state: 'pending', attempt, leaseUntil })
        return { status: 'fresh' }
      }
      if (row.state === 'delivered') return { status: 'delivered', reference: row.reference ?? '' }
      if (row.leaseUntil > now()) return { status: 'busy', retryAfterMs: row.leaseUntil - now() }
      row.attempt = attempt
      row.leaseUntil = leaseUntil
      if (row.state !== 'settled') return { status: 'resumed' }
      return { status: 'settled', reference: row.reference ?? '', ...(row.credential !== undefined ? { credential: row.credential } : {}) }
    },
    async claimReference(reference, challengeId) {
      const owner = references.get(reference)
      if (owner !== undefined) return owner === challengeId
      references.set(reference, challengeId)
      return true
    },
    async settle(id, attempt, reference, credential, leaseUntil) {
      const row = challenges.get(id)
      if (!row || row.attempt !== attempt || row.state !== 'pending') return false
      if (leaseUntil !== undefined) row.leaseUntil = leaseUntil
      row.state = 'settled'
      row.reference = reference
      row.credential = credential
      return true
    },
    async deliver(id, attempt) {
      const row = challenges.get(id)
      if (!row || row.attempt !== attempt || row.state !== 'settled') return false
      row.state = 'delivered'
      row.leaseUntil = 0
      return true
    },
    async release(id, attempt) {
      const row = challenges.get(id)
      if (row && row.attempt === attempt && row.state !== 'delivered') row.leaseUntil = 0
    },
  }
}
