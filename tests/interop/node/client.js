// @grpc/grpc-js (Node's gRPC, on Node's http2) calls our greeter srv (go.micro.srv.greeter,
// Say.Hello) and prints one line per check:
//
//   CHECK <name> PASS|FAIL <detail>
//
// A check that needs the harness (tests/src/interop.rs) to act on the srv prints `ASK <what>`
// and waits for `OK` on stdin. Exits 1 if any check failed.
'use strict';

// grpc-js's keep-alive trace, counted by the keep-alive check: set before grpc-js loads.
process.env.GRPC_NODE_TRACE = 'keepalive';
const grpc = require('@grpc/grpc-js');
const readline = require('readline');
const { parseArgs } = require('util');
const pb = require('./greeter_pb');

const HELLO = '/go.micro.srv.greeter.Say/Hello';
const MIB = 1024 * 1024;
const CHECK_TIMEOUT_MS = 60000;

const { values: args } = parseArgs({
  options: {
    addr: { type: 'string' },
    instance: { type: 'string', default: 'one' },
    restarted: { type: 'string', default: 'restarted' },
    only: { type: 'string', default: '' },
  },
});
if (!args.addr) {
  console.error('client.js: --addr is required');
  process.exit(2);
}

let pongs = 0;
grpc.setLogVerbosity(grpc.logVerbosity.DEBUG);
grpc.setLogger({
  error: (...a) => console.error(...a),
  info: (...a) => console.error(...a),
  debug: (...a) => {
    if (String(a[0]).includes('Received ping response')) pongs++;
    console.error(...a);
  },
});

const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function ask(what) {
  process.stdout.write(`ASK ${what}\n`);
  const { value } = await lines.next();
  if ((value || '').trim() !== 'OK') throw new Error(`the harness could not ${what}: ${value}`);
}

function client(options = {}) {
  return new grpc.Client(args.addr, grpc.credentials.createInsecure(), options);
}

// One call; resolves to the answer, rejects with grpc-js's error (code, details).
function invoke(c, name, { path = HELLO, metadata = new grpc.Metadata(), timeoutMs = CHECK_TIMEOUT_MS, waitForReady = false, onCall } = {}) {
  return new Promise((resolve, reject) => {
    const call = c.makeUnaryRequest(path, pb.encode, pb.decode, name, metadata,
      { deadline: Date.now() + timeoutMs, waitForReady },
      (err, answer) => (err ? reject(err) : resolve(answer)));
    if (onCall) onCall(call);
  });
}

function expect(answer, name, instance) {
  const want = `Hello ${name} srv ${instance}. rand:`;
  if (!answer.startsWith(want) || answer.length !== want.length + 1) {
    throw new Error(`answer ${JSON.stringify(answer.slice(0, 60))}... (${answer.length} bytes) is not ${JSON.stringify(want.slice(0, 60))}... + a letter`);
  }
}

async function hello(c, name, instance = args.instance, opts = {}) {
  expect(await invoke(c, name, opts), name, instance);
}

function codeName(code) {
  return Object.keys(grpc.status).find((k) => grpc.status[k] === code) || String(code);
}

