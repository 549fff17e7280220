//! SET (cell) deployments: which cell serves a routing variable. Clients
//! compute a user's cell with the same function the broker's SET table
//! uses (docs/SET.md): the slot of a routing variable is
//! FNV-1a 64 of its UTF-8 bytes, modulo [`SLOTS`].

/// The number of slots SET ranges divide among themselves.
pub const SLOTS: u32 = 10_000;

/// The cell that serves global traffic.
pub const CENTER: &str = "CENTER";

/// Header a forwarded message carries: the cell that forwarded it. A
/// broker never forwards such a message again (no loops).
pub const FORWARDED_FROM_HEADER: &str = "x-switchyard-forwarded-from";

/// Header of a forwarded message: `EPOCH/SEQ`, its place in the
/// forwarding cell's stream to this one (`EPOCH` names the forwarding
/// broker's data; `SEQ` grows). The receiver stores each place once.
pub const FORWARD_SEQ_HEADER: &str = "x-switchyard-forward-seq";

/// The slot of `variable`: `fnv1a64(variable) % 10000`.
pub fn slot_of(variable: &str) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in variable.as_bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % u64::from(SLOTS)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_fnv1a_64_modulo_10000() {
        // FNV-1a 64 of "" is the offset basis, of "a" 0xaf63dc4c8601ec8c.
        assert_eq!(slot_of(""), (0xcbf2_9ce4_8422_2325_u64 % 10_000) as u32);
        assert_eq!(slot_of("a"), (0xaf63_dc4c_8601_ec8c_u64 % 10_000) as u32);
        assert!((0..1000).all(|i| slot_of(&format!("user-{i}")) < SLOTS));
    }
}
