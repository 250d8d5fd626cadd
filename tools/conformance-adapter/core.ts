/** @module The conformance adapter's protocol commands: canonical objects in and out, computed by `src/core`. */
import * as v from 'valibot'
import * as Challenge from '../../src/core/Challenge.js'
import * as ChallengeId from '../../src/core/ChallengeId.js'
import * as Credential from '../../src/core/Credential.js'
import { EncodingError, decodeText, encodeText } from '../../src/core/Encoding.js'
import * as Receipt from '../../src/core/Receipt.js'

/** Error types of the conformance suite's command protocol. */
export type ErrorType =
  | 'parse_error'
  | 'format_error'
  | 'encoding_error'
  | 'generation_error'
  | 'verification_error'
  | 'unsupported'
  | 'unknown_error'

/** One adapter answer, written to stdout as a single JSON line. */
export type Outcome = { success: true; result: unknown } | { success: false; error: string; error_type: ErrorType }

/** Raised when a command's input does not have the shape the command reads. */
export class InputError extends Error {
  override readonly name = 'InputError'
}

type Spec = {
  /** `text`: stdin is the raw header or text; `json`: stdin is a JSON document. */
  input: 'text' | 'json'
  /** The error type every expected failure of this command is reported as. */
  errorType: ErrorType
  run: (input: any) => Promise<unknown> | unknown
}

const optionalString = v.optional(v.string())

// A canonical challenge: `request` decoded (an object), or the base64url wire string.
const ChallengeInput = v.object({
  id: v.string(),
  realm: v.string(),
  method: v.string(),
  intent: v.string(),
  request: v.union([v.record(v.string(), v.unknown()), v.string()]),
  expires: optionalString,
  digest: optionalString,
  description: optionalString,
  opaque: optionalString,
  header: optionalString,
})

const CredentialInput = v.object({
  challenge: ChallengeInput,
  source: optionalString,
  payload: v.record(v.string(), v.unknown()),
})

const ChallengeIdInput = v.object({
  secretKey: v.string(),
  realm: v.string(),
  method: v.string(),
  intent: v.string(),
  request: v.record(v.string(), v.unknown()),
  expires: optionalString,
  digest: optionalString,
  opaque: optionalString,
  header: optionalString,
})

/** The protocol commands, each backed by the same core functions the worker uses. */
export const commands = {
  'parse-www-authenticate': {
    input: 'text',
    errorType: 'parse_error',
    run: (header: string) => Challenge.deserialize(header),
  },
  'format-www-authenticate': {
    input: 'json',
    errorType: 'format_error',
    run: (input: unknown) => Challenge.serialize(compact(read(ChallengeInput, input)) as Challenge.Challenge | Challenge.Echoed),
  },
  'parse-authorization': {
    input: 'text',
    errorType: 'parse_error',
    run: (header: string) => canonicalCredential(Credential.deserialize(header)),
  },
  'format-authorization': {
    input: 'json',
    errorType: 'format_error',
    run: (input: unknown) => {
      const credential = read(CredentialInput, input)
      const challenge = compact(credential.challenge)
      const echoed = typeof challenge.request === 'string' ? (challenge as Challenge.Echoed) : Challenge.toEchoed(challenge as Challenge.Challenge)
      // Never emit a credential this core would refuse to read back (bad method, intent, ...).
      const checked = v.safeParse(Credential.Schema, compact({ challenge: echoed, source: credential.source, payload: credential.payload }))
      if (!checked.success) throw new InputError(`credential does not satisfy the schema: ${checked.issues[0].message}`)
      return Credential.serialize(checked.output as Credential.Credential)
    },
  },
  'parse-receipt': {
    input: 'text',
    errorType: 'parse_error',
    run: (header: string) => Receipt.deserialize(header),
  },
  'format-receipt': {
    input: 'json',
    errorType: 'format_error',
    run: (input: unknown) => Receipt.serialize(read(v.looseObject({}), input) as Receipt.Receipt),
  },
  'base64url-encode': {
    input: 'text',
    errorType: 'encoding_error',
    run: (text: string) => encodeText(text),
  },
  'base64url-decode': {
    input: 'text',
    errorType: 'encoding_error',
    run: (text: string) => decodeText(text),
  },
  'generate-challenge-id': {
    input: 'json',
    errorType: 'generation_error',
    run: async (input: unknown) => {
      const { secretKey, ...fields } = read(ChallengeIdInput, input)
      // Challenge.create is how the worker mints every challenge it issues.
      const challenge = await Challenge.create({ ...compact(fields), secret: secretKey })
      return challenge.id
    },
  },
} satisfies Record<string, Spec>

