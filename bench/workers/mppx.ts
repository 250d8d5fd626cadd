/** The reference SDK's Hono middleware pricing one route with a Tempo charge: the comparison point for bench/http.bench.ts. */
import { Hono, type MiddlewareHandler } from 'hono'
import { Challenge, Credential } from 'mppx'
import { fields, secret as secretKey } from './fixture.js'
import { Mppx, tempo } from 'mppx/hono'

type Env = { MPP_SECRET_KEY: string }

const app = new Hono<{ Bindings: Env }>()
// Built once, on the first request (the secret is an env var), as a seller's module-scope `mppx.charge(…)` is.
let charge: MiddlewareHandler<{ Bindings: Env }> | undefined
const build = (env: Env) =>
  Mppx.create({
    methods: [tempo({ currency: '0x20c0000000000000000000000000000000000000', recipient: '0x742d35Cc6634c0532925a3b844bC9e7595F8fE00', testnet: true })],
    secretKey: env.MPP_SECRET_KEY,
    realm: 'bench.example.com',
  }).charge({ amount: '0.01' }) as MiddlewareHandler<{ Bindings: Env }>

app.get('/paid', (c, next) => (charge ??= build(c.env))(c, next), (c) => c.json({ ok: true }))

// Protocol work alone, 100 times per request, so the dev server's own overhead is amortised.
const challenge = Challenge.from({ ...fields, secretKey } as never)
const authorization = Credential.serialize(Credential.from({ challenge, payload: { type: 'hash', hash: `0x${'ab'.repeat(32)}` } } as never))
app.get('/issue', (c) => {
  let last = ''
  for (let i = 0; i < 100; i++) last = Challenge.serialize(Challenge.from({ ...fields, secretKey } as never) as never)
  return c.text(last)
})
app.get('/verify', (c) => {
  let ok = true
  for (let i = 0; i < 100; i++) ok &&= Challenge.verify(Credential.deserialize(authorization).challenge as never, { secretKey })
  return c.text(String(ok))
})

export default app
