/** @module The gateway's settings (wrangler vars, secrets and bindings), checked once at start-up. */
import type { IdempotencyCache } from '../storage/IdempotencyCache.js'
import type { ReplayGuard } from '../storage/ReplayGuard.js'
import type { SponsorGate } from '../storage/SponsorGate.js'
import type { SenderLimit } from '../storage/SenderLimit.js'
import type { RateCounter } from './RateCounter.js'

/**
 * Raised at start-up on a missing or invalid setting; the message names it.
 * @example
 * throw new SettingsError('…')
 */
export class SettingsError extends Error {
  override readonly name = 'SettingsError'
}

/** A Cloudflare rate limiting binding (`[[ratelimits]]` in wrangler.toml). */
export type RateLimitBinding = { limit(options: { key: string }): Promise<{ success: boolean }> }

/** The bindings and variables the gateway reads (see wrangler.toml and docs/operations.md, "Settings"). */
export type GatewayEnv = Partial<Cloudflare.Env> & {
  // The vars and Durable Objects of wrangler.toml are generated into worker-configuration.d.ts by
  // `npm run types`; below are the secrets, the optional bindings wrangler.toml leaves commented out, and
  // the Durable Objects again, so the types hold in a seller's worker that has no generated file of ours.
  MPP_SECRET_KEY?: string
  MPP_PREVIOUS_SECRETS?: string
  MPP_OPERATOR_SECRET?: string
  ORIGIN?: Fetcher
  CHALLENGE_RATE_LIMITER?: RateLimitBinding
  VERIFY_RATE_LIMITER?: RateLimitBinding
  ANALYTICS?: AnalyticsEngineDataset
  REPLAY_GUARD?: DurableObjectNamespace<ReplayGuard>
  IDEMPOTENCY_CACHE?: DurableObjectNamespace<IdempotencyCache>
  RATE_COUNTER?: DurableObjectNamespace<RateCounter>
  SPONSOR_GATE?: DurableObjectNamespace<SponsorGate>
  SENDER_LIMIT?: DurableObjectNamespace<SenderLimit>
  [name: string]: unknown
}

/** Settings after validation. */
export type Settings = {
  realm: string
  secret: string
  previousSecrets: string[]
  origin: { type: 'binding'; fetcher: Fetcher } | { type: 'url'; url: URL }
  originTimeoutMs: number
  /** The largest request body read on a priced path to check it for method overrides (larger: 413). */
  maxInspectedBodyBytes: number
  limits: { challenge: number; verify: number }
  replayGuard: DurableObjectNamespace<ReplayGuard>
  idempotencyCache: DurableObjectNamespace<IdempotencyCache> | undefined
  rateCounter: DurableObjectNamespace<RateCounter> | undefined
  challengeLimiter: RateLimitBinding | undefined
  verifyLimiter: RateLimitBinding | undefined
  analytics: AnalyticsEngineDataset | undefined
}

/**
 * Reads and checks the settings; throws SettingsError naming the first bad one.
 * @example
 * const settings = readSettings(env)
 */
