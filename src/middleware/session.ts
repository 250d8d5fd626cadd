/** @module Hono middleware for session-priced routes: `pay.session({ amount: '0.00001', unitType: 'llm_token' })`. */
import type { Context, Env, MiddlewareHandler } from 'hono'
import type { CredentialHeader } from '../core/Challenge.js'
import type { ChannelStore } from '../core/ChannelStore.js'
import { ConfigurationError, InsufficientBalanceError, PaymentInProgressError, PaymentUnavailableError, SessionError } from '../core/Errors.js'
import * as PaidResponse from '../core/PaidResponse.js'
import type { ReplayStore } from '../core/ReplayStore.js'
import * as Server from '../core/Server.js'
import * as Session from '../core/Session.js'
import type { SessionMethod, SessionPrice } from '../core/SessionMethod.js'
import * as SessionServer from '../core/SessionServer.js'
import * as VoucherPacing from '../core/VoucherPacing.js'
import { type Idempotency, idempotencyKey, maxStoredBody, storableBody } from '../storage/idempotency.js'

/** How a paused stream waits for a voucher before it ends (draft-tempo-session-00 suggests about 60 s). */
export const voucherWaitMs = 60_000

/** A metered stream's view of its session: `charge` pauses the stream until a voucher covers the units. */
export type StreamSession = {
  /** Charges `units` (default 1); when the balance runs out, asks the payer for a voucher and waits for it. */
  charge: (units?: number) => Promise<void>
  /** Units charged by this request so far. */
  readonly units: number
}

/** What a session-paid handler reads with `c.get('session')`. */
export type SessionInfo = {
  channelId: `0x${string}`
  challengeId: string
  /** Price of one unit, base units. */
  price: bigint
  /** Units charged by this request so far. */
  readonly units: number
  /** Charges `units` more while the handler works; throws InsufficientBalanceError when the vouchers do not cover them. */
  charge: (units?: number) => Promise<void>
  /**
   * A metered SSE response: each yielded string is sent as an `event: message` once the units charged for it are
   * paid; when the balance runs out the stream sends `event: payment-need-voucher` and waits for a voucher on the
   * same URI (up to `waitMs`, default 60 s, then it ends); a final `event: payment-receipt` ends it.
   */
  sse: (source: (session: StreamSession) => AsyncIterable<string>, options?: { waitMs?: number | undefined }) => Response
  /** The receipt as of now. */
  receipt: () => Session.SessionReceipt
}

declare module 'hono' {
  interface ContextVariableMap {
    session: SessionInfo
  }
}

/** Session settings of `payment()`. */
export type SessionOptions<E extends Env = Env> = {
  /** The session-capable method (for example `tempoSession({ … })`). */
  method: SessionMethod
  /** Where channels live (usually `channelStore(c.env.CHANNEL_STATE, c.env.PAYER_CHANNELS)`). */
  channels: (c: Context<E>) => ChannelStore
  /** Session challenge lifetime in seconds (default 3600): one challenge carries many voucher-paid requests. */
  ttlSeconds?: number | undefined
  /**
   * Voucher submissions allowed per channel (default the spec's 10 a second, a burst of 10, a wait of at most 1 s
   * before `429`); `false` turns the limit off, for a private deployment or a throughput benchmark.
   */
  voucherRate?: { perSecond: number; burst?: number | undefined; maxDelayMs?: number | undefined } | false | undefined
}

/** A route's session price. */
export type SessionRoute = SessionPrice & {
  /** Units charged before the handler runs, for each content request (default 1; 0 when the handler meters everything). */
  upfrontUnits?: number | undefined
  /**
   * `Payment-Authorization` for a route whose `Authorization` carries the application's own credentials (a Bearer
   * API key): challenges name it, and every session credential (open, vouchers, topUp, close) is read from it only
   * (default: `payment()`'s).
   */
  credentialHeader?: CredentialHeader | undefined
  /**
   * The bootstrap preflight (draft-tempo-session-00, "Bootstrap Preflight"): a `HEAD` is also challenged with a
   * zero-amount charge of the session's method (configured in `methods`), and a `HEAD` paying it answers `204` with
   * the session headers of that payer's open channel here, so a client without local state resumes it instead of
   * opening another. The handler never runs.
   */
  bootstrap?: boolean | undefined
}

