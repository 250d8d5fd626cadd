/** @module A `fetch` that answers `402 Payment Required` with a configured wallet, for agents and scripts. */
import * as Challenge from '../core/Challenge.js'
import * as Credential from '../core/Credential.js'
import * as Receipt from '../core/Receipt.js'

/** Pays challenges of one method. */
export type Wallet = {
  /** Payment method identifier this wallet pays (`tempo`, `stripe`). */
  method: string
  /** Intents it can pay; `charge` when absent. */
  intents?: readonly string[] | undefined
  /**
   * Pays a challenge and returns the credential's payload (and `source`). `context` names the resource and, when the
   * server refused an earlier credential, its problem body (a session wallet reads `requiredTopUp` from it).
   */
  pay: (
    challenge: Challenge.Challenge,
    context?: { url: string; fetch: typeof fetch; problem?: Record<string, unknown> | undefined } | undefined,
  ) => Promise<{ payload: Record<string, unknown>; source?: string | undefined }>
  /** Sees every paid response (a session wallet reads its receipt and follows a metered stream), and may wrap it. */
  observe?: ((response: Response, context: { url: string; fetch: typeof fetch }) => Response) | undefined
}

/** A step of a paid request, for progress output. */
export type Step =
  | { type: 'challenged'; challenges: Challenge.Challenge[] }
  | { type: 'paying'; challenge: Challenge.Challenge }
  | { type: 'paid'; challenge: Challenge.Challenge; payload: Record<string, unknown> }
  | { type: 'retrying'; status: number; afterSeconds: number }
  | { type: 'done'; response: Response; receipt?: Receipt.Receipt | undefined }

/** Options of `paymentFetch`. */
export type Options = {
  /** Wallets, in the payer's order of preference. */
  wallets: readonly Wallet[]
  /**
   * The spending policy, consulted before any payment: the largest amount, in base units, per currency
   * (token address or ISO code, compared case-insensitively). Challenges above it are not paid.
   */
  maxAmount?: Record<string, string> | undefined
  /** A custom approval, consulted after `maxAmount`. */
  approve?: ((challenge: Challenge.Challenge) => boolean | Promise<boolean>) | undefined
  /** The underlying fetch. */
  fetch?: typeof fetch | undefined
  /** How often to resend the same credential on 503/409 with Retry-After (default 3). */
  retries?: number | undefined
  /** Progress callback. */
  onStep?: ((step: Step) => void) | undefined
}

/**
 * Raised when options give no spending policy.
 * @example
 * throw new PolicyError('…')
 */
export class PolicyError extends Error {
  override readonly name = 'PolicyError'
}

/**
 * Wraps fetch so a 402 is paid with the first wallet whose method is offered and whose price the policy allows.
 * Without an acceptable challenge, the 402 is returned as it is.
 * @example
 * const pay = paymentFetch({ wallets: [tempoWallet({ account, rpcUrl })], maxAmount: { '0x20c0000000000000000000000000000000000000': '1000000' } })
 * const res = await pay('https://api.example.com/report')
 */
