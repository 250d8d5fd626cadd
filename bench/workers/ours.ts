/** mpp-edge's Hono middleware pricing one route with a Tempo charge: the subject of bench/http.bench.ts. */
import { Hono } from 'hono'
import { tempo } from '../../src/methods/tempo/index.js'
import { payment } from '../../src/middleware/payment.js'
import { replayStore } from '../../src/storage/replay-store.js'
import type { ReplayGuard } from '../../src/storage/ReplayGuard.js'

export { ReplayGuard } from '../../src/storage/ReplayGuard.js'

type Env = { Bindings: { MPP_SECRET_KEY: string; REPLAY_GUARD: DurableObjectNamespace<ReplayGuard> } }

const app = new Hono<Env>()
let pay: ReturnType<typeof build> | undefined
const build = (secret: string) =>
  payment<Env>({
    realm: 'bench.example.com',
    secret,
    methods: [tempo({ chainId: 42431, recipient: '0x742d35Cc6634c0532925a3b844bC9e7595F8fE00' })],
    store: (c) => replayStore(c.env.REPLAY_GUARD),
  })

app.get('/paid', (c, next) => (pay ??= build(c.env.MPP_SECRET_KEY)).charge({ amount: '0.01' })(c, next), (c) => c.json({ ok: true }))

export default app
