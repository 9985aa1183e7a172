//! Numbers as text without allocating, for header values and parameters
//! built on the request path.

/// Room for the longest `u64` in decimal.
pub type DecimalBuf = [u8; 20];

/// `n` in decimal, written into `buf`.
pub fn decimal(mut n: u64, buf: &mut DecimalBuf) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
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
}
