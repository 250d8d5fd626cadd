/** @module Hono middleware. */
export { payment, type PaymentInfo, type PaymentOptions, type PriceInput } from './payment.js'
