/** The conformance adapter as the suite drives it: one process per command, stdin in, one JSON line out. */
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'

const root = new URL('../../', import.meta.url)
const tsx = new URL('node_modules/.bin/tsx', root).pathname
const main = 'tools/conformance-adapter/main.ts'

function vectors(name: string): { scenarios: any[] } {
  return JSON.parse(readFileSync(new URL(`test/fixtures/vectors/${name}.json`, root), 'utf8'))
}
function scenario(file: string, name: string): any {
  return vectors(file).scenarios.find((s) => s.name === name)
}

/** Runs the adapter; `viaNpm` goes through the package script exactly as the suite invokes it. */
function adapter(args: string[], stdin: string, viaNpm = false): Promise<{ status: number | null; answer: any; stdout: string }> {
  const [command, argv] = viaNpm ? ['npm', ['run', '-s', 'conformance-adapter', '--', ...args]] : [tsx, [main, ...args]]
  return new Promise((resolve, reject) => {
    const child = spawn(command as string, argv as string[], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    child.stdout.on('data', (chunk) => (stdout += chunk))
    child.on('error', reject)
    child.on('close', (status) => {
      try {
        // Exactly one JSON line on stdout, whatever the outcome.
        expect(stdout.endsWith('\n')).toBe(true)
        expect(stdout.trimEnd().split('\n')).toHaveLength(1)
        resolve({ status, answer: JSON.parse(stdout), stdout })
      } catch (error) {
        reject(error)
      }
    })
    child.stdin.end(stdin)
  })
}

describe.concurrent('conformance adapter process', () => {
  it('behavior: npm run parses the hostile unclosed quoted extension (12000 backslashes)', async () => {
    const vector = scenario('www-authenticate', 'adversarial_unclosed_quoted_extension')
    const wire = vector.wire.prefix + vector.wire.repeat.repeat(vector.wire.count)
    const { status, answer } = await adapter(['parse-www-authenticate'], `${wire}\n`, true)
    expect(status).toBe(0)
    expect(answer).toStrictEqual({ success: true, result: vector.object })
  })

  it('behavior: parse-authorization decodes the echoed request and keeps the credential header', async () => {
    const vector = scenario('authorization', 'credential_with_payment_authorization_header')
    const { status, answer } = await adapter(['parse-authorization'], vector.wire)
    expect(status).toBe(0)
    expect(answer).toStrictEqual({ success: true, result: vector.object })
  })

  it('behavior: format-www-authenticate refuses CRLF with format_error and exit 0', async () => {
    const vector = scenario('www-authenticate', 'error_crlf_in_description_format')
    const { status, answer } = await adapter(['format-www-authenticate'], JSON.stringify(vector.object))
    expect(status).toBe(0)
    expect(answer).toMatchObject({ success: false, error_type: 'format_error' })
    expect(answer.error).toEqual(expect.any(String))
  })

  it('behavior: generate-challenge-id binds the Payment-Authorization header slot', async () => {
    const vector = scenario('challenge-id', 'with_payment_authorization_header')
    const { status, answer } = await adapter(['generate-challenge-id'], JSON.stringify(vector.input))
    expect(status).toBe(0)
    expect(answer).toStrictEqual({ success: true, result: vector.expected })
  })

  it('behavior: base64url-decode refuses bytes that are not UTF-8 with encoding_error', async () => {
    const { status, answer } = await adapter(['base64url-decode'], '_w\n')
    expect(status).toBe(0)
    expect(answer).toMatchObject({ success: false, error_type: 'encoding_error' })
  })

  it('behavior: the JSON request mode formats a receipt that decodes to the same object', async () => {
    const receipt = { status: 'success', method: 'tempo', timestamp: '2026-01-29T12:00:00Z', reference: 'ref_123', externalId: 'order-1' }
    const { status, answer } = await adapter([], JSON.stringify({ schema: 1, op: 'receipt.format', input: receipt }))
    expect(status).toBe(0)
    expect(answer.ok).toBe(true)
    expect(answer.value.header).toMatch(/^[A-Za-z0-9_-]+$/)
    expect(JSON.parse(Buffer.from(answer.value.header, 'base64url').toString('utf8'))).toStrictEqual(receipt)
  })

  it('behavior: an unknown command exits 2 with an unknown_error answer', async () => {
    const { status, answer } = await adapter(['parse-everything'], '')
    expect(status).toBe(2)
    expect(answer).toMatchObject({ success: false, error_type: 'unknown_error' })
  })
})
