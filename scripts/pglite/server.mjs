#!/usr/bin/env node
// PGlite (PostgreSQL 17.5 + TimescaleDB with the Timescale license, in WebAssembly) served over the
// PostgreSQL wire protocol, one client connection at a time.
//
//   node server.mjs --data-dir DIR [--host 127.0.0.1] [--port 55433] [--idle-timeout SECONDS]
//
// PGlite is ONE backend session. The stock @electric-sql/pglite-socket servers multiplex several
// connections onto it message by message, which mixes their transactions, prepared statements and
// SETs. This server instead hands the whole session to one connection at a time:
//   - every connection is accepted and its startup handshake answered at once; with its first
//     message it joins a FIFO queue, and it is served once every earlier connection has closed
//     (its query just blocks meanwhile). A process holding a connection and opening a second one
//     therefore waits forever: pool size 1.
//   - between two connections the session is reset: Sync (ends an extended-protocol sequence left
//     half-way), ROLLBACK if a transaction is open, DISCARD ALL (prepared statements, temp tables,
//     cursors, advisory locks, LISTEN, every SET), then search_path to '"$user", public' and
//     TimeZone to the server default (GMT);
//   - COPY ... FROM STDIN aborts the WebAssembly Postgres, so such statements never reach it: the
//     client gets an ErrorResponse (SQLSTATE 0A000) raised by the backend itself, so the transaction
//     state the client sees is the real one. Any other abort of the WebAssembly module makes the
//     process exit with status 70 and a "FATAL" line on stderr, for a supervisor to notice;
//   - --idle-timeout S (default 0: off): a connection owning the session that stays idle S seconds
//     while others wait is closed (FATAL 57P05), like Postgres' idle_session_timeout.
// Authentication: SCRAM-SHA-256, as Postgres does it, with PGLITE_PASSWORD from the environment
// (scripts/stack sets it: never on the command line). Without it the server refuses to start, unless
// --trust says that any password is to be accepted (a throwaway server; every local user can reach it). User must be "postgres", database "postgres" (the only database served). No TLS: clients using sslmode=prefer
// are told "no TLS" and continue in clear text; sslmode=require fails.
//
// stdout: one line "PGLITE READY host=H port=P ..." once it listens. stderr: the log.
// Files: everything is inside --data-dir (the PGlite data directory); nothing else is written.

import crypto from 'node:crypto'
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { PGlite } from '@electric-sql/pglite'
import { timescaledb } from '@electric-sql/pglite/timescaledb'

const PROTOCOL_3_0 = 196608
const SSL_REQUEST = 80877103
const GSSENC_REQUEST = 80877104
const CANCEL_REQUEST = 80877102
const MAX_STARTUP_PACKET = 10000
const EXIT_WASM_ABORT = 70

// SCRAM-SHA-256 (RFC 5802 and 7677) with one verifier derived at start from PGLITE_PASSWORD.
const SCRAM = (() => {
  const password = process.env.PGLITE_PASSWORD || ''
  if (!password) return null
  const salt = crypto.randomBytes(16)
  const iterations = 4096
  const salted = crypto.pbkdf2Sync(password, salt, iterations, 32, 'sha256')
  const hmac = (key, text) => crypto.createHmac('sha256', key).update(text).digest()
  const clientKey = hmac(salted, 'Client Key')
  return { salt: salt.toString('base64'), iterations, hmac,
    storedKey: crypto.createHash('sha256').update(clientKey).digest(), serverKey: hmac(salted, 'Server Key') }
})()

const COPY_REFUSAL_MESSAGE =
  'COPY ... FROM STDIN is not supported by the PGlite server (it would abort the WebAssembly Postgres)'
const COPY_REFUSAL_HINT =
  'Load rows with INSERT ... SELECT FROM unnest(%s::type[], ...) or executemany instead.'

// ---------------------------------------------------------------------------------------------
// Command line and log
// ---------------------------------------------------------------------------------------------

