//! POSIX access ACLs as `setxattr(system.posix_acl_access)` passes them: what mode an ACL
//! that says no more than a mode stands for (`sed -i` and `cp -p` set the mode of the file
//! they write this way). Shared by the supervisor's and the shim's xattr calls.

/// The attribute that holds a file's access ACL.
pub const ACCESS_ACL: &[u8] = b"system.posix_acl_access";

const VERSION: u32 = 2;
const USER_OBJ: u16 = 0x01;
const GROUP_OBJ: u16 = 0x04;
const OTHER: u16 = 0x20;

/// The permission bits (`0o777`) of an access ACL equivalent to a mode (one owner, one group
/// and one other entry, as the kernel's `posix_acl_equiv_mode` finds it); `None` for a
/// malformed ACL or one with named users, named groups or a mask, which a mode cannot say.
pub fn equivalent_mode(value: &[u8]) -> Option<u32> {
    let (head, body) = value.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*head) != VERSION || body.len() % 8 != 0 {
        return None;
    }
    let (mut mode, mut seen) = (0u32, 0u16);
    for e in body.chunks_exact(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let perm = u32::from(u16::from_le_bytes([e[2], e[3]])) & 0o7;
        let shift = match tag {
            USER_OBJ => 6,
            GROUP_OBJ => 3,
            OTHER => 0,
            _ => return None,
        };
        if seen & tag != 0 {
            return None;
        }
        seen |= tag;
        mode |= perm << shift;
    }
    (seen == USER_OBJ | GROUP_OBJ | OTHER).then_some(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut v = VERSION.to_le_bytes().to_vec();
        for (tag, perm, id) in entries {
            v.extend_from_slice(&tag.to_le_bytes());
            v.extend_from_slice(&perm.to_le_bytes());
            v.extend_from_slice(&id.to_le_bytes());
        }
        v
    }

    #[test]
    fn a_minimal_acl_is_its_mode() {
        let a = acl(&[
            (USER_OBJ, 7, u32::MAX),
            (GROUP_OBJ, 5, u32::MAX),
            (OTHER, 5, u32::MAX),
        ]);
        assert_eq!(equivalent_mode(&a), Some(0o755));
        let b = acl(&[(USER_OBJ, 6, 0), (GROUP_OBJ, 0, 0), (OTHER, 4, 0)]);
        assert_eq!(equivalent_mode(&b), Some(0o604));
    }

    #[test]
    fn named_entries_a_mask_or_a_bad_encoding_are_no_mode() {
        let named = acl(&[
            (USER_OBJ, 7, 0),
            (0x02, 7, 1000),
            (GROUP_OBJ, 5, 0),
            (0x10, 7, 0),
            (OTHER, 5, 0),
        ]);
        assert_eq!(equivalent_mode(&named), None);
        let twice = acl(&[(USER_OBJ, 7, 0), (USER_OBJ, 7, 0), (OTHER, 5, 0)]);
        assert_eq!(equivalent_mode(&twice), None);
        let short = acl(&[(USER_OBJ, 7, 0), (OTHER, 5, 0)]);
        assert_eq!(equivalent_mode(&short), None);
        let mut torn = acl(&[(USER_OBJ, 7, 0), (GROUP_OBJ, 5, 0), (OTHER, 5, 0)]);
        torn.pop();
        assert_eq!(equivalent_mode(&torn), None);
        assert_eq!(equivalent_mode(b"\x01\0\0\0"), None, "version 1");
        assert_eq!(equivalent_mode(b""), None);
    }
}
