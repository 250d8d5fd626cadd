/** @module The `stripe` payment method: charges paid with Stripe Shared Payment Tokens. */
export { stripe, type Connect, type StripeConfig } from './method.js'
export { Payload, Request } from './schema.js'
export { exponent, toMinorUnits, CurrencyError } from './currency.js'
export { stripeVersion, defaultApiBase } from './api.js'
export { attribute, assertReplayAllowed } from './external-id.js'