const { values: args } = parseArgs({
  options: {
    'data-dir': { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '55433' },
    'idle-timeout': { type: 'string', default: '0' },
    trust: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
})
if (args.help || !args['data-dir']) {
  process.stdout.write('usage: node server.mjs --data-dir DIR [--host 127.0.0.1] [--port 55433] [--idle-timeout SECONDS] [--trust]\n')
  process.exit(args.help ? 0 : 2)
}
if (!SCRAM && !args.trust) {
  process.stderr.write('PGLITE_PASSWORD is not set: the server lets no one in without it (--trust: any password)\n')
  process.exit(2)
}
const dataDir = path.resolve(args['data-dir'])
const host = args.host
const port = Number.parseInt(args.port, 10)
const idleTimeoutMs = Number.parseFloat(args['idle-timeout']) * 1000
if (!(idleTimeoutMs >= 0)) {
  process.stderr.write(`pglite-server: invalid --idle-timeout ${args['idle-timeout']}\n`)
  process.exit(2)
}
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`pglite-server: invalid --port ${args.port}\n`)
  process.exit(2)
}

function log(message) {
  process.stderr.write(`${new Date().toISOString()} pglite-server[${process.pid}] ${message}\n`)
}

// ---------------------------------------------------------------------------------------------
// Wire protocol helpers
// ---------------------------------------------------------------------------------------------

function message(type, body = Buffer.alloc(0)) {
  const head = Buffer.alloc(5)
  head.write(type, 0, 'latin1')
  head.writeInt32BE(4 + body.length, 1)
  return Buffer.concat([head, body])
}

const cstring = (text) => Buffer.from(`${text}\0`, 'utf8')

function int32(value) {
  const b = Buffer.alloc(4)
  b.writeInt32BE(value)
  return b
}

function errorResponse(severity, code, text, hint) {
  const fields = [Buffer.from('S'), cstring(severity), Buffer.from('V'), cstring(severity),
    Buffer.from('C'), cstring(code), Buffer.from('M'), cstring(text)]
  if (hint) fields.push(Buffer.from('H'), cstring(hint))
  fields.push(Buffer.from([0]))
  return message('E', Buffer.concat(fields))
}

const queryMessage = (sql) => message('Q', cstring(sql))
const SYNC = message('S')

// Walks the backend's output: returns the last ReadyForQuery status ('I', 'T', 'E' or null) and the
// texts of ErrorResponses.
function scanOutput(buffer) {
  let status = null
  const errors = []
  let offset = 0
  while (offset + 5 <= buffer.length) {
    const type = String.fromCharCode(buffer[offset])
    const length = buffer.readInt32BE(offset + 1)
    if (length < 4) break
    if (type === 'Z' && length === 5) status = String.fromCharCode(buffer[offset + 5])
    if (type === 'E') {
      const fields = {}
      let i = offset + 5
      const end = offset + 1 + length
      while (i < end && buffer[i] !== 0) {
        const key = String.fromCharCode(buffer[i])
        const stop = buffer.indexOf(0, i + 1)
        fields[key] = buffer.toString('utf8', i + 1, stop)
        i = stop + 1
      }
      errors.push(`${fields.S ?? 'ERROR'} ${fields.C ?? ''}: ${fields.M ?? ''}`)
    }
    offset += 1 + length
  }
  return { status, errors }
}

// ---------------------------------------------------------------------------------------------
// COPY ... FROM STDIN detection: a small SQL lexer (comments, '...', E'...', $tag$...$tag$, "...")
// ---------------------------------------------------------------------------------------------

