import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
import { runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test'
import { senderLimit } from '../../src/storage/sender-limit.js'
import { sponsorGate } from '../../src/storage/sponsor-gate.js'

describe('sponsorGate', () => {
  it('behavior: caps sponsored transactions in flight across callers and frees released slots', async () => {
    const gate = () => sponsorGate(env.SPONSOR_GATE, `0x${crypto.randomUUID().replace(/-/g, '')}`, 2)
    const sponsor = `0x${crypto.randomUUID().replace(/-/g, '')}`
    // Two gates for one sponsor stand for two isolates: they share the same object.
    const [a, b] = [sponsorGate(env.SPONSOR_GATE, sponsor, 2), sponsorGate(env.SPONSOR_GATE, sponsor, 2)]
    const first = await a.acquire()
    await b.acquire()
    await expect(a.acquire()).rejects.toMatchObject({ status: 503, retryAfter: 2 })
    await first()
    await expect(b.acquire()).resolves.toBeTypeOf('function')
    // Another sponsor has its own slots.
    await expect(gate().acquire()).resolves.toBeTypeOf('function')
  })

  it('behavior: a slot whose holder vanished frees itself when its lease ends', async () => {
    const sponsor = `0x${crypto.randomUUID().replace(/-/g, '')}`
    // A lease long enough that the second acquire lands inside it even on a loaded machine.
    const gate = sponsorGate(env.SPONSOR_GATE, sponsor, 1, 1_500)
    await gate.acquire()
    await expect(gate.acquire()).rejects.toMatchObject({ status: 503 })
    await new Promise((resolve) => setTimeout(resolve, 1_600))
    await expect(gate.acquire()).resolves.toBeTypeOf('function')
  })
})

describe('senderLimit', () => {
  const sponsor = () => `0x${crypto.randomUUID().replace(/-/g, '')}`
  const policy = { maxInFlightPerSender: 1, maxRevertsPerSender: 2, revertWindowSeconds: 3600 }

  it('invariant 6: fee sponsorship cannot be drained — one sponsored transaction in flight per sender, across isolates, until its outcome or its lease', async () => {
    const owner = sponsor()
    const [a, b] = [senderLimit(env.SENDER_LIMIT, owner, policy), senderLimit(env.SENDER_LIMIT, owner, policy)]
    await a.begin('0xSender', '0x01', Date.now() + 60_000)
    await expect(b.begin('0xsender', '0x02', Date.now() + 60_000)).rejects.toMatchObject({ status: 503, retryAfter: 2 })
    await b.begin('0xother', '0x02', Date.now() + 60_000)
    await a.end('0xsender', '0x01', 'success')
    await b.begin('0xsender', '0x03', Date.now() + 50)
    // A slot whose transaction can no longer be mined frees itself.
    await new Promise((resolve) => setTimeout(resolve, 80))
    await b.begin('0xsender', '0x04', Date.now() + 60_000)
  })

  it('invariant 6: fee sponsorship cannot be drained — reverts refuse the sender for the window; the alarm clears expired state', async () => {
    const owner = sponsor()
    const limit = senderLimit(env.SENDER_LIMIT, owner, policy)
    for (const hash of ['0x01', '0x02']) {
      await limit.begin('0xsender', hash, Date.now() + 60_000)
      await limit.end('0xsender', hash, 'reverted')
    }
    await expect(limit.begin('0xsender', '0x03', Date.now() + 60_000)).rejects.toMatchObject({
      status: 402,
      detail: expect.stringMatching(/^fee sponsorship refused: 2 sponsored transactions from this sender reverted within 1 hours; sponsorship resumes at /),
    })
    // Short windows expire through the object's alarm.
    const brief = senderLimit(env.SENDER_LIMIT, owner, { ...policy, revertWindowSeconds: 1 })
    await brief.begin('0xbrief', '0x01', Date.now() + 60_000)
    await brief.end('0xbrief', '0x01', 'reverted')
    await brief.begin('0xbrief', '0x02', Date.now() + 60_000)
    await brief.end('0xbrief', '0x02', 'reverted')
    await expect(brief.begin('0xbrief', '0x03', Date.now() + 60_000)).rejects.toMatchObject({ status: 402 })
    const stub = env.SENDER_LIMIT.get(env.SENDER_LIMIT.idFromName(`sender:${owner.toLowerCase()}:0xbrief`))
    await new Promise((resolve) => setTimeout(resolve, 1_500))
    await runDurableObjectAlarm(stub) // runs one still due, if the runtime has not yet
    const rows = await runInDurableObject(stub, (_, state) =>
      state.storage.sql.exec<{ n: number }>('SELECT (SELECT COUNT(*) FROM flights) + (SELECT COUNT(*) FROM reverts) + (SELECT COUNT(*) FROM refusal) AS n').one().n,
    )
    expect(rows).toBe(0)
    await brief.begin('0xbrief', '0x03', Date.now() + 60_000)
  })
})
