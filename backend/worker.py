"""Background work: the outbox sender, the event follower and the sweeper.

- **Outbox.** Mints, burns and persists wait in the ``outbox`` table; a new payload's mint job
  is put there by the sender itself, a batch at a time, off the request's commit
  (``SQLiteStore.queue_new_mints``). Due mints are batched into
  ``mintBatch`` transactions (several per round while a backlog lasts, up to
  ``MINT_TXS_IN_FLIGHT`` unmined); burns into one ``burnBatch``. Each transaction is signed,
  stored, then broadcast; receipts (mined or reverted) are collected on later rounds. After a
  crash the stored bytes are sent again (same nonce, so never twice). A payload already minted
  (found by its commitment on chain) is never minted again. Failures retry with exponential
  backoff.
- **Follower.** Reads the contract's events and is the one place they reach the store: mints
  (payload ↔ token id), burns from any wallet (shred at once), transfers (the right to the data
  moves) and persists.
- **Sweeper.** Shreds expired payloads (their burns are queued by the shred itself), then
  checkpoints the WAL so no page image of a shredded secret is left in a file.
- **Checkpointer.** Folds the WAL into the database file in the background, many times a
  second, so that no request's commit pays for a checkpoint (see ``SQLiteStore.fold_wal``). It
  runs in API processes too, also when their chain worker runs elsewhere.

Only the process holding the ``chain-worker`` lease sends transactions and follows events;
every process sweeps and checkpoints (both are idempotent). The outbox and the follower pause
between batches after a burst of CPU work (``CPU_BURST``), longer while the cores are busy, so
that working through a block's events or a backlog never takes a core from the API processes
for long, and yields to requests when they keep the cores busy.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable

from .chain import Chain, ChainEvent, MintRequest, SignedTx
from .errors import CONTRACT_REFUSED, BackendError, ChainError, ChainUnavailable, ConfigError
from .store import Job, LeaseLost, SQLiteStore

log = logging.getLogger(__name__)

ZERO = "0x" + "00" * 20
LEASE, LEASE_TTL = "chain-worker", 10.0  # seconds a holder keeps the lease without renewing it
MAX_BACKOFF = 60.0
REVERTED = "transaction reverted"  # a job's last error when its transaction was mined, reverted
# Logged (a warning) when the node refuses a transaction's bytes: it is dropped, its jobs signed
# again. The benchmarks read these lines back.
REFUSED_BY_NODE = "refused by the node"
# A token whose end is this close when its mint is sent would expire before inclusion.
MINT_MARGIN = 2
# Mint transactions sent and not yet mined, at most. A 30M-gas block holds about 8 batches of
# 100 (~35k gas a token): the worker keeps about one block's worth in the node's pool.
MINT_TXS_IN_FLIGHT = 8
# Events the follower folds into the store in one transaction: one commit for a mint batch's
# events rather than one per token, and other writers wait for a few milliseconds at most.
EVENTS_PER_TRANSACTION = 50
# Between two units of a round's work (a mint batch sent, a chunk of events landed), a worker
# thread that has run CPU_BURST seconds on the CPU since its last pause pauses for
# PAUSE_PER_CPU_SECOND times as long: at most a quarter of a core per thread while it works
# through a backlog. A round's work comes in bursts (a block's events, the batches that refill
# the node's pool), and run in one go a burst took a core from the API processes for 50-150 ms,
# niceness notwithstanding, while their requests queued. A quarter of a core still mints about
# 1,400 tokens a second, well above any chain's pace (Anvil's blocks take about 850).
#
# When the cores are busy (requests keep the API processes running), the thread also waits to
# be scheduled; each second it waited for a CPU adds PAUSE_PER_WAIT_SECOND to the pause, up to
# MAX_PAUSE_PER_CPU_SECOND times what it ran: minting then yields to requests, down to a
# sixteenth of a core per thread (about 350 tokens a second), and speeds up again when the
# cores are free. Under saturation a quarter of a core each took about a tenth of the machine.
CPU_BURST = 0.004
PAUSE_PER_CPU_SECOND = 3.0
PAUSE_PER_WAIT_SECOND = 10.0
MAX_PAUSE_PER_CPU_SECOND = 15.0


def _thread_times() -> tuple[float, float]:
    """The calling thread's seconds on a CPU, and seconds spent runnable, waiting for one.

    Linux's ``/proc/thread-self/schedstat``; elsewhere the CPU time alone (no waits seen).
    """
    try:
        with open("/proc/thread-self/schedstat", "rb") as f:
            ran, waited, _ = f.read().split()
    except (OSError, ValueError):
        return time.thread_time(), 0.0
    return int(ran) / 1e9, int(waited) / 1e9


class Worker:
    def __init__(
        self,
        store: SQLiteStore,
        chain: Chain,
        clock: Callable[[], float],
        *,
        mint_batch_max: int = 100,
        burn_batch_max: int = 200,
        confirmations: int = 0,
        replace_after: float = 30.0,
    ) -> None:
        self.store = store
        self.chain = chain
        self.clock = clock
        self.mint_batch_max = mint_batch_max
        self.burn_batch_max = burn_batch_max
        self.confirmations = confirmations
        self.replace_after = replace_after
        self.holder = f"{os.getpid()}-{id(self)}"
        self.chain_ok = False
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._shreds_seen = 0
        self._mints_in_flight = 0  # mint transactions without a receipt, as of the last round
        self._fees: tuple[int, int] | None = None  # the chain's fees, asked once a round if needed
        self._following = threading.Lock()  # the outbox follows too, before its receipts
        self._cpu_mark = threading.local()  # each thread's CPU time at its last pause
        # Mint recipients seen in Transfer events, until their CommitmentPublished arrives.
        self._mint_to: dict[int, str] = {}

    # Threads -----------------------------------------------------------------------------------

    def start(
        self,
        outbox_interval: float,
        follow_interval: float,
        sweep_interval: float,
        checkpoint_interval: float,
    ) -> None:
        """Run the outbox, the follower, the sweeper and the checkpointer in threads."""
        self._start(
            ("slt-outbox", self.process_outbox, outbox_interval),
            ("slt-follower", self.follow, follow_interval),
            ("slt-sweeper", self.sweep, sweep_interval),
            ("slt-checkpointer", self.store.fold_wal, checkpoint_interval),
        )

    def start_checkpointer(self, interval: float) -> None:
        """Run only the checkpointer: in an API process whose chain worker runs elsewhere.

        Every process that writes folds the WAL: if the one worker process fell behind (it runs
        at a lower priority), a request's commit would fold thousands of pages itself.
        """
        self._start(("slt-checkpointer", self.store.fold_wal, interval))

    def _start(self, *loops: tuple[str, Callable[[], object], float]) -> None:
        self._stop.clear()
        for name, fn, interval in loops:
            t = threading.Thread(target=self._loop, args=(fn, interval), name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
        self._threads.clear()

    def _loop(self, fn: Callable[[], object], interval: float) -> None:
        failures = 0
        while not self._stop.is_set():
            wait = interval
            self._cpu_mark.at = _thread_times()  # the wait between rounds was a pause
            try:
                fn()
                failures = 0
            except ChainUnavailable:
                # Back off while the chain is down; jobs keep their place in the outbox.
                self.chain_ok = False
                failures += 1
                wait = min(interval * 2**failures, 2.0)
            except (BackendError, ConfigError) as exc:
                log.warning("%s: %s", threading.current_thread().name, exc)
            except Exception:  # a worker thread must outlive any one bad round
                log.exception("%s failed a round", threading.current_thread().name)
            self._stop.wait(wait)

    def _pace(self) -> None:
        """Pause if this thread has run ``CPU_BURST`` on the CPU since its last pause (or since
        its round began): for ``PAUSE_PER_CPU_SECOND`` times that long, plus
        ``PAUSE_PER_WAIT_SECOND`` times as long as it waited for a CPU meanwhile (at most
        ``MAX_PAUSE_PER_CPU_SECOND`` times as long as it ran); cut short by :meth:`stop`.

        Pauses make a long round longer (a follower catching up on many blocks): the lease is
        renewed after each, and :class:`LeaseLost` ends the round if it has passed to another.
        """
        ran, waited = _thread_times()
        ran_at_mark, waited_at_mark = getattr(self._cpu_mark, "at", (ran, waited))
        used = ran - ran_at_mark
        if used >= CPU_BURST:
            pause = used * PAUSE_PER_CPU_SECOND + (waited - waited_at_mark) * PAUSE_PER_WAIT_SECOND
            self._stop.wait(min(pause, used * MAX_PAUSE_PER_CPU_SECOND))
            if not self._leader():
                raise LeaseLost(f"lease {LEASE!r} passed to another holder during a pause")
            self._cpu_mark.at = _thread_times()

    def _leader(self) -> bool:
        return self.store.acquire_lease(LEASE, self.holder, self.clock(), ttl=LEASE_TTL)

    # Sweeper -----------------------------------------------------------------------------------

    def sweep(self) -> int:
        """Shred every expired payload now; returns how many were shredded."""
        total = 0
        while True:
            n = self.store.sweep_expired(self.clock(), limit=2000)
            total += n
            if n < 2000:
                break
        if total:
            log.info("sweeper shredded %d expired payload(s)", total)
        self.checkpoint_if_shredded(force=bool(total))
        return total

    def checkpoint_if_shredded(self, force: bool = False) -> bool:
        """Checkpoint and truncate the WAL if anything was shredded since the last time."""
        shreds = self.store.shred_count()  # by any process, a DELETE request's too
        if force or shreds != self._shreds_seen:
            self._shreds_seen = shreds
            self.store.checkpoint()
            return True
        return False

    # Outbox ------------------------------------------------------------------------------------

    def process_outbox(self) -> None:
        if not self._leader():
            return
        self.chain.verify_deployment()
        # Events first: a transaction whose events are in the store is done, and its receipt
        # is not asked for. A mined batch's receipt carries the logs of all its tokens, the
        # largest answer the worker reads; fetched and parsed before the follower had come
        # round, they cost as much again as the events.
        self.follow()
        try:
            self.collect_receipts()  # a replacement is recorded under the lease too
            self.send_mints()
            self.send_burns()
            self.send_persists()
        except LeaseLost as exc:  # stalled past the lease: the new holder sends these jobs
            log.warning("outbox round given up: %s", exc)
            return
        self.chain_ok = True

    def collect_receipts(self) -> None:
        awaited = self.store.awaited_transactions()
        if not awaited:
            self._mints_in_flight = 0
            return
        # Every receipt in one request, then whether the node still knows the unmined ones in
        # another: two round trips a round rather than two per transaction in flight. A
        # transaction's jobs are read only when something is to be done with them.
        statuses = self.chain.receipt_statuses(list(awaited))
        self._fees = None
        known = self.chain.known_transactions([h for h, s in statuses.items() if s is None])
        in_flight = 0
        for tx_hash, kind in awaited.items():
            status = statuses[tx_hash]
            if status is None:
                self._maybe_resend(tx_hash, tx_hash in known)
                in_flight += kind == "mint"
                continue
            self._apply_receipt(tx_hash, status)
        self._mints_in_flight = in_flight

    def _apply_receipt(self, tx_hash: str, status: int) -> None:
        # A receipt only says mined or reverted. Its events (the token ids of a mint, a burn)
        # reach the store through the follower, which reads the same logs moments later:
        # decoding them here too doubled the worker's CPU per token.
        if status == 1:
            self.store.finish_tx(tx_hash, "mined")
        else:
            self.store.finish_tx(tx_hash, "reverted")
            self._retry(self.store.sent_jobs(tx_hash), REVERTED)

    def _maybe_resend(self, tx_hash: str, known: bool) -> None:
        """A transaction without a receipt: wait, send it again, or give its jobs back.

        ``known``: the node had it (in its pool, or mined since its receipt was asked for).
        """
        stored = self.store.get_raw_tx(tx_hash)
        if stored is None:
            self._retry(self.store.sent_jobs(tx_hash), "transaction lost")
            return
        raw, nonce, sent_at = stored
        if known:
            # Waiting in the node's pool (or mined since its receipt was asked for): the next
            # round sees it. Sending the same bytes again would only be refused as known. But
            # if its fees fall behind the chain's, it would wait there for good: it is replaced.
            if self.clock() - sent_at >= self.replace_after:
                self._replace(tx_hash, raw)
            return
        used = self.chain.transaction_count(self.chain.relayer_address, "latest")
        if used > nonce:
            # Either ours was mined since its receipt was asked for (a block came in between
            # the two questions), or another transaction spent the nonce: ours can never land.
            status = self.chain.receipt_statuses([tx_hash])[tx_hash]
            if status is not None:
                self._apply_receipt(tx_hash, status)
                return
            self.store.finish_tx(tx_hash, "dropped")
            self._retry(self.store.sent_jobs(tx_hash), "transaction dropped")
            return
        self._broadcast(tx_hash, raw)

    def _replace(self, tx_hash: str, raw: bytes) -> None:
        """Sign ``tx_hash`` again (same nonce, higher fees) if its own fees no longer do."""
        if self._fees is None:
            self._fees = self.chain.fees()
        replacement = self.chain.replacement(raw, self._fees)
        if replacement is None:
            return
        # Recorded first, as every transaction is, and its jobs move to it: whichever of the
        # two is mined, the follower confirms the jobs by their commitments.
        self.store.record_replacement(
            tx_hash, replacement.tx_hash, replacement.raw, self.clock(), (LEASE, self.holder)
        )
        if self._broadcast(replacement.tx_hash, replacement.raw):
            log.info("transaction %s replaced by %s: fees raised", tx_hash, replacement.tx_hash)

    def _broadcast(self, tx_hash: str, raw: bytes) -> bool:
        """Send a recorded transaction; True if the node took it (or already had it).

        A node that refuses the bytes (their fee cap no longer covered by the relayer's balance
        after the base fee rose, a fee below the node's floor …) will refuse them every time:
        the transaction is dropped and its jobs signed again, with a fresh nonce and fresh fees.
        Sending the same bytes round after round stalled the outbox for good.
        """
        try:
            self.chain.broadcast(raw)
        except ChainUnavailable:
            raise  # recorded: a later round sends the same bytes
        except ChainError as exc:
            log.warning("transaction %s %s: %s", tx_hash, REFUSED_BY_NODE, exc.description)
            if self.store.undo_replacement(tx_hash):
                # A replacement refused: the transaction it replaced still holds the nonce and
                # may be mined. Its jobs wait on it again, never signed with a second nonce
                # (that would mint their tokens twice).
                return False
            jobs = self.store.sent_jobs(tx_hash)
            self.store.finish_tx(tx_hash, "dropped")
            self._retry(jobs, exc.description)
            return False
        return True

    def _retry(self, jobs: list[Job], error: str) -> None:
        """Give ``jobs`` back to the outbox, each after a back-off that grows with its attempts."""
        now = self.clock()
        due: dict[float, list[int]] = {}
        for job in jobs:
            due.setdefault(min(MAX_BACKOFF, 0.5 * 2 ** min(job.attempts, 7)), []).append(job.id)
        with self.store.transaction():
            for delay, ids in due.items():
                self.store.retry_jobs(ids, error, now + delay)

    def send_mints(self) -> None:
        """Send due mints in ``mintBatch`` transactions of up to ``mint_batch_max``.

        While full batches are due, one round sends several, keeping up to
        ``MINT_TXS_IN_FLIGHT`` unconfirmed: a backlog drains at the chain's pace, not at one batch
        per round. New payloads' jobs are queued a batch at a time: eight batches' worth in one
        transaction held the writer lock, and every request's commit, for up to 10 ms.
        """
        chain_now: int | None = None
        while self._mints_in_flight < MINT_TXS_IN_FLIGHT:
            self.store.queue_new_mints(self.mint_batch_max)
            jobs = self.store.due_jobs("mint", self.clock(), self.mint_batch_max)
            if not jobs:
                return
            if chain_now is None:
                chain_now = self.chain.latest_timestamp()
            full = len(jobs) == self.mint_batch_max
            # A job the contract refused goes alone, so one bad request cannot keep failing a
            # whole batch. Jobs back for any other reason (their transaction dropped, lost or
            # refused by the node) go in batches again: one at a time, a backlog of them took a
            # round each, and held back every new mint meanwhile.
            refused = [j for j in jobs if _refused_by_contract(j)]
            if refused:
                self._send_mint_batch(refused[:1], chain_now)
                return
            if not self._send_mint_batch(jobs, chain_now) or not full:
                return
            self._pace()

    def _send_mint_batch(self, jobs: list[Job], chain_now: int) -> bool:
        """Mint what is still to mint among ``jobs``; True if a transaction was sent."""
        requests, batch = [], []
        payloads = self.store.get_payloads([job.payload_id for job in jobs])
        # A job sent before may have landed after all: look its commitment up (all in one query)
        # and record it rather than mint it twice.
        landed = self.chain.find_commitments(
            [p.commitment for j in jobs if j.attempts > 0 and (p := payloads.get(j.payload_id))]
        )
        for job in jobs:
            payload = payloads.get(job.payload_id)
            if payload is None or payload.chain_token_id is not None:
                self.store.finish_jobs([job.id])
                continue
            found = landed.get(payload.commitment)
            if found is not None:
                self.store.set_minted(payload.commitment, found[0], found[1], payload.owner)
                continue
            if payload.end_time <= chain_now + MINT_MARGIN:
                self.store.finish_jobs([job.id], "cancelled")
                self.store.shred(payload.id, "expired", self.clock())
                continue
            requests.append(
                MintRequest(payload.owner, payload.end_time, payload.switchable, payload.commitment)
            )
            batch.append(job)
        if not requests:
            return False
        sent = self._send("mint", batch, lambda: self.chain.sign_mint_batch(requests))
        self._mints_in_flight += sent
        return sent

    def send_burns(self) -> None:
        jobs = self.store.due_jobs("burn", self.clock(), self.burn_batch_max)
        ids, batch = [], []
        for job in jobs:
            payload = self.store.get_payload(job.payload_id)
            if payload is None or payload.chain_token_id is None or payload.burn_status == "burned":
                self.store.finish_jobs([job.id])
                continue
            ids.append(payload.chain_token_id)
            batch.append(job)
        if ids:
            self._send("burn", batch, lambda: self.chain.sign_burn_batch(ids))

    def send_persists(self) -> None:
        for job in self.store.due_jobs("persist", self.clock(), 10):
            payload = self.store.get_payload(job.payload_id)
            if payload is None or payload.chain_token_id is None or payload.shredded:
                self.store.finish_jobs([job.id], "cancelled")
                continue
            sign = functools.partial(self.chain.sign_persist, payload.chain_token_id)
            self._send("persist", [job], sign)

    def _send(self, kind: str, jobs: list[Job], sign: Callable[[], object]) -> bool:
        """Sign, record, broadcast; True if sent, False if refused (the jobs are retried)."""
        try:
            signed = sign()
        except ChainUnavailable:
            raise
        except ChainError as exc:  # refused at estimation: a revert we can name
            log.warning("%s of %d job(s) refused: %s", kind, len(jobs), exc.description)
            self._retry(jobs, exc.description)
            return False
        assert isinstance(signed, SignedTx)
        self.store.record_sent([j.id for j in jobs], kind, signed.tx_hash, signed.raw, signed.nonce,
                               self.clock(), lease=(LEASE, self.holder))  # fmt: skip
        if not self._broadcast(signed.tx_hash, signed.raw):
            return False
        log.info("sent %s of %d token(s): %s", kind, len(jobs), signed.tx_hash)
        return True

    # Follower ----------------------------------------------------------------------------------

    def follow(self) -> int:
        """Apply new contract events; returns how many were applied."""
        if not self._leader():
            return 0
        with self._following:  # the follower's thread and the outbox's round
            try:
                return self._follow()
            except LeaseLost as exc:  # what landed stays (applying an event twice is harmless)
                log.warning("follower round given up: %s", exc)
                return 0

    def _follow(self) -> int:
        head = self.chain.confirmed_block(self.confirmations)
        self.chain_ok = True
        cursor_text = self.store.get_kv("follower_block")
        cursor = int(cursor_text) if cursor_text else self.chain.deployment.block_number - 1
        if head <= cursor:
            return 0
        to_block = min(head, cursor + 2000)
        events = self.chain.events(cursor + 1, to_block)
        for start in range(0, len(events), EVENTS_PER_TRANSACTION):
            chunk = events[start : start + EVENTS_PER_TRANSACTION]
            with self.store.transaction():
                for event in chunk:
                    self.apply(event)
                # Their jobs are done now, so the outbox will not ask for these receipts: the
                # events are what says the transactions were mined.
                self.store.mark_mined({event.tx_hash for event in chunk})
            self._pace()
        self.store.set_kv("follower_block", str(to_block))
        if events:
            self.checkpoint_if_shredded()  # a wallet burn among them shreds: the counter moved
        return len(events)

    def apply(self, event: ChainEvent) -> None:
        """Fold one contract event into the store. Applying an event twice is harmless.

        Called inside a transaction, the event lands with it (the follower lands a chunk of
        events at a time); otherwise, alone.
        """
        args = event.args
        if event.name == "Transfer":
            src, dst = str(args["from"]).lower(), str(args["to"]).lower()
            token_id = int(args["id"])  # Solady names it `id`
            if src == ZERO:
                self._mint_to[token_id] = dst
            elif dst == ZERO:
                payload_id = self.store.set_burned(token_id, event.tx_hash, self.clock())
                if payload_id:
                    log.info("token %d burned on chain: payload shredded", token_id)
            else:
                self.store.set_owner(token_id, dst)
        elif event.name == "CommitmentPublished":
            token_id = int(args["tokenId"])
            owner = self._mint_to.pop(token_id, None)
            self.store.set_minted(bytes(args["commitment"]), token_id, event.tx_hash, owner)
        elif event.name == "Unlocked":  # persist() emits it, with TokenExpiryUpdated to 0
            self.store.set_persistent(int(args["tokenId"]))


def _refused_by_contract(job: Job) -> bool:
    """Whether the job's last try failed on the contract: at estimation, or reverted on chain."""
    error = job.last_error or ""
    return error == REVERTED or error.startswith(CONTRACT_REFUSED)


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds pass (for the CLI and tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()
