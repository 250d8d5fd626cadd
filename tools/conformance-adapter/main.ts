/**
 * @module The MPP cross-SDK conformance adapter: `npm run -s conformance-adapter -- <command> < input`.
 *
 * Legacy command protocol (one command per process):
 * - protocol commands (core.ts): `parse-www-authenticate`, `parse-authorization`, `parse-receipt` read the raw
 *   header on stdin; `base64url-encode` / `base64url-decode` read the text; `format-www-authenticate`,
 *   `format-authorization`, `format-receipt` and `generate-challenge-id` read JSON.
 * - method commands: `tempo.*` (also `tempo-proof-typed-data`) run `./tempo.ts`, `verify-stripe-*` run
 *   `./stripe.ts`, when those modules exist (each exports `commands: Record<string, (input) => Promise<unknown>>`);
 *   they read JSON. A missing module or command answers `error_type: "unsupported"`. A thrown PaymentError,
 *   or any error carrying a string `errorType`, is an answer (`verification_error` or that type).
 * - stdout gets exactly one JSON line: `{"success":true,"result":…}` or
 *   `{"success":false,"error":"…","error_type":"parse_error"|"format_error"|"encoding_error"|"generation_error"|…}`.
 *
 * Without a command, stdin holds one request of the suite's JSON ABI, `{"schema":1,"op":"challenge.parse","input":…}`,
 * answered with `{"ok":true,"value":…}` or `{"ok":false,"error":{"type":…,"message":…}}`.
 *
 * Exit status: 0 whenever an answer was written, success or not; 2 for an unknown command or operation
 * (an `unknown_error` answer is still written); 1 for a crash (a defect: an error that is not one of the
 * core's typed errors), after writing an `unknown_error` answer.
 */
import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { isPaymentError } from '../../src/core/Errors.js'
import { type ErrorType, type Outcome, isCommand, runCommand, runStdin } from './core.js'

type Plugin = 'tempo' | 'stripe'

/** Exit status of a run: the answer was written (0), a defect (1), an unknown command (2). */
class Exit extends Error {
  constructor(readonly status: 1 | 2, readonly outcome: Outcome) {
    super(outcome.success ? 'ok' : outcome.error)
  }
}

// Names the suite's older runners use for the same method commands.
const aliases: Record<string, string> = {
  'tempo-proof-typed-data': 'tempo.proof.typed_data',
  'verify-tempo-receipt': 'tempo.receipt.verify',
  'stripe.external_id_binding': 'verify-stripe-external-id-binding',
}

// JSON ABI operation -> protocol command.
const operations: Record<string, string> = {
  'challenge.parse': 'parse-www-authenticate',
  'challenge.format': 'format-www-authenticate',
  'credential.parse': 'parse-authorization',
  'credential.format': 'format-authorization',
  'receipt.parse': 'parse-receipt',
  'receipt.format': 'format-receipt',
  'base64url.encode': 'base64url-encode',
  'base64url.decode': 'base64url-decode',
  'challenge.id': 'generate-challenge-id',
}

function pluginOf(command: string): Plugin | undefined {
  if (command.startsWith('tempo.')) return 'tempo'
  if (command.startsWith('verify-stripe-')) return 'stripe'
  return undefined
}

async function runPlugin(plugin: Plugin, command: string, input: unknown): Promise<Outcome> {
  const unsupported: Outcome = { success: false, error: `${command} is not implemented`, error_type: 'unsupported' }
  const file = fileURLToPath(new URL(`./${plugin}.ts`, import.meta.url))
  if (!existsSync(file) && !existsSync(file.replace(/\.ts$/, '.js'))) return unsupported
  const module = (await import(`./${plugin}.js`)) as { commands?: Record<string, (input: unknown) => Promise<unknown>> }
  const run = module.commands && Object.hasOwn(module.commands, command) ? module.commands[command] : undefined
  if (!run) return unsupported
  try {
    return { success: true, result: await run(input) }
  } catch (error) {
    const type = (error as { errorType?: unknown; error_type?: unknown })?.errorType ?? (error as { error_type?: unknown })?.error_type
    if (typeof type === 'string') return { success: false, error: (error as Error).message, error_type: type as ErrorType }
    if (isPaymentError(error)) return { success: false, error: error.message, error_type: 'verification_error' }
    throw error
  }
}

async function legacy(name: string, stdin: string): Promise<Outcome> {
  const command = aliases[name] ?? name
  if (isCommand(command)) return runStdin(command, stdin)
  const plugin = pluginOf(command)
  if (!plugin) throw new Exit(2, { success: false, error: `unknown command: ${name}`, error_type: 'unknown_error' })
  let input: unknown
  try {
    input = JSON.parse(stdin)
  } catch {
    return { success: false, error: 'input is not JSON', error_type: command.includes('verify') ? 'verification_error' : 'unknown_error' }
  }
  return runPlugin(plugin, command, input)
}

type AbiResponse = { ok: true; value: unknown } | { ok: false; error: { type: string; message: string } }

async function abi(stdin: string): Promise<AbiResponse> {
  let request: { op?: unknown; input?: unknown }
  try {
    request = JSON.parse(stdin)
  } catch {
    return { ok: false, error: { type: 'unknown_error', message: 'request is not JSON' } }
  }
  const op = typeof request?.op === 'string' ? request.op : ''
  const input = request?.input as Record<string, unknown> | undefined
  const command = operations[op] ?? aliases[op] ?? op
  let outcome: Outcome
  if (isCommand(command)) {
    // Parse operations carry `{header}`, base64url ones `{text}`, the rest the object itself.
    const value = op.endsWith('.parse') ? input?.header : op.startsWith('base64url.') ? input?.text : input
    outcome = await runCommand(command, value)
  } else if (pluginOf(command)) {
    outcome = await runPlugin(pluginOf(command)!, command, input)
  } else {
    throw new Exit(2, { success: false, error: `unknown operation: ${op}`, error_type: 'unknown_error' })
  }
  if (!outcome.success) {
    const type = outcome.error_type === 'unsupported' ? 'unsupported_operation' : outcome.error_type
    return { ok: false, error: { type, message: outcome.error } }
  }
  const { result } = outcome
  if (op.endsWith('.format')) return { ok: true, value: { header: result } }
  if (op.startsWith('base64url.')) return { ok: true, value: { text: result } }
  if (op === 'challenge.id') return { ok: true, value: { id: result } }
  return { ok: true, value: result }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

function write(answer: unknown): void {
  process.stdout.write(`${JSON.stringify(answer)}\n`)
}

async function main(): Promise<number> {
  const name = process.argv[2]
  const stdin = await readStdin()
  try {
    if (name === undefined) write(await abi(stdin))
    else write(await legacy(name, stdin))
    return 0
  } catch (error) {
    const exit = error instanceof Exit ? error : new Exit(1, { success: false, error: String(error), error_type: 'unknown_error' })
    if (exit.status === 1) console.error(error)
    const outcome = exit.outcome as Extract<Outcome, { success: false }>
    write(name === undefined ? { ok: false, error: { type: outcome.error_type, message: outcome.error } } : outcome)
    return exit.status
  }
}

process.exitCode = await main()
