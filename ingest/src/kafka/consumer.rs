//! The consumer thread: polls Kafka, frames records for the decoding workers, and drives the
//! commits.
//!
//! It is a plain thread, not a task: framing and the stage barrier block, which must stay
//! off the async reactor, and librdkafka's rebalance callbacks run inside `poll` on this
//! thread, where they may block until the writer has committed what the revoked partitions
//! gave us.
//! Every hand-over to the writer is a bounded channel, so a slow lake stops the polling
//! (and librdkafka's own prefetch queue is capped) instead of growing memory.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use kubetrail_lake::Origin;
use kubetrail_schemas::{SourceFormat, Table};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientConfig, ClientContext, Message, Offset, Statistics, TopicPartitionList};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

use super::broker_failures::BrokerFailures;
use super::decoding::{DecodePool, Taken};
use super::position::{PartitionId, TableOffsets};
use super::writer::{MarkerUpdate, WriteError, WriterRequest};
use super::{KafkaIngest, KafkaReport};
use crate::error::IngestError;
use crate::metrics::IngestMetrics;

/// The most input a Kafka ingester's batches of one table hold, whatever the settings ask
/// (the default, 128 MiB, is the most): a backlog fills every batch to its limit, and at the
/// largest limit a setting allows (1 GiB) a 1M-record backlog peaked at 1.5 GB of memory;
/// cut at 192 MiB, with the 128 MiB fetch queue below, at up to 1,034 MB, at 128 MiB 862 MB.
/// A file ingest, which reads a known input once, keeps the setting.
const MOST_BATCH_BYTES: usize = 128 << 20;

/// How often an idle ingester asks the brokers whether it has caught up.
const CAUGHT_UP_CHECK: Duration = Duration::from_secs(1);

/// Failed commits or marker reads in a row an ingester survives (each after the storage
/// client's own bounded retries, and with a backoff of 1, 2, 4, 8, 16 s before reading the
/// markers again: about half a minute of outage) before it ends with the last error.
const MOST_LAKE_FAILURES: u32 = 5;

/// Commits the consumer sends on without waiting for their answers. Waiting for each one
/// stopped polling and decoding while the writer finished encoding the batch and wrote the
/// commit; with a few in flight the pool decodes meanwhile, and the writer's bounded
/// channel still stops the consumer when the lake falls behind.
const MOST_COMMITS_IN_FLIGHT: usize = 4;

/// Runs until `stop` is set, until the lake holds every record of the topics (when asked
/// to stop there), or until an error; commits everything it took in before returning.
pub(crate) fn consume(
    options: KafkaIngest,
    writer: mpsc::Sender<WriterRequest>,
    stop: Arc<AtomicBool>,
    metrics: Arc<IngestMetrics>,
) -> Result<KafkaReport, IngestError> {
    let state = Arc::new(Mutex::new(IngestState::new(
        &options,
        writer,
        metrics.clone(),
    )?));
    let context = IngestContext {
        state: state.clone(),
        metrics: metrics.clone(),
        failures: BrokerFailures::new(&options.client_options, Some(metrics.clone())),
    };
    let consumer: BaseConsumer<IngestContext> = client_config(&options)
        .create_with_context(context)
        .map_err(|e| IngestError::Kafka(format!("cannot create the Kafka consumer: {e}")))?;
    let topics: Vec<&str> = options.topics.iter().map(|t| t.name.as_str()).collect();
    consumer
        .subscribe(&topics)
        .map_err(|e| IngestError::Kafka(format!("cannot subscribe to {topics:?}: {e}")))?;
    info!(group = %options.group, topics = ?topics, "consuming");

    let outcome = poll_until_done(&consumer, &state, &options, &stop);
    let outcome = outcome.and_then(|()| {
        let mut s = lock(&state);
        let flushed = s.flush(true);
        if s.survive_failed_commit(flushed)? {
            commit_advisory(&consumer, &s, CommitMode::Sync);
        }
        Ok(())
    });
    if outcome.is_err() {
        // Nothing more may be committed by this ingester: another one resumes from the
        // lake's markers.
        lock(&state).failed = true;
    }
    leave_group(&consumer);
    drop(consumer);
    outcome?;
    let s = lock(&state);
    Ok(s.report.clone())
}

/// Gives the partitions back while still polling, so that closing the consumer finds no
/// assignment under way: librdkafka aborts the process when a group terminates in the middle
/// of one (`rd_kafka_cgrp_terminated: assert: !rd_kafka_assignment_in_progress`, seen once in
/// the Kafka tests; librdkafka#4027). The revoke callback that runs here finds nothing left
/// to flush. Records polled meanwhile are left for whoever reads next: the lake's markers
/// say where that is.
fn leave_group(consumer: &BaseConsumer<IngestContext>) {
    consumer.unsubscribe();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let _ = consumer.poll(Duration::from_millis(50));
        if consumer.assignment().is_ok_and(|a| a.count() == 0) {
            break;
        }
    }
}

