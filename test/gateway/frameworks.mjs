// Origins that read a request the way common frameworks do by default, to test what the gateway forwards. Each
// answers the method and path its framework would route the request to, after its method override and format
// routing: `{ framework, method, path }`. Picked per request by the `x-framework` header.

const methods = ['GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'OPTIONS', 'PATCH']
const latin1 = (bytes) => new TextDecoder('latin1').decode(bytes)

// %XX decoded byte by byte (invalid escapes kept), "+" as a space: how Rack and PHP unescape form names.
function unescapeForm(text) {
  return text.replace(/\+/g, ' ').replace(/%([0-9a-fA-F]{2})/g, (_, hex) => String.fromCharCode(parseInt(hex, 16)))
}

// Rack 2's top-level name of a field: read from after any leading brackets to the next bracket, trailing "]"
// dropped (Rack::QueryParser#normalize_params); undefined for a nested one.
function rackName(name) {
  const match = /^[[\]]*([^[\]]+)\]*/.exec(name)
  return match && match[0].length === name.length ? match[1] : undefined
}

// Rack 2's query parser: fields separated by "&" or ";" (and the spaces after).
function rackFields(text) {
  const params = {}
  for (const field of text.split(/[&;] */)) {
    const at = field.indexOf('=')
    const name = rackName(unescapeForm(at < 0 ? field : field.slice(0, at)))
    if (name) params[name] = at < 0 ? null : unescapeForm(field.slice(at + 1))
  }
  return params
}

// Rack 2's multipart parser: a part's name from Content-Disposition (quoted pairs unescaped) or, without one,
// from Content-ID; parts with a filename are files.
function rackMultipart(text, boundary) {
  const params = {}
  for (const part of text.split(`--${boundary}`).slice(1)) {
    const end = part.indexOf('\r\n\r\n')
    if (end < 0) continue
    const head = part.slice(0, end + 2)
    const body = part.slice(end + 4).replace(/\r\n$/, '')
    if (/Content-Disposition:.* filename=/i.test(head)) continue
    let name = /Content-Disposition:.*\s+name=("(?:\\"|[^"])*"|[^\s()<>,;:\\"/[\]?=]+)/i.exec(head)?.[1] ?? /Content-ID:\s*([^\r\n]*)/i.exec(head)?.[1]
    if (name === undefined) continue
    name = rackName((/^"(.*)"$/s.exec(name)?.[1] ?? name).replace(/\\(.)/g, '$1'))
    if (name) params[name] = body
  }
  return params
}

async function rack(request, url) {
  const type = request.headers.get('content-type')
  // Rack::Request#media_type: the type up to ";" or ",".
  const media = type === null ? undefined : type.split(/\s*[;,]\s*/)[0].toLowerCase()
  let form = {}
  if (request.method === 'POST' && (media === undefined || ['application/x-www-form-urlencoded', 'multipart/form-data', 'multipart/mixed', 'multipart/related'].includes(media))) {
    const text = latin1(new Uint8Array(await request.arrayBuffer()))
    const boundary = /^multipart\/.*boundary="?([^";,]+)"?/i.exec(type ?? '')?.[1]
    form = boundary ? rackMultipart(text, boundary) : rackFields(text)
  }
  let method = request.method
  if (method === 'POST') {
    // Rack::MethodOverride; the server names headers as CGI does, so "X_HTTP_METHOD_OVERRIDE" is that header too.
    const header = [...request.headers].find(([name]) => name.replace(/_/g, '-') === 'x-http-method-override')?.[1]
    const override = String(form._method ?? header ?? '').toUpperCase()
    if (methods.includes(override)) method = override
  }
  return { method, path: url.pathname }
}

// Rails: Rack, then a router that drops a trailing slash and whose routes take an optional format suffix,
// `/v1/exports(.:format)`.
async function rails(request, url) {
  const { method, path } = await rack(request, url)
  return { method, path: path.replace(/(.)\/$/, '$1').replace(/\.[^/.]+$/, '') }
}

// Spring MVC before 6 with its old defaults: HiddenHttpMethodFilter (`_method` among the parameters of a POST
// form), trailing-slash matching and suffix pattern matching (`/v1/exports` also matches `/v1/exports.*`).
async function spring(request, url) {
  let method = request.method
  const type = (request.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase()
  if (method === 'POST') {
    const body = type === 'application/x-www-form-urlencoded' ? await request.text() : ''
    const override = new URLSearchParams(`${url.search.slice(1)}&${body}`).get('_method')?.toUpperCase()
    if (override && methods.includes(override)) method = override
  }
  return { method, path: url.pathname.replace(/(.)\/$/, '$1').replace(/\.[^/]*$/, '') }
}

// PHP's variable registration: a name ends at NUL, leading spaces go, " " and "." read as "_", "[" opens an array.
function phpName(raw) {
  const name = raw.split('\0')[0].replace(/^ +/, '')
  const bracket = name.indexOf('[')
  return (bracket >= 0 ? name.slice(0, bracket) : name).replace(/[ .]/g, '_')
}

function phpFields(text) {
  const params = {}
  for (const field of text.split('&')) {
    const at = field.indexOf('=')
    const name = phpName(unescapeForm(at < 0 ? field : field.slice(0, at)))
    if (name) params[name] = at < 0 ? '' : unescapeForm(field.slice(at + 1))
  }
  return params
}

// PHP's multipart: the name parameter of Content-Disposition, registered as a form field name is.
function phpMultipart(text, boundary) {
  const params = {}
  for (const part of text.split(`--${boundary}`).slice(1)) {
    const end = part.indexOf('\r\n\r\n')
    const name = end < 0 ? undefined : /;\s*name="?([^";\r\n]*)"?/i.exec(part.slice(0, end))?.[1]
    if (name && phpName(name)) params[phpName(name)] = part.slice(end + 4).replace(/\r\n$/, '')
  }
  return params
}

