/**
 * @module The paying side of Stripe charges (draft-stripe-charge-00): a wallet for `paymentFetch` that answers
 * a `stripe`/`charge` challenge with a Shared Payment Token the caller obtains from Stripe for that seller.
 */
import * as v from 'valibot'
import type { Challenge } from '../../core/Challenge.js'
import { Request } from '../../methods/stripe/schema.js'
import type { Wallet } from '../fetch.js'

/** Options of `stripeWallet`. */
export type StripeWalletOptions = {
  /**
   * Returns a Shared Payment Token granted to the challenge's seller (`request.methodDetails.networkId`),
   * limited to its currency and amount; called once per payment.
   */
  token: (challenge: Challenge & { request: Request }) => string | Promise<string>
}

/**
 * Raised when the wallet will not pay a challenge (not a valid stripe charge, or no token).
 * @example
 * if (error instanceof StripeWalletError) console.warn(`not paid: ${error.message}`)
 */
export class StripeWalletError extends Error {
  override readonly name = 'StripeWalletError'
}

/**
 * A wallet that pays `stripe` charges with Shared Payment Tokens.
 * @example
 * const wallet = stripeWallet({ token: (challenge) => grantToken(challenge.request) })
 * const pay = paymentFetch({ wallets: [wallet], maxAmount: { usd: '500' } })
 */
export function stripeWallet(options: StripeWalletOptions): Wallet {
  return {
    method: 'stripe',
    intents: ['charge'],
    async pay(challenge) {
      if (challenge.method !== 'stripe' || challenge.intent !== 'charge') {
        throw new StripeWalletError(`a stripe wallet pays stripe charges, not ${challenge.method} ${challenge.intent}`)
      }
      const parsed = v.safeParse(Request, challenge.request)
      if (!parsed.success) throw new StripeWalletError(`the challenge request is not a valid Stripe charge: ${parsed.issues[0].message}`)
      const spt = await options.token({ ...challenge, request: parsed.output })
      if (!/^spt_[A-Za-z0-9_]+$/.test(spt)) throw new StripeWalletError('the token is not a Shared Payment Token (spt_…)')
      // draft-stripe-charge-00, "Credential Schema": the payer echoes the request's externalId.
      const externalId = parsed.output.externalId
      return { payload: { spt, ...(externalId !== undefined ? { externalId } : {}) } }
    },
  }
}
