declare namespace Cloudflare {
  interface Env {
    REPLAY_GUARD: DurableObjectNamespace<import('../../src/storage/ReplayGuard.js').ReplayGuard>
    TEST_TEMPO_RPC_URL: string
    TEST_STRIPE_API_URL: string
  }
}