fn poll_until_done(
    consumer: &BaseConsumer<IngestContext>,
    state: &Mutex<IngestState>,
    options: &KafkaIngest,
    stop: &AtomicBool,
) -> Result<(), IngestError> {
    let mut backoff = Duration::ZERO;
    let mut last_check = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        {
            let mut s = lock(state);
            if let Some(e) = s.failure.take() {
                return Err(e);
            }
            if s.rewind_pending {
                s.rewind(consumer)?;
            }
        }
        let idle = match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                backoff = Duration::ZERO;
                let mut s = lock(state);
                let taken = s.take(&message, consumer).map(|()| false);
                s.survive_failed_commit(taken)?;
                false
            }
            Some(Err(e)) => {
                // librdkafka reconnects by itself; we only slow down and say so.
                consumer.context().failures.error(&e, "");
                backoff = (backoff * 2).clamp(Duration::from_millis(100), Duration::from_secs(5));
                std::thread::sleep(backoff);
                true
            }
            None => true,
        };
        consumer.context().failures.check()?;
        {
            let mut s = lock(state);
            if s.linger_due() {
                let flushed = s.flush(false).map(|_| false);
                s.survive_failed_commit(flushed)?;
            }
            let landed = s.settle(false);
            if s.survive_failed_commit(landed)? && s.in_flight.is_empty() {
                commit_advisory(consumer, &s, CommitMode::Async);
            }
        }
        if options.until_caught_up && idle && last_check.elapsed() >= CAUGHT_UP_CHECK {
            last_check = Instant::now();
            // Read to the end as far as the client knows: commit now rather than after the
            // linger, which a batch run would only sit through.
            let mut s = lock(state);
            if s.oldest_pending.is_some() && s.read_to_known_ends(consumer) {
                // Idle and at the end: nothing to overlap the commits with.
                let flushed = s.flush(false).and_then(|_| s.settle(true));
                if s.survive_failed_commit(flushed)? {
                    commit_advisory(consumer, &s, CommitMode::Async);
                }
            }
            drop(s);
            if caught_up(consumer, state)? {
                info!("caught up: the lake holds every record the topics had");
                return Ok(());
            }
        }
    }
    info!("stopping: flushing what was read");
    Ok(())
}

/// The lake holds every record the topics had when asked: this ingester's partitions
/// read to their end, and every other partition committed to its end by whoever owns it.
/// Judging by the lake rather than by this member's assignment matters when members die:
/// the group may still count a killed member, and its partitions must not be forgotten.
fn caught_up(
    consumer: &BaseConsumer<IngestContext>,
    state: &Mutex<IngestState>,
) -> Result<bool, IngestError> {
    let timeout = Duration::from_secs(5);
    let (topics, mine): (Vec<String>, BTreeMap<PartitionId, Option<i64>>) = {
        let s = lock(state);
        if !s.assigned_once
            || s.oldest_pending.is_some()
            || !s.in_flight.is_empty()
            || !s.read_to_known_ends(consumer)
        {
            return Ok(false);
        }
        let mine = s
            .partitions
            .iter()
            .map(|(id, p)| (id.clone(), p.next))
            .collect();
        (s.formats.keys().cloned().collect(), mine)
    };
    let mut partitions = Vec::new();
    for topic in &topics {
        let metadata = match consumer.fetch_metadata(Some(topic), timeout) {
            Ok(m) => m,
            Err(e) => {
                debug!(topic, "caught-up check: metadata: {e}");
                return Ok(false);
            }
        };
        for t in metadata.topics() {
            partitions.extend(
                t.partitions()
                    .iter()
                    .map(|p| PartitionId::new(t.name(), p.id())),
            );
        }
    }
    // One request per partition, each answered in up to half a second (its answer waits
    // behind the fetch in flight, fetch.wait.max.ms): asked 128 at a time, the check costs a
    // round trip per 128 partitions (a 280-partition topic took 4.8 s at 32 at a time). It
    // runs only once the client's own watermarks say this ingester is at the end.
    let mut answers = Vec::with_capacity(partitions.len());
    for chunk in partitions.chunks(128) {
        std::thread::scope(|scope| {
            let asks: Vec<_> = chunk
                .iter()
                .map(|id| {
                    scope.spawn(move || consumer.fetch_watermarks(&id.topic, id.partition, timeout))
                })
                .collect();
            answers.extend(asks.into_iter().map(|a| a.join()));
        });
    }
    let mut ends = BTreeMap::new();
    for (id, answer) in partitions.iter().zip(answers) {
        match answer {
            Ok(Ok(end)) => {
                ends.insert(id.clone(), end);
            }
            Ok(Err(e)) => {
                debug!(partition = %id, "caught-up check: watermarks: {e}");
                return Ok(false);
            }
            Err(_) => return Ok(false),
        }
    }
    let others: Vec<PartitionId> = partitions
        .into_iter()
        .filter(|id| !mine.contains_key(id))
        .collect();
    let read_to = |next: Option<i64>, (low, high): (i64, i64)| match next {
        Some(n) => n >= high,
        None => high <= low,
    };
    for (id, next) in &mine {
        if !ends.get(id).is_some_and(|end| read_to(*next, *end)) {
            debug!(partition = %id, ?next, end = ?ends.get(id), "not caught up yet");
            return Ok(false);
        }
    }
    if others.is_empty() {
        return Ok(true);
    }
    let held = lock(state).lake_offsets(&others)?;
    Ok(others.iter().zip(held).all(|(id, lake)| {
        ends.get(id)
            .is_some_and(|end| read_to(lake.resume_at(), *end))
    }))
}

