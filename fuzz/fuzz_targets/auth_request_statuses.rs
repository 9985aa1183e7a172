//! The status lists of `auth_request_pass_status` and
//! `auth_request_allow_status` (src/auth_request/statuses.rs), and the
//! verdict they feed (src/auth_request/verdict.rs): a parsed set holds
//! exactly the words given, each valid for its directive; with no set the
//! verdict is the C module's, and a pass set never turns a 2xx, 401 or 403.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nginx_authgate::auth_request::statuses::{parse, Purpose};
use nginx_authgate::auth_request::verdict::{verdict, verdict_with, Verdict};

fuzz_target!(|value: &[u8]| {
    let words: Vec<&[u8]> = value
        .split(|&b| b == b' ')
        .filter(|w| !w.is_empty())
        .collect();
    for purpose in [Purpose::Pass, Purpose::Allow] {
        match parse(&words, purpose) {
            Ok(set) => {
                let statuses: Vec<usize> = words
                    .iter()
                    .map(|w| core::str::from_utf8(w).unwrap().parse().unwrap())
                    .collect();
                for s in 0..1000usize {
                    assert_eq!(set.contains(s), statuses.contains(&s), "{s}");
                }
                for &s in &statuses {
                    match purpose {
                        Purpose::Pass => {
                            assert!((300..=599).contains(&s) && ![304, 401, 403].contains(&s))
                        }
                        Purpose::Allow => assert!((200..=299).contains(&s)),
                    }
                    let (allow, pass) = match purpose {
                        Purpose::Allow => (Some(&set), None),
                        Purpose::Pass => (None, Some(&set)),
                    };
                    let v = verdict_with(s, allow, pass);
                    match purpose {
                        Purpose::Allow => assert_eq!(v, Verdict::Allow),
                        Purpose::Pass => assert_eq!(v, Verdict::Pass(s)),
                    }
                }
                for s in [0usize, 200, 204, 299, 401, 403] {
                    let v = verdict_with(s, None, Some(&set));
                    assert_eq!(v, verdict(s));
                }
            }
            Err(refused) => {
                assert!(words.contains(&refused.word));
                let times = words.iter().filter(|&&w| w == refused.word).count();
                assert_eq!(refused.given_twice, times > 1);
                assert!(refused.to_string().starts_with("invalid status \""));
            }
        }
    }
    if value.len() >= 2 {
        let s = usize::from(u16::from_le_bytes([value[0], value[1]]));
        assert_eq!(verdict_with(s, None, None), verdict(s));
    }
});
