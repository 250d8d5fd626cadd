/**
 * What a session client sent and was answered, request by request, for tests where mppx pays: a fetch wrapper that
 * records each request's session action and cumulative amount, the answer's status and its receipt, and counts the
 * credentials per paid request. Runs in workerd and in Node.
 */
import * as Credential from '../../src/core/Credential.js'
import * as Receipt from '../../src/core/Receipt.js'

/** One request a client sent. */
export type Sent = {
  method: string
  path: string
  /** The session action of its credential (`open`, `voucher`, `topUp`, `close`), if any. */
  action?: string | undefined
  /** The credential's cumulative amount (open, voucher, close). */
  cumulative?: string | undefined
  status: number
  /** The problem type of a refusal. */
  problem?: string | undefined
  /** The answer's `Payment-Receipt`. */
  receipt?: Record<string, unknown> | undefined
  /** Whether the answer's challenge named a channel with its snapshot. */
  snapshot?: boolean | undefined
}

/**
 * Wraps `fetch`: every request and its answer go into `sent`.
 * @example
 * const trace = traced(fetch)
 * const manager = tempo.session.manager({ …, fetch: trace.fetch })
 */
export function traced(inner: typeof fetch) {
  const sent: Sent[] = []
  const wrapped = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = new Request(input, init)
    const credential = Credential.fromHeader(request.headers.get('authorization'))
    const response = await inner(request)
    const entry: Sent = { method: request.method, path: new URL(request.url).pathname, status: response.status }
    if (credential) {
      entry.action = String(credential.payload.action)
      if (typeof credential.payload.cumulativeAmount === 'string') entry.cumulative = credential.payload.cumulativeAmount
    }
    const receipt = response.headers.get('payment-receipt')
    if (receipt) entry.receipt = Receipt.deserialize(receipt) as unknown as Record<string, unknown>
    if (response.status >= 400) {
      entry.problem = ((await response.clone().json().catch(() => ({}))) as { type?: string }).type?.replace(/^.*\/problems\//, '')
      entry.snapshot = /sessionSnapshot/.test(decodeChallenges(response.headers.get('www-authenticate') ?? ''))
    }
    sent.push(entry)
    return response
  }) as typeof fetch
  return {
    fetch: wrapped,
    sent,
    /** The credentials sent since `from` (an index into `sent`), as `action:cumulative`. */
    credentials: (from = 0) => sent.slice(from).filter((s) => s.action !== undefined).map((s) => `${s.action}${s.cumulative ? `:${s.cumulative}` : ''}`),
  }
}

// The decoded request params of every challenge in a WWW-Authenticate header.
function decodeChallenges(header: string): string {
  return [...header.matchAll(/request="([^"]+)"/g)].map((m) => atob(m[1]!.replace(/-/g, '+').replace(/_/g, '/'))).join('\n')
}