export function paymentFetch(options: Options): (input: RequestInfo | URL, init?: RequestInit) => Promise<Response> {
  if (!options.maxAmount && !options.approve) throw new PolicyError('set maxAmount or approve: a payer must bound what it pays')
  const base = options.fetch ?? fetch
  const step = options.onStep ?? (() => {})
  const retries = options.retries ?? 3

  return async function paidFetch(input, init) {
    const original = new Request(input, init)
    // Buffer the body once so the paid retry sends the same bytes (a body digest binds them).
    const body = original.body ? await original.arrayBuffer() : undefined
    const build = (credential?: { header: Challenge.CredentialHeader; value: string }) => {
      const headers = new Headers(original.headers)
      // In the header the challenge names: `Payment-Authorization` keeps the caller's own `Authorization` (a Bearer key).
      if (credential) headers.set(credential.header, credential.value)
      return new Request(original.url, { method: original.method, headers, body, redirect: original.redirect, signal: original.signal })
    }
    // The fetch a wallet sends this resource's management requests with (a voucher mid-stream, a topUp, a close): they
    // carry the caller's own headers, such as a Bearer key beside Payment-Authorization, but no body or request key.
    const manage: typeof fetch = (target, extra) => {
      const headers = new Headers(original.headers)
      for (const name of ['content-type', 'content-length', 'content-encoding', 'idempotency-key']) headers.delete(name)
      new Headers(extra?.headers).forEach((value, name) => headers.set(name, value))
      return base(target, { ...extra, headers })
    }
    const first = await base(build())
    if (first.status !== 402) return first

    let challenges: Challenge.Challenge[]
    try {
      challenges = Challenge.fromResponse(first)
    } catch {
      return first
    }
    step({ type: 'challenged', challenges })
    const chosen = await choose(options, challenges)
    if (!chosen) return first
    step({ type: 'paying', challenge: chosen.challenge })
    const { payload, source } = await chosen.wallet.pay(chosen.challenge, { url: original.url, fetch: manage })
    step({ type: 'paid', challenge: chosen.challenge, payload })
    let credential = { header: Challenge.credentialHeader(chosen.challenge), value: Credential.serialize({ challenge: chosen.challenge, payload, source }) }

    let response = await base(build(credential))
    // A session may need more than one unit (the server says how much in the problem): pay the difference once.
    if (response.status === 402 && chosen.challenge.intent === 'session') {
      const again = await sessionRetry(options, chosen.wallet, response, original.url, manage)
      if (again) {
        step({ type: 'paid', challenge: again.challenge, payload: again.payload })
        credential = { header: Challenge.credentialHeader(again.challenge), value: Credential.serialize({ challenge: again.challenge, payload: again.payload, source: again.source }) }
        response = await base(build(credential))
      }
    }
    // A 503 or 409 leaves the credential usable: send the same one again, as the server asks.
    for (let attempt = 0; attempt < retries && (response.status === 503 || response.status === 409); attempt++) {
      const afterSeconds = Math.min(Number(response.headers.get('retry-after') ?? '1') || 1, 30)
      step({ type: 'retrying', status: response.status, afterSeconds })
      await new Promise((resolve) => setTimeout(resolve, afterSeconds * 1000))
      response = await base(build(credential))
    }
    if (chosen.wallet.observe && response.status < 400) response = chosen.wallet.observe(response, { url: original.url, fetch: manage })
    const header = response.headers.get('payment-receipt')
    step({ type: 'done', response, receipt: header ? Receipt.deserialize(header) : undefined })
    return response
  }
}

// The 402 answer to a session credential: pay its fresh challenge with the problem's hint, within the policy.
async function sessionRetry(options: Options, wallet: Wallet, response: Response, url: string, base: typeof fetch) {
  let challenges: Challenge.Challenge[]
  let problem: Record<string, unknown> | undefined
  try {
    challenges = Challenge.fromResponse(response)
    problem = (await response.clone().json()) as Record<string, unknown>
  } catch {
    return undefined
  }
  const chosen = await choose({ ...options, wallets: [wallet] }, challenges.filter((c) => c.intent === 'session'))
  if (!chosen) return undefined
  await response.body?.cancel().catch(() => {})
  return { challenge: chosen.challenge, ...(await wallet.pay(chosen.challenge, { url, fetch: base, problem })) }
}

async function choose(options: Options, challenges: Challenge.Challenge[]) {
  for (const wallet of options.wallets) {
    for (const challenge of challenges) {
      if (challenge.method !== wallet.method) continue
      if (!(wallet.intents ?? ['charge']).includes(challenge.intent)) continue
      if (challenge.expires && Date.parse(challenge.expires) <= Date.now()) continue
      if (!withinLimit(options.maxAmount, challenge)) continue
      if (options.approve && !(await options.approve(challenge))) continue
      return { wallet, challenge }
    }
  }
  return undefined
}

function withinLimit(limits: Record<string, string> | undefined, challenge: Challenge.Challenge): boolean {
  if (!limits) return true
  const { amount, currency } = challenge.request as { amount?: unknown; currency?: unknown }
  if (typeof amount !== 'string' || typeof currency !== 'string' || !/^\d+$/.test(amount)) return false
  const entry = Object.entries(limits).find(([key]) => key.toLowerCase() === currency.toLowerCase())
  return entry !== undefined && BigInt(amount) <= BigInt(entry[1])
}
