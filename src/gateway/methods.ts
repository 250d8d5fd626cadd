/** @module Payment methods built from pricing.json's "methods" section and the worker's secrets. */
import { type SponsorPolicy, defaultPolicy } from '../methods/tempo/fee-payer.js'
import { sponsorAccount } from '../methods/tempo/sponsor-account.js'
import { senderLimit } from '../storage/sender-limit.js'
import { sponsorGate } from '../storage/sponsor-gate.js'
import * as v from 'valibot'
import type { Method } from '../core/Method.js'
import type { SessionMethod } from '../core/SessionMethod.js'
import { stripe } from '../methods/stripe/index.js'
import { tempo } from '../methods/tempo/index.js'
import { tempoSession } from '../methods/tempo/session-method.js'
import { PricingError } from './pricing.js'
import type { GatewayEnv } from './settings.js'

/** Builds one method from its pricing.json configuration and the environment (for its secrets). */
export type MethodFactory = (config: Record<string, unknown>, env: GatewayEnv) => Method<any, any>

/** Method factories by name. */
export type MethodFactories = Readonly<Record<string, MethodFactory>>

/** Builds the session side of one method (for routes with the `session` intent) from the same configuration. */
export type SessionMethodFactory = (config: Record<string, unknown>, env: GatewayEnv) => SessionMethod

/** Session method factories by name. */
export type SessionMethodFactories = Readonly<Record<string, SessionMethodFactory>>

// pricing.json "methods.stripe": everything but the key, which is the STRIPE_SECRET_KEY secret.
const StripeSettings = v.strictObject({
  networkId: v.string(),
  paymentMethodTypes: v.optional(v.array(v.string())),
  currency: v.optional(v.string()),
  metadata: v.optional(v.record(v.string(), v.string())),
  recipient: v.optional(v.string()),
  timeoutMs: v.optional(v.number()),
})

const Whole = v.union([v.pipe(v.number(), v.safeInteger()), v.pipe(v.string(), v.regex(/^[0-9]+$/, 'must be a whole number'))])

// pricing.json "methods.tempo": everything but the sponsor key, which is the TEMPO_SPONSOR_KEY secret.
const TempoSettings = v.strictObject({
  chainId: v.number(),
  recipient: v.string(),
  rpcUrl: v.optional(v.string()),
  tokens: v.optional(v.array(v.strictObject({ address: v.string(), decimals: v.number(), symbol: v.optional(v.string()) }))),
  splits: v.optional(v.array(v.strictObject({ recipient: v.string(), amount: v.string(), memo: v.optional(v.string()) }))),
  memo: v.optional(v.string()),
  attribution: v.optional(v.picklist(['required', 'optional'])),
  modes: v.optional(v.array(v.picklist(['pull', 'push']))),
  feePayer: v.optional(
    v.strictObject({
      feeToken: v.optional(v.string()),
      policy: v.optional(
        v.strictObject({
          maxGas: v.optional(Whole),
          maxValidityWindowSeconds: v.optional(v.number()),
          maxFeePerTransaction: v.optional(Whole),
          maxInFlight: v.optional(v.number()),
          maxInFlightPerSender: v.optional(v.number()),
          maxValidAfterSeconds: v.optional(v.number()),
          maxRevertsPerSender: v.optional(v.number()),
          revertWindowSeconds: v.optional(v.number()),
        }),
      ),
    }),
  ),
  confirmations: v.optional(v.number()),
  // Payment channels of session-priced routes: the protocol (v2, the TIP-1034 channel reserve, by default; v1, a
  // TempoStreamChannel escrow contract where the precompile is not active), the escrow and a v2 operator.
  session: v.optional(
    v.strictObject({ sessionProtocol: v.optional(v.picklist(['v1', 'v2'])), escrow: v.optional(v.string()), operator: v.optional(v.string()) }),
  ),
  timeoutMs: v.optional(v.number()),
  receiptTimeoutMs: v.optional(v.number()),
  pollIntervalMs: v.optional(v.number()),
})

/**
 * The methods a deployed gateway can use.
 * @example
 * const methods = buildMethods(table.methods, env, methodFactories)
 */
