#!/usr/bin/env node
// A real cote 1.2.0 component driven by JSON lines, for coterie's interop
// tests and benchmarks.
//
//   node interop/peer.js <role> '<json config>'
//
// role: responder | requester | publisher | subscriber | monitor
//   (monitor: cote's real Monitor with its screen disabled; prints status events)
//
// config (all optional):
//   name, namespace, key, respondsTo, requests, broadcasts, subscribesTo,
//   subset, timeout     advertisement fields, passed to the component
//   advertisement       extra advertisement fields, merged in
//   environment         passed as require('cote')({environment})
//   discovery           cote's discovery options (helloInterval, checkInterval,
//                       nodeTimeout, masterTimeout, key, broadcast, ...)
//   reply               responders only: {mode, delayMs, message, value, code}
//   firstContact        requesters only: {req, timeout}: send req at once and
//                       report the time from creating the component to its reply
//   quiet               responders/subscribers: no "request"/"message" lines
//   expect              subscribers only: report {"event":"received"} after N events
//     mode "echo"   (default) answer {...req, by: name, pid: process.pid}
//     mode "value"  answer reply.value
//     mode "throw"  throw new Error(message): cote sends it as {} on the wire
//     mode "error"  fail with the plain object {name: "Error", message[, code]}
//
// stdout, one JSON object a line:
//   {"event":"ready","pid":...,"advertisement":...}  component is up
//   {"event":"added","advertisement":...,"address":...}   cote:added
//   {"event":"removed","advertisement":...}               cote:removed
//   {"event":"request","req":...}                  responder handles a request
//   {"event":"reply","seq":N,"err":...,"res":...}  requester got an answer;
//       "errLocal":true when err is a local Error (such as a timeout)
//   {"event":"message","topic":...,"data":...}     subscriber got an event
//   {"event":"status","status":{id,nodes}}         monitor got a status report
//   {"event":"published","topic":...}              publisher sent one
//   {"event":"bench","n":N,"errors":E,"seconds":S[,"latencies_us":[...]]
//       [,"completions_us":[...]]}   answer times (µs since the bench started)
//   {"event":"first_contact","ms":T,"err":...}   the firstContact request's answer
//   {"event":"published_bench","n":N,"seconds":S}  publisher finished publish_bench
//   {"event":"received","count":N,"seconds":S}  subscriber: first to expect-th event
//   {"event":"stats","count":N,"seconds":S}       subscriber: answer to "stats"
//   {"event":"error","message":...}                bad command or crash
//   {"event":"connect"}                            a TCP connection of the component's
//       axon socket came up (accepted or opened): counts (re)connections
//   {"event":"hellos_paused"} / {"event":"hellos_resumed"}   pause_hellos
//   {"event":"closed"}                             last line before exit
//
// stdin, one JSON object a line:
//   {"cmd":"send","seq":N,"req":{...},"timeout":ms}      requester
//   {"cmd":"bench","n":N,"concurrency":C,"req":{...},"timeout":ms,"latencies":true,
//    "completions":true}
//   {"cmd":"publish_bench","topic":"...","data":...,"n":N,"batch":B}   publisher
//   {"cmd":"stats","reset":true}      subscriber: report counts, then reset them
//   {"cmd":"publish","topic":"...","data":...}           publisher
//   {"cmd":"pause_hellos","ms":N}   send no discovery hello for N ms (a discovery
//       gap, as cote's own tests stub discovery.hello); the TCP links stay up
//   {"cmd":"end_links"}   end every TCP link of the component (FIN) while it keeps
//       listening: what a peer sees of a closing cote component whose port
//       is still (or again) open
//   {"cmd":"exit"}   or end of stdin: close the component and exit.
//
// Node cote broadcasts discovery to 255.255.255.255 unless told otherwise, so
// this script refuses to start with that default while any network interface
// besides loopback exists: run it inside a private network namespace (as the
// tests do), or give a discovery broadcast/unicast/multicast address. A host
// of the multi-host test bed (tests/bed.py, which sets COTERIE_BED_HOST) has
// interfaces of its own, but they lead only to other hosts of the bed.

'use strict'

const os = require('os')
const readline = require('readline')

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

function fail(message) {
  emit({ event: 'error', message })
  process.stderr.write(`peer.js: ${message}\n`)
  process.exit(1)
}

function describeError(err) {
  if (err instanceof Error) return { name: err.name, message: err.message }
  return err === undefined ? null : err
}

const ROLES = ['responder', 'requester', 'publisher', 'subscriber', 'monitor']
const ADVERTISEMENT_FIELDS = [
  'name',
  'namespace',
  'key',
  'respondsTo',
  'requests',
  'broadcasts',
  'subscribesTo',
  'subset',
  'timeout',
]