/// The partition's low and high watermarks as the client last heard them in fetch answers,
/// without asking the broker; `None` before it has heard any. rdkafka 0.39 wraps only the
/// asking kind.
fn known_watermarks(
    consumer: &BaseConsumer<IngestContext>,
    id: &PartitionId,
) -> Option<(i64, i64)> {
    let topic = std::ffi::CString::new(id.topic.as_bytes()).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client handle is alive for the borrow of `consumer`, `topic` is a NUL-ended
    // string that outlives the call, and librdkafka only writes the two i64s it is given.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            id.partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some((low.max(0), high))
}

/// Tells Kafka where the lake stands, for lag monitoring and tools; reading never starts
/// from these (the lake's markers decide), so a failed commit here costs nothing.
fn commit_advisory(consumer: &BaseConsumer<IngestContext>, state: &IngestState, mode: CommitMode) {
    let mut tpl = TopicPartitionList::new();
    for (id, p) in &state.partitions {
        if let Some(next) = p.lake.resume_at() {
            let _ = tpl.add_partition_offset(&id.topic, id.partition, Offset::Offset(next));
        }
    }
    if tpl.count() > 0 {
        if let Err(e) = consumer.commit(&tpl, mode) {
            debug!("advisory offset commit: {e}");
        }
    }
}

fn client_config(options: &KafkaIngest) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &options.brokers)
        .set("group.id", &options.group)
        .set("client.id", "kubetrail")
        // Offsets live in the lake; Kafka's committed offsets are only written for lag.
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // A partition the lake has nothing of is read from its first record: nothing lost.
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        // librdkafka prefetches up to 64 MiB by default, and fetches again only once its
        // queue is below that. With 16 MiB, each fetch answer (up to fetch.max.bytes, 50 MiB)
        // was drained before the next one came: reading a 1M-record backlog the consumer
        // waited 24 of 38 s for records; at 64 MiB, 7 s of 17 (group join included). Once
        // decoding ran on every core, 64 MiB again ran dry between fetches: 128 MiB read the
        // backlog at 256k records/s where 64 MiB read 149k-160k, for ≈ 100 MB more memory.
        // The queue is bounded, so memory stays flat whatever the backlog.
        .set("queued.max.messages.kbytes", "131072")
        // Once the queue is over that, librdkafka postpones the partition's next fetch by
        // this long (1 s by default), and the consumer drained 64 MiB well within it: the
        // whole ingester sat idle half of each second (reading a 1M-record backlog at 100k
        // records/s, 146k with 20 ms, on 2 cores; 0 ms fetched no faster than 20).
        .set("fetch.queue.backoff.ms", "20")
        .set("statistics.interval.ms", "5000")
        // Info: librdkafka logs a connection cut during its handshake at that level only
        // (see broker_failures).
        .set_log_level(RDKafkaLogLevel::Info);
    options.client_options.apply(&mut config);
    config
}

fn lock(state: &Mutex<IngestState>) -> MutexGuard<'_, IngestState> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One assigned partition.
#[derive(Debug)]
struct Position {
    source: Arc<str>,
    /// What each table holds of it (committed by anyone, read at assignment).
    lake: TableOffsets,
    /// The last offset taken in by this ingester (buffered, staged or committed).
    last: Option<i64>,
    /// The next offset expected; `None` while reading from the earliest record.
    next: Option<i64>,
    /// What was taken in and not committed has been dropped: records are ignored until
    /// the poll loop seeks the partition back to where the lake stands.
    rewind: bool,
    /// The topic's format; `None`: recognised per record.
    format: Option<SourceFormat>,
    /// The decoding worker all of the partition's records go to, when they must be decoded
    /// in order (see [`super::decoding`]).
    lane: Option<usize>,
}

