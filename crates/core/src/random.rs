//! Random bytes for secrets, ids and nonces: the system generator through aws-lc-rs, in one
//! place.

/// Fill `buf` with random bytes.
///
/// Panics when the system generator fails: nothing secret can be made without it, and on
/// Linux `getrandom` does not fail once the kernel's pool is ready (before any server starts).
pub fn fill(buf: &mut [u8]) {
    aws_lc_rs::rand::fill(buf).expect("the system random generator works");
}

/// `N` random bytes.
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    fill(&mut out);
    out
}
