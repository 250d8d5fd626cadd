/**
 * @module Session-priced routes of the gateway (draft-tempo-session-00, "Server-Side Accounting"): a request, each
 * SSE event, or each token the origin produces is paid out of the payer's channel. Units are charged before the
 * content they pay for is forwarded; what the origin does not deliver is given back.
 */
import * as Body from '../core/Body.js'
import type { ChannelStore } from '../core/ChannelStore.js'
import { BadRequestError, ContentTooLargeError, InsufficientBalanceError, OriginFailedError, PaymentInProgressError, PaymentUnavailableError, isPaymentError } from '../core/Errors.js'
import * as PaidResponse from '../core/PaidResponse.js'
import type { ReplayStore } from '../core/ReplayStore.js'
import * as Server from '../core/Server.js'
import * as Session from '../core/Session.js'
import * as SessionServer from '../core/SessionServer.js'
import type { Recorder } from './events.js'
import { originRequest } from './origin.js'
import type { Settings } from './settings.js'
import { type SseEvent, isBillable, sseEvents } from './sse.js'
import { type TokenBound, type TokenTerms, type Usage, generatedTokens, tokenApi, tokenBound, usageOf } from './tokens.js'

/** How long a paused stream waits for a voucher before it ends (draft-tempo-session-00 suggests about 60 s). */
export const voucherWaitMs = 60_000

/** Largest request body a `tokens` route reads to bound its input. */
export const maxTokenRequestBytes = 1024 * 1024

/** Largest unstreamed response a `tokens` route reads for its usage (a larger one is charged its reserve). */
const maxUsageResponseBytes = 4 * 1024 * 1024

/** A route's session offer as the gateway serves it, prepared once. */
export type MeteredRoute = {
  label: string
  unit: 'request' | 'event' | 'tokens'
  offer: SessionServer.SessionOffer
  /** `tokens`: base-unit prices per input and output token, and the table's bounds. */
  tokens?: TokenPrices | undefined
}

/** A `tokens` route's prices per input and output token (base units) and its bounds. */
export type TokenPrices = TokenTerms & { input: bigint; output: bigint }

/** Where a session request's state lives, and what it is recorded with. */
export type MeteredContext = {
  settings: Settings
  server: Server.Server
  channels: ChannelStore
  replay: ReplayStore
  record: Recorder
  /** How long a paused stream waits for a voucher (default `voucherWaitMs`). */
  waitMs?: number | undefined
  /** The worker's ctx: a stream the payer abandons is settled after the response ended, which needs it. */
  waitUntil?: { waitUntil: (promise: Promise<unknown>) => void } | undefined
}

/** How the receipt of a `tokens` request was settled. */
export type UsageSource = 'reported' | 'reserved' | 'estimated'

/**
 * Takes session payment for one request and forwards it: a credential-less request gets the session challenge; a
 * management request (a voucher, topUp or close with no content) is answered here; a content request is charged
 * (one unit up front for `request` and `event`, the token reserve for `tokens`) and forwarded, metered as the route's
 * unit says.
 * @example
 * return meteredForward(context, route, request, url, path)
 */
