/**
 * @module The Durable Object that limits fee sponsorship per sender: one object per (sponsor, sender), holding
 * the sender's sponsored transactions in flight, its recent reverted ones, and a refusal once too many reverted.
 */
import { DurableObject } from 'cloudflare:workers'

/** The limits a caller applies; passed on every call, so the worker's configuration decides them. */
export type SenderLimits = {
  /** Sponsored transactions one sender may have between co-signing and receipt. */
  maxInFlight: number
  /** Reverted sponsored transactions within `windowMs` after which the sender is refused. */
  maxReverts: number
  /** How far back reverts count, and how long a refusal lasts, in ms. */
  windowMs: number
}

/** The answer to `begin`. */
export type BeginResult = { ok: true } | { ok: false; reason: 'in-flight'; until: number } | { ok: false; reason: 'refused'; until: number }

/**
 * Per-sender sponsorship state. Every row carries its end: an alarm deletes slots past their lease (a
 * transaction cannot be mined after its `validBefore`), reverts older than the window and ended refusals.
 * @example
 * const limit = env.SENDER_LIMIT.get(env.SENDER_LIMIT.idFromName(`${sponsor}:${sender}`))
 * const started = await limit.begin(hash, validBeforeMs, limits)
 */
export class SenderLimit extends DurableObject {
  private readonly sql: SqlStorage

  constructor(ctx: DurableObjectState, env: unknown) {
    super(ctx, env as never)
    this.sql = ctx.storage.sql
    this.sql.exec(`CREATE TABLE IF NOT EXISTS flights (hash TEXT PRIMARY KEY, until INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS reverts (hash TEXT PRIMARY KEY, until INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS refusal (id INTEGER PRIMARY KEY CHECK (id = 1), until INTEGER NOT NULL)`)
  }

  /**
   * Takes the sender's slot for a transaction until `until` (ms since epoch), unless the sender is refused
   * or has `maxInFlight` other transactions in flight. The same transaction may begin again (a retry).
   */
  async begin(hash: string, until: number, limits: SenderLimits): Promise<BeginResult> {
    const now = Date.now()
    this.expire(now)
    const refusal = this.sql.exec<{ until: number }>('SELECT until FROM refusal').toArray()[0]
    if (refusal && refusal.until > now) return { ok: false, reason: 'refused', until: refusal.until }
    const flights = this.sql.exec<{ hash: string; until: number }>('SELECT hash, until FROM flights ORDER BY until').toArray()
    if (!flights.some((flight) => flight.hash === hash) && flights.length >= limits.maxInFlight) {
      return { ok: false, reason: 'in-flight', until: flights[0]!.until }
    }
    this.sql.exec('INSERT INTO flights (hash, until) VALUES (?, ?) ON CONFLICT (hash) DO UPDATE SET until = MAX(until, excluded.until)', hash, until)
    await this.schedule()
    return { ok: true }
  }

  /**
   * The transaction's outcome is known: frees its slot and, when it reverted, counts it (once per hash);
   * `maxReverts` within the window refuse the sender for `windowMs`. Answers the refusal's end, if any.
   */
  async end(hash: string, outcome: 'success' | 'reverted' | 'not-sent', limits: SenderLimits): Promise<number | null> {
    const now = Date.now()
    this.sql.exec('DELETE FROM flights WHERE hash = ?', hash)
    let refusedUntil: number | null = null
    if (outcome === 'reverted') {
      // A revert counts for the window from when it was seen.
      this.sql.exec('INSERT INTO reverts (hash, until) VALUES (?, ?) ON CONFLICT (hash) DO NOTHING', hash, now + limits.windowMs)
      const count = this.sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM reverts WHERE until > ?', now).one().n
      if (count >= limits.maxReverts) {
        refusedUntil = now + limits.windowMs
        this.sql.exec('INSERT INTO refusal (id, until) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET until = MAX(until, excluded.until)', refusedUntil)
      }
    }
    await this.schedule()
    return refusedUntil
  }

  /** Deletes what has expired and schedules the next expiry. */
  override async alarm(): Promise<void> {
    this.expire(Date.now())
    await this.schedule()
  }

  private expire(now: number): void {
    for (const table of ['flights', 'reverts', 'refusal']) this.sql.exec(`DELETE FROM ${table} WHERE until <= ?`, now)
  }

  private async schedule(): Promise<void> {
    const next = this.sql
      .exec<{ at: number | null }>('SELECT MIN(at) AS at FROM (SELECT MIN(until) AS at FROM flights UNION ALL SELECT MIN(until) FROM reverts UNION ALL SELECT MIN(until) FROM refusal)')
      .one().at
    if (next === null) {
      await this.ctx.storage.deleteAlarm()
      return
    }
    await this.ctx.storage.setAlarm(next)
  }
}
