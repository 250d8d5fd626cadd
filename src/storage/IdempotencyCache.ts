/** @module The Durable Object that keeps paid responses for `Idempotency-Key` retries. */
import { DurableObject } from 'cloudflare:workers'
import { maxStoredBody } from './idempotency.js'

export { maxStoredBody }

/** A stored response, as the middleware replays it. */
export type StoredResponse = { status: number; headers: [string, string][]; body: ArrayBuffer }

/**
 * Paid responses keyed by a hash of (Idempotency-Key, credential), kept until their challenge expires.
 * @example
 * const cache = env.IDEMPOTENCY_CACHE.get(env.IDEMPOTENCY_CACHE.idFromName(key.slice(0, 2)))
 * await cache.put(key, stored, expiresAt)
 */
export class IdempotencyCache extends DurableObject {
  private readonly sql: SqlStorage

  constructor(ctx: DurableObjectState, env: unknown) {
    super(ctx, env as never)
    this.sql = ctx.storage.sql
    this.sql.exec(`CREATE TABLE IF NOT EXISTS responses (
      key TEXT PRIMARY KEY,
      status INTEGER NOT NULL,
      headers TEXT NOT NULL,
      body BLOB NOT NULL,
      expires_at INTEGER NOT NULL
    )`)
  }

  /** The stored response for a key, if any and not expired. */
  async get(key: string): Promise<StoredResponse | undefined> {
    const row = this.sql
      .exec<{ status: number; headers: string; body: ArrayBuffer; expires_at: number }>(
        'SELECT status, headers, body, expires_at FROM responses WHERE key = ?',
        key,
      )
      .toArray()[0]
    if (!row || row.expires_at <= Date.now()) return undefined
    return { status: row.status, headers: JSON.parse(row.headers), body: row.body }
  }

  /** Stores a response once; a second put for the same key keeps the first. */
  async put(key: string, response: StoredResponse, expiresAt: number): Promise<void> {
    if (response.body.byteLength > maxStoredBody) return
    this.sql.exec(
      'INSERT OR IGNORE INTO responses (key, status, headers, body, expires_at) VALUES (?, ?, ?, ?, ?)',
      key,
      response.status,
      JSON.stringify(response.headers),
      response.body,
      expiresAt,
    )
    const current = await this.ctx.storage.getAlarm()
    if (current === null || current > expiresAt) await this.ctx.storage.setAlarm(expiresAt)
  }

  /** Deletes expired responses. */
  override async alarm(): Promise<void> {
    this.sql.exec('DELETE FROM responses WHERE expires_at <= ?', Date.now())
    const next = this.sql.exec<{ at: number | null }>('SELECT MIN(expires_at) AS at FROM responses').one().at
    if (next !== null) await this.ctx.storage.setAlarm(next)
  }
}
