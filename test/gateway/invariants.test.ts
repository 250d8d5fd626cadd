/** The money invariants on the gateway's delivery path, with an origin that fails the way real ones do. */
import { describe, expect, it } from 'vitest'
import { pay, problem, setup } from './support.js'

describe('gateway: a settled payment whose response failed is never spent', () => {
  it('invariant 4 (gateway): with an Idempotency-Key, an origin body failing mid-stream answers 502 with the reference, and the same credential is served', async () => {
    let calls = 0
    const origin = {
      fetch: async () => {
        calls++
        const broken = calls === 1
        return new Response(
          new ReadableStream<Uint8Array>({
            start(controller) {
              controller.enqueue(new TextEncoder().encode('{"part":'))
              if (broken) controller.error(new Error('the origin connection dropped'))
              else {
                controller.enqueue(new TextEncoder().encode('1}'))
                controller.close()
              }
            },
          }),
          { headers: { 'content-type': 'application/json' } },
        )
      },
    }
    const t = setup({ env: { ORIGIN: origin as unknown as Fetcher } })
    const authorization = await pay(await t.request('/paid'))
    const headers = { authorization, 'idempotency-key': 'stream-1' }
    const failed = await t.request('/paid', { headers })
    expect(failed.status).toBe(502)
    expect(failed.headers.get('payment-receipt')).toBeNull()
    const body = await problem(failed)
    expect(body.type).toMatch(/origin-failed$/)
    expect(body.reference).toMatch(/^ledger_/)
    expect(body.detail).toMatch(/same credential before \d{4}-/)
    const served = await t.request('/paid', { headers })
    expect(served.status).toBe(200)
    expect(await served.json()).toEqual({ part: 1 })
    expect(served.headers.get('payment-receipt')).toBeTruthy()
    expect(t.primary.state.settled).toHaveLength(1)
  })
})
