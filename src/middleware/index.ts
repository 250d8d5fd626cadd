/** @module Hono middleware. */
export { payment, type ChargeOptions, type PaymentInfo, type PaymentOptions, type PriceInput } from './payment.js'
export { type SessionInfo, type SessionOptions, type SessionRoute, type StreamSession, meteredStream, voucherWaitMs } from './session.js'
export { type ChannelListing, type ListedChannel, channelListing, listChannels } from './channels.js'