export async function meteredForward(context: MeteredContext, route: MeteredRoute, request: Request, url: URL, path: string): Promise<Response> {
  const { server, record } = context
  let outcome: SessionServer.SessionOutcome
  try {
    outcome = await SessionServer.handle(server, request, route.offer, { channels: context.channels, replay: context.replay })
  } catch (error) {
    console.error(JSON.stringify({ event: 'payment-error', route: route.label, error: String(error) }))
    return Server.problemResponse(new PaymentUnavailableError({ detail: 'payment processing failed', retryAfter: 2 }))
  }
  if (outcome.type === 'response') return outcome.response
  if (outcome.type === 'replay') {
    return Server.problemResponse(new PaymentInProgressError({ detail: 'this request was already paid under this Idempotency-Key', retryAfter: 1 }))
  }
  const meter = outcome.meter
  const resource = `${request.method} ${path}`
  // A refund that fails leaves the payer charged for work not delivered: recorded for reconciliation, never silent.
  const giveBack = (refund: Promise<unknown>): Promise<unknown> =>
    refund.catch((error: unknown) =>
      record({ type: 'refund-failed', route: route.label, request: resource, method: route.offer.method.name, challengeId: meter.challengeId, reference: meter.channelId, detail: String(error) }),
    )

  let body: BodyInit | null | undefined
  let bound: TokenBound | undefined
  if (route.tokens) {
    const read = await readTokenRequest(request, path, route.tokens)
    if ('error' in read) {
      await giveBack(meter.refund())
      return Server.problemResponse(read.error)
    }
    bound = read.bound
    body = bound.body
    try {
      await meter.hold(reserveCost(route.tokens, bound), bound.input + bound.output)
    } catch (error) {
      if (!isPaymentError(error)) throw error
      // The vouchers do not cover the reserve: a fresh challenge and the top-up it needs (draft-tempo-session-00, 12.2).
      // The challenge binds the body as the payer sent it (read already, so passed again).
      const again = new Request(request.url, { method: request.method, headers: request.headers, body: read.text })
      return SessionServer.problem(server, again, route.offer, error, meter.account)
    }
  }

  const abort = new AbortController()
  const timer = setTimeout(() => abort.abort(new DOMException('the origin did not answer in time', 'TimeoutError')), context.settings.originTimeoutMs)
  let response: Response | undefined
  let failure: string | undefined
  try {
    let source = request
    if (body !== undefined) {
      // The body was read to bound it: the origin gets it as rewritten.
      const headers = new Headers(request.headers)
      headers.delete('content-length')
      // Read as JSON and rewritten: the origin must read it as such, whatever the payer labelled it.
      headers.delete('content-encoding')
      headers.set('content-type', 'application/json')
      source = new Request(request, { body, headers })
    }
    response = await send(context.settings, originRequest(context.settings, source, url, path), abort.signal)
  } catch (error) {
    const name = (error as Error | undefined)?.name
    failure = name === 'TimeoutError' || name === 'AbortError' ? 'the origin did not answer in time' : 'the origin could not be reached'
  } finally {
    // Only the answer's start is timed: a stream may run as long as it is paid for.
    clearTimeout(timer)
  }
  if (!response || response.status >= 400) {
    // Nothing was delivered: give back everything this request charged.
    await giveBack(meter.refund())
    const status = response?.status ?? 502
    record({ type: status >= 500 ? 'origin-failed' : 'origin-refused', route: route.label, request: resource, method: route.offer.method.name, challengeId: meter.challengeId, reference: meter.channelId, status })
    if (!response || response.status >= 500) {
      await response?.body?.cancel().catch(() => {})
      return Server.problemResponse(new OriginFailedError({ detail: `${failure ?? `the origin answered ${response!.status}`}; nothing was charged` }))
    }
    const headers = new Headers(response.headers)
    headers.delete('payment-receipt')
    headers.set('cache-control', 'no-store')
    return new Response(response.body, { status: response.status, statusText: response.statusText, headers })
  }

  const streamed = (response.headers.get('content-type') ?? '').toLowerCase().startsWith('text/event-stream') && response.body !== null
  if (route.unit === 'event' && !streamed) {
    // An event route counts SSE events; a whole body (`stream: false`, another Accept) could hold any number of them,
    // so it is not delivered for the one unit taken up front, and that unit is given back.
    await response.body?.cancel().catch(() => {})
    await giveBack(meter.refund())
    const type = response.headers.get('content-type') ?? 'no content type'
    record({ type: 'origin-failed', route: route.label, request: resource, method: route.offer.method.name, challengeId: meter.challengeId, reference: meter.channelId, status: response.status, detail: `answered ${type} on a per-event route` })
    return Server.problemResponse(new OriginFailedError({ detail: `the origin answered ${type}, not an event stream, and this route is priced per streamed event; nothing was charged` }))
  }
  // draft-tempo-session-00, "Concurrency": a new stream on a channel ends an older one still waiting for a voucher.
  if (streamed && route.unit !== 'request') await meter.beginStream().catch(() => {})
  if (route.unit === 'tokens' && bound && route.tokens) {
    const tokens = route.tokens
    // Usage the reserve does not cover: charged out of the channel's balance, recorded where that is short.
    const above = (detail: string) => record({ type: 'usage-above-reserve', route: route.label, request: resource, method: route.offer.method.name, challengeId: meter.challengeId, reference: meter.channelId, detail })
    if (streamed) return paid(meteredStream(meter, response, abort, tokenMeter(meter, tokens, bound, above), context, giveBack), response, meter)
    const settled = await settleBody(meter, tokens, bound, response, above)
    return paid(settled.body, response, meter, settled.source)
  }
  if (route.unit === 'event') return paid(meteredStream(meter, response, abort, eventMeter(meter), context, giveBack), response, meter)
  // One request: the unit charged up front pays for it.
  return paid(response.body, response, meter)
}