impl Position {
    /// The marker `table` needs to record everything taken in, if it lags.
    fn marker_for(&self, table: Table) -> Option<(Option<i64>, i64)> {
        let last = self.last?;
        let held = self.lake.get(table);
        (held.is_none_or(|h| h < last)).then_some((held, last))
    }
}

/// Everything the consumer thread and its rebalance callbacks share.
struct IngestState {
    group: String,
    formats: HashMap<String, Option<SourceFormat>>,
    linger: Duration,
    marker_interval: Duration,
    writer: mpsc::Sender<WriterRequest>,
    metrics: Arc<IngestMetrics>,
    pool: DecodePool,
    partitions: BTreeMap<PartitionId, Position>,
    /// The partition of the last record taken in.
    hot: Option<PartitionId>,
    /// When the oldest record not yet committed was taken in.
    oldest_pending: Option<Instant>,
    /// When the first record was taken in.
    first_record: Option<Instant>,
    last_heartbeat: Instant,
    assigned_once: bool,
    /// An error met inside a rebalance callback, for the poll loop to return.
    failure: Option<IngestError>,
    /// After a failure nothing more is committed, not even by the closing revoke.
    failed: bool,
    /// Some partition waits for [`IngestState::rewind`].
    rewind_pending: bool,
    /// Commits or marker reads failed since the last commit that landed.
    lake_failures: u32,
    /// Commits sent to the writer and not answered yet, oldest first.
    in_flight: VecDeque<InFlight>,
    report: KafkaReport,
}

/// The writer's answer to a commit: the table version and the rows it published.
type CommitAnswer = Result<(u64, u64), WriteError>;

/// A commit sent to the writer, its answer still to come.
struct InFlight {
    table: Table,
    answer: oneshot::Receiver<CommitAnswer>,
}

impl IngestState {
    fn new(
        options: &KafkaIngest,
        writer: mpsc::Sender<WriterRequest>,
        metrics: Arc<IngestMetrics>,
    ) -> Result<Self, IngestError> {
        let mut limits = options.limits;
        if limits.max_bytes > MOST_BATCH_BYTES {
            info!(
                "batches are cut at {} MiB of input, not {} (a Kafka ingester's memory stays \
                 under 1 GiB whatever the backlog)",
                MOST_BATCH_BYTES >> 20,
                limits.max_bytes >> 20
            );
            limits.max_bytes = MOST_BATCH_BYTES;
        }
        let pool = DecodePool::start(&options.decode, limits, &writer)?;
        info!(workers = pool.workers(), "decoding on a pool");
        Ok(IngestState {
            group: options.group.clone(),
            formats: options
                .topics
                .iter()
                .map(|t| (t.name.clone(), t.format))
                .collect(),
            linger: options.linger,
            marker_interval: options.marker_interval,
            writer,
            metrics,
            pool,
            partitions: BTreeMap::new(),
            hot: None,
            oldest_pending: None,
            first_record: None,
            last_heartbeat: Instant::now(),
            assigned_once: false,
            failure: None,
            failed: false,
            rewind_pending: false,
            lake_failures: 0,
            in_flight: VecDeque::new(),
            report: KafkaReport::default(),
        })
    }

    /// Whether this ingester has read its partitions to the ends the client last heard of
    /// from the brokers (no request: asking each partition costs a round trip that waits
    /// behind the fetch in flight).
    fn read_to_known_ends(&self, consumer: &BaseConsumer<IngestContext>) -> bool {
        self.partitions
            .iter()
            .all(|(id, p)| match known_watermarks(consumer, id) {
                Some((low, high)) => p.next.map_or(high <= low, |n| n >= high),
                None => false,
            })
    }

