//! Password hashing, random tokens, keyed hashes.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b
}

/// 256 random bits, URL-safe.
pub fn random_token() -> String {
    b64(&random_bytes::<32>())
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).ok()
}

/// Tokens are stored only as their SHA-256.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Argon2id with the crate's defaults (m=19 MiB, t=2, p=1: the OWASP recommendation). CPU
/// work: call it inside [`off_the_workers`] (as [`hash_password`] does).
pub(crate) fn hash_password_now(password: &str) -> String {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string()).unwrap_or_default()
}

/// Verifies; an empty or malformed stored hash never verifies. Always does the Argon2 work,
/// so a missing account costs as much time as a wrong password. CPU work: see
/// [`hash_password_now`].
pub(crate) fn verify_password_now(password: &str, stored: &str) -> bool {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| hash_password_now("anpi-dummy-password"));
    let (target, real) = match PasswordHash::new(stored) {
        Ok(_) => (stored, true),
        Err(_) => (dummy.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(target) else { return false };
    Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok() && real
}

/// Who a password hash is for, which decides its lane (its own threads) on the hashing pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Someone at the sign-in form: anyone on the Internet, so possibly a flood. Their hashes
    /// share `cores - 1` threads (at least one), and each thread rests after a hash for as long
    /// as the hash took: a flood of sign-ins gets at most half of those cores, and answer
    /// pages, the outbox and live updates keep the rest.
    Stranger,
    /// Someone already signed in, or holding a one-time link (new passwords, re-entry, recovery
    /// codes): one thread of their own, never behind a flood of strangers.
    Known,
}

/// The bounded pool password hashing runs on. A caller waits for a thread of its lane for at
/// most [`HASH_WAIT`], with at most [`HASH_WAITERS`] waiting in all; beyond either it gets
/// [`StoreError::Busy`](crate::StoreError::Busy). Waiting, not refusing at once, is what keeps a
/// flood cheap: a refused client comes straight back, a waiting one costs nothing.
struct HashPool {
    strangers: LanePool,
    known: LanePool,
}

/// A lane: its own threads, a line of callers waiting for one, and the work handed over.
struct LanePool {
    threads: tokio::sync::Semaphore,
    waiting: tokio::sync::Semaphore,
    work: std::sync::Mutex<std::sync::mpsc::Sender<Job>>,
}

type Job = Box<dyn FnOnce() + Send>;

impl LanePool {
    /// Starts `threads` threads for the lane, of lower priority (nice > 0) when `low`: the
    /// scheduler then prefers answer pages, the outbox and live updates, yet an idle machine
    /// still gives the threads all the time they want.
    fn new(name: &str, threads: usize, low: bool) -> LanePool {
        let (work, jobs) = std::sync::mpsc::channel::<Job>();
        let jobs = std::sync::Arc::new(std::sync::Mutex::new(jobs));
        for i in 0..threads {
            let jobs = jobs.clone();
            let started = std::thread::Builder::new().name(format!("anpi-hash-{name}-{i}")).spawn(move || {
                if low {
                    if let Err(e) = thread_priority::set_current_thread_priority(low_priority()) {
                        tracing::warn!(error = ?e, "cannot lower the priority of a password-hashing thread");
                    }
                }
                loop {
                    let job = match jobs.lock() {
                        Ok(jobs) => jobs.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            });
            if let Err(e) = started {
                tracing::error!(error = %e, "cannot start a password-hashing thread");
            }
        }
        LanePool { threads: tokio::sync::Semaphore::new(threads), waiting: tokio::sync::Semaphore::new(HASH_WAITERS), work: std::sync::Mutex::new(work) }
    }
}

/// thread-priority's 0–99 scale: well below the middle is a positive nice value on Linux
/// (about 10).
fn low_priority() -> thread_priority::ThreadPriority {
    thread_priority::ThreadPriority::Crossplatform(thread_priority::ThreadPriorityValue::try_from(25u8).unwrap_or(thread_priority::ThreadPriorityValue::MIN))
}

/// Password checks that may wait for a lane before requests are refused.
pub const HASH_WAITERS: usize = 1024;
/// The longest a password check waits for the pool.
pub const HASH_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

fn pool() -> &'static HashPool {
    static POOL: std::sync::OnceLock<HashPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        HashPool { strangers: LanePool::new("strangers", cores.saturating_sub(1).max(1), true), known: LanePool::new("known", 1, false) }
    })
}

/// Runs CPU-heavy password work on the lane's threads (never on the async workers).
pub(crate) async fn off_the_workers<T: Send + 'static>(lane: Lane, work: impl FnOnce() -> T + Send + 'static) -> crate::Result<T> {
    let pool = match lane {
        Lane::Stranger => &pool().strangers,
        Lane::Known => &pool().known,
    };
    let Ok(waiting) = pool.waiting.try_acquire() else { return Err(crate::StoreError::Busy) };
    let thread = match tokio::time::timeout(HASH_WAIT, pool.threads.acquire()).await {
        Ok(Ok(permit)) => permit,
        _ => return Err(crate::StoreError::Busy),
    };
    drop(waiting);
    // The thread's permit travels with the work, so a caller that gives up (a closed
    // connection) does not free the thread before the work is done.
    let (answer, answered) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let started = std::time::Instant::now();
        let _ = answer.send(work());
        if lane == Lane::Stranger {
            // The thread rests as long as it worked; the caller has its answer already.
            std::thread::sleep(started.elapsed());
        }
        drop(thread);
    });
    let handed = pool.work.lock().map_err(|_| crate::StoreError::Busy)?.send(job);
    handed.map_err(|_| crate::StoreError::Busy)?;
    answered.await.map_err(|_| crate::StoreError::Busy)
}

