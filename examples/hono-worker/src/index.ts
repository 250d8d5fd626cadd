/**
 * A seller's worker: `GET /` is free, `GET /report` costs 0.01 in Tempo stablecoins (pull or push) or by
 * card through Stripe. Every setting comes from the env, so the tests point it at a local chain and the
 * local Stripe API without a change here.
 */
import { env } from 'cloudflare:workers'
import { Hono } from 'hono'
import { payment } from 'mpp-edge/middleware'
import { stripe } from 'mpp-edge/methods/stripe'
import { tempo } from 'mpp-edge/methods/tempo'
import { replayStore } from 'mpp-edge/storage'

type Env = { Bindings: Cloudflare.Env }

const app = new Hono<Env>()
const pay = payment<Env>({
  realm: env.MPP_REALM,
  secret: env.MPP_SECRET_KEY,
  methods: [
    tempo({ chainId: Number(env.TEMPO_CHAIN_ID), recipient: env.TEMPO_RECIPIENT as `0x${string}`, rpcUrl: env.TEMPO_RPC_URL }),
    stripe({ secretKey: env.STRIPE_SECRET_KEY, networkId: 'profile_example', currency: 'usd', ...(env.STRIPE_API_BASE ? { apiBase: env.STRIPE_API_BASE } : {}) }),
  ],
  store: (c) => replayStore(c.env.REPLAY_GUARD),
})

app.get('/', (c) => c.json({ hello: 'free for everyone' }))
app.get('/report', pay.charge({ amount: '0.01', description: 'Daily report' }), (c) =>
  c.json({ report: 'the numbers', paidWith: c.get('payment').receipt.reference }),
)

export default app
export { ReplayGuard } from 'mpp-edge/storage'
