/** @module The Durable Object that holds one payment channel's accounting (draft-tempo-session-00, "Server-Side Accounting"). */
import { DurableObject } from 'cloudflare:workers'
import * as ChannelAccount from '../core/ChannelAccount.js'
import { ChannelNotFoundError, SessionError } from '../core/Errors.js'
import type { ChainState, Charge, Channel, Result, StoredVoucher, StreamWait } from '../core/ChannelStore.js'
import type { Descriptor } from '../core/Session.js'
import type { SessionMethod } from '../core/SessionMethod.js'
import * as VoucherPacing from '../core/VoucherPacing.js'
import type { PayerChannels } from './PayerChannels.js'

export type { ChainState, Charge, Result, StoredVoucher }

type Row = {
  channel_id: string
  chain_id: number
  escrow: string
  descriptor: string
  deposit: string
  settled: string
  close_requested_at: string
  status: 'open' | 'closing' | 'closed'
  accepted: string
  accepted_signature: string | null
  spent: string
  units: number
}

// Amounts are kept as 39-digit zero-padded decimals (a v1 uint128 has at most 39), so SQLite orders them numerically.
const pad = (amount: bigint) => amount.toString().padStart(39, '0')

/**
 * How often an open channel's alarm settles what was consumed and reads its close-request time from the chain: every
 * 5 minutes, a third of the escrow's 15-minute close grace period, so a forced close is noticed and settled in time.
 * @example
 * await ctx.storage.setAlarm(Date.now() + settleIntervalMs)
 */
export const settleIntervalMs = 5 * 60_000

/**
 * How soon after an open the alarm makes sure the payer's index lists the channel, and the longest wait between
 * retries while the index cannot be written.
 * @example
 * await ctx.storage.setAlarm(Date.now() + indexRetryMs.first)
 */
export const indexRetryMs = { first: 5_000, max: 5 * 60_000 }

/** What one alarm did. */
export type AlarmReport = { closeRequestedAt: bigint; settled?: { txHash: `0x${string}`; amount: bigint } | undefined }

/**
 * One channel per object (`idFromName(channelId)`), in SQLite. Every RPC method reads and writes without awaiting
 * in between, so voucher acceptance and balance deduction are serialized per channel, and each write is durable
 * before its caller gets an answer (the output gate holds it). The voucher path makes no network call: chain state
 * arrives with open, topUp and close. See docs/storage-schema.md.
 *
 * Settlement runs in the alarm, which needs the chain: a deployment subclasses this class and returns its session
 * method from `settlement()` (the base class keeps accounting only, and its alarm does nothing).
 * @example
 * const channel = env.CHANNEL_STATE.get(env.CHANNEL_STATE.idFromName(channelId))
 * const result = await channel.voucher(voucher, 0n, { cost: 25n, units: 1, challengeId })
 * // In the worker: export class ChannelState extends BaseChannelState { settlement() { return tempoSession({ … }) } }
 */
export class ChannelState extends DurableObject implements Channel {
  private readonly sql: SqlStorage
  private waiters = new Set<{ above: bigint; stream: number | undefined; resolve: () => void }>()
  // When the next voucher submission is due (VoucherPacing). In memory: an evicted object can only let a burst through early.
  private voucherDue = 0

  constructor(ctx: DurableObjectState, env: unknown) {
    super(ctx, env as never)
    this.sql = ctx.storage.sql
    this.sql.exec(`CREATE TABLE IF NOT EXISTS channel (
      id INTEGER PRIMARY KEY CHECK (id = 1),
      channel_id TEXT NOT NULL,
      chain_id INTEGER NOT NULL,
      escrow TEXT NOT NULL,
      descriptor TEXT NOT NULL,
      deposit TEXT NOT NULL,
      settled TEXT NOT NULL,
      close_requested_at TEXT NOT NULL,
      status TEXT NOT NULL CHECK (status IN ('open', 'closing', 'closed')),
      accepted TEXT NOT NULL,
      accepted_signature TEXT,
      spent TEXT NOT NULL,
      units INTEGER NOT NULL,
      close_tx TEXT,
      updated_at INTEGER NOT NULL
    )`)
    this.sql.exec(`CREATE TABLE IF NOT EXISTS vouchers (
      cumulative TEXT PRIMARY KEY,
      signature TEXT NOT NULL,
      accepted_at INTEGER NOT NULL
    )`)
    // Vouchers kept with the earlier 29-digit padding (uint96 amounts) take the 39-digit form, so all compare alike.
    this.sql.exec(`UPDATE vouchers SET cumulative = substr('${'0'.repeat(39)}' || cumulative, -39) WHERE length(cumulative) < 39`)
    this.sql.exec(`CREATE TABLE IF NOT EXISTS charges (
      challenge_id TEXT NOT NULL,
      idempotency_key TEXT NOT NULL,
      cost TEXT NOT NULL,
      units INTEGER NOT NULL,
      at INTEGER NOT NULL,
      PRIMARY KEY (challenge_id, idempotency_key)
    )`)
  }

