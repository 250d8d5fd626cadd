import { env } from 'cloudflare:workers'
import { runDurableObjectAlarm, runInDurableObject } from 'cloudflare:test'
import { describe, expect, it } from 'vitest'
import { ReplayGuard } from '../../src/storage/ReplayGuard.js'
import { replayStore } from '../../src/storage/replay-store.js'

const store = () => replayStore(env.REPLAY_GUARD)
const later = (ms: number) => Date.now() + ms

describe('ReplayGuard', () => {
  it('behavior: a challenge moves pending → settled → delivered, once', async () => {
    const s = store()
    const id = crypto.randomUUID()
    expect(await s.begin(id, 'a1', later(30_000), later(60_000))).toEqual({ status: 'fresh' })
    expect(await s.begin(id, 'a2', later(30_000), later(60_000))).toMatchObject({ status: 'busy' })
    expect(await s.settle(id, 'a1', '0xref')).toBe(true)
    expect(await s.deliver(id, 'a1')).toBe(true)
    expect(await s.begin(id, 'a3', later(30_000), later(60_000))).toEqual({ status: 'delivered', reference: '0xref' })
  })

  it('behavior: a released pending attempt resumes, a released settled one delivers without paying again', async () => {
    const s = store()
    const id = crypto.randomUUID()
    await s.begin(id, 'a1', later(30_000), later(60_000))
    await s.release(id, 'a1')
    expect(await s.begin(id, 'a2', later(30_000), later(60_000))).toEqual({ status: 'resumed' })
    expect(await s.settle(id, 'a1', '0xref')).toBe(false)
    expect(await s.settle(id, 'a2', '0xref')).toBe(true)
    await s.release(id, 'a2')
    expect(await s.begin(id, 'a3', later(30_000), later(60_000))).toEqual({ status: 'settled', reference: '0xref' })
  })

  it('behavior: a settled challenge remembers the digest of the credential that paid it', async () => {
    const s = store()
    const id = crypto.randomUUID()
    await s.begin(id, 'a1', later(30_000), later(60_000))
    expect(await s.settle(id, 'a1', '0xref', 'digest-of-credential')).toBe(true)
    await s.release(id, 'a1')
    expect(await s.begin(id, 'a2', later(30_000), later(60_000))).toEqual({ status: 'settled', reference: '0xref', credential: 'digest-of-credential' })
  })

  it('behavior: an object created before the credential column gets it', async () => {
    const stub = env.REPLAY_GUARD.get(env.REPLAY_GUARD.idFromName(`old-schema-${crypto.randomUUID()}`))
    const columns = await runInDurableObject(stub, (_, state) => {
      state.storage.sql.exec('DROP TABLE challenges')
      state.storage.sql.exec(`CREATE TABLE challenges (id TEXT PRIMARY KEY, state TEXT NOT NULL, attempt TEXT,
        lease_until INTEGER NOT NULL DEFAULT 0, tried INTEGER NOT NULL DEFAULT 0, reference TEXT, expires_at INTEGER NOT NULL)`)
      state.storage.sql.exec('DROP TABLE refs')
      state.storage.sql.exec('CREATE TABLE refs (reference TEXT PRIMARY KEY, challenge_id TEXT NOT NULL, created_at INTEGER NOT NULL)')
      new ReplayGuard(state, env)
      const names = (table: string) => state.storage.sql.exec<{ name: string }>(`SELECT name FROM pragma_table_info('${table}')`).toArray().map((c) => c.name)
      return { challenges: names('challenges'), refs: names('refs') }
    })
    expect(columns.challenges).toEqual(expect.arrayContaining(['credential', 'committed']))
    expect(columns.refs).toContain('keep_until')
  })

  it('behavior: a committed payment binds the challenge to its credential until it settles or fails for good', async () => {
    const s = store()
    const id = crypto.randomUUID()
    expect(await s.begin(id, 'a1', later(30_000), later(60_000), 'cred-A')).toEqual({ status: 'fresh' })
    expect(await s.commit(id, 'a1', '0xtx', 'cred-A')).toBe(true)
    expect(await s.begin(id, 'a2', later(30_000), later(60_000), 'cred-B')).toMatchObject({ status: 'busy', otherCredential: true })
    await s.release(id, 'a1')
    // Another credential is refused without taking the challenge; the first one resumes with its reference.
    expect(await s.begin(id, 'a2', later(30_000), later(60_000), 'cred-B')).toEqual({ status: 'paid-elsewhere', outcome: 'unknown' })
    expect(await s.begin(id, 'a3', later(30_000), later(60_000), 'cred-A')).toEqual({ status: 'resumed', committed: '0xtx' })
    expect(await s.commit(id, 'a3', '0xother', 'cred-B')).toBe(false)
    // It failed for good (reverted, declined): any credential may pay now.
    await s.fail(id, 'a3')
    expect(await s.begin(id, 'a4', later(30_000), later(60_000), 'cred-B')).toEqual({ status: 'resumed' })
    expect(await s.commit(id, 'a4', '0xtx-b', 'cred-B')).toBe(true)
    expect(await s.settle(id, 'a4', '0xtx-b', 'cred-B')).toBe(true)
    await s.release(id, 'a4')
    expect(await s.begin(id, 'a5', later(30_000), later(60_000), 'cred-A')).toEqual({ status: 'paid-elsewhere', outcome: 'settled' })
    expect(await s.begin(id, 'a6', later(30_000), later(60_000), 'cred-B')).toMatchObject({ status: 'settled', reference: '0xtx-b' })
  })

  it('behavior: a renewed lease holds off other attempts; renewing a lost lease fails', async () => {
    const s = store()
    const id = crypto.randomUUID()
    await s.begin(id, 'a1', Date.now() + 30, later(60_000))
    expect(await s.renew(id, 'a1', later(30_000))).toBe(true)
    await new Promise((resolve) => setTimeout(resolve, 60))
    expect(await s.begin(id, 'a2', later(30_000), later(60_000))).toMatchObject({ status: 'busy' })
    expect(await s.renew(id, 'other', later(30_000))).toBe(false)
  })

  it('behavior: the alarm keeps a committed payment whose outcome is unknown and sweeps references past keep_until', async () => {
    const stub = env.REPLAY_GUARD.get(env.REPLAY_GUARD.idFromName(`sweep-${crypto.randomUUID()}`))
    await stub.begin('unknown', 'a', 0, Date.now() + 60_000, 'cred')
    await stub.commit('unknown', 'a', '0xtx', 'cred')
    await stub.begin('spent', 'b', 0, Date.now() + 60_000, 'cred')
    await stub.claimReference('0xshort', 'spent', Date.now() + 60_000)
    await stub.claimReference('0xforever', 'spent')
    await runInDurableObject(stub, (_, state) => {
      state.storage.sql.exec('UPDATE challenges SET expires_at = ?', Date.now() - 1)
      state.storage.sql.exec('UPDATE refs SET keep_until = ? WHERE keep_until IS NOT NULL', Date.now() - 1)
    })
    expect(await runDurableObjectAlarm(stub)).toBe(true)
    const left = await runInDurableObject(stub, (_, state) => ({
      challenges: state.storage.sql.exec<{ id: string }>('SELECT id FROM challenges').toArray().map((r) => r.id),
      refs: state.storage.sql.exec<{ reference: string }>('SELECT reference FROM refs').toArray().map((r) => r.reference),
    }))
    expect(left.challenges).toEqual(['unknown'])
    expect(left.refs).toEqual(['0xforever'])
    // Swept: the reference can be claimed again (no challenge alive could still take it).
    expect(await stub.claimReference('0xshort', 'another')).toBe(true)
  })

  it('behavior: a reference belongs to one challenge forever', async () => {
    const s = store()
    const ref = `0x${crypto.randomUUID()}`
    expect(await s.claimReference(ref, 'c1')).toBe(true)
    expect(await s.claimReference(ref, 'c1')).toBe(true)
    expect(await s.claimReference(ref, 'c2')).toBe(false)
  })

  it('behavior: the alarm deletes expired challenge rows and keeps references', async () => {
    const stub = env.REPLAY_GUARD.get(env.REPLAY_GUARD.idFromName('alarm-test'))
    await stub.begin('old', 'a', 0, Date.now() + 60_000)
    await stub.claimReference('0xkept', 'old')
    // Age the row instead of waiting: the alarm was set for its expiry.
    await runInDurableObject(stub, (_, state) => {
      state.storage.sql.exec('UPDATE challenges SET expires_at = ?', Date.now() - 1)
    })
    expect(await runDurableObjectAlarm(stub)).toBe(true)
    const counts = await runInDurableObject(stub, (_, state) => ({
      challenges: state.storage.sql.exec('SELECT COUNT(*) AS n FROM challenges').one().n,
      refs: state.storage.sql.exec('SELECT COUNT(*) AS n FROM refs').one().n,
    }))
    expect(counts).toEqual({ challenges: 0, refs: 1 })
  })
  it('behavior: settling renews the lease, so delivery keeps the challenge for a whole lease', async () => {
    const s = store()
    const id = crypto.randomUUID()
    await s.begin(id, 'a1', Date.now() + 30, later(60_000))
    expect(await s.settle(id, 'a1', '0xref', undefined, later(30_000))).toBe(true)
    await new Promise((resolve) => setTimeout(resolve, 60))
    expect(await s.begin(id, 'a2', later(30_000), later(60_000))).toMatchObject({ status: 'busy' })
    expect(await s.deliver(id, 'a1')).toBe(true)
  })
})