    /// Takes in one record, after the range before it if Kafka no longer has that.
    fn take(
        &mut self,
        message: &impl Message,
        consumer: &BaseConsumer<IngestContext>,
    ) -> Result<(), IngestError> {
        let offset = message.offset();
        let topic = message.topic();
        self.metrics.record_in(topic);
        // Records come in runs of one partition: the last one found is nearly always it,
        // found without building a key (an allocation) or scanning the assignment (hundreds
        // of partitions on a backlog).
        let hot = self
            .hot
            .as_ref()
            .filter(|id| id.partition == message.partition() && *id.topic == *topic);
        let (found, missed) = match hot.and_then(|id| self.partitions.get_mut(id).map(|p| (id, p)))
        {
            Some((id, position)) => (Some((id.clone(), position)), false),
            None => {
                let scanned = self
                    .partitions
                    .iter_mut()
                    .find(|(id, _)| id.partition == message.partition() && *id.topic == *topic)
                    .map(|(id, position)| (id.clone(), position));
                (scanned, true)
            }
        };
        let Some((id, position)) = found else {
            // Left over from a partition revoked meanwhile: its new owner reads it.
            return Ok(());
        };
        if missed {
            self.hot = Some(id.clone());
        }
        if position.rewind || position.last.is_some_and(|last| offset <= last) {
            return Ok(());
        }
        let mut position = position;
        if let Some(from) = position.next.filter(|next| offset > *next) {
            self.record_expired(&id, from, offset, consumer)?;
            // A second lookup only on a jump: the scan above is the hot path's one.
            let Some(p) = self.partitions.get_mut(&id) else {
                return Ok(());
            };
            position = p;
        }
        self.report.records += 1;
        self.first_record.get_or_insert_with(Instant::now);
        self.oldest_pending.get_or_insert_with(Instant::now);
        let wanted = Table::INGESTED.map(|t| !position.lake.holds(t, offset));
        position.last = Some(offset);
        position.next = Some(offset + 1);
        let handed_over = self.pool.push(Taken {
            source: &position.source,
            offset,
            wanted,
            format: position.format,
            problem: None,
            value: message.payload().unwrap_or_default(),
            lane: position.lane,
        })?;
        // A worker fills a batch only by decoding a chunk: no need to ask after every record.
        if handed_over {
            self.commit_full()?;
        }
        Ok(())
    }

    /// Commits the tables a decoding worker staged a full batch of; the others wait for
    /// their own turn.
    fn commit_full(&mut self) -> Result<(), IngestError> {
        let tables = self.pool.full_tables();
        if tables.is_empty() {
            return Ok(());
        }
        self.pool.stage(&tables)?;
        for table in tables {
            self.commit_table(table)?;
        }
        Ok(())
    }

    /// Records the records `from..offset` of partition `id` if Kafka no longer has them
    /// although the lake never held them: retention deleted them while the ingester was
    /// behind or away, and librdkafka skipped to the earliest record left. The range
    /// becomes one dead letter (so a responder can query what is missing), a counter and a
    /// warning, and reading goes on. Offsets also jump over transaction markers and
    /// compacted records; the earliest offset the broker still has tells the two apart, at
    /// one request per jump.
    fn record_expired(
        &mut self,
        id: &PartitionId,
        from: i64,
        offset: i64,
        consumer: &BaseConsumer<IngestContext>,
    ) -> Result<(), IngestError> {
        let earliest = consumer
            .fetch_watermarks(&id.topic, id.partition, Duration::from_secs(5))
            .map(|(low, _)| low);
        let (to, why) = match earliest {
            Ok(low) if low <= from => return Ok(()),
            Ok(low) => (
                low.min(offset) - 1,
                format!("the partition's earliest offset is now {low}"),
            ),
            Err(e) => (
                offset - 1,
                format!("not delivered, and the earliest offset could not be read to tell ({e})"),
            ),
        };
        let Some(position) = self.partitions.get_mut(id) else {
            return Ok(());
        };
        let records = to - from + 1;
        let reason = format!(
            "offsets {from}..{to} of {id} ({records} records) expired in Kafka (retention) \
             before the lake held them: {why}"
        );
        position.last = Some(to);
        position.next = Some(to + 1);
        if position.lake.holds(Table::DeadLetters, from) {
            // Recorded before a crash or a rewind already.
            debug!("{reason} (already recorded)");
            return Ok(());
        }
        warn!("{reason}");
        self.metrics
            .expired(&id.topic, id.partition, records as u64);
        self.report.expired += records as u64;
        self.oldest_pending.get_or_insert_with(Instant::now);
        self.pool.push(Taken {
            source: &position.source,
            offset: from,
            wanted: Table::INGESTED.map(|_| true),
            format: position.format,
            problem: Some(reason.into()),
            value: &[],
            lane: position.lane,
        })?;
        self.commit_full()
    }

    fn linger_due(&self) -> bool {
        self.oldest_pending
            .is_some_and(|t| t.elapsed() >= self.linger)
    }

    /// Writes out every buffered row and moves the markers of the tables that got rows.
    /// Tables that got none are given the markers too when they have none yet, when
    /// `force` is set (revocation, shutdown), or once per marker interval; between those,
    /// a crash makes the next owner re-read at most a marker interval of records, which
    /// the per-table markers then keep from being written twice. When forced, it waits
    /// for every commit in flight and returns whether one landed.
    fn flush(&mut self, force: bool) -> Result<bool, IngestError> {
        if self.failed {
            return Ok(false);
        }
        let mut tables = self.pool.stage(&Table::INGESTED.into())?;
        let heartbeat = force || self.last_heartbeat.elapsed() >= self.marker_interval;
        for table in Table::INGESTED {
            let lagging = self.partitions.values().filter_map(|p| p.marker_for(table));
            let (any, first) = lagging.fold((false, false), |(_, first), (held, _)| {
                (true, first || held.is_none())
            });
            if any && (heartbeat || first) {
                tables.insert(table);
            }
        }
        for table in tables {
            self.commit_table(table)?;
        }
        if heartbeat {
            self.last_heartbeat = Instant::now();
        }
        self.oldest_pending = None;
        if force {
            self.settle(true)
        } else {
            Ok(false)
        }
    }