  /** The channel's accounting, or undefined when this object never saw an open. */
  async state(): Promise<ChannelAccount.ChannelAccount | undefined> {
    return this.load()
  }

  /**
   * Records a verified, broadcast open and accepts its first voucher. Opening a channel this object knows (a retried
   * open) refreshes the chain state and accepts the voucher like any other.
   */
  async open(chain: ChainState, voucher: ChannelAccount.SignedVoucher, minDelta: bigint): Promise<Result<ChannelAccount.Accepted>> {
    let account = this.load()
    const isNew = !account
    if (!account) {
      // A new channel: nothing delivered yet, except what the chain already settled (sequential sessions).
      account = {
        ...chain,
        status: 'open',
        accepted: chain.settled,
        acceptedSignature: undefined,
        spent: chain.settled,
        units: 0,
      }
    } else {
      account = this.withChain(account, chain)
    }
    const result = this.run(account, () => {
      const accepted = ChannelAccount.checkVoucher(account, voucher, minDelta)
      if (accepted.status === 'accepted') this.accept(account, voucher)
      this.save(account)
      // Kept with the open itself, so the payer's listing gets the channel even if the caller's index write fails.
      if (isNew) this.ctx.storage.kv.put('payer-index', { payer: account.descriptor.payer, attempts: 0 })
      return accepted
    })
    if (result.ok && isNew && this.payerIndex()) await this.scheduleAlarm(Date.now() + indexRetryMs.first)
    if (result.ok && (await this.settlement())) await this.scheduleAlarm(Date.now() + settleIntervalMs)
    return result
  }

  /**
   * Where the payer index lives, for the alarm's retry of the index write: the worker's `PAYER_CHANNELS` binding by
   * default. Subclasses bound under another name return theirs; undefined disables the retry.
   */
  protected payerIndex(): DurableObjectNamespace<PayerChannels> | undefined {
    return (this.env as { PAYER_CHANNELS?: DurableObjectNamespace<PayerChannels> } | undefined)?.PAYER_CHANNELS
  }

  /**
   * Writes the channel into its payer's index if that is still pending (the alarm calls it until it succeeds; the
   * write is idempotent). True when the index lists the channel, or there is nothing to do.
   */
  async indexNow(): Promise<boolean> {
    const pending = this.ctx.storage.kv.get<{ payer: string; attempts: number }>('payer-index')
    const account = this.load()
    const payers = this.payerIndex()
    if (!pending || !account || !payers) return true
    try {
      await payers.get(payers.idFromName(pending.payer.toLowerCase())).add(account.channelId)
      this.ctx.storage.kv.delete('payer-index')
      return true
    } catch (error) {
      const attempts = pending.attempts + 1
      this.ctx.storage.kv.put('payer-index', { ...pending, attempts })
      await this.scheduleAlarm(Date.now() + Math.min(indexRetryMs.max, indexRetryMs.first * 2 ** attempts))
      console.error(JSON.stringify({ event: 'payer-index-retry', channelId: account.channelId, attempts, error: String(error) }))
      return false
    }
  }

  /**
   * The session method the alarm settles and watches with; undefined (the default) disables settlement.
   * Subclasses return their configured method (built from `this.env`).
   */
  protected settlement(): SessionMethod | undefined | Promise<SessionMethod | undefined> {
    return undefined
  }

  /**
   * Periodic work of an open channel: reads the close-request time (and deposit) from the chain, and settles the
   * highest voucher whose cumulative amount does not exceed `spent`, when it is above what is settled. Once the
   * payer requested a forced close, no new work is served (vouchers and charges are refused) and the channel is
   * closed at once, capturing exactly what was consumed, well before the grace period ends. Reschedules itself while
   * the channel is open.
   */
  override async alarm(): Promise<void> {
    await this.indexNow()
    await this.settleNow()
  }