export function readSettings(env: GatewayEnv): Settings {
  const realm = text(env, 'MPP_REALM')
  if (!realm) throw new SettingsError('MPP_REALM is missing: set it in wrangler.toml [vars] (for example "api.example.com")')
  const secret = text(env, 'MPP_SECRET_KEY')
  if (!secret) throw new SettingsError('MPP_SECRET_KEY is missing: set it with "wrangler secret put MPP_SECRET_KEY" (at least 32 bytes)')
  if (new TextEncoder().encode(secret).length < 32) throw new SettingsError('MPP_SECRET_KEY must be at least 32 bytes')
  const previousSecrets = list(text(env, 'MPP_PREVIOUS_SECRETS'))
  previousSecrets.forEach((previous, i) => {
    if (new TextEncoder().encode(previous).length < 32) throw new SettingsError(`MPP_PREVIOUS_SECRETS[${i}] must be at least 32 bytes`)
  })

  let origin: Settings['origin']
  if (env.ORIGIN !== undefined) {
    if (typeof (env.ORIGIN as Fetcher).fetch !== 'function') throw new SettingsError('ORIGIN must be a service binding')
    origin = { type: 'binding', fetcher: env.ORIGIN }
  } else {
    const value = text(env, 'ORIGIN_URL')
    if (!value) throw new SettingsError('ORIGIN_URL is missing: set it in wrangler.toml [vars], or bind a service as ORIGIN')
    const url = parseUrl(value)
    if (!url || !['http:', 'https:'].includes(url.protocol) || url.search || url.hash || url.username || url.password) {
      throw new SettingsError('ORIGIN_URL must be an http(s) URL without query, fragment or credentials')
    }
    origin = { type: 'url', url }
  }

  const replayGuard = env.REPLAY_GUARD as DurableObjectNamespace<ReplayGuard>
  if (!isNamespace(replayGuard)) throw new SettingsError('REPLAY_GUARD must be bound to the ReplayGuard Durable Object')
  if (env.IDEMPOTENCY_CACHE !== undefined && !isNamespace(env.IDEMPOTENCY_CACHE)) {
    throw new SettingsError('IDEMPOTENCY_CACHE must be bound to the IdempotencyCache Durable Object')
  }
  const limits = {
    challenge: count(env, 'RATE_LIMIT_CHALLENGES', 120),
    verify: count(env, 'RATE_LIMIT_VERIFICATIONS', 30),
  }
  const challengeLimiter = limiter(env, 'CHALLENGE_RATE_LIMITER')
  const verifyLimiter = limiter(env, 'VERIFY_RATE_LIMITER')
  const rateCounter = env.RATE_COUNTER
  const needsCounter = (limits.challenge > 0 && !challengeLimiter) || (limits.verify > 0 && !verifyLimiter)
  if (needsCounter && !isNamespace(rateCounter)) {
    throw new SettingsError('RATE_COUNTER must be bound to the RateCounter Durable Object (or set RATE_LIMIT_* to "0")')
  }
  const analytics = env.ANALYTICS
  if (analytics !== undefined && typeof (analytics as AnalyticsEngineDataset).writeDataPoint !== 'function') {
    throw new SettingsError('ANALYTICS must be a Workers Analytics Engine dataset binding')
  }
  return {
    realm,
    secret,
    previousSecrets,
    origin,
    originTimeoutMs: count(env, 'ORIGIN_TIMEOUT_MS', 30_000),
    maxInspectedBodyBytes: count(env, 'MAX_INSPECTED_BODY_BYTES', 1024 * 1024),
    limits,
    replayGuard,
    idempotencyCache: env.IDEMPOTENCY_CACHE,
    rateCounter: isNamespace(rateCounter) ? (rateCounter as DurableObjectNamespace<RateCounter>) : undefined,
    challengeLimiter,
    verifyLimiter,
    analytics,
  }
}

function parseUrl(value: string): URL | undefined {
  try {
    return new URL(value)
  } catch {
    return undefined
  }
}

function text(env: GatewayEnv, name: string): string | undefined {
  const value = env[name]
  if (value === undefined || value === null || value === '') return undefined
  if (typeof value !== 'string') throw new SettingsError(`${name} must be a string`)
  return value
}

// A list of secrets: a JSON array of strings, or values separated by newlines or commas.
function list(value: string | undefined): string[] {
  if (!value) return []
  if (value.trim().startsWith('[')) {
    let parsed: unknown
    try {
      parsed = JSON.parse(value)
    } catch {
      throw new SettingsError('MPP_PREVIOUS_SECRETS is not a valid JSON array')
    }
    if (!Array.isArray(parsed) || !parsed.every((item) => typeof item === 'string')) {
      throw new SettingsError('MPP_PREVIOUS_SECRETS must be a JSON array of strings')
    }
    return parsed
  }
  return value
    .split(/[\n,]/)
    .map((item) => item.trim())
    .filter(Boolean)
}

function count(env: GatewayEnv, name: string, fallback: number): number {
  const value = text(env, name)
  if (value === undefined) return fallback
  if (!/^(0|[1-9][0-9]{0,8})$/.test(value)) throw new SettingsError(`${name} must be a whole number, got "${value}"`)
  return Number(value)
}

function limiter(env: GatewayEnv, name: string): RateLimitBinding | undefined {
  const binding = env[name]
  if (binding === undefined) return undefined
  if (typeof (binding as RateLimitBinding).limit !== 'function') throw new SettingsError(`${name} must be a rate limiting binding`)
  return binding as RateLimitBinding
}

function isNamespace(value: unknown): boolean {
  return typeof value === 'object' && value !== null && typeof (value as DurableObjectNamespace).idFromName === 'function'
}