    /// Sends `table`'s commit: everything staged, with each partition's marker moved to
    /// the last record taken in. It expects the markers where this ingester's last commit
    /// put them, landed or still in flight: if that one fails, this one is fenced, and the
    /// first failure's answer rewinds everything. Waits only while too many are in flight.
    fn commit_table(&mut self, table: Table) -> Result<(), IngestError> {
        let mut markers = Vec::new();
        for (id, p) in &mut self.partitions {
            if let Some((expected, version)) = p.marker_for(table) {
                markers.push(MarkerUpdate {
                    key: id.marker(&self.group),
                    expected,
                    version,
                    origin: Origin::Kafka {
                        topic: id.topic.to_string(),
                        partition: id.partition,
                        after: expected,
                        last: version,
                    },
                });
                p.lake.set(table, version);
            }
        }
        let (reply, answer) = oneshot::channel();
        self.writer
            .blocking_send(WriterRequest::Commit {
                table,
                markers,
                reply,
            })
            .map_err(|_| IngestError::Worker("the lake writer stopped".into()))?;
        self.in_flight.push_back(InFlight { table, answer });
        if self.in_flight.len() > MOST_COMMITS_IN_FLIGHT {
            if let Some((table, answer)) = self.oldest_answer(true)? {
                self.accept(table, answer)?;
            }
        }
        Ok(())
    }

    /// Reads the answers of the commits in flight that have come, or waits for all of
    /// them; stops at the first failure, which it returns. Returns whether one landed.
    fn settle(&mut self, wait: bool) -> Result<bool, IngestError> {
        let mut landed = false;
        while let Some((table, answer)) = self.oldest_answer(wait)? {
            self.accept(table, answer)?;
            landed = true;
        }
        Ok(landed)
    }

    /// The oldest commit in flight and its answer, once it has come (waited for if `wait`).
    fn oldest_answer(&mut self, wait: bool) -> Result<Option<(Table, CommitAnswer)>, IngestError> {
        let stopped = || IngestError::Worker("the lake writer stopped".into());
        if wait {
            let Some(oldest) = self.in_flight.pop_front() else {
                return Ok(None);
            };
            let answer = oldest.answer.blocking_recv().map_err(|_| stopped())?;
            return Ok(Some((oldest.table, answer)));
        }
        let Some(oldest) = self.in_flight.front_mut() else {
            return Ok(None);
        };
        let answer = match oldest.answer.try_recv() {
            Ok(answer) => answer,
            Err(oneshot::error::TryRecvError::Empty) => return Ok(None),
            Err(oneshot::error::TryRecvError::Closed) => return Err(stopped()),
        };
        let table = oldest.table;
        self.in_flight.pop_front();
        Ok(Some((table, answer)))
    }

    fn accept(&mut self, table: Table, answer: CommitAnswer) -> Result<(), IngestError> {
        let (version, rows) = answer.map_err(|e| match e {
            WriteError::Fenced { .. } => IngestError::Fenced(e.to_string()),
            other => IngestError::CommitFailed(other.to_string()),
        })?;
        self.lake_failures = 0;
        *self.report.rows.entry(table).or_default() += rows;
        self.report.commits += 1;
        self.report.reading = self.first_record.map(|t| t.elapsed());
        debug!(%table, version, rows, "committed");
        Ok(())
    }

    /// What the lake's tables hold of each partition, read now.
    fn lake_offsets(&self, ids: &[PartitionId]) -> Result<Vec<TableOffsets>, IngestError> {
        let keys = ids.iter().map(|id| id.marker(&self.group)).collect();
        let (reply, answer) = oneshot::channel();
        self.writer
            .blocking_send(WriterRequest::Markers { keys, reply })
            .map_err(|_| IngestError::Worker("the lake writer stopped".into()))?;
        let per_table = answer
            .blocking_recv()
            .map_err(|_| IngestError::Worker("the lake writer stopped".into()))?
            .map_err(IngestError::from)?;
        Ok((0..ids.len())
            .map(|i| {
                let mut lake = TableOffsets::default();
                for (table, versions) in &per_table {
                    if let Some(Some(v)) = versions.get(i) {
                        lake.set(*table, *v);
                    }
                }
                lake
            })
            .collect())
    }