  /** Runs the alarm's work now and reports it (the alarm calls it; tests and operators may too). */
  async settleNow(): Promise<AlarmReport | undefined> {
    const method = await this.settlement()
    let account = this.load()
    if (!method || !account || account.status === 'closed') return undefined
    const report: AlarmReport = { closeRequestedAt: account.closeRequestedAt }
    try {
      if (method.read) {
        const chain = await method.read(account)
        account = this.load()!
        if (chain.deposit === 0n && account.status !== 'closed') {
          // The escrow deleted the channel (closed or withdrawn): nothing more can be served or settled.
          account.status = 'closed'
          this.save(account)
          this.wake()
          return report
        }
        this.save(this.withChain(account, { ...account, ...chain }))
        this.wake()
        report.closeRequestedAt = chain.closeRequestedAt
      }
      account = this.load()!
      // A forced close is pending: close now, capturing exactly what was consumed with the highest voucher (settle has
      // no capture amount, and the voucher covering spent may be ahead of it); the rest goes back to the payer.
      if (account.closeRequestedAt !== 0n && account.status === 'open' && account.acceptedSignature && account.accepted >= ChannelAccount.captureAmount(account)) {
        account.status = 'closing'
        this.save(account)
        // v1's close pays the whole voucher: close with the highest one not above what was consumed.
        const voucher = method.closePaysVoucher
          ? this.bounded(account, undefined)
          : { cumulative: account.accepted, signature: account.acceptedSignature }
        const capture = method.closePaysVoucher ? voucher.cumulative : ChannelAccount.captureAmount(account)
        try {
          const closed = await method.close(account, voucher, capture)
          await this.finishClose(closed.settled, closed.txHash)
          report.settled = { txHash: closed.txHash, amount: closed.settled }
        } catch (error) {
          await this.abortClose()
          throw error
        }
        return report
      }
      const voucher = await this.settleable()
      if (voucher && voucher.cumulative > account.settled && account.status === 'open' && method.settle) {
        // Public from the broadcast on: a close must then be above it.
        if (voucher.cumulative > this.published()) this.ctx.storage.kv.put('published', voucher.cumulative.toString())
        const settled = await method.settle(account, voucher)
        if (settled) {
          await this.settled(settled.settled)
          report.settled = { txHash: settled.txHash, amount: settled.settled }
        }
      }
    } finally {
      if (this.load()?.status !== 'closed') await this.scheduleAlarm(Date.now() + settleIntervalMs)
    }
    return report
  }

  private async scheduleAlarm(at: number): Promise<void> {
    const current = await this.ctx.storage.getAlarm()
    if (current === null || current > at) await this.ctx.storage.setAlarm(at)
  }

  /** Accepts a voucher and, atomically with it, charges for the work it pays for. */
  async voucher(
    voucher: ChannelAccount.SignedVoucher,
    minDelta: bigint,
    charge?: Charge | undefined,
    rate?: VoucherPacing.Rule | null | undefined,
  ): Promise<Result<{ accepted: ChannelAccount.Accepted; duplicate: boolean }>> {
    // The signer (and the resource's payee) first: a stranger's voucher is refused before it counts for anything.
    const known = this.load()
    if (!known) return notFound()
    try {
      ChannelAccount.checkSigner(known, voucher)
    } catch (error) {
      if (error instanceof SessionError) return { ok: false, failure: ChannelAccount.toFailure(error) }
      throw error
    }
    // draft-tempo-session-00, "Denial of Service": every submission of the channel signer counts, accepted or not.
    // Decided here, in the one object of the channel, so the limit holds whichever worker the vouchers arrive at.
    if (rate !== null) {
      const rule = rate ?? VoucherPacing.defaultRule
      const pacing = VoucherPacing.pace(this.voucherDue, Date.now(), rule)
      if (!pacing.admitted) {
        return { ok: false, failure: { problem: 'rate-limited', detail: `too many vouchers on this channel: at most ${rule.perSecond} a second`, retryAfter: pacing.retryAfterSeconds } }
      }
      this.voucherDue = pacing.due
      if (pacing.waitMs > 0) await scheduler.wait(pacing.waitMs)
    }
    const account = this.load()
    if (!account) return notFound()
    // Two steps with no await between them: the voucher is kept even when it does not cover the charge.
    const accepted = this.run(account, () => {
      const result = ChannelAccount.checkVoucher(account, voucher, minDelta)
      if (result.status === 'accepted') this.accept(account, voucher)
      this.save(account)
      return result
    })
    if (!accepted.ok || !charge) return accepted.ok ? { ...accepted, value: { accepted: accepted.value, duplicate: false } } : accepted
    return this.run(account, () => {
      const duplicate = this.applyCharge(account, charge)
      this.save(account)
      return { accepted: accepted.value, duplicate }
    })
  }

