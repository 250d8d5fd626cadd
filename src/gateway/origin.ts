/** @module Forwarding to the origin: payment material removed, the canonical path, no redirects followed. */
import type { Settings } from './settings.js'

/** Request headers that carry payment material meant for the gateway only (this or other 402 schemes). */
const paymentHeaders = [
  'accept-payment',
  'payment-authorization',
  'payment-receipt',
  'payment-redelivery',
  'payment-signature',
  'payment-required',
  'payment-response',
  'x-payment',
  'x-payment-response',
]

/**
 * The request the origin receives: same method, headers and body, at the canonical path (after the
 * origin URL's own path, if any) and the same query; `Payment` credentials (in `Payment-Authorization`, or in
 * `Authorization`, whose other schemes such as a Bearer API key are kept as sent) and payment headers are removed.
 * @example
 * const forwarded = originRequest(settings, request, url, '/v1/report')
 */
export function originRequest(settings: Settings, request: Request, url: URL, path: string): Request {
  let target: URL
  if (settings.origin.type === 'url') {
    target = new URL(settings.origin.url)
    target.pathname = target.pathname.replace(/\/$/, '') + path
  } else {
    target = new URL(url)
    target.pathname = path
  }
  target.search = url.search
  const headers = new Headers(request.headers)
  for (const name of paymentHeaders) headers.delete(name)
  const authorization = headers.get('authorization')
  if (authorization && /(^|,)\s*payment(\s|,|$)/i.test(authorization)) {
    // Same split as Credential.fromHeader: a Payment token never holds a comma.
    const others = authorization
      .split(',')
      .filter((part) => !/^\s*payment(\s|$)/i.test(part))
      .join(',')
      .trim()
    if (others) headers.set('authorization', others)
    else headers.delete('authorization')
  }
  return new Request(target, { method: request.method, headers, body: request.body, redirect: 'manual' })
}

/**
 * Sends a request to the origin, giving up after the configured timeout.
 * @example
 * const response = await callOrigin(settings, forwarded)
 */
export function callOrigin(settings: Settings, request: Request): Promise<Response> {
  const signal = AbortSignal.timeout(settings.originTimeoutMs)
  if (settings.origin.type === 'binding') return settings.origin.fetcher.fetch(request, { signal })
  return fetch(request, { signal })
}
