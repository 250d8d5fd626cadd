/** The reference SDK's Hono middleware pricing one route with a Tempo charge: the comparison point for bench/http.bench.ts. */
import { Hono } from 'hono'
import { Mppx, tempo } from 'mppx/hono'

type Env = { MPP_SECRET_KEY: string }

const app = new Hono<{ Bindings: Env }>()
let mppx: ReturnType<typeof build> | undefined
const build = (env: Env) =>
  Mppx.create({
    methods: [tempo({ currency: '0x20c0000000000000000000000000000000000000', recipient: '0x742d35Cc6634c0532925a3b844bC9e7595F8fE00', testnet: true })],
    secretKey: env.MPP_SECRET_KEY,
    realm: 'bench.example.com',
  })

app.get('/paid', (c, next) => (mppx ??= build(c.env)).charge({ amount: '0.01' })(c, next), (c) => c.json({ ok: true }))

export default app
