//! The rate limiters, on explicit instants (no sleeping).

use std::time::{Duration, Instant};

use switchyard::ratelimit::{LogLimiter, TokenBucket};

#[test]
fn a_flood_of_warnings_becomes_one_line_per_interval_that_counts_the_rest() {
    let start = Instant::now();
    let mut limiter = LogLimiter::new(Duration::from_secs(1));
    // 200,000 events in 0.8 s: the first is logged, the rest held back.
    let mut logged = Vec::new();
    for i in 0..200_000u64 {
        let now = start + Duration::from_micros(i * 4);
        if let Some(before) = limiter.admit(now) {
            logged.push(before);
        }
    }
    assert_eq!(logged, [0]);
    // The next event after the interval is logged with the count.
    assert_eq!(limiter.admit(start + Duration::from_secs(1)), Some(199_999));
    assert_eq!(limiter.admit(start + Duration::from_millis(1500)), None);
    assert_eq!(limiter.take_suppressed(), 1);
    assert_eq!(limiter.take_suppressed(), 0);
}

#[test]
fn a_token_bucket_refuses_when_empty_and_says_when_to_come_back() {
    let start = Instant::now();
    let mut bucket = TokenBucket::new(3, 0.5, start);
    for _ in 0..3 {
        bucket.take(start).unwrap();
    }
    let wait = bucket.take(start).unwrap_err();
    assert_eq!(wait, Duration::from_secs(2));
    // Half refilled after one second: still one second to go.
    assert_eq!(
        bucket.check(start + Duration::from_secs(1)),
        Err(Duration::from_secs(1))
    );
    bucket.take(start + Duration::from_secs(2)).unwrap();
    // Charges beyond empty push the next token further out.
    let later = start + Duration::from_secs(2);
    bucket.charge(later);
    bucket.charge(later);
    assert_eq!(bucket.check(later), Err(Duration::from_secs(6)));
    assert!(!bucket.is_full(later));
    bucket.reset(later);
    assert!(bucket.is_full(later));
    assert!(bucket.is_full(later + Duration::from_secs(100)));
}
