"""The table on the terminal and docs/BENCHMARKS.md."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .common import Row

COLUMNS = ("what", "ours", "baseline (same run)", "ratio", "target", "")

METHOD = """\
## How each figure is measured

Everything runs on this one machine, on 127.0.0.1 only; every load loop is bounded in count and
in time. The machine is shared and noisy, so each figure is a median or a percentile, and each
baseline is measured in the same run, interleaved with ours where the two can alternate.

- **crypto** — in process. *Ours* is what the vault does for one payload, through the same call
  (`KeyRing.seal`): a fresh random 256-bit data key, AES-256-GCM over the payload with the
  payload's associated data, and the data key wrapped under the current master key with a fresh
  nonce (decrypting, `KeyRing.open`: unwrap, then open). The associated data is an input to
  both. *Fernet* is one `Fernet` object with a fixed key, as the original app used it.
  *Raw AES-GCM* is one `AESGCM` object with a fixed key and a fresh nonce: the primitive alone.
  The three alternate in rounds (rotating order, garbage collector off while timing); the figure
  is the median time per operation over the rounds. The last crypto row adds what
  `Vault.create` does around it (building the associated data, the emotion part and the SHA-256
  commitment), for reference.
- **http** — the backend in its production layout (README, "Production"): `gunicorn -w 2` (sync
  workers, `-c python:backend.gunicorn_conf`) serving API processes without chain worker
  threads, built from `SLT_*` variables by `bench/wsgi.py`, and `python -m backend worker`
  beside them minting on Anvil (1 s blocks), so the minting of what the load creates runs on the
  same 2 cores as in production. The baseline is a bare Flask app whose `POST /generate` parses
  the same JSON and answers a small JSON object, under the same gunicorn command and settings.
  The load is `wrk` (a separate process, 1 thread, 50 connections) with a Lua script that POSTs
  the same JSON body to both and stops each run after a fixed number of requests or seconds. Two
  more servers run beside them, each with a store of its own: *chain worker threads inside the
  gunicorn workers* (`make run`'s layout, `SLT_RUN_WORKERS=1`, with a second relayer key), and
  *web tier only*, the production layout whose worker sweeps and checkpoints but mints nothing
  (its outbox and follower run once an hour), i.e. the request path alone. Runs rotate among the
  four; before each run every outbox is drained, so no run pays for the minting of an earlier
  one, and during a run the other set-ups are paused (SIGSTOP, then SIGCONT), so their idle
  background threads are not measured with it; all but the threads set-up, whose two gunicorn
  workers contend for the chain-worker lease, which a pause longer than the lease would hand
  over mid-round. Throughput is the median over runs. Latency is measured twice at 50 concurrent
  connections: *saturated* (each connection sends its next request as soon as the last is
  answered — latency is then queueing, about 50 ÷ throughput) and *paced* (each connection waits
  between requests so the offered load is about half of our measured throughput; the
  connections' first requests are spread over one such wait, so that they do not all send at the
  same instant every period); each paced figure is the median over 4 runs (a single run's p99
  varies 2-3× here), with the lowest and highest beside it. The server-side figure is
  gunicorn's own request time (`%(D)s`), i.e. the off-chain work on a request without the wait
  in the socket backlog. Rate limiting stays on, with limits no run reaches. The relayers are
  given a balance no run can spend: our minting is the only demand on this chain, and while it
  keeps blocks full the base fee climbs 12.5 % a block (a relayer's 10,000 ETH ran out in one
  run of scratch set-ups). This machine is a virtual one on a shared host, which at times takes
  a fifth of the CPU for other guests (steal, in `/proc/stat`): a run during which it took more
  than 5 % is set aside and run again (12 such runs at most in all), and the note above lists
  them. Eight paced runs of the production layout one after another, to find this: p99 18-24 ms
  in the runs with 1-5 % stolen, 43-64 ms in those with 13-23 % stolen.
  After the runs, the *threads* set-up's sending is checked: who held the chain-worker lease
  (sampled 4 times a second), no nonce shared by two transactions that reached the node (a
  replacement, or one the node refused and that was signed again, leaves its nonce to the
  next), every refusal about fees rather than nonces (logged by the server), and the tokens on
  chain equal to the payloads the stores minted (none minted twice).
- **mint** — the store is filled with more payloads than the run can mint (half anonymous, half
  spread over 500 wallets), then `python -m backend worker` mints them on Anvil (1 s blocks,
  default block gas limit). The rate is the growth of the contract's `totalMinted()` over the
  measured window, after a warm-up; *confirmed* is what the backend recorded as minted in the
  same window. The ceiling is the block gas limit ÷ the mean gas per token of the batches mined
  in the window, per 1 s block.
- **shred** — `DELETE /tokens/<id>` against the gunicorn server with `python -m backend
  worker` beside it (the production layout, as for throughput), and, alternating with it,
  against `make run`'s layout (the worker's threads in the API processes), one at a time, for
  minted payloads, anonymous (secret) and wallet-owned (session; the server asks the chain for
  `ownerOf`). The time is the request's round trip; after each answer the secret row is checked
  gone. *Gone from every file* polls the database and WAL files until no copy of the wrapped key
  is left (the sweeper's checkpoint). *Wallet burn* sends `burn(tokenId)` from the owner's
  wallet and times until the backend has shredded the payload (from broadcast, and from the
  moment the receipt is seen).
- **sweep** — 100,000 expired, minted payloads (1 KiB ciphertext each) are written to a fresh
  store; a separate process then runs the sweeper (`Worker.sweep`: shred in batches of 2,000,
  queue the burns, checkpoint the WAL) and reports its time and resident memory before, after
  and at peak.
- **storage** — payloads created through the vault into a fresh store; the growth of the
  database file (after a WAL checkpoint) per payload, minus the plaintext.
"""


CHANGES = """\
## What profiling changed (issue #7)

Measured with py-spy and cProfile on this machine; each change keeps the public API, the
security properties and the test suite as they were.

Ninth round (this version). The throughput with the minting beside the requests. CPU per
process during saturated runs (from `/proc`): the gunicorn workers 1.4-1.5 cores, the worker
0.10-0.14, Anvil 0.04-0.30 (growing, below), idle 0.12-0.15 (bare's runs: 0.07).

- **the worker yields to busy cores** (`backend/worker.py`) — its pause after a burst now also
  grows with the time the thread spent waiting to be scheduled (from `/proc/thread-self/
  schedstat`): ten times each waited second on top of three times the CPU it ran, at most fifteen
  times that CPU. On free cores nothing changes; while requests keep the cores busy, minting
  slows down and picks up again after. Switched between runs on one stack, 4 rounds, every
  outbox drained before every run (ours and bare alike): worker CPU during a saturated run
  0.10-0.14 → 0.05-0.06 cores, tokens minted during it 512-725/s → 212-316/s, throughput medians
  1,729 → 2,100 req/s, ratio to bare 0.49 → 0.51; paced p99 medians 13.1 and 14.1 ms (noise).
  Minting a backlog on free cores: 787-800 tokens a second, 93-94 % of the ceiling, as before.
  Full run after it: throughput 0.48 of bare's (the eighth round's three: 0.42, 0.47, 0.43),
  `make run`'s layout 0.50, the web tier alone 0.53; paced p99 15.3 ms. An http-only run before
  it, in a slow spell of the host (bare's paced p99 9.8 ms, the web tier's 34.0 ms): 0.48 and
  48.4 ms.
- **Anvil's CPU grows with its state** — Anvil 1.7.1 rebuilds its whole state trie every block
  (perf: 63 % of its time in Keccak, under `alloy_trie`'s `HashBuilder`), so its CPU with no
  transactions at all grew from 0.05 to 0.22 cores as the tokens on chain grew from 6,000 to
  120,000 (`--prune-history` changed nothing). Anvil runs through bare's runs as well as ours,
  so it slows both, but it makes the http benchmark's later rounds slower and noisier (182,624
  tokens by its end). A real chain's node is not on our 2 cores.
- Measured and not changed: through WSGI directly (no server), our request costs 297 µs against
  bare's 74, of which the SQLite transaction is 123 µs; in a microbenchmark of the insert alone,
  56 % of its time is in the kernel (per commit 17 `pwrite`, 16 `pread` after the other
  connection's commit emptied the page cache, 6 `fcntl`). Per insert, two connections taking
  turns, against 107 µs: the owner index left out for custody rows 101 µs; the secrets table
  `WITHOUT ROWID` 113 µs; both 98 µs; pages of 1 KiB 92 µs (new stores only); `mmap_size` 116 µs;
  `secure_delete` off or FAST, no change. None is worth a migration of every store.

Eighth round. What set the paced p99 with the minting beside the requests, found
by tracing the production layout under the paced load in 50 ms windows: every request's latency
(from a client of our own), each process's CPU time and run-queue wait (`/proc/<pid>/task/*/
schedstat`), every writer-lock wait and hold, and every worker round's CPU:

- **the worker's bursts** (`backend/worker.py`) — latency spikes of 30-65 ms came about once a
  second, in the 50-150 ms after each block, while the outbox's round applied the block's events
  (up to 57 ms of CPU) and sent the batches that refill the node's pool (a round took up to
  109 ms of CPU, 205 ms of wall time). Meanwhile the two gunicorn workers spent half their time
  waiting on the run queue while the worker ran 0.8 of a core, niceness 10 notwithstanding
  (CPU-bound loops pinned to one core do get their shares: 2.67, 0.29 and 0.04 s of CPU in 3 s
  at niceness 0, 10 and 19; bursts on two cores do not). The writer lock was not it: the
  requests' holds had a p50 of 0.15 ms, the follower's at most 3.9 ms. A worker thread that has
  used 4 ms of CPU since its last pause now pauses, between two batches (a mint transaction
  sent, a chunk of events landed) and never inside a transaction, for three times as long: at
  most a quarter of a core per thread, still about 1,400 mints a second. And new payloads'
  mint jobs are queued a batch at a time (eight batches' worth in one transaction held the
  writer lock for up to 10 ms). The pause ratio switched between runs on one stack, 0 (before),
  1 and 3 in turn, 5 rounds of one 8 s saturated and one paced wrk run each: paced p99 medians
  24.5, 20.0 and 12.6 ms (single runs 11.9-33.5, 12.5-32.2 and 8.6-21.0 ms); saturated 1,611,
  1,559 and 1,590 req/s, the same within the noise. With our own client (which takes a third of
  a core itself, so its figures run higher): 32.2-58.1 ms before (9 runs), 10.1-13.1 ms after
  (3 runs), the web tier alone 9.0 and 9.5 ms. Minting a backlog: 800 tokens a second, 94 % of
  the ceiling, as before (worker 186 µs of CPU a token). Three full runs after it (the http
  benchmark alone, then the whole): paced p99 11.1, 22.4 and 21.9 ms (the seventh round's
  three: 25.4, 39.3 and 45.7 ms), `make run`'s layout 15.9, 28.1 and 28.8 ms (54.9 before);
  throughput 0.42, 0.47 and 0.43 of bare's, the web tier alone 0.52, 0.57 and 0.51. The figures
  above are the last of the three.
- **a pause renews the lease** (`backend/worker.py`) — pauses make a long round longer (a
  follower catching up on many blocks, four times its CPU time): after each, the chain-worker
  lease is renewed, and a round whose lease has passed to another holder meanwhile is given up.
- Tried and not kept: the worker at a lower priority instead. With our own client, 3 runs each:
  niceness 0: 40.5-47.2 ms, 10: 32.2-47.9 ms, 19: 21.4-36.6 ms, `SCHED_IDLE`: 23.7-28.5 ms; but
  with wrk, 10 and 19 alternating on one stack over 5 rounds, paced p99 medians 36.8 and 37.3
  ms. Pausing works whatever the scheduler does with priorities.

Seventh round. The chain worker's CPU per minted token, found with py-spy on
`python -m backend worker` minting a backlog:

- **ECDSA in libsecp256k1** (`pyproject.toml`) — eth-keys signs and recovers through
  `coincurve` when it can import it, and falls back to pure Python when it cannot: it could not,
  so each signature took 6.1 ms (a mint batch's, 61 µs a token) and each recovery 6.6 ms (a
  sign-in's). `coincurve` is now pinned: 0.47 and 0.10 ms; worker CPU per minted token, minting
  a backlog, 289 and 303 → 234 and 271 µs. A test fails if eth-keys ever falls back again.
- **mintBatch's argument encoded directly** (`backend/chain.py`) — a batch of 100
  `(to, end, switchable, commitment)` tuples went through eth_abi's generic encoder: 25 µs a
  token. The tuples are static, so each is four words; the values are checked as eth_abi checks
  them (address, uint64 range, 32 bytes), and a test compares the bytes with eth_abi's for the
  edge values. 25 → 1.2 µs a token. A deployment whose ABI's `mintBatch` is not this shape is
  refused at start-up, so the two can never drift apart.
- **event words decoded directly** (`backend/chain.py`) — the follower's two logs per minted
  token (`Transfer`, `CommitmentPublished`) went through eth_abi's decoder, word by word: 16 µs a
  token. Addresses, unsigned integers, booleans and `bytes32` are now read from their words,
  with the padding refused where eth_abi refuses it (tests feed both the same malformed words);
  signed integers still go through eth_abi. 16 → 8 µs a token.

The three together, the old worker (the sixth round's, with coincurve installed for it too, so
only the code differs) and the new one alternating over the same backlog, 4 rounds each: 312,
308, 290 and 225 → 245, 221, 202 and 211 µs of worker CPU per minted token (medians 299 →
216). In the full run above the worker took 154 µs a token (281 in the sixth round's full run)
and Anvil 109 µs. Full runs before and after, on a host stealing under 1 % of the CPU in both
(bare Flask answered 3,303 then 3,854 req/s, so the host was faster too; ratios compare): the
production layout's throughput 0.39 → 0.46 of bare's, its paced p99 30.6 → 25.4 ms (single
runs 22-51 → 20-47 ms); the web tier alone 0.53 and 0.53, 17.3 and 10.1 ms. Two more full runs
of the same code later that day, under 0.2 % stolen but on a host whose speed moved by more than
the change (bare Flask 3,133 and 3,989 req/s; the web tier's paced p99 15.9 and 37.8 ms): 0.42
and 0.42 of bare, paced p99 39.3 and 45.7 ms; worker 195 µs and Anvil 129 µs a token in the
second. The figures above are the last of the three.

- **the benchmark's check of the threads set-up** (`bench/http.py`) — a second full run failed
  it with one lease holder throughout and 69,860 payloads minted once each: one of 738
  transactions had been refused by the node and dropped, and its jobs signed again with the
  nonce it left free, which the check counted as a nonce used twice. That is the worker doing
  what it should (a node that refuses bytes refuses them every time). The check now leaves out
  dropped transactions, requires each drop to have a logged refusal about fees (one about the
  nonce would mean a second sender), and compares the tokens on chain with the payloads the
  stores minted, which the old check did not look at (a payload minted twice under two
  nonces would have passed it).

Tried and not kept: who yields the CPU, measured again with the cheaper worker. Production layout,
one 8 s saturated and one paced run per set-up in turn, 4 rounds, Anvil in a session of its own:
the worker's session at niceness 19 instead of 10 answered 1,495-1,870 req/s against 1,704-1,965
(paced p99 28-40 ms against 15-40 ms): starved, it is preempted while it holds the writer lock,
and requests wait behind it. Anvil's session at 19: 1,582-2,198 req/s, paced p99 16-37 ms, within
the default's spread. A second set, the worker's session at 0, 5 and 10, ran while the host
slowed (bare-like runs fell to 1,000 req/s with under 2 % stolen) and ranked the three differently
in every round. The default stays at 10.

Sixth round. The worker's reads, and the host's share of the noise:

- **events before receipts** (`backend/worker.py`) — a mined batch's receipt carries the logs
  of all its tokens, the largest answer the worker reads, and it was fetched and parsed
  whenever the outbox's round came before the follower's, only to learn "mined". The outbox's
  round now applies new events first and asks no receipt of a transaction they closed; and it
  reads only the hashes of the transactions its jobs wait on (a job's row only when something
  is to be done with it), where it read every sent job, up to 800 rows four times a second.
  Minting a backlog, 12,000 tokens in 15 s, old and new worker alternating twice: worker 325
  and 352 → 296 and 301 µs of CPU per token, Anvil 100 and 113 → 88 and 88 µs.
- **a JSON-RPC session per thread** (`backend/chain.py`) — web3 posts through `requests`,
  whose sessions, trusting the environment, looked up proxies and read `~/.netrc` again on
  every call: 0.87-1.12 ms of the client's CPU per `eth_blockNumber` to Anvil, against
  0.60-0.77 ms with proxies and the CA bundle read from the environment once, at start-up
  (2,000 calls each way, alternating twice). Every call the worker makes, and the `ownerOf` of
  a wallet's DELETE, is that much cheaper. Each thread keeps a session of its own, as web3 does
  (a `requests` session is not safe to share between threads).
- **rate limits** (`backend/api.py`) — an anonymous request counted in two budgets keyed by
  the same address (its "wallet" budget was the IP's again): it now counts in one.
- **the host, per run** (`bench/http.py`) — eight paced runs of the production layout, one
  after another, the host's steal measured around each: p99 18.4, 21.7, 23.8 and 29.5 ms in
  the runs with 0.7-5.3 % of the CPU stolen; 43.3, 50.2, 54.0 and 64.4 ms in those with
  12.6-22.7 % (server-side p99 5.4-6.8 against 9.9-13.6 ms). A run with more than 5 % stolen is
  now set aside and run again (above, "How each figure is measured").
- Tried and not kept: the writer lock handed over. Every lock wait and hold traced in the
  production layout under the paced load: a request waiting for the lock was at times kept out
  by up to 17 of the worker's transactions in a row (12 ms), but the requests' lock waits had a
  p99 of 1-3 ms, far below the paced p99; a 1 ms pause after each of the worker's transactions
  changed neither figure beyond the noise. gunicorn's threaded workers (`-k gthread`, 4
  threads), web tier alone: 1,428 → 790 req/s (bare Flask 3,105 → 3,267): threads wait for
  the GIL and for the store's writer lock in turn, and there was nothing left to batch a commit
  with. The payloads' commitment index, the only B-tree whose new keys land at random places:
  without it an insert took 5-10 µs less CPU of about 110 µs (in process, two connections taking
  turns, 50,000 payloads stored), too little to give up the lookup it serves.
- Not speed: a transaction whose fees the chain has overtaken is now replaced (README).

Fifth round. The chain stand-in's share of the minting, and two ways the
outbox could stall:

- **gas from one run of the call** (`backend/chain.py`) — of Anvil's CPU per minted token
  (147-177 µs), most went to `eth_estimateGas`, which searches for the least gas that succeeds
  by running the call again and again: on Anvil, a `mintBatch` of 100 costs 83-90 µs of the
  node's CPU per token to estimate, 10 µs for `eth_call`, and 12 µs for `eth_createAccessList`,
  which runs it once and reports the gas used. The signed limit now comes from that figure
  (plus a quarter for refunds, which it nets out and a burn earns, then the 20 % and 10,000 gas
  as before; a node without the method is asked for an estimate). Minting a backlog, 12,000
  tokens in 15 s, old and new worker alternating twice: Anvil 147 and 161 → 88 and 91 µs of CPU
  per token; the worker 272 and 285 → 251 and 274 µs. Under the http load, two production
  set-ups side by side whose workers differ only in this (2 saturated and 6 paced runs each,
  then the two swapped): Anvil's CPU per request created 362 → 286 and 323 → 246 µs; saturated
  throughput 1,459 → 1,762 and 1,585 → 1,698 req/s; paced p99 medians 53.5 → 51.1 and 39.2 →
  36.4 ms (single runs 24-70 ms). On a real chain the estimate runs on the provider, not on
  this machine. (A first side-by-side, against an older checkout and on a host then taking
  20-28 % of the CPU for other guests, showed no difference beyond its noise; that steal is
  now in the machine facts above.)
- **a refused transaction stalled the outbox** (`backend/worker.py`) — found by a scratch
  set-up whose outbox did not drain: after a long run of full blocks the base fee had climbed
  so far that four signed mint transactions' fee caps exceeded the relayer's balance, the node
  refused them, and the worker sent the same bytes again every round, forever. A transaction
  the node refuses is now dropped and its jobs signed again, with a fresh nonce and fees.
- **retried jobs held back every new mint** (`backend/worker.py`) — any job retried after its
  transaction was dropped or lost went alone, one per round, and nothing else was sent that
  round: 400 such jobs took 100 s, with every new mint waiting behind them. Only a job the
  contract refused (at estimation, or in a reverted transaction) now goes alone; the others go
  back in batches, their commitments looked up in one `eth_getLogs` (never minted twice).
- **paced p99 over 4 runs** (`bench/http.py`) — it was the median of 2, while single runs
  range 2-3× here; the range is now printed beside it.

Fourth round. Where a request's CPU goes under gunicorn, per request, from
`/proc` (each thread's user and system time) and `strace -c` on one worker:
ours 0.72 ms user + 0.19 ms system, bare Flask 0.38 + 0.09 ms. Of the system time, the store's
transaction makes about 50 system calls: 25 `pwrite`s (a header and a page for each of the ~12
pages a new payload dirties: three rows, ten B-trees), 23 `pread`s, 8 `fcntl`s and 2 `flock`s.
The `pread`s are the page cache refilling: SQLite empties a connection's cache whenever another
connection has written, and with two gunicorn workers (and the chain worker) taking turns,
every transaction starts cold: 88 µs per insert with two connections taking turns, 65 µs with
one (same process, interleaved runs). Tried and measured, and not kept:

- 1 or 2 KiB pages, and `mmap_size` (256 MiB): no change beyond the noise, with one
  connection or two (the hot pages are read from the WAL, which is never mapped).
- The chain stand-in (Anvil) at a lower priority: no change in throughput. (First tried with
  `setpriority` alone, which, with Linux's scheduler autogroups, does not reach across
  sessions; measured again through Anvil's session, `/proc/<pid>/autogroup` at 10: 0.36 of
  bare vs 0.42 without, 4 rounds each, single rounds 1,256-2,227 req/s: noise.)
- A payload writer (group commit): a thread of `python -m backend worker` took the new payloads
  of both API processes over a Unix socket and committed those waiting together, on one
  connection whose cache stays warm. Side by side with the current code (5 rounds of 6 s,
  each server from its own checkout): 1,993 vs 2,423 req/s, server CPU per request 744 vs
  680 µs. Its batches averaged 1.09 payloads: each sync worker waits for its own answer, so
  no more than two payloads are ever waiting, and the round trip (two context switches, a
  worker idle meanwhile) cost more than the cold cache it saved.
- Fewer follower events per transaction. Timing every store transaction of the production
  layout under the paced load: the chain worker's commits hold the writer lock 4-6 ms on
  average when over 2 ms (50 events a commit), at most 17-31 ms, and even a one-row lease
  renewal held it up to 77 ms: the holder is preempted on the two busy cores, and every request
  that commits waits behind it. With 10 events a commit the holds were as long (mean 4.4 ms,
  max 17 ms) and the paced p99 no lower (medians of 4 runs: 43.0 vs 34.4 ms with 50); the worker
  at niceness 0 instead of 10: the same (68.6 vs 67.9 ms, 6 runs each, on a busier machine).
- A random (exponential) think time for the paced runs, so the 50 connections fall out of
  step: wrk then counts part of the wait in the latency it reports, so it was not kept.

Changed:

- **worker writes only when there is something to write** (`backend/store.py`) — every
  outbox and follower round renewed the chain-worker lease in a write transaction, and the
  sweeper opened one each second with nothing expired: an idle worker took the writer lock 10
  times a second, and under load each of those could be preempted holding it (above). A read
  now answers first (another holder's lease still runs; ours has more than half its time
  left; nothing expired): 10.0 → 1.3 write transactions a second for an idle worker (the rest
  is the follower's block cursor, which moves every block). The paced p99 did not show it:
  old and new workers side by side, each on a store of its own, 5 runs each, then the two
  swapped: new 31.8 vs old 49.2 ms, then new 28.6 vs old 24.4 ms (medians): the two set-ups
  differ by more than the two versions.
- **paced load** (`bench/post.lua`) — wrk's fixed delay started all 50 connections at the same
  instant and kept them in step: every period, 50 requests arrived together and queued behind
  2 workers, so the paced p99 measured that queue (about 25 times one request's server time)
  rather than latency at half load. The connections' first requests are now spread over one
  period. Same session, 3 runs each, in step → spread: bare Flask p99 10.5 → 5.5 ms, web tier
  28.8 → 19.1 ms, production layout 39.1 → 38.6 ms (unchanged: there the minting's CPU sets it).
  Also measured, and not made the method: Anvil in a session of its own at the lowest priority
  (as if the chain were on another machine), production layout, medians of 3 runs, in step /
  spread: 23.3 / 31.5 ms against 31.2 / 29.2 ms at normal priority; in a second session 33.9 /
  21.3 ms against 36.0 / 26.1 ms. Single runs range 15.7-54.0 ms. Starved, Anvil mines late,
  so part of the run's minting (Anvil's and the worker's) would fall after the run.
- **worker priority** (`backend/__main__.py`) — `SLT_WORKER_NICE` lowered the worker's
  threads only; started in a session of its own (as the benchmarks and supervisors start it),
  its session kept an equal share of the CPU beside the API's session. It now raises its
  session's (autogroup's) niceness too, when it leads the session. Production layout, same
  server, the worker's session at 0 and at 10, alternating: 0.39 and 0.41 of bare: no
  difference beyond the noise here, where the minting's cost is mostly Anvil's and the store's.
- **store** (`backend/store.py`, `backend/worker.py`) — the request's commit no longer writes
  the mint job: its row and its two indexes were a quarter of the insert (93 → 67 µs with two
  writer connections, interleaved). The chain worker queues the jobs of new payloads itself, a
  batch per round, from a cursor over the payloads' row ids, jobs and cursor in one
  transaction. Under gunicorn the saving (about 26 µs of a request's ~800 µs of CPU) is below
  this machine's noise: old and new code side by side, each server loaded from its own
  checkout, 5 rounds of 6 s: 1,819 and 1,815 req/s (medians; single rounds 953-2,206). An
  earlier side-by-side reported 2,004 → 2,182 req/s, but its "old" server had run the new code:
  gunicorn's `--chdir` does not reach a package that its config file has already imported, so
  a checkout is compared by starting gunicorn in it, with `PYTHONPATH` pointing at it.
- **chain worker** (`backend/store.py`) — `due_jobs` asked for the oldest due jobs by id,
  an order the due index cannot give, so SQLite sorted every due job, the whole backlog, to
  return 100 of them, on every round. It now takes them in the index's own order (due time, then
  id) and stops at the limit. Mint benchmark, the same session: worker CPU per minted token 346 →
  281 µs (Anvil 199 µs in both).

Third round. The paced p99 was set by stalls of 35-60 ms in which one request
held the store's writer lock and every other waited. They were found by timing each store
transaction under load together with its thread's own CPU and run-queue time (schedstat):

- **checkpoints** (`backend/store.py`, `backend/worker.py`) — a request whose commit took the
  WAL past 10,000 pages folded it into the database itself: 35-53 ms with the writer lock held,
  about twice a second at full load. A checkpointer thread now runs in every process that
  writes, API processes included (`SLT_CHECKPOINT_INTERVAL`, 0.1 s): a PASSIVE pass beside the
  writers, then, once the WAL holds 8,000 frames, a second short pass with the writers queued,
  so that the next writer starts the WAL over. Requests no longer checkpoint.
- **garbage collector** (`backend/gunicorn_conf.py`) — a full collection walked the ~100,000
  objects each process makes at start-up: 50-60 ms of CPU inside a transaction, once or twice
  per run in each worker. Server processes now freeze those objects after loading the app.
- **production layout** — the chain worker as its own process (`python -m backend worker`,
  at a lower CPU priority, `SLT_WORKER_NICE`) beside API processes without worker threads: in
  the API processes, the worker's JSON decodes of large RPC answers held the GIL for
  milliseconds at a time. `make run` keeps the threads; both layouts are measured above.
- **chain worker** — the follower stores up to 50 events per transaction (was one per token)
  and skips `TokenExpiryUpdated` (a mint emits it; persistence comes with `Unlocked`); a mint
  batch's payloads are read in one query; the sweeper reads a shred counter instead of counting
  every payload each second. Worker CPU per minted token 357 → about 265 µs (mint
  benchmark). Asking receipts only of transactions the follower had not seen mined saved a
  little more (254 µs), but full runs then showed mint transactions dropped and their nonces
  signed again, so that change was taken back.
- **store** — payload ids begin with the time in milliseconds (then 80 random bits), so a new
  id lands at the end of the id indexes: 12% less CPU per insert, checkpoints included, on a
  store of 20,000 payloads.

Before → after, on the same quick runs (3 saturated and 2 paced runs of 6 s each): throughput
÷ bare 0.34 (threads layout, as measured last round) → 0.41-0.45 (production layout); paced
p99 83-107 ms → 20-30 ms; in the web tier alone, paced p99 47-53 ms → 11-17 ms.

Second round:

- **crypto** (`backend/crypto.py`) — `KeyRing.seal` seals every part of a payload under one
  fresh data key that never leaves the call, so part *i* uses nonce *i* (a key sealing one
  payload's parts once each never repeats a nonce); one AES-GCM object serves every part; the
  data key and the wrap nonce come from one read of the OS's CSPRNG per 256 payloads, a pool
  that a forked child empties. Blob layouts are unchanged. 1 KiB encrypt + wrap: 4.44 →
  about 2.7 µs (1.8× → 3.1× Fernet); unwrap + decrypt 3.21 → about 2.8 µs (3.0× → 3.4×).
- **rate limits** (`backend/ratelimit.py`) — Flask-Limiter's per-request work (resolving the
  route's limits, exemption checks, headers for every limit) was about a fifth of a
  `POST /generate`; the limiter now calls the same `limits` library directly (same fixed window,
  same budgets, `Retry-After` on a 429). Also: the surrogate check no longer walks the prompt
  in Python, the security headers are added in one call, JSON keys are not sorted. In-process
  `POST /generate`: 524 → 352 µs (bare Flask 153 µs); a flooded user's p99 61.6 → 34.5 ms.
- **chain** (`backend/chain.py`, `backend/worker.py`) — web3's contract layer, middleware and
  formatters cost the chain worker 1.46 ms of CPU per minted token. Calls now encode and decode
  with `w3.codec` (web3's own strict eth_abi registry) and speak JSON-RPC through the provider;
  selectors and topics are worked out once; signing asks nonce, gas, tip and base fee in one
  batched round trip and signs with a key object (eth-account re-derived the public key in pure
  Python on every signature); receipts and known transactions are read in one batch per round.
  Worker CPU per token 1.46 → 0.30 ms; minted 522–565/s → about 790/s (the chain's ceiling
  now bounds it). `POST /generate` throughput with minting beside it: 614 → about 1,600 req/s.
- **GIL** (`backend/__init__.py`) — with the chain worker's threads in the request process, the
  switch interval is 0.5 ms instead of 5 ms: a request that wants the GIL back after a system
  call no longer waits up to 5 ms behind a busy worker thread, several times per request.
- **store** — a new payload's insert touches two B-trees fewer (no `AUTOINCREMENT` on the
  outbox, whose rows are never deleted; the token id's uniqueness in a partial index).

What is left (written in the fifth round, brought up to date in the ninth). The paced p99 is met
with the minting beside the requests since the eighth round (11.1, 22.4, 21.9 and 15.3 ms in full
runs; the host still moves single runs between 7 and 64 ms). The throughput is not: 0.42-0.48 of
bare's with the minting of what the load creates on the same 2 cores, 0.51-0.57 for the request path
alone (the web tier only row). The request path alone (web tier) uses about twice bare Flask's CPU
per request under gunicorn (0.91 vs 0.47 ms of CPU in the fourth round's measurement, wrk's 0.1 ms
beside both). Of the difference, the SQLite transaction (two rows, one commit, durable before the
201) is the largest part. Measured by leaving it out (an experiment on a scratch checkout, not a
product): the same server then answered 0.67-0.77 of bare's throughput where the real one answered
0.47-0.58 in the same runs, with 130-240 µs less CPU per request, user and system time alike, and a
saturated p99 of 24-27 ms instead of 38-40 ms. That is two to three times what the insert costs in
one process (65-88 µs): under gunicorn every transaction starts with a cold page cache, writes its
pages to the WAL one system call at a time, and waits while the other worker holds the write lock.
Leaving out only the secrets row: 0.57 of bare (0.52 in the same runs). The rest is our Python
(limits, crypto, the response body, whose shape the original app fixed). With the chain worker on
the same 2 cores, minting takes a tenth of the machine more at the chain's 800 tokens a second
(worker and Anvil together about 0.26 ms of CPU per token in the seventh round, 0.35 ms in the
sixth, 0.4 ms in the fifth, 0.5 ms before). The 0.5 ratio would need about 9 % more throughput than
the seventh round's, i.e. a request and its share of the minting together about 8 % cheaper (in the
fifth round it needed a request a third cheaper). Group commit cannot batch behind two sync workers
(tried above); what is left on the store's side is fewer B-trees per new payload (the secrets keyed
by the payload's row id: leaving the secrets row out entirely gained 0.05 of bare), and beyond it a
server whose workers each take several requests at once, so that one process's requests can share a
commit. Until the eighth round the paced p99 with minting beside it was set by the worker's bursts
on the same 2 cores (above); it is now about the web tier's own, which the host moves: single 8 s
runs of either ranged from 7 to 38 ms on this machine with under 5 % of the CPU stolen, and to 150
ms with more.

First round:

- **crypto** — `KeyRing` keeps one AES-GCM object per master key version (building one cost as
  much as sealing 1 KiB); a large payload is sealed into a per-thread buffer holding only nonce
  and ciphertext, and opened through a memoryview. Before: 1 KiB encrypt + wrap ≈ 6.8 µs; 1 MiB
  at 25% of raw AES-GCM's speed in some runs.
- **store** — writers queue on a lock file (`flock`) before `BEGIN IMMEDIATE`, so a blocked
  writer wakes when the lock is free instead of sleeping in SQLite's busy handler (1, 2, 5, 10 …
  ms), and so does the sweeper's TRUNCATE checkpoint, which keeps writers out while it runs;
  requests no longer pay for WAL checkpoints (auto-checkpoint raised to 10,000 pages, the
  sweeper checkpoints every round in the background); `sweep_expired` shreds a batch set-wise.
  Before: commit p99 5.2 ms alone, p90 ≈ 1 ms with two writers; sweeping ≈ 3,000 records/s.
- **worker** — a pending transaction was re-broadcast every round, the node answered
  "already imported", the error escaped `Chain.broadcast` and the round died before sending more:
  one batch of 100 per block (≈ 100 tokens/s). Now a transaction the node knows is left alone, a
  transaction mined between two questions is no longer taken for dropped, a backlog is sent as
  several batches per round (up to 8 unmined), receipts are read for their status only, and
  events reach the store once, through the follower.
- `api.py` — limits' memory storage started a `threading.Timer` per hit (a fifth of a request's
  wall time); it now expires counters inline. `chain.py` — web3 7's `Web3RPCError` was not
  mapped, so "already known" escaped `broadcast`.
"""


def _cells(row: Row) -> tuple[str, ...]:
    return (row.what, row.ours, row.baseline, row.ratio, row.target, row.verdict)


def print_table(rows: Sequence[Row], facts: dict[str, Any]) -> None:
    print()
    print(
        f"Machine: {facts['cores']} cores, {facts['cpu_model']}, Python {facts['python']},"
        f" {facts['os']}; load average {facts['load_average_at_start']} at start,"
        f" {facts.get('load_average_at_end')} at end; CPU stolen by the host"
        f" {facts.get('cpu_stolen_percent')} %; mode {facts.get('mode')}"
    )
    widths = [len(c) for c in COLUMNS]
    limit = (54, 34, 40, 30, 40, 6)
    cells = [_cells(r) for r in rows]
    for c in cells:
        widths = [min(max(w, len(x)), lim) for w, x, lim in zip(widths, c, limit, strict=True)]

    def line(values: Sequence[str]) -> str:
        parts = []
        for v, w in zip(values, widths, strict=True):
            parts.append(v if len(v) <= w else v[: w - 1] + "…")
        return " | ".join(p.ljust(w) for p, w in zip(parts, widths, strict=True))

    print(line(COLUMNS))
    print("-+-".join("-" * w for w in widths))
    bench = None
    for r, c in zip(rows, cells, strict=True):
        if bench is not None and r.bench != bench:
            print("-+-".join(" " * w for w in widths))
        bench = r.bench
        print(line(c))
    print()


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def write_markdown(
    path: Path, rows: Sequence[Row], facts: dict[str, Any], rendered_at: str | None = None
) -> None:
    """The report. ``rendered_at``: the commit whose text renders the figures of an earlier run
    (``--render``), when it is not the commit those figures were measured at."""
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    out = [
        "# Benchmarks",
        "",
        "What the privacy layer costs, each figure beside a baseline measured in the same run.",
        "Generated by `make bench` (`python -m bench`); do not edit by hand.",
        "",
    ]
    if rendered_at and rendered_at != facts.get("commit"):
        out += [
            f"The figures are those of a run at {facts.get('commit')}; the text after them was"
            f" rendered at {rendered_at} (`python -m bench --render`) and also describes what"
            " changed since that run, measured on its own.",
            "",
        ]
    out += [
        "## Machine",
        "",
        "| fact | value |",
        "|---|---|",
    ]
    labels = {
        "cores": "cores",
        "cpu_model": "CPU model",
        "python": "Python",
        "os": "OS",
        "memory": "memory",
        "load_average_at_start": "load average at start (1, 5, 15 min)",
        "load_average_at_end": "load average at end",
        "cpu_stolen_percent": "CPU time the host gave other guests during the run (steal, %)",
        "sqlite": "SQLite",
        "cryptography": "cryptography",
        "flask": "Flask",
        "gunicorn": "gunicorn",
        "wrk": "wrk",
        "anvil": "Anvil",
        "commit": "commit measured (plus the working tree)",
        "duration_s": "run time (s)",
    }
    for key, label in labels.items():
        if key in facts:
            out.append(f"| {label} | {_md(str(facts[key]))} |")
    out.append(f"| date | {facts.get('date', now)} |")
    out += ["", "## Results", "", "| " + " | ".join(COLUMNS) + " |", "|---" * len(COLUMNS) + "|"]
    for r in rows:
        out.append("| " + " | ".join(_md(c) for c in _cells(r)) + " |")
    missed = [r.what for r in rows if r.met is False]
    met = sum(r.met is True for r in rows)
    listed = f" ({'; '.join(missed)})" if missed else ""
    out += ["", f"Targets met: {met}; missed: {len(missed)}{listed}.", ""]
    notes = [r.data.get("note") for r in rows if r.data.get("note")]
    if notes:
        out += ["## Notes from this run", ""] + [f"- {n}" for n in notes] + [""]
    out.append(METHOD)
    out.append(CHANGES)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out))
