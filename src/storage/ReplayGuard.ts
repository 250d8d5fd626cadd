/** @module The Durable Object that holds single-use state for one shard of challenges and settlement references. */
import { DurableObject } from 'cloudflare:workers'
import type { BeginResult } from '../core/ReplayStore.js'

// Rows outlive their challenge by this much, so a clock skew between isolates cannot revive one.
const retentionMs = 10 * 60_000

/**
 * One shard of replay state in SQLite. Every RPC method runs its reads and writes without awaiting,
 * so each is atomic within the object (see docs/storage-schema.md).
 * @example
 * const guard = env.REPLAY_GUARD.get(env.REPLAY_GUARD.idFromName('replay:3'))
 * await guard.begin(challengeId, attempt, Date.now() + 30_000, expiresAt)
 */
export class ReplayGuard extends DurableObject {
  private readonly sql: SqlStorage

  constructor(ctx: DurableObjectState, env: unknown) {
    super(ctx, env as never)
    this.sql = ctx.storage.sql
    this.sql.exec(`CREATE TABLE IF NOT EXISTS challenges (
      id TEXT PRIMARY KEY,
      state TEXT NOT NULL CHECK (state IN ('pending', 'settled', 'delivered')),
      attempt TEXT,
      lease_until INTEGER NOT NULL DEFAULT 0,
      tried INTEGER NOT NULL DEFAULT 0,
      reference TEXT,
      expires_at INTEGER NOT NULL,
      credential TEXT
    )`)
    // Objects created before the credential column existed get it added once.
    const columns = this.sql.exec<{ name: string }>("SELECT name FROM pragma_table_info('challenges')").toArray()
    if (!columns.some((column) => column.name === 'credential')) this.sql.exec('ALTER TABLE challenges ADD COLUMN credential TEXT')
    this.sql.exec(`CREATE TABLE IF NOT EXISTS refs (
      reference TEXT PRIMARY KEY,
      challenge_id TEXT NOT NULL,
      created_at INTEGER NOT NULL
    )`)
  }

  /** Takes a challenge for an attempt unless another attempt holds an unexpired lease on it. */
  async begin(id: string, attempt: string, leaseUntil: number, expiresAt: number): Promise<BeginResult> {
    const now = Date.now()
    const row = this.sql
      .exec<{ state: string; lease_until: number; tried: number; reference: string | null; credential: string | null }>(
        'SELECT state, lease_until, tried, reference, credential FROM challenges WHERE id = ?',
        id,
      )
      .toArray()[0]
    if (!row) {
      this.sql.exec(
        "INSERT INTO challenges (id, state, attempt, lease_until, tried, expires_at) VALUES (?, 'pending', ?, ?, 1, ?)",
        id,
        attempt,
        leaseUntil,
        expiresAt + retentionMs,
      )
      this.scheduleSweep(expiresAt + retentionMs)
      return { status: 'fresh' }
    }
    if (row.state === 'delivered') return { status: 'delivered', reference: row.reference ?? '' }
    if (row.lease_until > now) return { status: 'busy', retryAfterMs: row.lease_until - now }
    this.sql.exec('UPDATE challenges SET attempt = ?, lease_until = ?, tried = tried + 1 WHERE id = ?', attempt, leaseUntil, id)
    if (row.state === 'settled') {
      return { status: 'settled', reference: row.reference ?? '', ...(row.credential !== null ? { credential: row.credential } : {}) }
    }
    return { status: 'resumed' }
  }

  /** Binds a settlement reference to a challenge for good; false when another challenge owns it. */
  async claimReference(reference: string, challengeId: string): Promise<boolean> {
    const owner = this.sql
      .exec<{ challenge_id: string }>('SELECT challenge_id FROM refs WHERE reference = ?', reference)
      .toArray()[0]
    if (owner) return owner.challenge_id === challengeId
    this.sql.exec('INSERT INTO refs (reference, challenge_id, created_at) VALUES (?, ?, ?)', reference, challengeId, Date.now())
    return true
  }

  /**
   * Marks the payment of a challenge final, with the digest of the credential that paid; only the attempt
   * holding it may. The lease is renewed to `leaseUntil`, so delivery gets a whole lease of its own.
   */
  async settle(id: string, attempt: string, reference: string, credential?: string, leaseUntil?: number): Promise<boolean> {
    const cursor = this.sql.exec(
      "UPDATE challenges SET state = 'settled', reference = ?, credential = ?, lease_until = COALESCE(?, lease_until) WHERE id = ? AND attempt = ? AND state = 'pending'",
      reference,
      credential ?? null,
      leaseUntil ?? null,
      id,
      attempt,
    )
    return cursor.rowsWritten > 0
  }

  /** Marks a challenge spent. */
  async deliver(id: string, attempt: string): Promise<boolean> {
    const cursor = this.sql.exec(
      "UPDATE challenges SET state = 'delivered', lease_until = 0 WHERE id = ? AND attempt = ? AND state = 'settled'",
      id,
      attempt,
    )
    return cursor.rowsWritten > 0
  }

  /** Ends an attempt's lease without spending the challenge. */
  async release(id: string, attempt: string): Promise<void> {
    this.sql.exec("UPDATE challenges SET lease_until = 0 WHERE id = ? AND attempt = ? AND state != 'delivered'", id, attempt)
  }

  /** Deletes challenge rows whose challenge expired long enough ago; references are kept for good. */
  override async alarm(): Promise<void> {
    const now = Date.now()
    this.sql.exec('DELETE FROM challenges WHERE expires_at <= ?', now)
    const next = this.sql.exec<{ at: number | null }>('SELECT MIN(expires_at) AS at FROM challenges').one().at
    if (next !== null) await this.ctx.storage.setAlarm(next)
  }

  private scheduleSweep(at: number): void {
    // Fire-and-forget is safe: DO output gates hold the response until the alarm write is durable.
    void this.ctx.storage.getAlarm().then((current) => {
      if (current === null || current > at) return this.ctx.storage.setAlarm(at)
    })
  }
}
