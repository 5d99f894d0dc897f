//! What bounds a query on the server: its own memory budget inside the server's, a time
//! limit, and a cap on how many run at once (the rest wait their turn).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use datafusion::error::Result;
use datafusion::execution::memory_pool::{
    FairSpillPool, GreedyMemoryPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// `[server]`'s limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Memory one query may hold (sorts, joins and aggregations spill to disk past it
    /// where DataFusion can; the query fails in one line where it cannot).
    pub query_memory: usize,
    /// Memory all running queries together may hold.
    pub server_memory: usize,
    pub query_timeout: Duration,
    /// Queries that run at once; more wait for a turn, within their time limit.
    pub concurrent_queries: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            query_memory: 1 << 30,
            server_memory: 4 << 30,
            query_timeout: Duration::from_secs(300),
            concurrent_queries: 8,
        }
    }
}

/// The limits as the server applies them.
pub(crate) struct Admission {
    limits: Limits,
    server_pool: Arc<GreedyMemoryPool>,
    turns: Arc<Semaphore>,
}

impl Admission {
    pub(crate) fn new(limits: Limits) -> Admission {
        Admission {
            limits,
            server_pool: Arc::new(GreedyMemoryPool::new(limits.server_memory)),
            turns: Arc::new(Semaphore::new(limits.concurrent_queries.max(1))),
        }
    }

    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Waits for a turn to run a query.
    pub(crate) async fn turn(&self) -> OwnedSemaphorePermit {
        self.turns
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed")
    }

    /// A runtime for one query, `base`'s (its object stores, disk and caches) but for its
    /// memory pool, which draws on the query's own budget and the server's.
    pub(crate) fn runtime(&self, base: &RuntimeEnv) -> Result<Arc<RuntimeEnv>> {
        let pool = QueryPool {
            own: FairSpillPool::new(self.limits.query_memory),
            server: self.server_pool.clone(),
            limit: self.limits.query_memory,
        };
        RuntimeEnvBuilder::from_runtime_env(base)
            .with_memory_pool(Arc::new(pool))
            .build_arc()
    }

    /// Bytes all running queries hold now.
    pub(crate) fn memory_in_use(&self) -> usize {
        self.server_pool.reserved()
    }

    /// A reading of the memory in use that holds nothing else of the server's (the metrics
    /// endpoint outlives the service; it must not keep the service's parts alive).
    pub(crate) fn memory_gauge(&self) -> impl Fn() -> usize + Send + Sync + 'static {
        let pool = self.server_pool.clone();
        move || pool.reserved()
    }
}

/// A query's memory: granted only when both its own budget and the server's allow. Within
/// its own budget the operators that can spill share it fairly (DataFusion's pool for
/// spilling; a greedy one lets one partition's operator take it all). A grouping of twice
/// the budget spills and finishes; a global sort of twice the budget still fails, in one
/// line, when its merge of what it spilled finds no room (DataFusion 55).
#[derive(Debug)]
struct QueryPool {
    own: FairSpillPool,
    server: Arc<GreedyMemoryPool>,
    limit: usize,
}

impl fmt::Display for QueryPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "query pool ({} MiB)", self.limit >> 20)
    }
}

impl MemoryPool for QueryPool {
    fn name(&self) -> &str {
        "kubetrail-query"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.own.register(consumer);
        self.server.register(consumer);
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.own.unregister(consumer);
        self.server.unregister(consumer);
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.own.grow(reservation, additional);
        self.server.grow(reservation, additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.own.shrink(reservation, shrink);
        self.server.shrink(reservation, shrink);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        self.own.try_grow(reservation, additional)?;
        if let Err(e) = self.server.try_grow(reservation, additional) {
            self.own.shrink(reservation, additional);
            return Err(e);
        }
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.own.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        MemoryLimit::Finite(self.limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_held_to_its_budget_and_the_servers() {
        let admission = Admission::new(Limits {
            query_memory: 100,
            server_memory: 150,
            ..Limits::default()
        });
        let base = RuntimeEnv::default();
        let (a, b) = (
            admission.runtime(&base).unwrap(),
            admission.runtime(&base).unwrap(),
        );
        let ra = MemoryConsumer::new("a").register(&a.memory_pool);
        let rb = MemoryConsumer::new("b").register(&b.memory_pool);
        ra.try_grow(90).unwrap();
        assert!(ra.try_grow(20).is_err(), "past its own 100");
        assert!(rb.try_grow(80).is_err(), "past the server's 150");
        assert_eq!(admission.memory_in_use(), 90);
        rb.try_grow(60).unwrap();
        ra.free();
        assert_eq!(admission.memory_in_use(), 60);
    }
}
