declare namespace Cloudflare {
  interface Env {
    REPLAY_GUARD: DurableObjectNamespace<import('../../src/storage/ReplayGuard.js').ReplayGuard>
    IDEMPOTENCY_CACHE: DurableObjectNamespace<import('../../src/storage/IdempotencyCache.js').IdempotencyCache>
    SPONSOR_GATE: DurableObjectNamespace<import('../../src/storage/SponsorGate.js').SponsorGate>
    CHANNEL_STATE: DurableObjectNamespace<import('./entry.js').ChannelState>
    PAYER_CHANNELS: DurableObjectNamespace<import('../../src/storage/PayerChannels.js').PayerChannels>
    SENDER_LIMIT: DurableObjectNamespace<import('../../src/storage/SenderLimit.js').SenderLimit>
    TEST_TEMPO_RPC_URL: string
    TEST_STRIPE_API_URL: string
    TEST_SESSION_RPC_URL: string
    TEST_CHAIN_FACTORY_URL: string
    TEST_EVM_RPC_URL: string
  }
}