function sqlStatementsWords(sql) {
  // Returns, per top-level statement, the words (lowercased) at parenthesis depth 0.
  const statements = []
  let words = []
  let depth = 0
  let i = 0
  const n = sql.length
  const isWordStart = (c) => /[A-Za-z_\u0080-\uffff]/.test(c)
  const isWordChar = (c) => /[A-Za-z0-9_$\u0080-\uffff]/.test(c)
  while (i < n) {
    const c = sql[i]
    if (c === '-' && sql[i + 1] === '-') {
      while (i < n && sql[i] !== '\n') i++
    } else if (c === '/' && sql[i + 1] === '*') {
      let level = 1
      i += 2
      while (i < n && level > 0) {
        if (sql[i] === '/' && sql[i + 1] === '*') { level++; i += 2 } else if (sql[i] === '*' && sql[i + 1] === '/') { level--; i += 2 } else i++
      }
    } else if (c === "'") {
      const escapes = /(^|[^A-Za-z0-9_$])[eE]$/.test(sql.slice(Math.max(0, i - 2), i))
      i++
      while (i < n) {
        if (escapes && sql[i] === '\\') { i += 2; continue }
        if (sql[i] === "'") {
          if (sql[i + 1] === "'") { i += 2; continue }
          break
        }
        i++
      }
      i++
      words.push("'")
    } else if (c === '"') {
      i++
      while (i < n) {
        if (sql[i] === '"') {
          if (sql[i + 1] === '"') { i += 2; continue }
          break
        }
        i++
      }
      i++
      if (depth === 0) words.push('"')
    } else if (c === '$') {
      const tag = /^\$([A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/.exec(sql.slice(i, i + 64))
      if (tag) {
        const close = sql.indexOf(tag[0], i + tag[0].length)
        i = close === -1 ? n : close + tag[0].length
        if (depth === 0) words.push("'")
      } else {
        i++
        while (i < n && /[0-9]/.test(sql[i])) i++
      }
    } else if (c === '(') {
      depth++
      i++
    } else if (c === ')') {
      depth = Math.max(0, depth - 1)
      i++
    } else if (c === ';' && depth === 0) {
      if (words.length) statements.push(words)
      words = []
      i++
    } else if (isWordStart(c)) {
      let j = i + 1
      while (j < n && isWordChar(sql[j])) j++
      if (depth === 0) words.push(sql.slice(i, j).toLowerCase())
      i = j
    } else {
      i++
    }
  }
  if (words.length) statements.push(words)
  return statements
}

function isCopyFromStdin(sql) {
  for (const words of sqlStatementsWords(sql)) {
    if (words[0] !== 'copy') continue
    for (let k = 1; k + 1 < words.length; k++) {
      if (words[k] === 'from' && words[k + 1] === 'stdin') return true
    }
  }
  return false
}

const COPY_REFUSAL_SQL =
  `DO $pglite_server$ BEGIN RAISE EXCEPTION USING ERRCODE = 'feature_not_supported', ` +
  `MESSAGE = '${COPY_REFUSAL_MESSAGE.replaceAll("'", "''")}', ` +
  `HINT = '${COPY_REFUSAL_HINT.replaceAll("'", "''")}'; END $pglite_server$`

// ---------------------------------------------------------------------------------------------
// The PGlite session
// ---------------------------------------------------------------------------------------------

let db = null
let fatal = false
let defaults = {} // the GUC_REPORT settings of a freshly reset session

function dieOnWasmAbort(error, where) {
  if (fatal) return
  fatal = true
  log(`FATAL: the WebAssembly Postgres aborted (${error?.name ?? 'Error'}: ${error?.message ?? error}) ` +
      `${where}; the session is lost, exiting with status ${EXIT_WASM_ABORT} so a supervisor restarts the server ` +
      '(data committed before the abort is in the data directory; Postgres recovers it on restart)')
  for (const client of clients) client.socket.destroy()
  process.exit(EXIT_WASM_ABORT)
}

// One protocol message in, the backend's complete answer out (copied: PGlite reuses its buffer).
async function execute(bytes, where) {
  try {
    const out = await db.execProtocolRaw(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length))
    return Buffer.from(out)
  } catch (error) {
    dieOnWasmAbort(error, where)
    throw error
  }
}

async function rawQuery(sql, where) {
  const out = await execute(queryMessage(sql), where)
  return scanOutput(out)
}

async function resetSession(reason) {
  // A Sync first: if the last client left in the middle of an extended-protocol sequence (or after
  // an error in one), the backend ignores everything but Sync.
  const synced = scanOutput(await execute(SYNC, `resetting the session (${reason})`))
  let rolledBack = false
  if (synced.status === 'T' || synced.status === 'E') {
    await rawQuery('ROLLBACK', 'resetting the session')
    rolledBack = true
  }
  // One Query each: a multi-statement Query is one implicit transaction, where DISCARD ALL fails.
  // PGlite starts its backend with search_path=pg_catalog on the command line (then sets "public"
  // itself), so RESET/DISCARD ALL would leave pg_catalog: set Postgres' usual default explicitly.
  for (const sql of ['DISCARD ALL', 'SET search_path TO "$user", public', 'SET TIME ZONE DEFAULT']) {
    const result = await rawQuery(sql, 'resetting the session')
    if (result.errors.length || result.status !== 'I') {
      throw new Error(`session reset failed at ${sql} (${result.errors.join('; ') || `status ${result.status}`})`)
    }
  }
  return rolledBack
}

async function currentSettings(names) {
  const sql = `SELECT ${names.map((name, i) => `current_setting('${name}', true) AS c${i}`).join(', ')}`
  const result = await db.query(sql, [], { rowMode: 'array' })
  return Object.fromEntries(names.map((name, i) => [name, result.rows[0][i] ?? '']))
}

const REPORTED = ['server_version', 'server_encoding', 'client_encoding', 'application_name',
  'default_transaction_read_only', 'in_hot_standby', 'is_superuser', 'session_authorization',
  'DateStyle', 'IntervalStyle', 'TimeZone', 'integer_datetimes', 'standard_conforming_strings',
  'scram_iterations']

async function openDatabase() {
  fs.mkdirSync(dataDir, { recursive: true })
  const fresh = !fs.existsSync(path.join(dataDir, 'PG_VERSION'))
  const started = Date.now()
  if (fresh) {
    // On a new data directory PGlite runs initdb and then stays connected to template1; reopening
    // connects to "postgres", the database every later start uses. Without this, objects created
    // during the first run would land in template1 and vanish from view after a restart.
    log(`initializing a new data directory ${dataDir}`)
    const init = await PGlite.create({ dataDir, database: 'postgres', extensions: { timescaledb } })
    await init.close()
    log(`initdb done in ${((Date.now() - started) / 1000).toFixed(1)} s`)
  }
  db = await PGlite.create({ dataDir, database: 'postgres', extensions: { timescaledb } })
  // Without shared_preload_libraries the TimescaleDB loader must be loaded before anything touches
  // the extension: after a restart, CREATE MATERIALIZED VIEW ... WITH (timescaledb.continuous)
  // otherwise fails with 'functionality not supported under the current "timescale" license'.
  await db.exec("LOAD 'timescaledb'")
  await db.exec('CREATE EXTENSION IF NOT EXISTS timescaledb')
  const info = (await db.query(
    "SELECT current_database() AS db, current_setting('server_version') AS pg, " +
    "(SELECT extversion FROM pg_extension WHERE extname = 'timescaledb') AS ts, " +
    "current_setting('timescaledb.license', true) AS license")).rows[0]
  if (info.db !== 'postgres') throw new Error(`PGlite serves database ${info.db}, expected postgres`)
  await resetSession('startup')
  defaults = await currentSettings(REPORTED)
  return { ...info, fresh, seconds: (Date.now() - started) / 1000 }
}

// ---------------------------------------------------------------------------------------------
// Clients: accepted and greeted at once, served one at a time
// ---------------------------------------------------------------------------------------------
// The startup handshake is answered without the session (so connect() never waits and never
// times out: psycopg leaves the socket of a timed-out connection attempt open, which would then
// sit in the queue). A connection joins the FIFO queue with its first message and owns the session
// from then until it closes.

const clients = new Set()
const queue = []
let active = null
let nextId = 1
let wakeScheduler = null
let shuttingDown = false
const IDLE = Symbol('idle')

class Client {
  constructor(socket) {
    this.id = nextId++
    this.socket = socket
    this.peer = `${socket.remoteAddress}:${socket.remotePort}`
    this.buffer = Buffer.alloc(0)
    this.closed = false
    this.startup = null // startup parameters and the GUCs to apply, once greeted
    this.auth = null // the SCRAM exchange under way (PGLITE_PASSWORD set)
    this.queued = false
    this.waiter = null
    this.since = Date.now()
    this.lastActivity = Date.now()
  }

  push(data) {
    this.buffer = this.buffer.length ? Buffer.concat([this.buffer, data]) : data
    this.lastActivity = Date.now()
    if (!this.startup && !this.auth) this.handleStartup()
    if (this.auth) this.handleAuth()
    if (this.startup && !this.queued && !this.closed && this.buffer.length >= 1) {
      if (this.buffer[0] === 'X'.charCodeAt(0)) { this.socket.end(); return } // left before any query
      this.queued = true
      enqueue(this)
    }
    this.wake()
  }

  wake() {
    const waiter = this.waiter
    this.waiter = null
    if (waiter) waiter()
  }

  // Pre-startup packets (SSLRequest, GSSENCRequest, CancelRequest) and the StartupMessage.
  handleStartup() {
    while (!this.startup && !this.closed && this.buffer.length >= 8) {
      const length = this.buffer.readInt32BE(0)
      if (length < 8 || length > MAX_STARTUP_PACKET) {
        this.fail('08P01', 'invalid startup packet length')
        return
      }
      if (this.buffer.length < length) return
      const packet = this.buffer.subarray(0, length)
      this.buffer = this.buffer.subarray(length)
      const code = packet.readInt32BE(4)
      if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
        this.socket.write('N') // no TLS / GSS encryption: the client continues in clear text
      } else if (code === CANCEL_REQUEST) {
        log(`connection #${this.id}: cancel request ignored (PGlite cannot interrupt a query)`)
        this.socket.destroy()
      } else if (code >> 16 === 3) {
        const params = {}
        const fields = packet.subarray(8).toString('utf8').split('\0')
        for (let i = 0; i + 1 < fields.length && fields[i] !== ''; i += 2) params[fields[i]] = fields[i + 1]
        this.greet(params, code & 0xffff)
      } else {
        this.fail('0A000', `unsupported frontend protocol ${code >> 16}.${code & 0xffff}`)
      }
    }
  }

  greet(params, minor) {
    const user = params.user ?? ''
    const database = params.database || user
    if (shuttingDown) return this.fail('57P03', 'the PGlite server is shutting down')
    if (user !== 'postgres') {
      return this.fail('28000', `role "${user}" is not served: this PGlite server has the single role "postgres"`)
    }
    if (database !== 'postgres') {
      return this.fail('3D000', `database "${database}" does not exist`,
        'This PGlite server has a single database: connect with dbname=postgres.')
    }
    if (params.replication && !['false', 'off', 'no', '0'].includes(params.replication)) {
      return this.fail('0A000', 'replication connections are not supported by the PGlite server')
    }
    const gucs = {}
    const unknownProtocolOptions = []
    try {
      for (const [name, value] of Object.entries(params)) {
        if (['user', 'database', 'replication'].includes(name)) continue
        if (name.startsWith('_pq_.')) unknownProtocolOptions.push(name)
        else if (name === 'options') Object.assign(gucs, parseOptions(value))
        else gucs[name] = value
      }
    } catch (error) {
      return this.fail('22023', error.message)
    }
    // Report the defaults of a reset session, with the client's own startup settings on top (they
    // are applied when the client gets the session; what really changed is reported again then).
    const reported = { ...defaults }
    for (const [name, value] of Object.entries(gucs)) {
      const key = REPORTED.find((r) => r.toLowerCase() === name.toLowerCase())
      if (key) reported[key] = value
    }
    const greeting = { params, gucs, reported, minor, unknownProtocolOptions }
    if (SCRAM) {
      this.auth = { greeting, stage: 'first' }
      this.socket.write(message('R', Buffer.concat([int32(10), cstring('SCRAM-SHA-256'), Buffer.from([0])])))
      return
    }
    this.welcome(greeting)
  }

  // SASLInitialResponse, then SASLResponse: the client proves it knows the password; the server proves
  // it knows the verifier (AuthenticationSASLFinal), then AuthenticationOk.
  handleAuth() {
    while (this.auth && !this.closed && this.buffer.length >= 5) {
      const length = this.buffer.readInt32BE(1)
      if (this.buffer.length < 1 + length) return
      const type = String.fromCharCode(this.buffer[0])
      const body = this.buffer.subarray(5, 1 + length)
      this.buffer = this.buffer.subarray(1 + length)
      if (type !== 'p') return this.fail('08P01', `expected a SASL response, got message type "${type}"`)
      if (this.auth.stage === 'first') this.scramFirst(body)
      else this.scramFinal(body)
    }
  }

  scramFirst(body) {
    const end = body.indexOf(0)
    const mechanism = body.subarray(0, end).toString()
    if (mechanism !== 'SCRAM-SHA-256') {
      return this.fail('28000', `SASL authentication mechanism ${mechanism} is not supported (SCRAM-SHA-256 is)`)
    }
    const first = body.subarray(end + 5).toString()
    const gs2End = first.indexOf(',', first.indexOf(',') + 1) + 1
    const bare = first.slice(gs2End)
    const nonce = /(?:^|,)r=([^,]+)/.exec(bare)?.[1]
    if (!gs2End || !nonce || first.startsWith('p=')) {
      return this.fail('08P01', 'malformed SCRAM client-first-message')
    }
    const serverNonce = nonce + crypto.randomBytes(18).toString('base64')
    const serverFirst = `r=${serverNonce},s=${SCRAM.salt},i=${SCRAM.iterations}`
    Object.assign(this.auth, { stage: 'final', gs2: first.slice(0, gs2End), bare, serverFirst, serverNonce })
    this.socket.write(message('R', Buffer.concat([int32(11), Buffer.from(serverFirst)])))
  }

  scramFinal(body) {
    const { gs2, bare, serverFirst, serverNonce, greeting } = this.auth
    const final = body.toString()
    const proofAt = final.lastIndexOf(',p=')
    const withoutProof = final.slice(0, proofAt)
    const fields = Object.fromEntries(withoutProof.split(',').map((f) => [f[0], f.slice(2)]))
    const authMessage = `${bare},${serverFirst},${withoutProof}`
    const proof = Buffer.from(final.slice(proofAt + 3), 'base64')
    const signature = SCRAM.hmac(SCRAM.storedKey, authMessage)
    const proven = proofAt > 0 && proof.length === signature.length && fields.r === serverNonce &&
      fields.c === Buffer.from(gs2).toString('base64') &&
      crypto.timingSafeEqual(crypto.createHash('sha256').update(proof.map((b, i) => b ^ signature[i])).digest(),
        SCRAM.storedKey)
    if (!proven) {
      return this.fail('28P01', `password authentication failed for user "${greeting.params.user}"`)
    }
    const verifier = SCRAM.hmac(SCRAM.serverKey, authMessage).toString('base64')
    this.socket.write(message('R', Buffer.concat([int32(12), Buffer.from(`v=${verifier}`)])))
    this.auth = null
    this.welcome(greeting)
  }

  welcome({ params, gucs, reported, minor, unknownProtocolOptions }) {
    this.startup = { params, gucs, reported }
    const parts = [message('R', int32(0))] // AuthenticationOk
    if (minor !== 0 || unknownProtocolOptions.length) {
      parts.push(message('v', Buffer.concat([int32(0), int32(unknownProtocolOptions.length),
        ...unknownProtocolOptions.map(cstring)])))
    }
    for (const [name, value] of Object.entries(reported)) {
      parts.push(message('S', Buffer.concat([cstring(name), cstring(value)])))
    }
    parts.push(message('K', Buffer.concat([int32(process.pid), int32((Math.random() * 2 ** 31) | 0)])))
    parts.push(message('Z', Buffer.from('I')))
    this.socket.write(Buffer.concat(parts))
  }

  fail(code, text, hint) {
    if (this.socket.writable) this.socket.end(errorResponse('FATAL', code, text, hint))
    this.socket.destroy()
    this.closed = true
    this.wake()
  }

  // The next complete message; null once the connection is closed; IDLE when it has been idle for
  // --idle-timeout seconds while other connections wait for the session.
  async nextMessage() {
    for (;;) {
      if (this.closed || fatal) return null
      if (this.buffer.length >= 5) {
        const length = this.buffer.readInt32BE(1)
        if (length < 4) {
          this.fail('08P01', 'invalid message length')
          return null
        }
        if (this.buffer.length >= 1 + length) {
          const msg = this.buffer.subarray(0, 1 + length)
          this.buffer = this.buffer.subarray(1 + length)
          return msg
        }
      }
      if (idleTimeoutMs > 0 && queue.length > 0 && Date.now() - this.lastActivity >= idleTimeoutMs) return IDLE
      await new Promise((resolve) => {
        this.waiter = resolve
        if (idleTimeoutMs > 0) setTimeout(resolve, 1000).unref()
      })
    }
  }

  async send(bytes) {
    if (this.closed || !this.socket.writable || bytes.length === 0) return
    if (!this.socket.write(bytes)) {
      await new Promise((resolve) => {
        const done = () => {
          this.socket.off('drain', done)
          this.socket.off('close', done)
          resolve()
        }
        this.socket.on('drain', done)
        this.socket.on('close', done)
      })
    }
    this.lastActivity = Date.now()
  }
}

