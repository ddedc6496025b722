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

/// The bounded pool password hashing runs on: at most `cores - 1` (at least one) hashes at a
/// time on the blocking threads, so a flood of sign-ins never takes every core from answer
/// pages, the outbox and live updates; and at most [`HASH_QUEUE`] more waiting, beyond which a
/// sign-in is refused at once with [`StoreError::Busy`] instead of piling up.
struct HashPool {
    running: tokio::sync::Semaphore,
    admitted: tokio::sync::Semaphore,
}

/// Hashes that may wait for the pool before requests are refused.
pub const HASH_QUEUE: usize = 32;

fn pool() -> &'static HashPool {
    static POOL: std::sync::OnceLock<HashPool> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let running = cores.saturating_sub(1).max(1);
        HashPool { running: tokio::sync::Semaphore::new(running), admitted: tokio::sync::Semaphore::new(running + HASH_QUEUE) }
    })
}

/// Runs CPU-heavy password work on the bounded pool (never on the async workers).
pub(crate) async fn off_the_workers<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> crate::Result<T> {
    let pool = pool();
    let Ok(_admitted) = pool.admitted.try_acquire() else { return Err(crate::StoreError::Busy) };
    let _running = pool.running.acquire().await.map_err(|_| crate::StoreError::Busy)?;
    tokio::task::spawn_blocking(work).await.map_err(|_| crate::StoreError::Busy)
}

/// [`hash_password_now`] on the bounded pool.
pub async fn hash_password(password: &str) -> crate::Result<String> {
    let password = password.to_string();
    off_the_workers(move || hash_password_now(&password)).await
}

/// [`verify_password_now`] on the bounded pool.
pub async fn verify_password(password: &str, stored: &str) -> crate::Result<bool> {
    let (password, stored) = (password.to_string(), stored.to_string());
    off_the_workers(move || verify_password_now(&password, &stored)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    #[tokio::test]
    async fn passwords() {
        let h = hash_password("correct horse").await.unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h).await.unwrap());
        assert!(!verify_password("wrong", &h).await.unwrap());
        assert!(!verify_password("correct horse", "").await.unwrap());
    }

    /// Hashing runs on the blocking pool: a current-thread runtime (one async worker) keeps
    /// serving other tasks while hashes run, and past the queue bound requests are refused at
    /// once instead of waiting.
    #[tokio::test(flavor = "current_thread")]
    async fn hashing_leaves_the_async_worker_free_and_is_bounded() {
        let h = hash_password("correct horse").await.unwrap();
        let check = |h: &String| {
            let h = h.clone();
            tokio::spawn(async move { verify_password("wrong", &h).await })
        };
        let hashes: Vec<_> = (0..4).map(|_| check(&h)).collect();
        let ticks = tokio::spawn(async {
            for _ in 0..5 {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            }
            std::time::Instant::now()
        });
        let ticked = ticks.await.unwrap();
        for h in hashes {
            assert!(!h.await.unwrap().unwrap());
        }
        let hashed = std::time::Instant::now();
        assert!(ticked < hashed, "the only async worker kept running other tasks while four hashes ran");
        let flood: Vec<_> = (0..HASH_QUEUE + 40).map(|_| check(&h)).collect();
        let mut busy = 0;
        for f in flood {
            if matches!(f.await.unwrap(), Err(crate::StoreError::Busy)) {
                busy += 1;
            }
        }
        assert!(busy > 0, "a flood beyond the queue is refused");
    }
}