    /// Reads where the lake stands for newly assigned partitions and points `tpl` there.
    fn assign(&mut self, tpl: &mut TopicPartitionList) -> Result<(), IngestError> {
        let ids: Vec<PartitionId> = tpl
            .elements()
            .iter()
            .map(|e| PartitionId::new(e.topic(), e.partition()))
            .collect();
        let held = self.lake_offsets(&ids)?;
        for (id, lake) in ids.into_iter().zip(held) {
            let resume = lake.resume_at();
            let offset = resume.map_or(Offset::Beginning, Offset::Offset);
            tpl.set_partition_offset(&id.topic, id.partition, offset)
                .map_err(|e| IngestError::Kafka(format!("seeking {id}: {e}")))?;
            match resume {
                Some(at) => {
                    info!(partition = %id, "assigned; the lake holds it up to offset {}", at - 1)
                }
                None => {
                    info!(partition = %id, "assigned; new to the lake, reading from the beginning")
                }
            }
            let format = self.formats.get(&*id.topic).copied().flatten();
            let lane = format.is_none_or(|f| f == SourceFormat::AwsVpcFlow);
            self.partitions.insert(
                id.clone(),
                Position {
                    source: Arc::from(id.source()),
                    lake,
                    last: None,
                    next: resume,
                    rewind: false,
                    format,
                    lane: lane.then_some(self.partitions.len()),
                },
            );
        }
        self.assigned_once = true;
        Ok(())
    }

    /// Turns a fenced commit, or a failed one while failures are few, into a rewind; any
    /// other outcome passes through. Returns whether something was committed.
    ///
    /// Fenced means another ingester committed a partition this one still counts as its
    /// own: the group moved it (a rebalance this member has not seen yet, or a session
    /// that expired while a commit was slow). A failed commit did not land (the writer
    /// checks the markers when only the answer may have been lost). Exiting would be safe
    /// in both cases but would take the member's partitions down with it; instead
    /// everything not committed is dropped and read again from the lake's markers, which
    /// a new owner also heeds.
    fn survive_failed_commit(
        &mut self,
        outcome: Result<bool, IngestError>,
    ) -> Result<bool, IngestError> {
        match outcome {
            Err(IngestError::Fenced(why)) => {
                warn!("{why}; dropping what was not committed and re-reading from the lake");
                self.abandon_uncommitted()?;
                Ok(false)
            }
            Err(IngestError::CommitFailed(why)) if self.lake_failures < MOST_LAKE_FAILURES => {
                self.lake_failures += 1;
                warn!(
                    "commit failed ({} of {MOST_LAKE_FAILURES} in a row survived): {why}; \
                     dropping what was not committed and re-reading from the lake",
                    self.lake_failures
                );
                self.abandon_uncommitted()?;
                Ok(false)
            }
            other => other,
        }
    }

    /// Drops every row taken in and not committed, here and staged in the writer (a
    /// fenced commit drops the rows of every partition it covered, not only the lost
    /// one's), and marks every partition for a rewind.
    fn abandon_uncommitted(&mut self) -> Result<(), IngestError> {
        // Commits sent after the one that failed may land still (those whose partitions it
        // did not cover); the others fail as fenced, for they expected the markers where
        // the failed one would have put them. Either way they end before anything is read
        // again, and rows that landed are counted.
        while let Some((table, answer)) = self.oldest_answer(true)? {
            if let Err(e) = self.accept(table, answer) {
                debug!(%table, "a commit sent after the one that failed: {e}");
            }
        }
        self.pool.discard()?;
        self.oldest_pending = None;
        for p in self.partitions.values_mut() {
            p.rewind = true;
            p.last = None;
            p.next = None;
        }
        self.rewind_pending = !self.partitions.is_empty();
        self.report.rewinds += 1;
        self.metrics.rewind();
        self.writer
            .blocking_send(WriterRequest::DiscardAll)
            .map_err(|_| IngestError::Worker("the lake writer stopped".into()))
    }