function describe(client) {
  const params = client.startup.params
  return `#${client.id} (${client.peer}, application_name=${params.application_name ?? ''})`
}

function enqueue(client) {
  queue.push(client)
  if (active || queue.length > 1) {
    log(`connection ${describe(client)} waits for the session: #${active?.id ?? '?'} holds it, ` +
        `${queue.length - 1} queued before it (PGlite is one session: use one connection per process)`)
  }
  if (wakeScheduler) wakeScheduler()
}

function parseOptions(options) {
  // libpq "options": -c name=value / --name=value, backslash escapes a space.
  const out = {}
  const tokens = []
  let current = ''
  for (let i = 0; i < options.length; i++) {
    const c = options[i]
    if (c === '\\' && i + 1 < options.length) { current += options[++i]; continue }
    if (/\s/.test(c)) { if (current) tokens.push(current); current = ''; continue }
    current += c
  }
  if (current) tokens.push(current)
  for (let i = 0; i < tokens.length; i++) {
    let setting = null
    if (tokens[i] === '-c' && i + 1 < tokens.length) setting = tokens[++i]
    else if (tokens[i].startsWith('-c')) setting = tokens[i].slice(2)
    else if (tokens[i].startsWith('--')) setting = tokens[i].slice(2)
    if (setting === null || !setting.includes('=')) throw new Error(`unsupported startup option ${tokens[i]}`)
    const eq = setting.indexOf('=')
    out[setting.slice(0, eq).replaceAll('-', '_')] = setting.slice(eq + 1)
  }
  return out
}

