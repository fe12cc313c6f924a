#!/usr/bin/env node
// Many submits over one SubmitJobStream (docs/api.md): each request carries a request_id of our
// choosing and an idempotency key; each answer names its request_id and has its own status, so
// one refused job fails alone. The node writes what arrives on all streams many jobs to a Raft
// entry, which is why this is the fast way to submit in bulk from any language.
//
// Retries follow the unary rules per submit: UNAVAILABLE (with the leader's address in the
// answer's `leader` when the node knows it) and RESOURCE_EXHAUSTED are re-sent after a backoff with
// the SAME idempotency key; a broken stream re-sends everything unanswered on a new one, to the
// next node. Nothing is ever created twice.
//
// Usage: node stream.js [--cluster HOST:PORT,...] [--count N] [--handler noop] [--bad N] [--timeout SECONDS]
// (--bad N: also send N jobs with no command or handler, to see them refused alone.) Environment as
// for client.js: RAFTSCHED_CLUSTER, RAFTSCHED_PROTO_DIR, RAFTSCHED_TLS_DIR (scheduler.js).
// Prints one JSON line: {"event": "done", "ok": N, "refused": {...}, "ids": [...]}; exits 0 when
// every valid job was acknowledged.
'use strict';

const crypto = require('node:crypto');
const grpc = require('@grpc/grpc-js');
const { loadScheduler, credentials } = require('./scheduler');

const RETRY = new Set([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.RESOURCE_EXHAUSTED]);
const BACKOFF_MS = [50, 100, 200, 400, 800, 1000];

function parseArgs(argv) {
  const opts = {
    cluster: process.env.RAFTSCHED_CLUSTER || '127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003',
    count: 100, handler: 'noop', bad: 0, timeout: 60,
  };
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, '');
    if (!(name in opts) || argv[i + 1] === undefined) throw new Error(`unknown or incomplete option ${argv[i]}`);
    opts[name] = typeof opts[name] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
  }
  opts.cluster = opts.cluster.split(',').map((a) => a.trim()).filter(Boolean);
  return opts;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const Scheduler = loadScheduler();
  const run = crypto.randomUUID().slice(0, 8);
  const unanswered = new Map(); // request_id -> request
  for (let i = 0; i < opts.count; i += 1) {
    const id = `job-${i}`;
    unanswered.set(id, { request_id: id, spec: { handler: opts.handler, idempotency_key: `${run}-${id}` } });
  }
  for (let i = 0; i < opts.bad; i += 1) {
    const id = `bad-${i}`;
    unanswered.set(id, { request_id: id, spec: { name: 'nothing to run', idempotency_key: `${run}-${id}` } });
  }
  const ids = new Map();
  const refused = {};
  const deadline = Date.now() + opts.timeout * 1000;
  let target = opts.cluster[0];
  let round = 0;
  while (unanswered.size && Date.now() < deadline) {
    const client = new Scheduler(target, credentials());
    let hint = '';
    await new Promise((resolve) => {
      const call = client.SubmitJobStream({ deadline: deadline });
      call.on('data', (answer) => {
        const request = unanswered.get(answer.request_id);
        if (!request) return;
        if (answer.code === 0) {
          ids.set(answer.request_id, answer.job.id);
          unanswered.delete(answer.request_id);
        } else if (RETRY.has(answer.code)) {
          hint = answer.leader || hint; // stays unanswered: sent again next round
        } else {
          refused[answer.request_id] = `${grpc.status[answer.code]}: ${answer.error}`;
          unanswered.delete(answer.request_id);
        }
      });
      call.on('error', () => resolve()); // a broken stream: everything unanswered goes again
      call.on('end', () => resolve());
      for (const request of unanswered.values()) call.write(request);
      call.end();
    });
    client.close();
    if (!unanswered.size) break;
    // Next round: the named leader, else the next node; back off when the round got nowhere.
    target = hint || opts.cluster[(opts.cluster.indexOf(target) + 1) % opts.cluster.length];
    await sleep(BACKOFF_MS[Math.min(round, BACKOFF_MS.length - 1)]);
    round += 1;
  }
  const ok = ids.size;
  console.log(JSON.stringify({ event: 'done', ok, refused, unanswered: unanswered.size, ids: [...ids.values()] }));
  process.exit(ok === opts.count && unanswered.size === 0 ? 0 : 1);
}

main().catch((err) => {
  console.error(err.stack || String(err));
  process.exit(2);
});