const role = process.argv[2]
let config
try {
  config = JSON.parse(process.argv[3] || '{}')
} catch (e) {
  fail(`config is not JSON: ${e.message}`)
}
if (!ROLES.includes(role)) fail(`role must be one of ${ROLES.join(', ')}`)

const discovery = { log: false, logUnknownEvents: false, ...(config.discovery || {}) }

function assertPrivateBroadcast() {
  const directed =
    discovery.broadcast || discovery.unicast || discovery.multicast || discovery.redis
  if (directed || process.env.COTE_MULTICAST_ADDRESS || process.env.COTERIE_BED_HOST) return
  const external = Object.entries(os.networkInterfaces()).filter(([, addrs]) =>
    addrs.some(a => !a.internal)
  )
  if (external.length) {
    fail(
      'refusing to broadcast discovery to 255.255.255.255 with non-loopback ' +
        `interfaces (${external.map(([n]) => n).join(', ')}); ` +
        'run inside a private network namespace'
    )
  }
}
assertPrivateBroadcast()

process.on('uncaughtException', err => fail(`uncaught: ${err.stack || err}`))
process.on('unhandledRejection', err => fail(`unhandled rejection: ${err && err.stack}`))

const cote = require('cote')(config.environment ? { environment: config.environment } : {})

const advertisement = { ...(config.advertisement || {}) }
for (const field of ADVERTISEMENT_FIELDS) {
  if (config[field] !== undefined) advertisement[field] = config[field]
}
if (!advertisement.name) advertisement.name = `node ${role}`

const createdAt = process.hrtime.bigint()
if (role === 'monitor') discovery.disableScreen = true
const component = new cote[role[0].toUpperCase() + role.slice(1)](advertisement, discovery)
if (role === 'monitor') component.on('status', status => emit({ event: 'status', status }))

// onAny, because a Subscriber prefixes the names given to on() with its namespace.
component.onAny((event, obj) => {
  if (event === 'cote:added') {
    emit({ event: 'added', advertisement: obj.advertisement, address: obj.address, id: obj.id })
  } else if (event === 'cote:removed') {
    emit({ event: 'removed', advertisement: obj.advertisement, id: obj.id })
  }
})

const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

if (role === 'responder') {
  const reply = { mode: 'echo', ...(config.reply || {}) }
  const handler = async req => {
    if (component.event.startsWith('cote:')) return undefined
    if (!config.quiet) emit({ event: 'request', req })
    if (reply.delayMs) await sleep(reply.delayMs)
    switch (reply.mode) {
      case 'echo':
        return { ...req, by: advertisement.name, pid: process.pid }
      case 'value':
        return reply.value
      case 'throw':
        throw new Error(reply.message || 'node responder failed')
      case 'error':
        // A rejected promise reaches cote's reply callback as the error.
        throw {
          name: 'Error',
          message: reply.message || 'node responder failed',
          ...(reply.code ? { code: reply.code } : {})
        }
      default:
        throw new Error(`unknown reply mode ${reply.mode}`)
    }
  }
  for (const type of config.respondsTo || ['*']) component.on(type, handler)
}

let subscriberStats = null
let resetSubscriberStats = null
if (role === 'subscriber') {
  const prefix = advertisement.namespace ? advertisement.namespace + '::' : ''
  let received = 0
  let firstAt = null
  let lastAt = null
  subscriberStats = () => ({
    count: received,
    seconds: received ? Number(lastAt - firstAt) / 1e9 : 0,
  })
  resetSubscriberStats = () => {
    received = 0
    firstAt = null
    lastAt = null
  }
  component.onAny((event, data) => {
    if (event.startsWith('cote:')) return
    received++
    lastAt = process.hrtime.bigint()
    if (firstAt === null) firstAt = lastAt
    if (config.expect && received === config.expect) {
      emit({ event: 'received', ...subscriberStats() })
    }
    if (config.quiet) return
    const topic = prefix && event.startsWith(prefix) ? event.slice(prefix.length) : event
    emit({ event: 'message', topic, data })
  })
}

async function send(req, timeout) {
  // A request that is no object (cote sends send('a string') as it is) keeps
  // the requester's own timeout (config "timeout").
  const isObject = typeof req === 'object' && req !== null && !Array.isArray(req)
  const msg = timeout && isObject ? { ...req, __timeout: timeout } : req
  return component.send(msg)
}