  /** Charges for work out of the accepted vouchers; `duplicate` when this (challenge, key) was charged before. */
  async charge(charge: Charge): Promise<Result<{ duplicate: boolean }>> {
    const account = this.load()
    if (!account) return notFound()
    return this.run(account, () => {
      const duplicate = this.applyCharge(account, charge)
      this.save(account)
      return { duplicate }
    })
  }

  /** Gives back a charge whose work was not delivered (the handler failed before anything was sent). */
  async refund(charge: Charge): Promise<Result<null>> {
    const account = this.load()
    if (!account) return notFound()
    return this.run(account, () => {
      if (account.spent - charge.cost < account.settled) return null // never below what the chain holds
      account.spent -= charge.cost
      account.units = Math.max(0, account.units - charge.units)
      if (charge.idempotencyKey !== undefined) {
        this.sql.exec('DELETE FROM charges WHERE challenge_id = ? AND idempotency_key = ?', charge.challengeId, charge.idempotencyKey)
      }
      this.save(account)
      return null
    })
  }

  /** Records a verified topUp: the new deposit, and the close request it cancelled. */
  async topUp(chain: ChainState): Promise<Result<null>> {
    const account = this.load()
    if (!account) return notFound()
    return this.run(account, () => {
      this.save(this.withChain(account, chain))
      return null
    })
  }

  /**
   * Starts a cooperative close: checks the close voucher, stops new work, and answers what to capture
   * (`max(spent, settled)`) and the voucher to close with.
   */
  async beginClose(
    voucher: ChannelAccount.SignedVoucher,
    options: { paysVoucher?: boolean | undefined } = {},
  ): Promise<Result<{ capture: bigint; voucher: StoredVoucher }>> {
    const account = this.load()
    if (!account) return notFound()
    return this.run(account, () => {
      ChannelAccount.checkCloseVoucher(account, voucher, this.published(), { reachAccepted: !options.paysVoucher })
      if (voucher.cumulative > account.accepted) this.accept(account, voucher)
      account.status = account.status === 'closed' ? 'closed' : 'closing'
      this.save(account)
      const closing = { cumulative: voucher.cumulative, signature: voucher.signature }
      if (options.paysVoucher) {
        const bounded = this.bounded(account, closing)
        return { capture: bounded.cumulative, voucher: bounded }
      }
      return { capture: ChannelAccount.captureAmount(account), voucher: closing }
    })
  }

  /**
   * The voucher a close that pays out its whole cumulative amount (v1) uses: the highest kept voucher (or `also`)
   * whose cumulative amount does not exceed `max(spent, settled)`, never below what is settled. When none is above
   * the settled amount, the settled amount itself (the escrow checks no signature for it), so nothing unconsumed is paid.
   */
  private bounded(account: ChannelAccount.ChannelAccount, also: StoredVoucher | undefined): StoredVoucher {
    const limit = ChannelAccount.captureAmount(account)
    let best = this.voucherAtMost(limit)
    if (also && also.cumulative <= limit && (!best || also.cumulative > best.cumulative)) best = also
    if (best && best.cumulative >= account.settled) return best
    return { cumulative: account.settled, signature: also?.signature ?? best?.signature ?? account.acceptedSignature ?? `0x${'00'.repeat(65)}` }
  }

  private voucherAtMost(limit: bigint): StoredVoucher | undefined {
    const row = this.sql
      .exec<{ cumulative: string; signature: string }>('SELECT cumulative, signature FROM vouchers WHERE cumulative <= ? ORDER BY cumulative DESC LIMIT 1', pad(limit))
      .toArray()[0]
    return row && { cumulative: BigInt(row.cumulative), signature: row.signature as `0x${string}` }
  }

  /** The close transaction did not go through: the channel serves again. */
  async abortClose(): Promise<void> {
    const account = this.load()
    if (account?.status !== 'closing') return
    account.status = 'open'
    this.save(account)
  }