/** The origin's answer with the receipt as of now, the session headers, and no shared caching. */
function paid(body: BodyInit | null, response: Response, meter: SessionServer.Meter, source?: UsageSource | undefined): Response {
  const headers = new Headers(response.headers)
  headers.delete('content-length')
  headers.delete('content-encoding')
  const receipt = source ? { ...meter.receipt(), usage: source } : meter.receipt()
  const answer = PaidResponse.withReceipt(new Response(body, { status: response.status, statusText: response.statusText, headers }), receipt)
  meter.headers(answer.headers)
  return answer
}

function send(settings: Settings, request: Request, signal: AbortSignal): Promise<Response> {
  if (settings.origin.type === 'binding') return settings.origin.fetcher.fetch(request, { signal })
  return fetch(request, { signal })
}

async function readTokenRequest(
  request: Request,
  path: string,
  terms: TokenPrices,
): Promise<{ bound: TokenBound; text: string } | { error: InstanceType<typeof BadRequestError | typeof ContentTooLargeError> }> {
  const api = tokenApi(path)
  if (!api) return { error: new BadRequestError({ detail: 'per-token prices apply to /v1/chat/completions, /v1/completions and /v1/responses' }) }
  if (!request.body) return { error: new BadRequestError({ detail: 'the request needs a JSON body' }) }
  const tooLarge = new ContentTooLargeError({ detail: `request bodies of per-token routes are limited to ${maxTokenRequestBytes} bytes` })
  if (Number(request.headers.get('content-length') ?? '0') > maxTokenRequestBytes) return { error: tooLarge }
  const reader = request.body.getReader()
  const read = await Body.readUpTo(reader, maxTokenRequestBytes)
  if (!read.complete) {
    await reader.cancel().catch(() => {})
    return { error: tooLarge }
  }
  const text = new TextDecoder().decode(Body.concat(read.chunks, read.size))
  const bound = tokenBound(api, text, terms)
  if ('error' in bound) return { error: bound.tooLarge ? new ContentTooLargeError({ detail: bound.error }) : new BadRequestError({ detail: bound.error }) }
  return { bound, text }
}

function reserveCost(prices: { input: bigint; output: bigint }, bound: { input: number; output: number }): bigint {
  return BigInt(bound.input) * prices.input + BigInt(bound.output) * prices.output
}

/**
 * Settles the reserve to `final` at the route's prices: gives back what it does not use, or charges what it
 * exceeds out of the channel's balance (draft-tempo-session-00, "Cost Calculation": adjust `spent` as consumption
 * is measured); the part the vouchers do not cover is reported to `above`, never waived silently.
 */
