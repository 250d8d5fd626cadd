/** @module The Durable Object that holds single-use state for one shard of challenges and settlement references. */
import { DurableObject } from 'cloudflare:workers'
import { type BeginResult, decide } from '../core/ReplayStore.js'

// Rows outlive their challenge by this much, so a clock skew between isolates cannot revive one.
const retentionMs = 10 * 60_000
// A committed payment whose outcome is still unknown keeps its row past the usual sweep, at most this long
// after its challenge expired (docs/storage-schema.md).
const committedRetentionMs = 24 * 60 * 60_000

type ChallengeRow = { state: string; lease_until: number; reference: string | null; credential: string | null; committed: string | null }

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
      credential TEXT,
      committed TEXT
    )`)
    this.sql.exec(`CREATE TABLE IF NOT EXISTS refs (
      reference TEXT PRIMARY KEY,
      challenge_id TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      keep_until INTEGER
    )`)
    // Objects created before a column existed get it added once.
    this.addColumn('challenges', 'credential', 'TEXT')
    this.addColumn('challenges', 'committed', 'TEXT')
    this.addColumn('refs', 'keep_until', 'INTEGER')
  }

  /** Takes a challenge for an attempt unless another attempt holds an unexpired lease on it, or another credential committed to it. */
  async begin(id: string, attempt: string, leaseUntil: number, expiresAt: number, credential?: string): Promise<BeginResult> {
    const row = this.sql
      .exec<ChallengeRow>('SELECT state, lease_until, reference, credential, committed FROM challenges WHERE id = ?', id)
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
    const decision = decide({ ...row, leaseUntil: row.lease_until }, credential, Date.now())
    if (decision !== 'take') return decision
    this.sql.exec('UPDATE challenges SET attempt = ?, lease_until = ?, tried = tried + 1 WHERE id = ?', attempt, leaseUntil, id)
    if (row.state === 'settled') {
      return { status: 'settled', reference: row.reference ?? '', ...(row.credential !== null ? { credential: row.credential } : {}) }
    }
    return { status: 'resumed', ...(row.committed !== null ? { committed: row.committed } : {}) }
  }

  /** Records the reference a payment is about to be committed under, and the credential making it. */
  async commit(id: string, attempt: string, reference: string, credential: string): Promise<boolean> {
    const cursor = this.sql.exec(
      "UPDATE challenges SET committed = ?, credential = ? WHERE id = ? AND attempt = ? AND state = 'pending' AND (committed IS NULL OR credential = ?)",
      reference,
      credential,
      id,
      attempt,
      credential,
    )
    return cursor.rowsWritten > 0
  }

  /** Extends a running attempt's lease. */
  async renew(id: string, attempt: string, leaseUntil: number): Promise<boolean> {
    const cursor = this.sql.exec("UPDATE challenges SET lease_until = ? WHERE id = ? AND attempt = ? AND state != 'delivered'", leaseUntil, id, attempt)
    return cursor.rowsWritten > 0
  }

  /** Drops a commitment whose payment failed for good, and ends the lease. */
  async fail(id: string, attempt: string): Promise<void> {
    this.sql.exec("UPDATE challenges SET committed = NULL, credential = NULL, lease_until = 0 WHERE id = ? AND attempt = ? AND state = 'pending'", id, attempt)
  }

  /**
   * Binds a settlement reference to a challenge until `keepUntil` (for good without it; the owner's later claim
   * sets it anew); false when another challenge owns it.
   */
  async claimReference(reference: string, challengeId: string, keepUntil?: number): Promise<boolean> {
    const owner = this.sql
      .exec<{ challenge_id: string }>('SELECT challenge_id FROM refs WHERE reference = ?', reference)
      .toArray()[0]
    if (owner) {
      if (owner.challenge_id !== challengeId) return false
      // The owner's later claim knows better how long the reference can still pay (a token's reported expiry).
      if (keepUntil !== undefined) this.sql.exec('UPDATE refs SET keep_until = ? WHERE reference = ? AND keep_until IS NOT NULL', keepUntil, reference)
      return true
    }
    this.sql.exec('INSERT INTO refs (reference, challenge_id, created_at, keep_until) VALUES (?, ?, ?, ?)', reference, challengeId, Date.now(), keepUntil ?? null)
    if (keepUntil !== undefined) this.scheduleSweep(keepUntil)
    return true
  }

  /**
   * Marks the payment of a challenge final, with the digest of the credential that paid; only the attempt
   * holding it may. The lease is renewed to `leaseUntil`, so delivery gets a whole lease of its own.
   */
  async settle(id: string, attempt: string, reference: string, credential?: string, leaseUntil?: number): Promise<boolean> {
    const cursor = this.sql.exec(
      "UPDATE challenges SET state = 'settled', reference = ?, credential = ?, committed = NULL, lease_until = COALESCE(?, lease_until) WHERE id = ? AND attempt = ? AND state = 'pending'",
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

  /**
   * Deletes challenge rows whose challenge expired long enough ago, except a committed payment whose outcome is
   * still unknown (kept up to `committedRetentionMs`), and references past their `keep_until`.
   */
  override async alarm(): Promise<void> {
    const now = Date.now()
    this.sql.exec(
      "DELETE FROM challenges WHERE expires_at <= ? AND NOT (state = 'pending' AND committed IS NOT NULL AND expires_at > ?)",
      now,
      now - committedRetentionMs,
    )
    this.sql.exec('DELETE FROM refs WHERE keep_until IS NOT NULL AND keep_until <= ?', now)
    const next = this.sql
      .exec<{ at: number | null }>(
        `SELECT MIN(at) AS at FROM (
          SELECT CASE WHEN state = 'pending' AND committed IS NOT NULL THEN expires_at + ? ELSE expires_at END AS at FROM challenges
          UNION ALL SELECT keep_until AS at FROM refs WHERE keep_until IS NOT NULL
        )`,
        committedRetentionMs,
      )
      .one().at
    if (next !== null) await this.ctx.storage.setAlarm(Math.max(next, now + 1_000))
  }

  private addColumn(table: string, column: string, type: string): void {
    const columns = this.sql.exec<{ name: string }>(`SELECT name FROM pragma_table_info('${table}')`).toArray()
    if (!columns.some((c) => c.name === column)) this.sql.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${type}`)
  }

  private scheduleSweep(at: number): void {
    // Fire-and-forget is safe: DO output gates hold the response until the alarm write is durable.
    void this.ctx.storage.getAlarm().then((current) => {
      if (current === null || current > at) return this.ctx.storage.setAlarm(at)
    })
  }
}