/**
 * Builds the middleware of one session-priced route.
 * @example
 * app.on(['GET', 'POST', 'HEAD'], '/chat', sessionRoute(server, options, { amount: '0.00001', unitType: 'llm_token' }), handler)
 */
export function sessionRoute<E extends Env>(
  server: Server.Server,
  options: { session?: SessionOptions<E> | undefined; store: (c: Context<E>) => ReplayStore; idempotency?: ((c: Context<E>) => Idempotency) | undefined },
  route: SessionRoute,
): MiddlewareHandler<E> {
  const session = options.session
  if (!session) throw new Server.ConfigError('pay.session needs the session option (method and channels)')
  Server.assertPrice({ amount: route.amount, description: route.description })
  const upfrontUnits = route.upfrontUnits ?? 1
  if (!Number.isSafeInteger(upfrontUnits) || upfrontUnits < 0) throw new Server.ConfigError('upfrontUnits must be a non-negative whole number')
  const credentialHeader = route.credentialHeader === undefined ? server.credentialHeader : Server.checkedHeader(route.credentialHeader)
  if (route.bootstrap && !server.methods.get(session.method.name)?.intents.includes('charge')) {
    throw new Server.ConfigError(`pay.session bootstrap needs the ${session.method.name} charge method in methods`)
  }
  const voucherRate = checkedRate(session.voucherRate)
  const ttlSeconds = session.ttlSeconds ?? 3600
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 10 || ttlSeconds > 86_400) throw new Server.ConfigError('session ttlSeconds must be a whole number from 10 to 86400')
  let offer: SessionServer.SessionOffer | undefined

  return async function paymentSession(c, next) {
    try {
      offer ??= {
        method: session.method,
        request: session.method.request(route),
        description: route.description,
        upfrontUnits,
        ttlSeconds,
        credentialHeader,
        bootstrap: route.bootstrap ? (await Server.chargeOffers(server, { amount: '0' }, [session.method.name]))[0] : undefined,
        voucherRate,
      }
    } catch (error) {
      if (!(error instanceof Server.ConfigError)) throw error
      console.error(JSON.stringify({ event: 'payment-configuration-error', route: c.req.path, detail: error.message }))
      return Server.problemResponse(new ConfigurationError({ detail: error.message }))
    }
    let outcome: SessionServer.SessionOutcome
    try {
      outcome = await SessionServer.handle(server, c.req.raw, offer, { channels: session.channels(c), replay: options.store(c) })
    } catch (error) {
      console.error(JSON.stringify({ event: 'payment-error', route: c.req.path, error: String(error) }))
      return Server.problemResponse(new PaymentUnavailableError({ detail: 'payment processing failed', retryAfter: 2 }))
    }
    if (outcome.type === 'response') return outcome.response
    const idempotency = options.idempotency?.(c)
    if (outcome.type === 'replay') {
      const stored = idempotency && (await idempotency.get(await replayKey(outcome.challengeId, outcome.idempotencyKey)).catch(() => undefined))
      if (stored) return new Response(stored.body, { status: stored.status, headers: stored.headers })
      // Charged once already, and its response is not (yet) stored: never charge again.
      return Server.problemResponse(new PaymentInProgressError({ detail: 'this request was already paid under this Idempotency-Key', retryAfter: 1 }))
    }

    const meter = outcome.meter
    let streaming = false
    c.set('session', {
      channelId: meter.channelId,
      challengeId: meter.challengeId,
      price: meter.price,
      get units() {
        return meter.units
      },
      charge: (units) => meter.charge(units),
      sse: (source, sseOptions) => {
        streaming = true
        return meteredStream(meter, source, sseOptions?.waitMs ?? voucherWaitMs)
      },
      receipt: () => meter.receipt(),
    })
    await next()
    const response = c.res
    c.res = undefined
    if (c.error || response.status >= 400) {
      // Nothing was delivered: give back what this request charged. A charge the vouchers did not cover is the payer's 402.
      if (!streaming) await meter.refund().catch(() => {})
      if (c.error instanceof SessionError) {
        await response.body?.cancel().catch(() => {})
        c.res = await SessionServer.problem(server, c.req.raw, offer, c.error, meter.account)
        return
      }
      const headers = new Headers(response.headers)
      headers.delete('payment-receipt')
      headers.set('cache-control', 'no-store')
      c.res = new Response(response.body, { status: response.status, statusText: response.statusText, headers })
      return
    }
    const paid = PaidResponse.withReceipt(response, meter.receipt())
    meter.headers(paid.headers)
    const key = c.req.header('idempotency-key')
    if (!idempotency || !key || streaming) {
      c.res = paid
      return
    }
    const { stored, body } = await storableBody(paid.body, maxStoredBody)
    if (stored) {
      const expiresAt = Date.now() + ttlSeconds * 1000
      await idempotency
        .put(await replayKey(meter.challengeId, key), { status: paid.status, headers: [...paid.headers.entries()], body: stored }, expiresAt)
        .catch(() => {})
    }
    c.res = new Response(body, { status: paid.status, statusText: paid.statusText, headers: paid.headers })
  }
}