const checks = {
  async 'unary'() {
    const c = client();
    try { await hello(c, 'John'); } finally { c.close(); }
    return 'ok';
  },
  async 'concurrent-2000-one-channel'() {
    const c = client();
    try {
      const results = await Promise.allSettled(
        Array.from({ length: 2000 }, (_, i) => hello(c, `n${i}`)));
      const failed = results.filter((r) => r.status === 'rejected');
      if (failed.length) throw new Error(`${failed.length} of 2000 failed; first: ${failed[0].reason.message}`);
    } finally { c.close(); }
    return '2000 answered';
  },
  async 'message-3mib'() {
    const c = client();
    try { await hello(c, 'L'.repeat(3 * MIB)); } finally { c.close(); }
    return '3 MiB name and answer';
  },
  async 'deadline-1ms-then-channel-works'() {
    const c = client();
    let note = 'DEADLINE_EXCEEDED';
    try {
      await hello(c, 'warm');
      try {
        await invoke(c, 'D'.repeat(3 * MIB), { timeoutMs: 1 });
        throw new Error('a 3 MiB call finished within 1 ms');
      } catch (e) {
        if (e.code === grpc.status.CANCELLED && e.details === 'Timeout expired') {
          note = 'the server\'s CANCELLED "Timeout expired" came first';
        } else if (e.code !== grpc.status.DEADLINE_EXCEEDED) {
          throw new Error(`1 ms call: ${codeName(e.code)} ${JSON.stringify(e.details)}, want DEADLINE_EXCEEDED`);
        }
      }
      for (let i = 0; i < 3; i++) await hello(c, `after${i}`);
    } finally { c.close(); }
    return note;
  },
  async 'unknown-method-unimplemented'() {
    const c = client();
    try {
      for (const path of ['/go.micro.srv.greeter.Say/Nope', '/no.such.Service/Hello']) {
        let error;
        try { await invoke(c, 'x', { path }); } catch (e) { error = e; }
        if (!error || error.code !== grpc.status.UNIMPLEMENTED) {
          throw new Error(`${path}: ${error ? `${codeName(error.code)} ${error.details}` : 'answered'}, want UNIMPLEMENTED`);
        }
      }
      await hello(c, 'still-here');
    } finally { c.close(); }
    return 'ok';
  },
  async 'metadata-ascii-and-binary'() {
    const metadata = new grpc.Metadata();
    metadata.add('x-ascii', 'plain value 1');
    metadata.add('x-trace-id', 'abc-123');
    // grpc-js base64-encodes a -bin value on the wire.
    metadata.add('x-blob-bin', Buffer.from([0, 1, 2, 0xfe, 0xff]));
    const c = client();
    try { await hello(c, 'meta', args.instance, { metadata }); } finally { c.close(); }
    return 'ok';
  },
  async 'keepalive-pings'() {
    const c = client({
      'grpc.keepalive_time_ms': 1000,
      'grpc.keepalive_timeout_ms': 1000,
      'grpc.keepalive_permit_without_calls': 1,
    });
    const channel = c.getChannel();
    const states = [];
    let watching = true;
    const watch = (state) => {
      if (!watching) return;
      channel.watchConnectivityState(state, Infinity, () => {
        const now = channel.getConnectivityState(false);
        states.push(now);
        watch(now);
      });
    };
    try {
      await hello(c, 'before');
      watch(channel.getConnectivityState(false));
      const from = pongs;
      // Idle for 4 keep-alive periods: the pings must be answered, the connection kept.
      await new Promise((r) => setTimeout(r, 4000));
      const answered = pongs - from;
      await hello(c, 'after');
      watching = false;
      const names = states.map((s) => grpc.connectivityState[s]);
      if (states.some((s) => s !== grpc.connectivityState.READY)) {
        throw new Error(`the connection did not stay READY: ${names}`);
      }
      if (answered < 2) throw new Error(`${answered} keep-alive pings answered in 4 s (want >= 2)`);
      return `${answered} pings answered in 4 s, connection kept`;
    } finally { watching = false; c.close(); }
  },
  async 'reconnect-after-restart'() {
    const c = client();
    try {
      await hello(c, 'before');
      await ask('restart');
      // The same channel: its connection is gone; waitForReady waits out the reconnect.
      await hello(c, 'after', args.restarted, { waitForReady: true, timeoutMs: 30000 });
    } finally { c.close(); }
    return `answered by srv ${args.restarted} on the same port`;
  },
  async 'sigterm-in-flight'() {
    // Node's default 64 KiB windows: the 1 MiB answers wait on flow control.
    const c = client({ 'grpc-node.flow_control_window': 65535 });
    try {
      await hello(c, 'warm', args.restarted);
      let accepted = 0;
      let allAccepted;
      const acceptedAll = new Promise((r) => { allAccepted = r; });
      const names = Array.from({ length: 8 }, (_, i) => `${i}-` + 'T'.repeat(MIB));
      let done = 0;
      const calls = names.map((name) => invoke(c, name, {
        // Every call accepted: the srv has answered its HEADERS.
        onCall: (call) => call.on('metadata', () => { if (++accepted === 8) allAccepted(); }),
      }).then((answer) => { done++; expect(answer, name, args.restarted); return 'answered'; },
        (e) => { done++; return `${codeName(e.code)} ${JSON.stringify(e.details)}`; }));
      await Promise.race([acceptedAll, Promise.all(calls)]);
      if (accepted < 8) throw new Error(`only ${accepted} of 8 calls accepted: ${await Promise.all(calls)}`);
      const pending = 8 - done;
      if (pending === 0) throw new Error('every call ended before the stop: nothing was in flight');
      // The harness stops this process, SIGTERMs the srv, waits until it no longer listens,
      // and lets this process go on.
      await ask('pause-and-term');
      const outcomes = await Promise.all(calls);
      const lost = outcomes.filter((o) => o !== 'answered');
      if (lost.length) throw new Error(`accepted calls lost: ${lost}`);
      // A call after the stop is never accepted: UNAVAILABLE, which a client may retry.
      let late;
      try { await invoke(c, 'late'); } catch (e) { late = e; }
      if (!late || late.code !== grpc.status.UNAVAILABLE) {
        throw new Error(`a call after the stop: ${late ? `${codeName(late.code)} ${late.details}` : 'answered'}, want UNAVAILABLE`);
      }
      return `8 of 8 accepted calls answered in full (${pending} not yet answered when the pause was asked); a call after the stop: UNAVAILABLE ${JSON.stringify(late.details)}`;
    } finally { c.close(); }
  },
};

async function main() {
  let names = Object.keys(checks);
  if (args.only) names = names.filter((n) => args.only.split(',').includes(n));
  let failed = 0;
  for (const name of names) {
    try {
      const detail = await checks[name]();
      process.stdout.write(`CHECK ${name} PASS ${detail}\n`);
    } catch (e) {
      failed++;
      process.stdout.write(`CHECK ${name} FAIL ${String(e && e.stack ? e.message : e).replace(/\n/g, ' | ')}\n`);
    }
  }
  process.stdout.write(`grpc-js client: ${names.length} checks run, ${failed} failing\n`);
  process.exit(failed ? 1 : 0);
}

main();
