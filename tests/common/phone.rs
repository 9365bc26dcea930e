//! Phone numbers no other call in this test process has been given.
//!
//! Random numbers alone collide: 2 000 enrollments drawn from 10⁹ numbers share one about once
//! in 500 runs, and the second enrollment then rightly answers "already registered". A counter
//! from a random start is unique within the process; the random start keeps processes that
//! share a store apart in practice.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// A mobile number in E.164, `+79` and nine digits, never returned twice by this process.
pub fn unique_phone() -> String {
    static START: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let start = *START.get_or_init(|| {
        let mut bytes = [0u8; 8];
        loy::domain::tokens::fill_random(&mut bytes);
        // Room for 10⁸ numbers after the start before the nine digits wrap.
        u64::from_le_bytes(bytes) % 900_000_000
    });
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("+79{:09}", (start + n) % 1_000_000_000)
}