function checkedRate(rate: SessionOptions['voucherRate']): VoucherPacing.Rule | null | undefined {
  if (rate === undefined) return undefined
  if (rate === false) return null
  const rule = { perSecond: rate.perSecond, burst: rate.burst ?? Math.max(1, Math.ceil(rate.perSecond)), maxDelayMs: rate.maxDelayMs ?? VoucherPacing.defaultRule.maxDelayMs }
  if (!(rule.perSecond > 0 && rule.perSecond <= 100_000) || !Number.isSafeInteger(rule.burst) || rule.burst < 1 || !Number.isSafeInteger(rule.maxDelayMs) || rule.maxDelayMs < 0 || rule.maxDelayMs > 10_000) {
    throw new Server.ConfigError('session voucherRate: perSecond above 0, burst a whole number from 1, maxDelayMs from 0 to 10000')
  }
  return rule
}

// draft-tempo-session-00, "Request Idempotency": responses are kept per (challengeId, Idempotency-Key).
function replayKey(challengeId: string, key: string): Promise<string> {
  return idempotencyKey(key, `session\n${challengeId}`)
}

class StreamEnded extends Error {}

/**
 * A metered SSE body over `source` (draft-tempo-session-00, "Insufficient Balance During Streaming"): units are
 * charged before the content they pay for is sent; on exhaustion the stream asks for a voucher and pauses.
 * @example
 * return meteredStream(meter, async function* (session) { for (const t of tokens) { await session.charge(1); yield t } }, 60_000)
 */
export function meteredStream(meter: SessionServer.Meter, source: (session: StreamSession) => AsyncIterable<string>, waitMs: number): Response {
  const encoder = new TextEncoder()
  let controllerRef: ReadableStreamDefaultController<Uint8Array> | undefined
  const send = (text: string) => controllerRef?.enqueue(encoder.encode(text))
  const session: StreamSession = {
    get units() {
      return meter.units
    },
    async charge(units = 1) {
      for (;;) {
        try {
          await meter.charge(units)
          return
        } catch (error) {
          if (!(error instanceof InsufficientBalanceError)) throw new StreamEnded(String(error))
          const account = meter.account
          send(
            Session.needVoucherEvent({
              channelId: account.channelId,
              requiredCumulative: (account.spent + BigInt(units) * meter.price).toString(),
              acceptedCumulative: account.accepted.toString(),
              deposit: account.deposit.toString(),
            }),
          )
          if (!(await meter.waitForVoucher(waitMs))) throw new StreamEnded('no voucher arrived')
        }
      }
    },
  }
  const iterator = source(session)[Symbol.asyncIterator]()
  let done = false
  let begun = false
  const finish = (controller: ReadableStreamDefaultController<Uint8Array>) => {
    if (done) return
    done = true
    controller.enqueue(encoder.encode(Session.receiptEvent(meter.receipt())))
    controller.close()
  }
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      controllerRef = controller
    },
    async pull(controller) {
      if (done) return
      try {
        if (!begun) {
          begun = true
          // This is now the channel's stream: an older one still waiting for a voucher on it ends with its receipt.
          await meter.beginStream().catch(() => {})
        }
        const next = await iterator.next()
        if (next.done) return finish(controller)
        controller.enqueue(encoder.encode(Session.messageEvent(next.value)))
      } catch (error) {
        // The payer did not pay on (or the channel stopped serving): end cleanly with what was paid.
        await iterator.return?.().catch(() => {})
        if (error instanceof StreamEnded) return finish(controller)
        done = true
        controller.error(error)
      }
    },
    async cancel() {
      done = true
      await iterator.return?.().catch(() => {})
    },
  })
  return new Response(body, {
    headers: { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache, no-transform' },
  })
}
