#!/usr/bin/env node
// One process of the scale harness for Node cote 1.2.0: the twin of
// bench/scale_worker.py, speaking the same JSON lines.
//
//   node bench/scale_worker.js mesh '<json config>'
//
// config: components [{role: "rep"|"req", name, namespace, expect}],
//         discovery (cote's camelCase options).
// stdin:  {"cmd":"go"} creates every component; {"cmd":"exit"} or end of
//         input closes them and exits.
// stdout: loaded, started {ids}, linked (each time every requester holds
//         all its links again), unlinked, removed {id}, closed.
//
// "Linked" is the requester's count of connected axon sockets
// (requester.sock.socks), polled every 20 ms. It broadcasts to
// 255.255.255.255 unless told otherwise: the driver runs it only inside a
// private network namespace.

'use strict'

const path = require('path')
const readline = require('readline')

const cote = require(path.join(__dirname, '..', 'interop', 'node_modules', 'cote'))

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n')
}

const config = JSON.parse(process.argv[3] || '{}')
const discovery = { log: false, logUnknownEvents: false, ...(config.discovery || {}) }
const comps = []
let watcher = null

function go() {
  const requesters = []
  for (const spec of config.components) {
    const adv = { name: spec.name, namespace: spec.namespace }
    const comp = spec.role === 'rep' ? new cote.Responder(adv, discovery) : new cote.Requester(adv, discovery)
    comp.on('cote:removed', obj => emit({ event: 'removed', id: obj.id }))
    if (spec.role === 'req') requesters.push([comp, spec.expect])
    comps.push(comp)
  }
  // A component starts its discovery once it is bound: report the ids then.
  let started = false
  let linked = false
  watcher = setInterval(() => {
    if (!started) {
      if (!comps.every(c => c.discovery)) return
      started = true
      emit({ event: 'started', ids: comps.map(c => c.discovery.me.id) })
    }
    const now = requesters.every(([r, n]) => r.sock.socks.length >= n)
    if (now !== linked) emit({ event: now ? 'linked' : 'unlinked' })
    linked = now
  }, 20)
}

function exit() {
  if (watcher) clearInterval(watcher)
  for (const comp of comps) {
    try {
      comp.close()
    } catch (e) {}
  }
  emit({ event: 'closed' })
  process.exit(0)
}

const rl = readline.createInterface({ input: process.stdin })
rl.on('line', line => {
  if (!line.trim()) return
  const cmd = JSON.parse(line)
  if (cmd.cmd === 'go') go()
  else if (cmd.cmd === 'exit') exit()
})
rl.on('close', exit)
emit({ event: 'loaded' })
