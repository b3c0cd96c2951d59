//! Paths as byte strings, handled lexically (no file system access).

/// Collapse "//", "." and ".." lexically. Only used to decide whether a path outside the
/// view's prefix walks into it; resolution inside the view follows the view's own symlinks.
pub fn normalize(abs: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in abs.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let mut out = Vec::with_capacity(abs.len());
    for p in parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

/// Join a base directory and a path (absolute paths replace the base).
pub fn join(base: &[u8], path: &[u8]) -> Vec<u8> {
    if path.first() == Some(&b'/') {
        return path.to_vec();
    }
    let mut out = Vec::with_capacity(base.len() + 1 + path.len());
    out.extend_from_slice(base);
    if !base.ends_with(b"/") {
        out.push(b'/');
    }
    out.extend_from_slice(path);
    out
}

/// If `abs` lies inside the view rooted at `root` (no trailing slash, not "/"), the part
/// below the root, still unresolved (it may hold "..", "." and symlinks); the root itself
/// gives an empty slice.
pub fn under_root<'a>(abs: &'a [u8], root: &[u8]) -> Option<&'a [u8]> {
    let rest = abs.strip_prefix(root)?;
    if rest.is_empty() {
        return Some(rest);
    }
    rest.strip_prefix(b"/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_collapses() {
        assert_eq!(normalize(b"/a//b/./c/../d/"), b"/a/b/d");
        assert_eq!(normalize(b"/../.."), b"/");
        assert_eq!(normalize(b"/"), b"/");
    }

    #[test]
    fn join_and_root() {
        assert_eq!(join(b"/p", b"x/y"), b"/p/x/y");
        assert_eq!(join(b"/", b"x"), b"/x");
        assert_eq!(join(b"/p", b"/abs"), b"/abs");
        assert_eq!(under_root(b"/p/q", b"/p"), Some(&b"q"[..]));
        assert_eq!(under_root(b"/p", b"/p"), Some(&b""[..]));
        assert_eq!(under_root(b"/pq", b"/p"), None);
        assert_eq!(under_root(b"/other", b"/p"), None);
    }
}
