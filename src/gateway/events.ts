/** @module Structured payment logs and Analytics Engine counters; neither ever holds credentials or secrets. */
import type { Event as PaymentEvent } from '../core/Server.js'

/** A gateway event: the core's payment events plus what happens around them. */
export type GatewayEvent = {
  type: PaymentEvent['type'] | 'rate-limited' | 'origin-failed' | 'origin-refused' | 'ambiguous-path' | 'refund-failed' | 'usage-above-reserve'
  /** The pricing entry, e.g. `routes[0] (GET /v1/report/:id)`. */
  route: string
  /** HTTP method and canonical path of the request. */
  request?: string | undefined
  method?: string | undefined
  challengeId?: string | undefined
  reference?: string | undefined
  problem?: string | undefined
  detail?: string | undefined
  status?: number | undefined
}

/** Writes one event: a JSON log line, and a data point when an Analytics Engine dataset is bound. */
export type Recorder = (event: GatewayEvent) => void

/**
 * Builds the recorder. The data point is `indexes: [route]`, `blobs: [type, route, HTTP method, payment
 * method, problem]`, `doubles: [1, status]`, so `SUM(_sample_interval)` grouped by blobs counts events per
 * route and method.
 * @example
 * const record = recorder(env.ANALYTICS)
 * record({ type: 'paid', route: 'routes[0] (GET /report)', method: 'tempo', reference: '0xabc…' })
 */
export function recorder(analytics: AnalyticsEngineDataset | undefined, log: (line: string) => void = console.log): Recorder {
  return (event) => {
    const line = {
      event: `payment.${event.type}`,
      time: new Date().toISOString(),
      route: event.route,
      request: event.request,
      method: event.method,
      challengeId: event.challengeId,
      reference: event.reference,
      problem: event.problem,
      detail: event.detail === undefined ? undefined : scrub(event.detail),
      status: event.status,
    }
    log(JSON.stringify(line))
    if (!analytics) return
    try {
      analytics.writeDataPoint({
        indexes: [event.route.slice(0, 96)],
        blobs: [event.type, event.route, event.request?.split(' ')[0] ?? '', event.method ?? '', event.problem ?? ''],
        doubles: [1, event.status ?? 0],
      })
    } catch (error) {
      console.error(JSON.stringify({ event: 'analytics-error', error: String(error) }))
    }
  }
}

/**
 * Keeps an error detail loggable: values a validator quoted and long opaque tokens (which could be
 * parts of a credential) are dropped, and the text is capped.
 * @example
 * scrub('Invalid format: received "0xdeadbeef…"') // 'Invalid format: received […]'
 */
export function scrub(detail: string): string {
  return detail
    .replace(/received\s+"[^"]*"/g, 'received […]')
    .replace(/[A-Za-z0-9+/_=-]{32,}/g, '[…]')
    .slice(0, 300)
}
