/** @module Hono middleware. */
export { discovery } from './discovery.js'
export { payment, type ChargeOptions, type OpenApiInfo, type PaymentInfo, type PaymentOptions, type PriceInput } from './payment.js'
export { type SessionInfo, type SessionOptions, type SessionRoute, type StreamSession, meteredStream, voucherWaitMs } from './session.js'
export { type ChannelListing, type ListedChannel, channelListing, listChannels } from './channels.js'
