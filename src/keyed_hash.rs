//! A keyed 128-bit hash for lookups whose keys must not be stored (API
//! keys, decision-cache keys that carry credentials) and must not be
//! forced into collisions by a client.
//!
//! SipHash-1-3 with a 128-bit output (the `siphasher` crate): a keyed PRF,
//! so without the secret a client can neither predict nor collide outputs.
//! The secret is random per [`KeyedHash::random`] call: per zone for shared
//! memory (every worker reads the same secret from the zone), per
//! configuration for tables built at configuration time.

use core::hash::Hasher as _;

use siphasher::sip128::{Hasher128 as _, SipHasher13};

/// A 128-bit keyed hash function: the secret, ready to hash.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct KeyedHash {
    k0: u64,
    k1: u64,
}

impl core::fmt::Debug for KeyedHash {
    // The secret is never printed.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("KeyedHash(..)")
    }
}

/// The operating system's random source failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoRandomness;

impl KeyedHash {
    /// A hash with a fresh secret from the kernel's random source
    /// (`getrandom(2)`, which blocks only before the pool is first seeded
    /// at boot).
    pub fn random() -> Result<Self, NoRandomness> {
        let mut secret = [0u8; 16];
        let mut filled = 0;
        while filled < secret.len() {
            // SAFETY: the pointer and length describe the unfilled tail of
            // `secret`, a live local buffer.
            let n = unsafe {
                libc::getrandom(
                    secret[filled..].as_mut_ptr().cast(),
                    secret.len() - filled,
                    0,
                )
            };
            if n > 0 {
                filled += n as usize;
            } else if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            } else {
                return Err(NoRandomness);
            }
        }
        Ok(Self::with_secret(secret))
    }

    /// A hash with a given secret (tests, and secrets read back from a
    /// shared zone).
    pub fn with_secret(secret: [u8; 16]) -> Self {
        let (k0, k1) = secret.split_at(8);
        Self {
            k0: u64::from_le_bytes(k0.try_into().unwrap_or_default()),
            k1: u64::from_le_bytes(k1.try_into().unwrap_or_default()),
        }
    }

    /// The 128-bit hash of `parts`, each length-prefixed so that
    /// `["ab", "c"]` and `["a", "bc"]` differ.
    pub fn hash(&self, parts: &[&[u8]]) -> u128 {
        let mut hasher = SipHasher13::new_with_keys(self.k0, self.k1);
        for part in parts {
            hasher.write_u64(part.len() as u64);
            hasher.write(part);
        }
        hasher.finish128().as_u128()
    }

    /// The hash with `parts` already absorbed: [`Prefixed::hash`] of
    /// `rest` equals [`KeyedHash::hash`] of `parts` followed by `rest`, at
    /// the cost of hashing `rest` only. For a question whose first parts
    /// are constant (a location's scope), computed once per worker.
    pub fn prefixed(&self, parts: &[&[u8]]) -> Prefixed {
        let mut hasher = SipHasher13::new_with_keys(self.k0, self.k1);
        for part in parts {
            hasher.write_u64(part.len() as u64);
            hasher.write(part);
        }
        Prefixed(hasher)
    }
}

/// A [`KeyedHash`] state after some parts (see [`KeyedHash::prefixed`]).
#[derive(Clone, Copy)]
pub struct Prefixed(SipHasher13);

impl core::fmt::Debug for Prefixed {
    // The state is derived from the secret: never printed.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Prefixed(..)")
    }
}

impl Prefixed {
    /// The hash of the absorbed parts followed by `parts`.
    #[inline]
    pub fn hash(&self, parts: &[&[u8]]) -> u128 {
        let mut hasher = self.0;
        for part in parts {
            hasher.write_u64(part.len() as u64);
            hasher.write(part);
        }
        hasher.finish128().as_u128()
    }

    /// The hash of the absorbed parts followed by `last`, which is not
    /// length-prefixed: as the last bytes of the message it needs no
    /// length to be told apart (every part before it carries its own), so
    /// a lookup hashes one block less.
    #[inline]
    pub fn hash_last(&self, last: &[u8]) -> u128 {
        let mut hasher = self.0;
        hasher.write(last);
        hasher.finish128().as_u128()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_and_length_prefixed() {
        let a = KeyedHash::with_secret([1; 16]);
        let b = KeyedHash::with_secret([2; 16]);
        assert_eq!(a.hash(&[b"key"]), a.hash(&[b"key"]));
        assert_ne!(a.hash(&[b"key"]), b.hash(&[b"key"]));
        assert_ne!(a.hash(&[b"ab", b"c"]), a.hash(&[b"a", b"bc"]));
        assert_ne!(a.hash(&[b""]), a.hash(&[]));
    }

    #[test]
    fn prefixed_equals_the_whole_hash() {
        let h = KeyedHash::with_secret([7; 16]);
        let scope = [3u8; 16];
        for key in [&b""[..], b"k", b"127.0.0.1:18480", &[9u8; 70][..]] {
            assert_eq!(h.prefixed(&[&scope]).hash(&[key]), h.hash(&[&scope, key]));
        }
        assert_eq!(h.prefixed(&[]).hash(&[b"a", b"b"]), h.hash(&[b"a", b"b"]));
    }

    #[test]
    fn hash_last_is_the_prefixed_message_then_the_bytes() {
        let h = KeyedHash::with_secret(*b"0123456789abcdef");
        let scope = [7u8; 16];
        let mut message = 16u64.to_le_bytes().to_vec();
        message.extend_from_slice(&scope);
        let prefixed = h.prefixed(&[&scope]);
        for len in 0..40 {
            let key: Vec<u8> = (0..len as u8).collect();
            let mut whole = SipHasher13::new_with_keys(h.k0, h.k1);
            whole.write(&message);
            whole.write(&key);
            assert_eq!(prefixed.hash_last(&key), whole.finish128().as_u128());
        }
        // Distinct keys, distinct ids; and the length prefix of the scope
        // keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(prefixed.hash_last(b"a"), prefixed.hash_last(b"a\0"));
        assert_ne!(
            h.prefixed(&[b"ab"]).hash_last(b"c"),
            h.prefixed(&[b"a"]).hash_last(b"bc")
        );
    }

    #[test]
    fn random_secrets_differ() {
        let a = KeyedHash::random().unwrap();
        let b = KeyedHash::random().unwrap();
        assert_ne!(a.hash(&[b"x"]), b.hash(&[b"x"]));
        assert_eq!(format!("{a:?}"), "KeyedHash(..)");
    }
}