async function settleReserve(meter: SessionServer.Meter, prices: { input: bigint; output: bigint }, bound: TokenBound, final: Usage, above: (detail: string) => void): Promise<void> {
  meter.release()
  const reserved = reserveCost(prices, bound)
  const cost = reserveCost(prices, final)
  const units = final.input + final.output - bound.input - bound.output
  if (cost <= reserved) {
    await meter.refundAmount(reserved - cost, Math.max(0, -units))
    // More tokens than reserved at no more cost (one side above, the other below): the receipt counts them all.
    if (units > 0) await meter.chargeAmount(0n, units).catch((error: unknown) => { if (!isPaymentError(error)) throw error })
    return
  }
  const extra = cost - reserved
  let charged = 0n
  try {
    await meter.chargeAmount(extra, Math.max(0, units))
    charged = extra
  } catch (error) {
    if (!isPaymentError(error)) throw error
    const available = meter.account.accepted - meter.account.spent
    if (available > 0n && available < extra) {
      try {
        await meter.chargeAmount(available, 0)
        charged = available
      } catch (again) {
        if (!isPaymentError(again)) throw again
      }
    }
  }
  if (charged < extra) {
    above(`usage of ${final.input} input and ${final.output} output tokens cost ${cost} base units, ${extra} above the reserve of ${reserved}; ${charged} charged from the channel's balance, ${extra - charged} base units not charged`)
  }
}

async function settleBody(meter: SessionServer.Meter, prices: TokenPrices, bound: TokenBound, response: Response, above: (detail: string) => void): Promise<{ body: BodyInit | null; source: UsageSource }> {
  if (!response.body) {
    meter.release()
    return { body: null, source: 'reserved' }
  }
  const reader = response.body.getReader()
  const read = await Body.readUpTo(reader, maxUsageResponseBytes)
  if (!read.complete) {
    // Too large to read for usage: charged the reserve, and streamed on as it is.
    meter.release()
    const rest = new ReadableStream<Uint8Array>({
      start(controller) {
        for (const chunk of read.chunks) controller.enqueue(chunk)
      },
      async pull(controller) {
        const next = await reader.read()
        if (next.done) controller.close()
        else controller.enqueue(next.value)
      },
      cancel: (reason) => reader.cancel(reason),
    })
    return { body: rest, source: 'reserved' }
  }
  const bytes = Body.concat(read.chunks, read.size)
  let usage: Usage | undefined
  try {
    usage = usageOf(JSON.parse(new TextDecoder().decode(bytes)))
  } catch {
    usage = undefined
  }
  if (usage) await settleReserve(meter, prices, bound, usage, above)
  meter.release()
  return { body: bytes, source: usage ? 'reported' : 'reserved' }
}

/** How a metered stream prices its events. */
type EventMeter = {
  /** Units to charge before the event is forwarded. */
  units: (event: SseEvent) => number
  /** Sees each forwarded event. */
  observe?: ((event: SseEvent) => void) | undefined
  /** Settles once the stream ended (`abandoned` when the payer went away first); answers the receipt's usage note. */
  settle: (abandoned: boolean) => Promise<UsageSource | undefined>
}

/** `event`: one unit per data event; the unit charged up front pays for the first, and is given back if none came. */
function eventMeter(meter: SessionServer.Meter): EventMeter {
  let prepaid = meter.units
  return {
    units: (event) => {
      if (!isBillable(event)) return 0
      if (prepaid > 0) {
        prepaid--
        return 0
      }
      return 1
    },
    settle: async () => {
      if (prepaid > 0) await meter.refundAmount(BigInt(prepaid) * meter.price, prepaid)
      prepaid = 0
      return undefined
    },
  }
}

/**
 * `tokens`: the reserve pays for the stream; it settles to the reported usage, or (abandoned before usage arrived)
 * to the input reserve and an upper bound of the output tokens forwarded (`generatedTokens`), within the reserve.
 */
