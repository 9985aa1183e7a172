//! Numbers as text without allocating, for header values and parameters
//! built on the request path.

/// Room for the longest `u64` in decimal.
pub type DecimalBuf = [u8; 20];

/// "00", "01", … "99": two digits per division instead of one (the request
/// path formats several numbers per request: `X-RateLimit-*`).
const PAIRS: &[u8; 200] = b"\
    0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// `n` in decimal, written at the end of `buf`.
#[inline(always)]
pub fn decimal(mut n: u64, buf: &mut DecimalBuf) -> &[u8] {
    let mut at = buf.len();
    // Four digits per division by 10 000, then pairs: a u64 has at most 20
    // digits, so `at` never goes below 0 (the indexing checks it anyway).
    while n >= 10_000 {
        let rest = (n % 10_000) as usize;
        n /= 10_000;
        let (high, low) = (rest / 100 * 2, rest % 100 * 2);
        at -= 4;
        buf[at..at + 2].copy_from_slice(&PAIRS[high..high + 2]);
        buf[at + 2..at + 4].copy_from_slice(&PAIRS[low..low + 2]);
    }
    let mut n = n as usize;
    if n >= 100 {
        let low = n % 100 * 2;
        n /= 100;
        at -= 2;
        buf[at..at + 2].copy_from_slice(&PAIRS[low..low + 2]);
    }
    if n >= 10 {
        at -= 2;
        buf[at..at + 2].copy_from_slice(&PAIRS[n * 2..n * 2 + 2]);
    } else {
        at -= 1;
        buf[at] = b'0' + n as u8;
    }
    &buf[at..]
}

#[cfg(test)]
mod tests {
    use super::decimal;

    #[test]
    fn decimal_numbers() {
        let mut buf = [0u8; 20];
        for n in [0u64, 7, 10, 429, 65535, 1_000_000_000, u64::MAX] {
            assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes());
        }
    }

    #[test]
    fn every_length_and_digit_pattern() {
        let mut buf = [0u8; 20];
        let mut n: u64 = 1;
        for _ in 0..20 {
            for m in [
                n - 1,
                n,
                n + 1,
                n.saturating_mul(7) / 3,
                n.saturating_mul(10) - 1,
            ] {
                assert_eq!(decimal(m, &mut buf), m.to_string().as_bytes());
            }
            n = n.saturating_mul(10);
        }
        for m in (0..100_000u64).chain(u64::MAX - 100_000..=u64::MAX) {
            assert_eq!(decimal(m, &mut buf), m.to_string().as_bytes());
        }
    }
}
