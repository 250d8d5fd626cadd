/** @module The paying side: a fetch that answers 402 challenges with configured wallets. */
export { paymentFetch, PolicyError, type Options, type Step, type Wallet } from './fetch.js'
export { tempoWallet, TempoWalletError, type TempoWalletOptions, type TempoWalletPayload } from './wallets/tempo.js'
export { stripeWallet, StripeWalletError, type StripeWalletOptions } from './wallets/stripe.js'
export { type ChannelChange, type ChannelEntry, type SavedChannel, savedChannel, type SessionWallet, TempoSessionWalletError, type TempoSessionWalletOptions, tempoSessionWallet } from './wallets/tempo-session.js'
