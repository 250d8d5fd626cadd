import { env } from 'cloudflare:workers'
import { describe, expect, it } from 'vitest'
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
