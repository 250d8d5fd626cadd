/** @module The Durable Object that lists the channels one payer opened with this server. */
import { DurableObject } from 'cloudflare:workers'

/**
 * One payer per object (`idFromName(lowercase payer address)`): the ids of the channels it opened, for operators.
 * @example
 * const index = env.PAYER_CHANNELS.get(env.PAYER_CHANNELS.idFromName(payer))
 * await index.add(channelId)
 */
export class PayerChannels extends DurableObject {
  private readonly sql: SqlStorage

  constructor(ctx: DurableObjectState, env: unknown) {
    super(ctx, env as never)
    this.sql = ctx.storage.sql
    this.sql.exec(`CREATE TABLE IF NOT EXISTS channels (
      channel_id TEXT PRIMARY KEY,
      opened_at INTEGER NOT NULL
    )`)
  }

  /** Adds a channel (again is a no-op). */
  async add(channelId: string): Promise<void> {
    this.sql.exec('INSERT OR IGNORE INTO channels (channel_id, opened_at) VALUES (?, ?)', channelId.toLowerCase(), Date.now())
  }

  /** The payer's channel ids, newest first, at most `limit`. */
  async list(limit = 100): Promise<{ channelId: string; openedAt: number }[]> {
    return this.sql
      .exec<{ channel_id: string; opened_at: number }>('SELECT channel_id, opened_at FROM channels ORDER BY opened_at DESC, channel_id LIMIT ?', limit)
      .toArray()
      .map((row) => ({ channelId: row.channel_id, openedAt: row.opened_at }))
  }
}