async function bench(cmd) {
  const n = cmd.n
  const concurrency = Math.max(1, Math.min(cmd.concurrency || 1, n))
  const latencies = cmd.latencies ? new Array(n) : null
  const completions = cmd.completions ? [] : null
  let next = 0
  let errors = 0
  const started = process.hrtime.bigint()
  const worker = async () => {
    while (next < n) {
      const i = next++
      const t0 = process.hrtime.bigint()
      let ok = true
      try {
        await send(cmd.req, cmd.timeout)
      } catch (e) {
        errors++
        ok = false
      }
      const t1 = process.hrtime.bigint()
      if (latencies) latencies[i] = Number(t1 - t0) / 1000
      if (completions && ok) completions.push(Math.round(Number(t1 - started) / 1000))
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  const out = { event: 'bench', n, errors, seconds }
  if (latencies) out.latencies_us = latencies.map(v => Math.round(v))
  if (completions) out.completions_us = completions
  emit(out)
}

// Publish n events as fast as the event loop allows, batch by batch, yielding
// between batches so the socket writes can drain.
async function publishBench(cmd) {
  const n = cmd.n
  const batch = Math.max(1, cmd.batch || 100)
  const started = process.hrtime.bigint()
  let sent = 0
  while (sent < n) {
    const end = Math.min(n, sent + batch)
    for (; sent < end; sent++) component.publish(cmd.topic, cmd.data)
    await new Promise(resolve => setImmediate(resolve))
  }
  emit({ event: 'published_bench', n, seconds: Number(process.hrtime.bigint() - started) / 1e9 })
}

if (role === 'requester' && config.firstContact) {
  const fc = config.firstContact
  send(fc.req || { type: 'ping' }, fc.timeout).then(
    () => emit({ event: 'first_contact', ms: Number(process.hrtime.bigint() - createdAt) / 1e6, err: null }),
    err => emit({ event: 'first_contact', ms: Number(process.hrtime.bigint() - createdAt) / 1e6, err: describeError(err) })
  )
}

let closing = false
function close() {
  if (closing) return
  closing = true
  try {
    component.close()
  } catch (e) {
    process.stderr.write(`peer.js: close: ${e.stack || e}\n`)
  }
  emit({ event: 'closed' })
  process.exit(0)
}

function pauseHellos(ms) {
  const discovery = component.discovery
  if (!discovery) return emit({ event: 'error', message: 'no discovery to pause yet' })
  discovery.hello = () => {} // the interval calls discovery.hello()
  emit({ event: 'hellos_paused' })
  setTimeout(() => {
    delete discovery.hello // back to the prototype's
    discovery.hello()
    emit({ event: 'hellos_resumed' })
  }, ms)
}

function handle(cmd) {
  switch (cmd.cmd) {
    case 'exit':
      return close()
    case 'pause_hellos':
      return pauseHellos(cmd.ms)
    case 'end_links':
      axonSock.socks.slice().forEach(s => s.end())
      return emit({ event: 'links_ended' })
    case 'send':
      if (role !== 'requester') break
      send(cmd.req, cmd.timeout).then(
        res => emit({ event: 'reply', seq: cmd.seq, err: null, res }),
        err => {
          const out = { event: 'reply', seq: cmd.seq, err: describeError(err), res: null }
          if (err instanceof Error) out.errLocal = true
          emit(out)
        }
      )
      return
    case 'bench':
      if (role !== 'requester') break
      bench(cmd).catch(e => emit({ event: 'error', message: String(e) }))
      return
    case 'publish_bench':
      if (role !== 'publisher') break
      publishBench(cmd).catch(e => emit({ event: 'error', message: String(e) }))
      return
    case 'stats':
      if (role !== 'subscriber') break
      emit({ event: 'stats', ...subscriberStats() })
      if (cmd.reset) resetSubscriberStats()
      return
    case 'publish':
      if (role !== 'publisher') break
      component.publish(cmd.topic, cmd.data)
      emit({ event: 'published', topic: cmd.topic })
      return
  }
  emit({ event: 'error', message: `command not understood by ${role}: ${JSON.stringify(cmd)}` })
}

const input = readline.createInterface({ input: process.stdin })
input.on('line', line => {
  if (!line.trim()) return
  let cmd
  try {
    cmd = JSON.parse(line)
  } catch (e) {
    emit({ event: 'error', message: `stdin line is not JSON: ${line}` })
    return
  }
  handle(cmd)
})
input.on('close', close)

// Ready once discovery's UDP socket is bound. Responders and publishers start
// discovery only after their TCP socket is bound; the others at once.
function announceWhenListening() {
  const announce = () => emit({ event: 'ready', pid: process.pid, advertisement })
  const sock = component.discovery.broadcast.socket
  if (typeof sock.address !== 'function') return announce() // Redis discovery
  try {
    sock.address()
    announce()
  } catch (e) {
    sock.once('listening', announce)
  }
}
// Publishers, subscribers and monitors wrap their axon socket in an emitter socket.
const axonSock = ['publisher', 'subscriber', 'monitor'].includes(role)
  ? component.sock.sock
  : component.sock
axonSock.on('connect', () => emit({ event: 'connect' }))

if (component.discovery) announceWhenListening()
else (role === 'publisher' || role === 'monitor' ? component.sock.sock : component.sock).on(
  'bind',
  announceWhenListening
)