    /// Seeks the partitions marked for a rewind to where the lake stands now. A seek the
    /// client refuses (the partition is between assignments), or markers the lake cannot
    /// give yet, are tried again next loop.
    fn rewind(&mut self, consumer: &BaseConsumer<IngestContext>) -> Result<(), IngestError> {
        let ids: Vec<PartitionId> = self
            .partitions
            .iter()
            .filter(|(_, p)| p.rewind)
            .map(|(id, _)| id.clone())
            .collect();
        self.rewind_pending = false;
        if ids.is_empty() {
            return Ok(());
        }
        if self.lake_failures > 0 {
            std::thread::sleep(Duration::from_secs(1 << (self.lake_failures - 1).min(4)));
        }
        let held = match self.lake_offsets(&ids) {
            Ok(held) => held,
            Err(e) if self.lake_failures < MOST_LAKE_FAILURES => {
                self.lake_failures += 1;
                warn!(
                    "reading the lake's markers failed ({} of {MOST_LAKE_FAILURES} in a row \
                     survived): {e}",
                    self.lake_failures
                );
                self.rewind_pending = true;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let mut pending = false;
        for (id, lake) in ids.into_iter().zip(held) {
            let resume = lake.resume_at();
            let offset = resume.map_or(Offset::Beginning, Offset::Offset);
            // Seeking purges what librdkafka had prefetched for the partition, so nothing
            // read before the rewind arrives after it.
            match consumer.seek(&id.topic, id.partition, offset, Duration::from_secs(5)) {
                Ok(()) => {
                    info!(partition = %id, ?resume, "rewound to where the lake stands");
                    if let Some(p) = self.partitions.get_mut(&id) {
                        p.lake = lake;
                        p.next = resume;
                        p.rewind = false;
                    }
                }
                Err(e) => {
                    debug!(partition = %id, "rewind: seek refused for now: {e}");
                    pending = true;
                }
            }
        }
        self.rewind_pending = pending;
        Ok(())
    }

    /// Forgets partitions given up (after [`IngestState::flush`] committed their rows).
    fn forget(&mut self, tpl: &TopicPartitionList) {
        let mut sources = Vec::new();
        for e in tpl.elements() {
            let id = PartitionId::new(e.topic(), e.partition());
            sources.extend(self.partitions.remove(&id).map(|p| p.source));
            self.metrics.forget_partition(e.topic(), e.partition());
            info!(partition = %id, "revoked");
        }
        self.pool.forget(sources);
    }
}

impl From<WriteError> for IngestError {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::Fenced { .. } => IngestError::Fenced(e.to_string()),
            other => IngestError::Kafka(other.to_string()),
        }
    }
}

/// librdkafka's callbacks: rebalances, statistics, errors and logs.
struct IngestContext {
    state: Arc<Mutex<IngestState>>,
    metrics: Arc<IngestMetrics>,
    failures: BrokerFailures,
}

impl ClientContext for IngestContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        self.failures.log(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.failures.error(&error, reason);
    }

    /// Lag is measured to the lake, not to Kafka's committed offsets: records a partition
    /// holds that the lake does not yet, which is what a responder waiting for data asks.
    fn stats(&self, statistics: Statistics) {
        let state = lock(&self.state);
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                let id = PartitionId::new(topic, *partition);
                // Partition -1 is librdkafka's internal one; -1 offsets are not known yet.
                let Some(position) = state.partitions.get(&id) else {
                    continue;
                };
                if p.hi_offset < 0 {
                    continue;
                }
                let in_lake = position.lake.resume_at().unwrap_or(p.lo_offset.max(0));
                self.metrics
                    .lag(topic, *partition, (p.hi_offset - in_lake).max(0));
            }
        }
    }
}

impl ConsumerContext for IngestContext {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let mut state = lock(&self.state);
        match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                // The group coordinator answered: the settings are good.
                self.failures.answered();
                let assigned = if state.failed {
                    Err(IngestError::Kafka("the ingester has stopped".into()))
                } else {
                    state.assign(tpl)
                };
                let result = match assigned {
                    Ok(()) if cooperative => consumer.incremental_assign(tpl),
                    Ok(()) => consumer.assign(tpl),
                    Err(e) => {
                        // Without the lake's positions reading could not be exactly once:
                        // take nothing and let the poll loop report the error.
                        error!("cannot take the assigned partitions: {e}");
                        state.failure.get_or_insert(e);
                        state.failed = true;
                        if cooperative {
                            Ok(())
                        } else {
                            consumer.unassign()
                        }
                    }
                };
                if let Err(e) = result {
                    error!("assigning partitions: {e}");
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                // Partitions given up are committed before they go. Partitions lost (the
                // session expired, so the group may have handed them out already) are
                // not: their new owner reads them from the lake's markers.
                let outcome = if consumer.assignment_lost() {
                    warn!(
                        "the group took this ingester's partitions away (its session \
                         expired); what it had not committed is left to their new owner"
                    );
                    state.abandon_uncommitted().map(|()| false)
                } else {
                    let flushed = state.flush(true);
                    state.survive_failed_commit(flushed)
                };
                match outcome {
                    Ok(true) => commit_advisory(consumer, &state, CommitMode::Sync),
                    Ok(false) => {}
                    Err(e) => {
                        error!("flushing before giving partitions up: {e}");
                        state.failure.get_or_insert(e);
                        state.failed = true;
                    }
                }
                state.forget(tpl);
                let result = if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                };
                if let Err(e) = result {
                    error!("unassigning partitions: {e}");
                }
            }
            other => error!("rebalance failed: {other:?}"),
        }
    }
}
