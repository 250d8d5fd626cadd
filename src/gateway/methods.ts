/** @module Payment methods built from pricing.json's "methods" section and the worker's secrets. */
import * as v from 'valibot'
import type { Method } from '../core/Method.js'
import { stripe } from '../methods/stripe/index.js'
import { PricingError } from './pricing.js'
import type { GatewayEnv } from './settings.js'

/** Builds one method from its pricing.json configuration and the environment (for its secrets). */
export type MethodFactory = (config: Record<string, unknown>, env: GatewayEnv) => Method<any, any>

/** Method factories by name. */
export type MethodFactories = Readonly<Record<string, MethodFactory>>

// pricing.json "methods.stripe": everything but the key, which is the STRIPE_SECRET_KEY secret.
const StripeSettings = v.strictObject({
  networkId: v.string(),
  paymentMethodTypes: v.optional(v.array(v.string())),
  currency: v.optional(v.string()),
  metadata: v.optional(v.record(v.string(), v.string())),
  recipient: v.optional(v.string()),
  timeoutMs: v.optional(v.number()),
})

/** The methods a deployed gateway can use. */
export const methodFactories: MethodFactories = {
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