/** Name of a protocol command. */
export type Command = keyof typeof commands

/**
 * Whether a command name is one of the protocol commands.
 * @example
 * isCommand('parse-receipt') // true
 */
export function isCommand(name: string): name is Command {
  return Object.hasOwn(commands, name)
}

/**
 * Runs a protocol command on its decoded input (a string for text commands, a JSON value otherwise).
 * Expected failures (typed core errors, malformed input) become `success: false`; anything else is a
 * defect and is rethrown.
 * @example
 * await runCommand('base64url-encode', 'a') // { success: true, result: 'YQ' }
 */
export async function runCommand(command: Command, input: unknown): Promise<Outcome> {
  const spec: Spec = commands[command]
  try {
    if (spec.input === 'text' && typeof input !== 'string') throw new InputError('input must be a string')
    return { success: true, result: await spec.run(input) }
  } catch (error) {
    if (!isExpected(error)) throw error
    return { success: false, error: (error as Error).message, error_type: spec.errorType }
  }
}

/**
 * Runs a protocol command on raw stdin: text commands read the header or text (surrounding whitespace
 * trimmed, except that `base64url-encode` only drops one trailing line break), JSON commands parse it.
 * @example
 * await runStdin('parse-receipt', 'eyJ…\n')
 */
export async function runStdin(command: Command, stdin: string): Promise<Outcome> {
  const spec: Spec = commands[command]
  if (spec.input === 'text') return runCommand(command, command === 'base64url-encode' ? stdin.replace(/\r?\n$/, '') : stdin.trim())
  let input: unknown
  try {
    input = JSON.parse(stdin)
  } catch {
    return { success: false, error: 'input is not JSON', error_type: spec.errorType }
  }
  return runCommand(command, input)
}

/**
 * The canonical form of a credential: the echoed challenge with `request` decoded, absent fields omitted.
 * @example
 * canonicalCredential(Credential.deserialize(header)).challenge.request // { amount: '1000' }
 */
export function canonicalCredential(credential: Credential.Credential): {
  challenge: Challenge.Challenge
  source?: string
  payload: Record<string, unknown>
} {
  return compact({
    challenge: Challenge.fromEchoed(credential.challenge),
    source: credential.source,
    payload: credential.payload,
  })
}

function read<const S extends v.GenericSchema>(schema: S, input: unknown): v.InferOutput<S> {
  const result = v.safeParse(schema, input)
  if (result.success) return result.output
  const issue = result.issues[0]
  const path = issue.path?.map((p) => String(p.key)).join('.')
  throw new InputError(`invalid input${path ? ` at ${path}` : ''}: ${issue.message}`)
}

function isExpected(error: unknown): boolean {
  return (
    error instanceof InputError ||
    error instanceof Challenge.ChallengeParseError ||
    error instanceof Challenge.ChallengeFormatError ||
    error instanceof Credential.CredentialParseError ||
    error instanceof Receipt.ReceiptError ||
    error instanceof EncodingError ||
    error instanceof ChallengeId.WeakSecretError
  )
}

function compact<T extends Record<string, unknown>>(value: T): T {
  const copy = { ...value }
  for (const key of Object.keys(copy)) if (copy[key] === undefined) delete copy[key]
  return copy
}
