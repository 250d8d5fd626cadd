/**
 * Protocol hot-path micro-benchmarks, mpp-edge against the reference SDK mppx, side by side in one run.
 * Run: npm run bench:core. This runs in Node, where WebCrypto calls cost more than inside workerd;
 * bench/http.bench.ts measures both servers in workerd itself.
 */
import { Challenge as MppxChallenge, Credential as MppxCredential } from 'mppx'
import { Bench } from 'tinybench'
import * as Challenge from '../src/core/Challenge.js'
import * as Credential from '../src/core/Credential.js'

const secret = 'bench-secret-0123456789abcdefghijklmnop'
const fields = {
  realm: 'api.example.com',
  method: 'tempo',
  intent: 'charge',
  request: {
    amount: '10000',
    currency: '0x20c0000000000000000000000000000000000000',
    recipient: '0x742d35Cc6634C0532925a3b844Bc9e7595f8fE00',
    methodDetails: { chainId: 42431 },
  },
  expires: '2030-01-01T00:00:00Z',
}

const ours = await Challenge.create({ ...fields, secret })
const header = Challenge.serialize(ours)
const authorization = Credential.serialize({ challenge: ours, payload: { type: 'hash', hash: `0x${'ab'.repeat(32)}` } })

const pairs: [string, () => unknown, () => unknown][] = [
  ['issue challenge (bind + format)', async () => Challenge.serialize(await Challenge.create({ ...fields, secret })), () =>
    MppxChallenge.serialize(MppxChallenge.from({ ...fields, secretKey: secret } as never) as never)],
  ['parse WWW-Authenticate', () => Challenge.deserialize(header), () => MppxChallenge.deserialize(header)],
  ['parse credential + verify binding', async () => {
    const credential = Credential.deserialize(authorization)
    return Challenge.verifyBinding(credential.challenge, [secret])
  }, () => {
    const credential = MppxCredential.deserialize(authorization)
    return MppxChallenge.verify(credential.challenge as never, { secretKey: secret })
  }],
]

const bench = new Bench({ time: 700, warmupTime: 200 })
for (const [name, mine, theirs] of pairs) {
  bench.add(`mpp-edge: ${name}`, mine)
  bench.add(`mppx:     ${name}`, theirs)
}
await bench.run()

const hz = (name: string) => bench.tasks.find((t) => t.name === name)?.result?.hz ?? Number.NaN
console.log('\noperation                              mpp-edge ops/s     mppx ops/s   ratio (mpp-edge / mppx)')
for (const [name] of pairs) {
  const a = hz(`mpp-edge: ${name}`)
  const b = hz(`mppx:     ${name}`)
  console.log(`${name.padEnd(38)} ${a.toFixed(0).padStart(14)} ${b.toFixed(0).padStart(14)}   ${(a / b).toFixed(2)}x`)
}