// The client now owns the session: apply its startup settings, report what differs from the
// greeting. Returns false if the client was refused.
async function beginSession(client) {
  const { gucs, reported } = client.startup
  if (Object.keys(gucs).length === 0) return true
  try {
    for (const [name, value] of Object.entries(gucs)) {
      await db.query('SELECT set_config($1, $2, false)', [name, value])
    }
  } catch (error) {
    client.fail('22023', `invalid startup parameter: ${error.message}`)
    return false
  }
  const now = await currentSettings(REPORTED)
  const changed = Object.entries(now).filter(([name, value]) => reported[name] !== value)
  if (changed.length) {
    await client.send(Buffer.concat(changed.map(([name, value]) =>
      message('S', Buffer.concat([cstring(name), cstring(value)])))))
  }
  return true
}

async function serveSession(client) {
  let skipUntilSync = false // a refused extended-protocol COPY: drop messages until Sync
  let status = 'I'
  let messages = 0
  for (;;) {
    const msg = await client.nextMessage()
    if (msg === null) return { status, messages, how: 'disconnected' }
    if (msg === IDLE) {
      client.fail('57P05', `terminating connection due to idle timeout: idle for ${idleTimeoutMs / 1000} s ` +
        `while ${queue.length} connection(s) wait for the single PGlite session`)
      return { status, messages, how: `was closed after idling ${idleTimeoutMs / 1000} s with others waiting` }
    }
    const type = String.fromCharCode(msg[0])
    if (type === 'X') return { status, messages, how: 'terminated' }
    messages++
    let bytes = msg
    if (skipUntilSync) {
      if (type !== 'S') continue
      skipUntilSync = false
      bytes = queryMessage(COPY_REFUSAL_SQL) // the backend raises the error and reports its state
    } else if (type === 'Q' || type === 'P') {
      let sql
      if (type === 'Q') sql = msg.toString('utf8', 5, msg.length - 1)
      else {
        const nameEnd = msg.indexOf(0, 5)
        sql = msg.toString('utf8', nameEnd + 1, msg.indexOf(0, nameEnd + 1))
      }
      if (isCopyFromStdin(sql)) {
        log(`connection #${client.id}: refused COPY FROM STDIN (${sql.replace(/\s+/g, ' ').slice(0, 120)})`)
        if (type === 'P') { skipUntilSync = true; continue }
        bytes = queryMessage(COPY_REFUSAL_SQL)
      }
    } else if (type === 'd' || type === 'c' || type === 'f' || type === 'p') {
      continue // CopyData/CopyDone/CopyFail outside COPY, or an unrequested password: ignored
    }
    const out = await execute(bytes, `serving connection #${client.id} (message '${type}')`)
    const scanned = scanOutput(out)
    if (scanned.status) status = scanned.status
    await client.send(out)
  }
}

