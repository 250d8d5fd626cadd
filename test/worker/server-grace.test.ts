import { describe, expect, it } from 'vitest'
import * as Challenge from '../../src/core/Challenge.js'
import * as Credential from '../../src/core/Credential.js'
import * as ReplayStore from '../../src/core/ReplayStore.js'
import * as Server from '../../src/core/Server.js'
import { ledger, voucher } from '../support/ledger-method.js'

const url = 'https://api.example.com/report'
const minutes = (n: number, from: Date) => new Date(from.getTime() + n * 60_000)

async function paidRequest() {
  const book = ledger()
  const server = Server.create({ realm: 'api.example.com', secret: 'grace-test-secret-0123456789abcdefghijk', methods: [book.method], ttlSeconds: 60 })
  const offers = await Server.chargeOffers(server, { amount: '0.25' })
  const store = ReplayStore.memory()
  const issued = new Date()
  const unpaid = await Server.handle(server, new Request(url), offers, { store, now: issued })
  if (unpaid.type !== 'response') throw new Error('expected a 402')
  const challenge = Challenge.fromResponse(unpaid.response)[0]!
  const { amount, recipient } = challenge.request as { amount: string; recipient: string }
  const authorization = Credential.serialize({ challenge, payload: { voucher: await voucher(challenge.id, amount, recipient) } })
  const handle = (at: Date) => Server.handle(server, new Request(url, { headers: { authorization } }), offers, { store, now: at })
  return { book, issued, handle }
}

describe('redelivery after expiry', () => {
  it('behavior: a payment settled but not delivered can be collected for a grace period after the challenge expires', async () => {
    const { book, issued, handle } = await paidRequest()
    const first = await handle(issued)
    expect(first.type).toBe('paid')
    if (first.type === 'paid') await first.release() // the handler failed: settled, not delivered
    const late = await handle(minutes(3, issued)) // expired at +1 min, inside the 5-minute grace
    expect(late).toMatchObject({ type: 'paid', redelivery: true })
    expect(book.state.settled).toHaveLength(1)
  })

  it('error: an expired challenge that never settled is not verified, and grace ends', async () => {
    const { book, issued, handle } = await paidRequest()
    const unpaidLate = await handle(minutes(2, issued))
    expect(unpaidLate.type === 'response' && unpaidLate.error.problem).toBe('payment-expired')
    expect(book.state.settled).toHaveLength(0)

    const again = await paidRequest()
    const first = await again.handle(again.issued)
    if (first.type === 'paid') await first.release()
    const tooLate = await again.handle(minutes(7, again.issued))
    expect(tooLate.type === 'response' && tooLate.error.problem).toBe('payment-expired')
  })
})
