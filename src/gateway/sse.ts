/** @module Reading an origin's server-sent events one event at a time, each kept byte for byte as sent. */

/** One event as the origin sent it. */
export type SseEvent = {
  /** The event's text, its closing blank line included: forwarded unchanged. */
  raw: string
  /** Its `data:` lines joined by newlines, or undefined for a comment or keep-alive (no data). */
  data: string | undefined
}

/**
 * A line ending followed by an empty line: where an event ends (HTML, "Server-sent events", 9.2.5: lines end in
 * CRLF, LF or CR, and an empty line dispatches the event), so `\n\r` and `\r\n\r` end one as `\n\n` does. A
 * reader that missed one would charge several events as one. A CR before an LF is one line ending (CRLF).
 */
const blankLine = /(?:\r\n|\n|\r(?!\n))(?:\r\n|\n|\r)/

/** Longest event the gateway buffers (bytes of text before a blank line). */
export const maxEventLength = 1024 * 1024

/**
 * Raised when an event exceeds `maxEventLength`.
 * @example
 * throw new EventTooLargeError()
 */
export class EventTooLargeError extends Error {
  override readonly name = 'EventTooLargeError'
}

/**
 * Whether an event costs a unit: it carries data, and the data is not the closing `[DONE]`.
 * @example
 * isBillable({ raw: 'data: [DONE]\n\n', data: '[DONE]' }) // false
 */
export function isBillable(event: SseEvent): boolean {
  return event.data !== undefined && event.data.trim() !== '[DONE]'
}

/**
 * Splits an SSE body into events (blank-line separated, any of the spec's line endings); text after the last
 * blank line is yielded as a final event.
 * @example
 * for await (const event of sseEvents(response.body!.getReader())) console.log(event.data)
 */
export async function* sseEvents(reader: ReadableStreamDefaultReader<Uint8Array>): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder()
  let buffer = ''
  for (;;) {
    const { value, done } = await reader.read()
    buffer += done ? decoder.decode() : decoder.decode(value, { stream: true })
    for (;;) {
      // A "\r" at the very end may be the first half of "\r\n": wait for more.
      const searchable = !done && buffer.endsWith('\r') ? buffer.slice(0, -1) : buffer
      const end = blankLine.exec(searchable)
      if (!end) break
      const raw = buffer.slice(0, end.index + end[0].length)
      buffer = buffer.slice(raw.length)
      yield parse(raw)
    }
    if (buffer.length > maxEventLength) throw new EventTooLargeError(`an event is longer than ${maxEventLength} bytes`)
    if (done) {
      if (buffer.length > 0) yield parse(buffer)
      return
    }
  }
}

function parse(raw: string): SseEvent {
  let data: string[] | undefined
  for (const line of raw.split(/\r\n|\r|\n/)) {
    if (line === 'data' || line.startsWith('data:')) {
      const value = line.slice(5)
      ;(data ??= []).push(value.startsWith(' ') ? value.slice(1) : value)
    }
  }
  return { raw, data: data?.join('\n') }
}