async function scheduler() {
  for (;;) {
    while (queue.length === 0 && !shuttingDown) {
      await new Promise((resolve) => { wakeScheduler = resolve })
      wakeScheduler = null
    }
    if (shuttingDown && queue.length === 0) return
    const client = queue.shift()
    if (client.closed) continue
    if (shuttingDown) {
      client.fail('57P01', 'terminating connection: the PGlite server is shutting down')
      continue
    }
    active = client
    const started = Date.now()
    const waited = started - client.since
    let result = { status: 'I', messages: 0, how: 'refused' }
    try {
      if (await beginSession(client)) result = await serveSession(client)
    } catch (error) {
      if (fatal) return
      log(`connection #${client.id}: error: ${error.stack ?? error}`)
      client.fail('XX000', `PGlite server error: ${error.message}`)
    }
    if (fatal) return
    client.socket.end()
    let rolledBack = false
    try {
      rolledBack = await resetSession(`after connection #${client.id}`)
    } catch (error) {
      if (fatal) return
      log(`FATAL: ${error.message}; exiting`)
      process.exit(1)
    }
    log(`connection ${describe(client)} ${result.how}: held the session ${((Date.now() - started) / 1000).toFixed(2)} s` +
        `${waited > 1000 ? ` after waiting ${(waited / 1000).toFixed(1)} s` : ''}, ${result.messages} messages` +
        `${rolledBack ? ', its open transaction was rolled back' : ''}; session reset`)
    active = null
  }
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

process.on('uncaughtException', (error) => {
  if (error instanceof WebAssembly.RuntimeError) dieOnWasmAbort(error, 'outside a query')
  log(`FATAL: uncaught exception: ${error.stack ?? error}`)
  process.exit(1)
})

const t0 = Date.now()
let info
try {
  info = await openDatabase()
} catch (error) {
  log(`FATAL: could not open PGlite in ${dataDir}: ${error.stack ?? error}`)
  process.exit(1)
}

const server = net.createServer((socket) => {
  socket.setNoDelay(true)
  const client = new Client(socket)
  clients.add(client)
  socket.on('data', (data) => client.push(data))
  socket.on('error', () => {}) // ECONNRESET etc.: 'close' follows
  socket.on('close', () => {
    client.closed = true
    clients.delete(client)
    const index = queue.indexOf(client)
    if (index !== -1) {
      queue.splice(index, 1)
      log(`connection ${describe(client)} closed while waiting ${((Date.now() - client.since) / 1000).toFixed(1)} s for the session`)
    }
    client.wake()
  })
})
server.on('error', (error) => {
  log(`FATAL: cannot listen on ${host}:${port}: ${error.message}`)
  process.exit(1)
})
server.listen(port, host, () => {
  const address = server.address()
  log(`PostgreSQL ${info.pg} + TimescaleDB ${info.ts} (license ${info.license}) in ${dataDir}` +
      `${info.fresh ? ' (new)' : ''}, opened in ${info.seconds.toFixed(1)} s`)
  process.stdout.write(`PGLITE READY host=${address.address} port=${address.port} dbname=postgres user=postgres ` +
                       `timescaledb=${info.ts} license=${info.license} seconds=${((Date.now() - t0) / 1000).toFixed(1)}\n`)
})
const scheduling = scheduler()

async function shutdown(signal) {
  if (shuttingDown) return
  shuttingDown = true
  log(`${signal}: closing`)
  server.close()
  const kill = setTimeout(() => { log('FATAL: shutdown took over 60 s; exiting'); process.exit(1) }, 60000)
  kill.unref()
  for (const client of [...clients]) {
    if (client !== active) client.fail('57P01', 'terminating connection: the PGlite server is shutting down')
  }
  if (active) active.fail('57P01', 'terminating connection: the PGlite server is shutting down')
  if (wakeScheduler) wakeScheduler()
  await scheduling
  if (fatal) return
  await db.close()
  log('PGlite closed; bye')
  process.exit(0)
}
process.on('SIGTERM', () => shutdown('SIGTERM'))
process.on('SIGINT', () => shutdown('SIGINT'))