export const methodFactories: MethodFactories = {
  tempo: (config, env) => {
    const { feePayer, session: _session, ...settings } = parse(TempoSettings, config)
    // TEMPO_RPC_URL (a var) overrides the configured or default endpoint, e.g. for a private RPC.
    const rpcUrl = typeof env.TEMPO_RPC_URL === 'string' && env.TEMPO_RPC_URL ? env.TEMPO_RPC_URL : settings.rpcUrl
    let sponsor: Parameters<typeof tempo>[0]['feePayer']
    if (feePayer) {
      const privateKey = env.TEMPO_SPONSOR_KEY
      if (typeof privateKey !== 'string' || !privateKey) {
        throw new Error('TEMPO_SPONSOR_KEY is missing: set it with "wrangler secret put TEMPO_SPONSOR_KEY" (or drop "feePayer")')
      }
      const { maxGas, maxFeePerTransaction, ...counts } = feePayer.policy ?? {}
      const policy: Partial<SponsorPolicy> = {
        ...(maxGas !== undefined ? { maxGas: BigInt(maxGas) } : {}),
        ...(maxFeePerTransaction !== undefined ? { maxFeePerTransaction: BigInt(maxFeePerTransaction) } : {}),
        ...Object.fromEntries(Object.entries(counts).filter(([, value]) => value !== undefined)),
      }
      const gateNamespace = env.SPONSOR_GATE
      const senderNamespace = env.SENDER_LIMIT
      let address: string
      try {
        address = sponsorAccount(privateKey as `0x${string}`).address
      } catch {
        throw new Error('TEMPO_SPONSOR_KEY is not a valid private key')
      }
      sponsor = {
        privateKey,
        feeToken: feePayer.feeToken,
        // One cap across every isolate when the SponsorGate object is bound (it is in wrangler.toml).
        gate: gateNamespace ? sponsorGate(gateNamespace, address, policy.maxInFlight ?? defaultPolicy.maxInFlight) : undefined,
        // Per-sender limits across every isolate when the SenderLimit object is bound (it is in wrangler.toml).
        senders: senderNamespace ? senderLimit(senderNamespace, address, policy) : undefined,
        policy,
      }
    }
    return tempo({ ...settings, rpcUrl, feePayer: sponsor } as Parameters<typeof tempo>[0])
  },
  stripe: (config, env) => {
    const settings = parse(StripeSettings, config)
    const secretKey = env.STRIPE_SECRET_KEY
    if (typeof secretKey !== 'string' || !secretKey) {
      throw new Error('STRIPE_SECRET_KEY is missing: set it with "wrangler secret put STRIPE_SECRET_KEY"')
    }
    // STRIPE_API_BASE points the method at another Stripe API endpoint (a local one in tests).
    const apiBase = typeof env.STRIPE_API_BASE === 'string' && env.STRIPE_API_BASE ? env.STRIPE_API_BASE : undefined
    return stripe({ ...settings, secretKey, apiBase })
  },
}

/**
 * The session methods a deployed gateway can use: `tempo` channels, closed and settled with the payee key in the
 * TEMPO_PAYEE_KEY secret.
 * @example
 * const method = sessionMethodFactories.tempo!(table.methods.tempo, env)
 */
export const sessionMethodFactories: SessionMethodFactories = {
  tempo: (config, env) => {
    const { chainId, recipient, rpcUrl, tokens, timeoutMs, receiptTimeoutMs, pollIntervalMs, session } = parse(TempoSettings, config)
    const privateKey = env.TEMPO_PAYEE_KEY
    if (typeof privateKey !== 'string' || !privateKey) {
      throw new Error('TEMPO_PAYEE_KEY is missing: session routes close channels with the payee key; set it with "wrangler secret put TEMPO_PAYEE_KEY"')
    }
    const url = typeof env.TEMPO_RPC_URL === 'string' && env.TEMPO_RPC_URL ? env.TEMPO_RPC_URL : rpcUrl
    return tempoSession({ chainId, recipient, privateKey, rpcUrl: url, tokens: tokens as Parameters<typeof tempoSession>[0]['tokens'], timeoutMs, receiptTimeoutMs, pollIntervalMs, sessionProtocol: session?.sessionProtocol, escrow: session?.escrow, operator: session?.operator })
  },
}

function parse<T>(schema: v.GenericSchema<unknown, T>, config: unknown): T {
  const result = v.safeParse(schema, config)
  if (result.success) return result.output
  const issue = result.issues[0]
  const path = issue.path?.map((item) => String(item.key)).join('.')
  throw new Error(`${path ? `${path}: ` : ''}${issue.message}`)
}

/**
 * Builds every configured method, in the order pricing.json lists them; errors name the method.
 * @example
 * const methods = buildMethods(table.methods, env, methodFactories)
 */
export function buildMethods(config: Record<string, Record<string, unknown>>, env: GatewayEnv, factories: MethodFactories): Method<any, any>[] {
  return Object.entries(config).map(([name, settings]) => {
    const factory = Object.hasOwn(factories, name) ? factories[name] : undefined
    if (!factory) {
      throw new PricingError(`pricing.json methods.${name}: unknown payment method (known: ${Object.keys(factories).join(', ') || 'none'})`)
    }
    let method: Method<any, any>
    try {
      method = factory(settings, env)
    } catch (error) {
      throw new PricingError(`pricing.json methods.${name}: ${(error as Error).message}`, { cause: error })
    }
    if (method.name !== name) throw new PricingError(`pricing.json methods.${name}: the factory built method "${method.name}"`)
    return method
  })
}

/**
 * Builds the session side of a configured method; errors name the method.
 * @example
 * const session = buildSessionMethod('tempo', table.methods, env, sessionMethodFactories)
 */
export function buildSessionMethod(name: string, config: Record<string, Record<string, unknown>>, env: GatewayEnv, factories: SessionMethodFactories): SessionMethod {
  const factory = Object.hasOwn(factories, name) ? factories[name] : undefined
  if (!factory) throw new PricingError(`pricing.json methods.${name}: the method does not serve the "session" intent`)
  let method: SessionMethod
  try {
    method = factory(config[name] ?? {}, env)
  } catch (error) {
    throw new PricingError(`pricing.json methods.${name} (session): ${(error as Error).message}`, { cause: error })
  }
  if (method.name !== name) throw new PricingError(`pricing.json methods.${name}: the session factory built method "${method.name}"`)
  return method
}
