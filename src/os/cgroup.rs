//! Parsers of the cgroup files that say a container's memory limit:
//! `/proc/self/cgroup` (where the process's cgroup is), v2 `memory.max`
//! and v1 `memory.limit_in_bytes`. Pure functions on byte slices — no
//! system call, no allocation — compiled on every platform so that the unit
//! tests run them on fixture strings; `linux.rs` reads the files into stack
//! buffers and calls them (see docs/design/phases-and-budget.md).

// Only Linux reads cgroups; elsewhere the parsers run in unit tests alone.
#![cfg_attr(not(all(target_os = "linux", not(miri))), allow(dead_code))]

/// What a limit file says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Limit {
    /// No limit: `max` (v2), or v1's "unlimited" value (about 2^63, rounded
    /// to pages).
    Unlimited,
    /// A limit in bytes.
    Bytes(usize),
    /// Empty, not a number, or out of range: treated as no limit.
    Invalid,
}

/// v1 writes "no limit" as the largest page-rounded signed 64-bit value
/// (`9223372036854771712` on 4 KiB pages); anything from 2^62 up is taken
/// as that (no machine has 4 EiB of memory).
const V1_UNLIMITED_FROM: u64 = 1 << 62;

/// Parses the contents of `memory.max` or `memory.limit_in_bytes`: decimal
/// bytes or `max`, with surrounding whitespace.
pub(crate) fn parse_limit(s: &[u8]) -> Limit {
    let s = s.trim_ascii();
    if s == b"max" {
        return Limit::Unlimited;
    }
    if s.is_empty() || s.len() > 20 {
        return Limit::Invalid;
    }
    let mut v = 0u64;
    for &c in s {
        if !c.is_ascii_digit() {
            return Limit::Invalid;
        }
        v = match v.checked_mul(10).and_then(|v| v.checked_add(u64::from(c - b'0'))) {
            Some(v) => v,
            None => return Limit::Invalid,
        };
    }
    if v >= V1_UNLIMITED_FROM {
        return Limit::Unlimited;
    }
    match usize::try_from(v) {
        Ok(0) | Err(_) => Limit::Invalid,
        Ok(b) => Limit::Bytes(b),
    }
}

/// Which hierarchy's line of `/proc/self/cgroup` to find.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Version {
    /// The unified hierarchy: the line `0::/path`.
    V2,
    /// The v1 memory controller: a line `N:...memory...:/path`.
    V1,
}

/// The cgroup path of the process in hierarchy `v`, from the contents of
/// `/proc/self/cgroup` (`hierarchy-id:controllers:path` per line). `None`
/// when no line matches or the path is not absolute.
pub(crate) fn own_path(proc_self_cgroup: &[u8], v: Version) -> Option<&[u8]> {
    for line in proc_self_cgroup.split(|&c| c == b'\n') {
        let mut parts = line.splitn(3, |&c| c == b':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let hit = match v {
            Version::V2 => id == b"0" && controllers.is_empty(),
            Version::V1 => controllers.split(|&c| c == b',').any(|c| c == b"memory"),
        };
        if hit && path.first() == Some(&b'/') {
            return Some(path);
        }
    }
    None
}

/// The lower of two limits (`None`: no limit).
pub(crate) fn lower(a: Option<usize>, b: Limit) -> Option<usize> {
    match (a, b) {
        (Some(x), Limit::Bytes(y)) => Some(x.min(y)),
        (None, Limit::Bytes(y)) => Some(y),
        (a, _) => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_files() {
        assert_eq!(parse_limit(b"max\n"), Limit::Unlimited);
        assert_eq!(parse_limit(b"67108864\n"), Limit::Bytes(64 << 20));
        assert_eq!(parse_limit(b"67108864"), Limit::Bytes(64 << 20));
        // v1's "unlimited" on 4 KiB and 64 KiB pages.
        assert_eq!(parse_limit(b"9223372036854771712\n"), Limit::Unlimited);
        assert_eq!(parse_limit(b"9223372036854710272\n"), Limit::Unlimited);
        assert_eq!(parse_limit(b"12884901888"), Limit::Bytes(12 << 30));
        for bad in [
            &b""[..],
            b"\n",
            b"0",
            b"-1",
            b"12G",
            b"max max",
            b"99999999999999999999999",
            b"\xff\xfe",
            b"1 2",
        ] {
            assert_eq!(parse_limit(bad), Limit::Invalid, "{bad:?}");
        }
    }

    #[test]
    fn proc_self_cgroup_lines() {
        let v2 = b"0::/user.slice/user-1000.slice/session-2.scope\n";
        assert_eq!(
            own_path(v2, Version::V2),
            Some(&b"/user.slice/user-1000.slice/session-2.scope"[..])
        );
        assert_eq!(own_path(v2, Version::V1), None);
        assert_eq!(own_path(b"0::/\n", Version::V2), Some(&b"/"[..]));
        let v1 = b"12:pids:/docker/abc\n9:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n1:name=systemd:/docker/abc\n";
        assert_eq!(own_path(v1, Version::V1), Some(&b"/docker/abc"[..]));
        assert_eq!(own_path(v1, Version::V2), None);
        let hybrid = b"5:memory,hugetlb:/kube/pod1\n0::/kube/pod1\n";
        assert_eq!(own_path(hybrid, Version::V1), Some(&b"/kube/pod1"[..]));
        assert_eq!(own_path(hybrid, Version::V2), Some(&b"/kube/pod1"[..]));
        for bad in [&b""[..], b"garbage", b"0::relative\n", b"::::\n", b"\xff:memory\n"] {
            assert_eq!(own_path(bad, Version::V1), None);
            assert_eq!(own_path(bad, Version::V2), None);
        }
        assert_eq!(lower(None, Limit::Unlimited), None);
        assert_eq!(lower(Some(5), Limit::Bytes(3)), Some(3));
        assert_eq!(lower(Some(5), Limit::Invalid), Some(5));
    }
}
