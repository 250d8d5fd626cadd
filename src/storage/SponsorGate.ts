/** @module The Durable Object that caps fee-sponsored transactions in flight across every isolate. */
import { DurableObject } from 'cloudflare:workers'

/**
 * Slots for sponsored transactions between co-signing and receipt. One object per sponsor key, so the cap
 * holds across isolates and locations; a slot whose holder vanished frees itself when its lease ends.
 * @example
 * const gate = env.SPONSOR_GATE.get(env.SPONSOR_GATE.idFromName(sponsorAddress))
 * const slot = await gate.acquire(16, 60_000)
 */
export class SponsorGate extends DurableObject {
  private readonly sql: SqlStorage

  constructor(ctx: DurableObjectState, env: unknown) {
    super(ctx, env as never)
    this.sql = ctx.storage.sql
    this.sql.exec('CREATE TABLE IF NOT EXISTS slots (id TEXT PRIMARY KEY, until INTEGER NOT NULL)')
  }

  /** Takes a slot unless `max` unexpired slots are held; returns its id, or null at capacity. */
  async acquire(max: number, leaseMs: number): Promise<string | null> {
    const now = Date.now()
    this.sql.exec('DELETE FROM slots WHERE until <= ?', now)
    const held = this.sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM slots').one().n
    if (held >= max) return null
    const id = crypto.randomUUID()
    this.sql.exec('INSERT INTO slots (id, until) VALUES (?, ?)', id, now + leaseMs)
    return id
  }

  /** Frees a slot. */
  async release(id: string): Promise<void> {
    this.sql.exec('DELETE FROM slots WHERE id = ?', id)
  }

  /** Slots held now. */
  async held(): Promise<number> {
    return this.sql.exec<{ n: number }>('SELECT COUNT(*) AS n FROM slots WHERE until > ?', Date.now()).one().n
  }
}
