/** mpp-edge's Hono middleware pricing one route with a Tempo charge: the subject of bench/http.bench.ts. */
import { Hono, type MiddlewareHandler } from 'hono'
import * as Challenge from '../../src/core/Challenge.js'
import * as Credential from '../../src/core/Credential.js'
import { fields, secret } from './fixture.js'
import { tempo } from '../../src/methods/tempo/index.js'
import { payment } from '../../src/middleware/payment.js'
import { replayStore } from '../../src/storage/replay-store.js'
import type { ReplayGuard } from '../../src/storage/ReplayGuard.js'

export { ReplayGuard } from '../../src/storage/ReplayGuard.js'

type Env = { Bindings: { MPP_SECRET_KEY: string; REPLAY_GUARD: DurableObjectNamespace<ReplayGuard> } }

const app = new Hono<Env>()
// Built once, on the first request (the secret is an env var), as a seller's module-scope `pay.charge(…)` is.
let charge: MiddlewareHandler<Env> | undefined
const build = (key: string) =>
  payment<Env>({
    realm: 'bench.example.com',
    secret: key,
    methods: [tempo({ chainId: 42431, recipient: '0x742d35Cc6634c0532925a3b844bC9e7595F8fE00' })],
    store: (c) => replayStore(c.env.REPLAY_GUARD),
  }).charge({ amount: '0.01' })

app.get('/paid', (c, next) => (charge ??= build(c.env.MPP_SECRET_KEY))(c, next), (c) => c.json({ ok: true }))

// Protocol work alone, 100 times per request, so the dev server's own overhead is amortised.
const credential = Challenge.create({ ...fields, secret }).then((challenge) =>
  Credential.serialize({ challenge, payload: { type: 'hash', hash: `0x${'ab'.repeat(32)}` } }),
)
app.get('/issue', async (c) => {
  let last = ''
  for (let i = 0; i < 100; i++) last = Challenge.serialize(await Challenge.create({ ...fields, secret }))
  return c.text(last)
})
app.get('/verify', async (c) => {
  const authorization = await credential
  let ok = true
  for (let i = 0; i < 100; i++) ok &&= await Challenge.verifyBinding(Credential.deserialize(authorization).challenge, [secret])
  return c.text(String(ok))
})

export default app
