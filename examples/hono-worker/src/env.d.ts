// The worker's bindings (what `wrangler types` would generate), plus the secrets.
declare namespace Cloudflare {
  interface Env {
    MPP_REALM: string
    TEMPO_CHAIN_ID: string
    TEMPO_RPC_URL: string
    TEMPO_RECIPIENT: string
    REPLAY_GUARD: DurableObjectNamespace<import('mpp-edge/storage').ReplayGuard>
    MPP_SECRET_KEY: string
    STRIPE_SECRET_KEY: string
    /** Only in tests: the local Stripe API instead of api.stripe.com. */
    STRIPE_API_BASE?: string
  }
}