// Laravel on PHP: $_GET and $_POST as PHP registers them (PHP cuts the content type at ";", "," or a space), a
// JSON body as the input bag when the type mentions "/json" or "+json", and Symfony's method override on POST
// (X-HTTP-Method-Override, then `_method` in the input bag, then in the query).
async function laravel(request, url) {
  const type = request.headers.get('content-type') ?? ''
  const media = type.split(/[;, ]/)[0].toLowerCase()
  const query = phpFields(url.search.slice(1))
  let input = {}
  if (request.method === 'POST') {
    const bytes = new Uint8Array(await request.arrayBuffer())
    if (/\/json|\+json/i.test(type)) {
      try {
        input = JSON.parse(new TextDecoder().decode(bytes)) ?? {}
      } catch {}
    } else if (media === 'application/x-www-form-urlencoded') input = phpFields(latin1(bytes))
    else if (media === 'multipart/form-data') input = phpMultipart(latin1(bytes), /boundary="?([^";,]+)"?/i.exec(type)?.[1] ?? '')
  }
  let method = request.method
  if (method === 'POST') {
    const override = String(request.headers.get('x-http-method-override') ?? input._method ?? query._method ?? 'POST').toUpperCase()
    if (/^[A-Z]+$/.test(override)) method = override
  }
  return { method, path: url.pathname }
}

// Express: express.json() (type-is: a well-formed application/json; body-parser inflates a gzip or deflate body
// and decodes any utf-* charset), then method-override with the body getter its documentation shows (`req.body._method`).
async function express(request, url) {
  const type = request.headers.get('content-type') ?? ''
  const json = /^application\/json\s*(?:;\s*charset=(utf-[0-9a-z-]+)\s*)?$/i.exec(type)
  let body = {}
  if (json) {
    const encoding = request.headers.get('content-encoding')
    const stream = encoding === 'gzip' || encoding === 'deflate' ? request.body.pipeThrough(new DecompressionStream(encoding)) : request.body
    try {
      body = JSON.parse(new TextDecoder(json[1] ?? 'utf-8').decode(await new Response(stream).arrayBuffer()))
    } catch {}
  }
  let method = request.method
  if (method === 'POST' && body && typeof body === 'object' && '_method' in body) {
    const override = String(body._method).toUpperCase()
    if (methods.includes(override)) method = override
  }
  return { method, path: url.pathname }
}

const frameworks = { rack, rails, spring, laravel, express }

/** The route a framework serves the request as, or undefined when the request names no known framework. */
export async function frameworkRoute(request, url) {
  const name = request.headers.get('x-framework')
  const read = name ? frameworks[name] : undefined
  return read ? { framework: name, ...(await read(request, url)) } : undefined
}