/// [`hash_password_now`] on the bounded pool, for a [`Lane::Known`] caller.
pub async fn hash_password(password: &str) -> crate::Result<String> {
    let password = password.to_string();
    off_the_workers(Lane::Known, move || hash_password_now(&password)).await
}

/// [`verify_password_now`] on the bounded pool.
pub async fn verify_password(lane: Lane, password: &str, stored: &str) -> crate::Result<bool> {
    let (password, stored) = (password.to_string(), stored.to_string());
    off_the_workers(lane, move || verify_password_now(&password, &stored)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn passwords() {
        let _alone = alone().await;
        let h = hash_password("correct horse").await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(Lane::Stranger, "correct horse", &h).await.unwrap());
        assert!(!verify_password(Lane::Stranger, "wrong", &h).await.unwrap());
        assert!(!verify_password(Lane::Known, "correct horse", "").await.unwrap());
    }

    /// The pool is one per process: the tests that time it take turns (under `cargo test`
    /// they share a process; nextest gives each its own).
    static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    /// Takes the pool for one test, once the threads of the test before have finished resting.
    async fn alone() -> tokio::sync::MutexGuard<'static, ()> {
        let guard = ALONE.lock().await;
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let strangers = cores.saturating_sub(1).max(1);
        while pool().strangers.threads.available_permits() < strangers || pool().known.threads.available_permits() < 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        guard
    }

    /// Work that holds a thread of the lane for `ms`.
    fn hold(lane: Lane, ms: u64) -> tokio::task::JoinHandle<crate::Result<Instant>> {
        tokio::spawn(off_the_workers(lane, move || {
            std::thread::sleep(Duration::from_millis(ms));
            Instant::now()
        }))
    }

    /// Hashing runs on the lanes' own threads: a current-thread runtime (one async worker) keeps
    /// serving other tasks while hashes run.
    #[tokio::test(flavor = "current_thread")]
    async fn hashing_leaves_the_async_worker_free() {
        let _alone = alone().await;
        let h = hash_password("correct horse").await.unwrap();
        let hashes: Vec<_> = (0..4)
            .map(|_| {
                let h = h.clone();
                tokio::spawn(async move { verify_password(Lane::Stranger, "wrong", &h).await })
            })
            .collect();
        let ticks = tokio::spawn(async {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Instant::now()
        });
        let ticked = ticks.await.unwrap();
        for h in hashes {
            assert!(!h.await.unwrap().unwrap());
        }
        assert!(ticked < Instant::now(), "the only async worker kept running other tasks while four hashes ran");
    }

    /// A flood waits its turn (up to HASH_WAITERS callers), and the caller beyond that is refused
    /// at once; a signed-in caller meanwhile passes on its own lane.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_flood_waits_in_line_signed_in_callers_pass_it_and_the_line_is_bounded() {
        let _alone = alone().await;
        let threads = pool().strangers.threads.available_permits();
        let busy: Vec<_> = (0..threads).map(|_| hold(Lane::Stranger, 400)).collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let line: Vec<_> = (0..HASH_WAITERS).map(|_| hold(Lane::Stranger, 0)).collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let refused = Instant::now();
        assert!(matches!(hold(Lane::Stranger, 0).await.unwrap(), Err(crate::StoreError::Busy)), "the line is full");
        assert!(refused.elapsed() < Duration::from_millis(200), "refused at once, not after a wait");

        let known = Instant::now();
        hold(Lane::Known, 0).await.unwrap().unwrap();
        assert!(known.elapsed() < Duration::from_millis(200), "a signed-in caller does not wait behind strangers");

        for b in busy {
            b.await.unwrap().unwrap();
        }
        // The line has been served (work of 0 ms, so no rest), none refused.
        for l in line {
            l.await.unwrap().unwrap();
        }
    }

    /// The nice value of the calling thread (Linux: field 19 of /proc/thread-self/stat).
    fn nice() -> i64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 1..];
        after.split_whitespace().nth(16).unwrap().parse().unwrap()
    }

    /// Strangers' hashes run at a lower priority than everything else; known callers' do not.
    #[tokio::test]
    async fn strangers_hash_at_a_lower_priority() {
        let _alone = alone().await;
        let here = nice();
        let stranger = off_the_workers(Lane::Stranger, nice).await.unwrap();
        let known = off_the_workers(Lane::Known, nice).await.unwrap();
        assert!(stranger > here, "strangers' threads are niced: {stranger} vs {here}");
        assert_eq!(known, here, "known callers' thread keeps the service's priority");
    }

    /// A stranger's thread rests as long as it worked: a second job on the same lane starts only
    /// after the first one's work and its rest.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn strangers_threads_rest_as_long_as_they_worked() {
        let _alone = alone().await;
        let threads = pool().strangers.threads.available_permits();
        let start = Instant::now();
        let first: Vec<_> = (0..threads).map(|_| hold(Lane::Stranger, 300)).collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let next = hold(Lane::Stranger, 0);
        for f in first {
            let done = f.await.unwrap().unwrap();
            assert!(done.duration_since(start) < Duration::from_millis(550), "the caller has its answer before the rest");
        }
        let started = next.await.unwrap().unwrap();
        assert!(started.duration_since(start) >= Duration::from_millis(600), "work 300 ms + rest 300 ms before the next job");
    }
}