  /** Records the mined close: the amount paid out and its transaction. */
  async finishClose(settled: bigint, txHash: `0x${string}`): Promise<Result<null>> {
    const account = this.load()
    if (!account) return notFound()
    account.status = 'closed'
    if (settled > account.settled) account.settled = settled
    this.save(account)
    this.sql.exec('UPDATE channel SET close_tx = ? WHERE id = 1', txHash)
    this.sql.exec('DELETE FROM vouchers')
    this.wake()
    return { ok: true, account, value: null }
  }

  /** Records an amount settled on chain; vouchers at or below it are no longer needed. */
  async settled(settled: bigint): Promise<void> {
    const account = this.load()
    if (!account || settled <= account.settled) return
    account.settled = settled
    this.save(account)
  }

  /**
   * The voucher a settlement may put on chain: the highest one not above `spent` (no unconsumed funds captured) and
   * below the newest accepted voucher (`ChannelAccount.settleLimit`: a voucher on chain never serves as a close).
   */
  async settleable(): Promise<StoredVoucher | undefined> {
    const account = this.load()
    if (!account) return undefined
    return this.voucherAtMost(ChannelAccount.settleLimit(account))
  }

  // The highest voucher amount this object ever sent in a settle transaction (public calldata from then on).
  private published(): bigint {
    return BigInt(this.ctx.storage.kv.get<string>('published') ?? '0')
  }

  /**
   * Waits until the accepted amount rises above `above` (a voucher arrived), the channel stops serving, or
   * `timeoutMs` passes; answers the channel then. A paused stream waits here instead of polling.
   */
  async waitForVoucher(above: bigint, timeoutMs: number): Promise<ChannelAccount.ChannelAccount | undefined> {
    const ready = (account: ChannelAccount.ChannelAccount | undefined) => !account || account.accepted > above || account.status !== 'open' || account.closeRequestedAt !== 0n
    const now = this.load()
    if (ready(now)) return now
    await this.park(above, timeoutMs, undefined)
    return this.load()
  }

  /**
   * Registers a new stream on the channel and answers its number. A stream waiting for a voucher under an older
   * number stops waiting (draft-tempo-session-00, "Concurrency Model": a new streaming request terminates the
   * previous session), so it ends with its receipt, charged only for what it delivered.
   */
  async beginStream(): Promise<number> {
    const stream = (this.ctx.storage.kv.get<number>('stream') ?? 0) + 1
    this.ctx.storage.kv.put('stream', stream)
    this.wake()
    return stream
  }

  /**
   * Like `waitForVoucher`, for stream number `stream`: also ends the wait, `superseded`, once a newer stream began.
   */
  async waitForStreamVoucher(above: bigint, timeoutMs: number, stream: number): Promise<StreamWait> {
    const superseded = () => (this.ctx.storage.kv.get<number>('stream') ?? 0) > stream
    const ready = (account: ChannelAccount.ChannelAccount | undefined) =>
      !account || account.accepted > above || account.status !== 'open' || account.closeRequestedAt !== 0n || superseded()
    if (!ready(this.load())) await this.park(above, timeoutMs, stream)
    return { account: this.load(), superseded: superseded() }
  }

  private park(above: bigint, timeoutMs: number, stream: number | undefined): Promise<void> {
    return new Promise<void>((resolve) => {
      const waiter = { above, stream, resolve }
      const timer = setTimeout(() => {
        this.waiters.delete(waiter)
        resolve()
      }, Math.min(Math.max(0, timeoutMs), 120_000))
      waiter.resolve = () => {
        clearTimeout(timer)
        this.waiters.delete(waiter)
        resolve()
      }
      this.waiters.add(waiter)
    })
  }

  private withChain(account: ChannelAccount.ChannelAccount, chain: ChainState): ChannelAccount.ChannelAccount {
    // Chain amounts only grow; a stale read never lowers what an earlier read established.
    if (chain.deposit > account.deposit) account.deposit = chain.deposit
    if (chain.settled > account.settled) account.settled = chain.settled
    account.closeRequestedAt = chain.closeRequestedAt
    return account
  }