function tokenMeter(meter: SessionServer.Meter, prices: TokenPrices, bound: TokenBound, above: (detail: string) => void): EventMeter {
  let usage: Usage | undefined
  let generated = 0
  return {
    units: () => 0,
    observe: (event) => {
      if (!isBillable(event)) return
      let value: unknown
      try {
        value = JSON.parse(event.data!)
      } catch {
        return
      }
      usage = usageOf(value) ?? usage
      generated += generatedTokens(value)
    },
    settle: async (abandoned) => {
      if (usage) {
        await settleReserve(meter, prices, bound, usage, above)
        return 'reported'
      }
      if (!abandoned) {
        meter.release()
        return 'reserved'
      }
      await settleReserve(meter, prices, bound, { input: bound.input, output: Math.min(generated, bound.output) }, above)
      return 'estimated'
    },
  }
}

/**
 * The origin's SSE stream, forwarded event by event: each event's units are charged before it is sent; when the
 * balance runs out the stream sends `event: payment-need-voucher` and waits for a voucher on the same URI (up to
 * `waitMs`, then it ends); a final `event: payment-receipt` closes it. A payer who goes away aborts the origin fetch.
 */
function meteredStream(meter: SessionServer.Meter, upstream: Response, abort: AbortController, pricing: EventMeter, context: MeteredContext, giveBack: (refund: Promise<unknown>) => Promise<unknown>): ReadableStream<Uint8Array> {
  const waitMs = context.waitMs ?? voucherWaitMs
  const encoder = new TextEncoder()
  const reader = upstream.body!.getReader()
  const events = sseEvents(reader)
  let ended = false
  let settled: Promise<UsageSource | undefined> | undefined
  const settle = (abandoned: boolean) => (settled ??= pricing.settle(abandoned).catch(() => undefined))

  const stop = async () => {
    abort.abort()
    await reader.cancel().catch(() => {})
  }
  const finish = async (controller: ReadableStreamDefaultController<Uint8Array>) => {
    if (ended) return
    ended = true
    await stop()
    const source = await settle(false)
    const receipt = source ? { ...meter.receipt(), usage: source } : meter.receipt()
    controller.enqueue(encoder.encode(Session.receiptEvent(receipt as Session.SessionReceipt)))
    controller.close()
  }
  // Charges `units`, asking for a voucher each time the balance runs out; false when the payer did not pay on.
  const pay = async (controller: ReadableStreamDefaultController<Uint8Array>, units: number): Promise<boolean> => {
    for (;;) {
      try {
        await meter.charge(units)
        return true
      } catch (error) {
        if (!(error instanceof InsufficientBalanceError)) return false
        const account = meter.account
        const need = { channelId: account.channelId, requiredCumulative: (account.spent + BigInt(units) * meter.price).toString(), acceptedCumulative: account.accepted.toString(), deposit: account.deposit.toString() }
        controller.enqueue(encoder.encode(Session.needVoucherEvent(need)))
        if (!(await meter.waitForVoucher(waitMs)) || ended) return false
      }
    }
  }

  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (ended) return
      let next: IteratorResult<SseEvent>
      try {
        next = await events.next()
      } catch {
        // The origin's stream broke (or was stopped): end with what was delivered.
        return finish(controller)
      }
      if (ended) return
      if (next.done) return finish(controller)
      const units = pricing.units(next.value)
      if (units > 0 && !(await pay(controller, units))) return finish(controller)
      if (ended) {
        // Paid, then the payer went away before it was sent: not delivered, so not charged.
        if (units > 0) await giveBack(meter.refundAmount(BigInt(units) * meter.price, units))
        return
      }
      pricing.observe?.(next.value)
      controller.enqueue(encoder.encode(next.value.raw))
    },
    async cancel() {
      // The payer went away: stop the origin, charge only what was forwarded. The response is over, so the
      // runtime may drop work not handed to waitUntil: the settlement (a refund of the unused reserve) is.
      ended = true
      const settling = stop().then(() => settle(true))
      context.waitUntil?.waitUntil(settling)
      await settling
    },
  }, { highWaterMark: 0 }) // an event is read from the origin (and charged) only when the payer asks for the next
}
