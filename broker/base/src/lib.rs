//! What every layer of the broker shares: the wall clock the core is
//! given ([`clock`]) and the rate limiters that keep logs bounded
//! ([`ratelimit`]). Depends on nothing of ours.

pub mod clock;
pub mod ratelimit;
