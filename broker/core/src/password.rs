//! Password hashing and verification (argon2id), bounded.
//!
//! Argon2 is slow and memory-hard on purpose: with the default parameters
//! each hash or verification fills 19 MiB. Unbounded, 32 concurrent failed
//! logins took the broker to 4.7 GB, and the heap kept most of it after
//! they ended (issue 12). So:
//!
//! - at most `max_concurrent` argon2 computations run at once
//!   ([`PasswordGate`]); the others wait their turn, so the memory spent on
//!   passwords is bounded by `max_concurrent` × the hash's memory cost;
//! - that memory is mapped for the computation and unmapped after it, never
//!   taken from the heap, so it is returned to the system at once and
//!   cannot fragment the allocator's arenas;
//! - a login for a user that does not exist verifies against a dummy hash
//!   with the same parameters, so it costs (and takes) what a real one does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};

use argon2::password_hash::PasswordHasher;
use argon2::password_hash::phc::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use switchyard_protocol::code;

use super::error::BrokerError;

/// A counting semaphore for threads (argon2 runs on blocking threads, not
/// on the async runtime).
pub struct PasswordGate {
    free: Mutex<usize>,
    freed: Condvar,
    /// Verifications run (argon2 computed), for tests and metrics.
    verified: AtomicU64,
}

impl PasswordGate {
    pub fn new(max_concurrent: usize) -> Self {
        PasswordGate {
            free: Mutex::new(max_concurrent.max(1)),
            freed: Condvar::new(),
            verified: AtomicU64::new(0),
        }
    }

    /// Runs `f` once fewer than `max_concurrent` others are running.
    fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        let mut free = self.free.lock().unwrap();
        while *free == 0 {
            free = self.freed.wait(free).unwrap();
        }
        *free -= 1;
        drop(free);
        // Given back even if `f` panics.
        struct Release<'a>(&'a PasswordGate);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                *self.0.free.lock().unwrap() += 1;
                self.0.freed.notify_one();
            }
        }
        let _release = Release(self);
        f()
    }

    /// How many passwords were verified (argon2 run) so far.
    pub fn verified(&self) -> u64 {
        self.verified.load(Ordering::Relaxed)
    }

    /// A new PHC hash of `password` with the default parameters.
    pub fn hash(&self, password: &str) -> Result<String, BrokerError> {
        self.run(|| {
            Argon2::default()
                .hash_password(password.as_bytes())
                .map(|hash| hash.to_string())
                .map_err(|e| {
                    BrokerError::new(code::INTERNAL_ERROR, format!("hashing a password: {e}"))
                })
        })
    }

    /// Whether `password` matches the PHC string `hash`; `None` (no such
    /// user) verifies against a dummy hash and answers false, in the same
    /// time. `admit` runs once this check's turn has come, before any
    /// argon2 work: a login that waited while others failed can be turned
    /// away then.
    pub fn verify(
        &self,
        password: &str,
        hash: Option<&str>,
        admit: impl FnOnce() -> Result<(), BrokerError>,
    ) -> Result<bool, BrokerError> {
        let (hash, real) = match hash {
            Some(hash) => (hash, true),
            None => (dummy_hash(), false),
        };
        let parsed = PasswordHash::new(hash).map_err(|e| {
            BrokerError::new(
                code::INTERNAL_ERROR,
                format!("a stored password hash is not a PHC string: {e}"),
            )
        })?;
        let matches = self.run(|| {
            admit()?;
            self.verified.fetch_add(1, Ordering::Relaxed);
            verify_in_mapped_memory(password.as_bytes(), &parsed).map_err(|e| {
                BrokerError::new(code::INTERNAL_ERROR, format!("verifying a password: {e}"))
            })
        })?;
        Ok(real && matches)
    }
}

/// The most an imported hash may cost per login: a definitions file with
/// a hash asking for gigabytes or thousands of passes would stall every
/// login behind it.
const MAX_IMPORTED_MEMORY_KIB: u32 = 256 << 10;
const MAX_IMPORTED_PASSES: u32 = 16;
const MAX_IMPORTED_LANES: u32 = 16;

/// Whether `hash` is an argon2 PHC string this broker can check at a
/// bounded cost (definitions import); why not if it is not.
pub(crate) fn check_importable(hash: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(hash).map_err(|e| format!("not a PHC string: {e}"))?;
    Algorithm::try_from(parsed.algorithm.as_str()).map_err(|e| format!("not argon2: {e}"))?;
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err("it has no salt or no hash".into());
    }
    let params = Params::try_from(&parsed).map_err(|e| format!("bad argon2 parameters: {e}"))?;
    if params.m_cost() > MAX_IMPORTED_MEMORY_KIB
        || params.t_cost() > MAX_IMPORTED_PASSES
        || params.p_cost() > MAX_IMPORTED_LANES
    {
        return Err(format!(
            "its cost (m={} KiB, t={}, p={}) is above m={MAX_IMPORTED_MEMORY_KIB}, \
             t={MAX_IMPORTED_PASSES}, p={MAX_IMPORTED_LANES}",
            params.m_cost(),
            params.t_cost(),
            params.p_cost()
        ));
    }
    Ok(())
}

/// A hash with the default parameters (those every stored hash is made
/// with), computed once. What it hashes does not matter: a match against
/// it is never accepted.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        Argon2::default()
            .hash_password(b"no such user")
            .map(|hash| hash.to_string())
            .expect("hashing the dummy password")
    })
}

/// Argon2 with the parameters, salt and output length of `hash`, its
/// working memory mapped for this call only.
fn verify_in_mapped_memory(password: &[u8], hash: &PasswordHash) -> Result<bool, String> {
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return Ok(false);
    };
    let algorithm = Algorithm::try_from(hash.algorithm.as_str()).map_err(|e| e.to_string())?;
    let version = match hash.version {
        Some(v) => Version::try_from(v).map_err(|e| e.to_string())?,
        None => Version::default(),
    };
    let params = Params::try_from(hash).map_err(|e| e.to_string())?;
    let mut memory = MappedBlocks::new(params.block_count())?;
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt, &mut out, memory.blocks())
        .map_err(|e| e.to_string())?;
    // `Output`'s comparison takes constant time.
    Ok(Output::new(&out).map_err(|e| e.to_string())? == *expected)
}

/// Anonymous memory for argon2's blocks, unmapped when dropped.
struct MappedBlocks {
    map: memmap2::MmapMut,
    len: usize,
}

impl MappedBlocks {
    fn new(len: usize) -> Result<Self, String> {
        let map = memmap2::MmapMut::map_anon(len.max(1) * size_of::<Block>())
            .map_err(|e| format!("mapping {len} KiB for argon2: {e}"))?;
        Ok(MappedBlocks { map, len })
    }

    fn blocks(&mut self) -> &mut [Block] {
        // SAFETY: the mapping is page-aligned (more than `Block`'s 64-byte
        // alignment), holds `len` blocks, is zero-filled (a `Block` is plain
        // u64s, for which zero is valid) and is borrowed mutably for as long
        // as the slice lives.
        unsafe { std::slice::from_raw_parts_mut(self.map.as_mut_ptr().cast::<Block>(), self.len) }
    }
}

#[cfg(test)]
mod import_tests {
    use super::*;

    #[test]
    fn imported_hashes_must_be_argon2_at_a_bounded_cost() {
        assert!(check_importable(dummy_hash()).is_ok());
        assert!(check_importable("not a hash").is_err());
        let costly = dummy_hash().replacen("m=19456", "m=4000000", 1);
        assert!(
            check_importable(&costly).unwrap_err().contains("cost"),
            "{costly}"
        );
    }
}