  private accept(account: ChannelAccount.ChannelAccount, voucher: ChannelAccount.SignedVoucher): void {
    account.accepted = voucher.cumulative
    account.acceptedSignature = voucher.signature
    this.sql.exec(
      'INSERT OR REPLACE INTO vouchers (cumulative, signature, accepted_at) VALUES (?, ?, ?)',
      pad(voucher.cumulative),
      voucher.signature,
      Date.now(),
    )
  }

  // Returns true when this (challenge, key) was charged before: nothing is counted twice.
  private applyCharge(account: ChannelAccount.ChannelAccount, charge: Charge): boolean {
    if (charge.idempotencyKey !== undefined) {
      const seen = this.sql
        .exec('SELECT 1 FROM charges WHERE challenge_id = ? AND idempotency_key = ?', charge.challengeId, charge.idempotencyKey)
        .toArray()
      if (seen.length > 0) return true
    }
    ChannelAccount.checkCharge(account, charge.cost)
    account.spent += charge.cost
    account.units += charge.units
    // Vouchers below the highest one a settlement may use can never be the best to settle: drop them.
    this.sql.exec(
      'DELETE FROM vouchers WHERE cumulative < (SELECT MAX(cumulative) FROM vouchers WHERE cumulative <= ?)',
      pad(ChannelAccount.settleLimit(account)),
    )
    if (charge.idempotencyKey !== undefined) {
      this.sql.exec(
        'INSERT INTO charges (challenge_id, idempotency_key, cost, units, at) VALUES (?, ?, ?, ?, ?)',
        charge.challengeId,
        charge.idempotencyKey,
        charge.cost.toString(),
        charge.units,
        Date.now(),
      )
    }
    return false
  }

  // Runs one synchronous step; a session error becomes a failure result and nothing of the step is kept.
  private run<T>(account: ChannelAccount.ChannelAccount, step: () => T): Result<T> {
    try {
      const value = this.ctx.storage.transactionSync(step)
      this.wake()
      return { ok: true, account, value }
    } catch (error) {
      if (error instanceof SessionError) return { ok: false, failure: ChannelAccount.toFailure(error) }
      throw error
    }
  }

  private wake(): void {
    const account = this.load()
    const stream = this.waiters.size > 0 ? (this.ctx.storage.kv.get<number>('stream') ?? 0) : 0
    for (const waiter of [...this.waiters]) {
      const superseded = waiter.stream !== undefined && stream > waiter.stream
      if (!account || account.accepted > waiter.above || account.status !== 'open' || account.closeRequestedAt !== 0n || superseded) waiter.resolve()
    }
  }

  private load(): ChannelAccount.ChannelAccount | undefined {
    const row = this.sql.exec<Row>('SELECT * FROM channel WHERE id = 1').toArray()[0]
    if (!row) return undefined
    return {
      channelId: row.channel_id as `0x${string}`,
      chainId: row.chain_id,
      escrow: row.escrow as `0x${string}`,
      descriptor: JSON.parse(row.descriptor) as Descriptor,
      deposit: BigInt(row.deposit),
      settled: BigInt(row.settled),
      closeRequestedAt: BigInt(row.close_requested_at),
      status: row.status,
      accepted: BigInt(row.accepted),
      acceptedSignature: (row.accepted_signature ?? undefined) as `0x${string}` | undefined,
      spent: BigInt(row.spent),
      units: row.units,
    }
  }

  private save(account: ChannelAccount.ChannelAccount): void {
    this.sql.exec(
      `INSERT INTO channel (id, channel_id, chain_id, escrow, descriptor, deposit, settled, close_requested_at, status, accepted, accepted_signature, spent, units, updated_at)
       VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET deposit = excluded.deposit, settled = excluded.settled, close_requested_at = excluded.close_requested_at,
         status = excluded.status, accepted = excluded.accepted, accepted_signature = excluded.accepted_signature, spent = excluded.spent,
         units = excluded.units, updated_at = excluded.updated_at`,
      account.channelId,
      account.chainId,
      account.escrow,
      JSON.stringify(account.descriptor),
      account.deposit.toString(),
      account.settled.toString(),
      account.closeRequestedAt.toString(),
      account.status,
      account.accepted.toString(),
      account.acceptedSignature ?? null,
      account.spent.toString(),
      account.units,
      Date.now(),
    )
  }
}

function notFound(): { ok: false; failure: ChannelAccount.Failure } {
  return { ok: false, failure: ChannelAccount.toFailure(new ChannelNotFoundError({ detail: 'this server has no open channel with this id' })) }
}
